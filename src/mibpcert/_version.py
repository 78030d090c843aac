"""The package version (one definition; the package root and reports read it)."""

__version__ = "0.1.0"
