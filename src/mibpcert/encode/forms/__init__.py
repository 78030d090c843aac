"""The encodings of the unrolled training steps, as a registry of named forms.

==========  ===============================================================  ====================
form        applies to                                                       poisoned inputs
==========  ===============================================================  ====================
``points``  every problem                                                    one per point
``slots``   linear hinge/MSE model, k-of-n feature threat, clean labels      k slots
``moments`` full-batch linear MSE model                                      none (data moments)
==========  ===============================================================  ====================

Each form (:class:`~mibpcert.encode.forms.base.Form`) says when it applies and what it costs.
``auto`` (:func:`choose`) takes the first form of :data:`AUTO_ORDER` that applies and pays
against the per-point form, else ``points``. :data:`FORMS` may be extended or overridden: a new
form only needs the :class:`Form` methods.
"""

from __future__ import annotations

from mibpcert.encode.forms.base import Form, FormState
from mibpcert.encode.forms.moments import MomentsForm
from mibpcert.encode.forms.points import PointsForm
from mibpcert.encode.forms.slots import SlotPoison, SlotsForm
from mibpcert.errors import ConfigError
from mibpcert.problem import Problem

FORMS: dict[str, Form] = {f.name: f for f in (PointsForm(), SlotsForm(), MomentsForm())}
"""Form name -> form (the registry)."""

AUTO_ORDER = ("moments", "slots")
"""The forms ``auto`` tries, in order, before falling back to ``points``."""

FORM_NAMES = ("auto", *FORMS)


def get_form(name: str) -> Form:
    """The form called ``name`` (:class:`~mibpcert.errors.ConfigError` if there is none)."""
    if name not in FORMS:
        raise ConfigError(f"unknown exact form {name!r}; use one of {', '.join(FORM_NAMES)}.")
    return FORMS[name]


def check_form(name: str, problem: Problem) -> Form | None:
    """The form ``name`` if it applies to ``problem`` (``None`` for ``auto``), else a
    :class:`~mibpcert.errors.ConfigError` that says what it needs."""
    if name == "auto":
        return None
    form = get_form(name)
    if not form.applies(problem):
        raise ConfigError(f"form {name!r} needs {form.requirement}; use form 'auto' or 'points'.")
    return form


def choose(problem: Problem, steps: int, name: str = "auto") -> Form:
    """The form to encode ``steps`` steps with: ``name`` itself (it must apply), or for ``auto``
    the first of :data:`AUTO_ORDER` that applies and pays, else ``points``."""
    form = check_form(name, problem)
    if form is not None:
        return form
    for candidate in AUTO_ORDER:
        f = FORMS[candidate]
        if f.applies(problem) and f.pays(problem, steps):
            return f
    return FORMS["points"]


__all__ = [
    "AUTO_ORDER",
    "FORMS",
    "FORM_NAMES",
    "Form",
    "FormState",
    "SlotPoison",
    "check_form",
    "choose",
    "get_form",
]
