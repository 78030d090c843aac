"""The operations table: every operation has the versions it claims, and the docs print it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from mibpcert.ops import SUPPORT, support_table

#: a function name per domain that proves a module has that domain's version
MARKERS = {
    "numpy": ("forward", "update", "value", "margins"),
    "interval": ("interval", "grad_interval", "lower_bounds_from_output"),
    "program": ("program", "grad_program"),
}


@pytest.mark.parametrize("name", sorted(SUPPORT))
def test_each_operation_has_the_versions_it_claims(name):
    module = importlib.import_module(f"mibpcert.ops.{name}")
    claimed = {d.rstrip("*") for d in SUPPORT[name][1]}
    for domain, markers in MARKERS.items():
        has = any(callable(getattr(module, m, None)) for m in markers)
        assert has == (domain in claimed), f"ops/{name}.py: {domain} version {has=}"


def test_methods_doc_prints_the_current_table():
    doc = Path(__file__).resolve().parent.parent / "docs" / "methods.md"
    assert support_table() in doc.read_text(), "re-paste mibpcert.ops.support_table() in §3"
