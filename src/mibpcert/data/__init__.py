"""Datasets, splits, CSV/NPZ loading and scaling (no solver, no bounds)."""

from mibpcert.data.datasets import BUILTIN_DATASETS, Dataset, load_dataset, load_file

__all__ = ["BUILTIN_DATASETS", "Dataset", "load_dataset", "load_file"]
