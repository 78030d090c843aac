"""The encodings of the unrolled training steps, as a registry of named forms.

==========  ===============================================================  ====================
form        applies to                                                       poisoned inputs
==========  ===============================================================  ====================
``points``  every problem                                                    one per point
``slots``   linear hinge/MSE model, k-of-n feature threat (+ label changes)  k slots
``moments`` full-batch linear MSE model                                      none (data moments)
==========  ===============================================================  ====================

Each form (:class:`~mibpcert.encode.forms.base.Form`) says when it applies and what it costs.
``auto`` (:func:`choose`) compares every form that applies by program size (bilinear products
plus the attack's selection/assignment binaries, :meth:`Form.size`) and takes the smallest;
ties go to the earlier of :data:`AUTO_ORDER` (``moments``, ``slots``, then ``points``).
:data:`FORMS` may be extended or overridden: a new form only needs the :class:`Form` methods.
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

AUTO_ORDER = ("moments", "slots", "points")
"""The forms ``auto`` compares; on equal size the earlier one is taken."""

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
    the smallest (:meth:`Form.size`) of the forms that apply; ties: :data:`AUTO_ORDER`."""
    form = check_form(name, problem)
    if form is not None:
        return form
    sizes = [
        (FORMS[n].size(problem, steps), k, FORMS[n])
        for k, n in enumerate(AUTO_ORDER)
        if n in FORMS and FORMS[n].applies(problem)
    ]
    extra = [f for n, f in FORMS.items() if n not in AUTO_ORDER and f.applies(problem)]
    sizes += [(f.size(problem, steps), len(AUTO_ORDER) + i, f) for i, f in enumerate(extra)]
    return min(sizes, key=lambda s: s[:2])[2] if sizes else FORMS["points"]


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
