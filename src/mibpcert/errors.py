"""Exceptions raised by mibpcert.

Every error a user can trigger with bad input derives from :class:`MibpcertError` and carries a
message that says what is wrong, where, and how to fix it.
"""

from __future__ import annotations


class MibpcertError(Exception):
    """Base class of every error mibpcert raises on purpose."""


class ConfigError(MibpcertError, ValueError):
    """A configuration value is missing, of the wrong type, or out of range."""


class DataError(MibpcertError, ValueError):
    """A dataset could not be loaded or contains invalid values (NaN, inf, wrong shape)."""


class ModelError(MibpcertError, ValueError):
    """A model architecture, initial parameters or training recipe is invalid."""


class ThreatModelError(MibpcertError, ValueError):
    """A threat model is invalid for the given data (negative radius, k > n, unknown class, ...)."""


class UnsupportedError(MibpcertError, NotImplementedError):
    """A method cannot handle a requested feature (loss, threat-model part, model type)."""


class SolveFailureError(MibpcertError, RuntimeError):
    """Too many of a step's solves failed (the solver raised, or their worker died) for the
    result to be the method's own: the run stops instead of returning fallback bounds that look
    like a solver result (``allow_degraded`` continues and marks the report ``degraded``)."""


class CheckpointError(MibpcertError, ValueError):
    """A checkpoint file is corrupted, foreign, or from another configuration or version."""
