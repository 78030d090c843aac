"""Verdicts, certified accuracy and reports (JSON, tables)."""

from mibpcert.certify.report import RunResult, load_report
from mibpcert.certify.testtime import (
    TestCertificate,
    certify_classification,
    certify_regression,
    class_margin_lower_bounds,
)

__all__ = [
    "RunResult",
    "TestCertificate",
    "certify_classification",
    "certify_regression",
    "class_margin_lower_bounds",
    "load_report",
]
