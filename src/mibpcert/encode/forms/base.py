"""What every encoding of the unrolled training steps provides (the forms' common shape)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mibpcert.domains.builder import Builder, Expr
from mibpcert.problem import Problem


@dataclass
class FormState:
    """What a form built once for the whole program: the attack's variables (``poison``, with
    ``attack(x, X, y)`` and ``assignment(X0, y0, X, y)``) and anything its steps reuse."""

    poison: Any
    extra: dict = field(default_factory=dict)


def per_point_cost(problem: Problem, steps: int) -> int:
    """Bilinear forward products of the per-point form over the first ``steps`` batches: every
    poisonable point of the scope in every batch, times its features and the outputs
    (``sum_t |scope in batch_t| d q``); the unit of every form's :meth:`Form.cost`."""
    t = problem.threat
    if not t.perturbs_features:
        return 0
    scope = set(t.scope(problem.data.n_train).tolist())
    d, q = problem.arch.n_inputs, problem.arch.n_outputs
    batches = problem.batches()[:steps]
    return sum(len(scope.intersection(int(i) for i in idx)) for idx in batches) * d * q


class Form:
    """One encoding of the training steps of the unrolled program.

    A form says when it applies (:meth:`applies`; :attr:`requirement` in words), what it costs
    (:meth:`cost`: the bilinear products its poisoned inputs bring, an estimate in the units of
    :class:`~mibpcert.encode.forms.points.PointsForm`), and whether it pays against the per-point
    form (:meth:`pays`). It builds the attack's variables once (:meth:`prepare`) and the
    batch-mean gradient of every step (:meth:`gradient`).
    """

    name: ClassVar[str]
    requirement: ClassVar[str] = ""

    def applies(self, problem: Problem) -> bool:
        raise NotImplementedError

    def cost(self, problem: Problem, steps: int) -> int:
        raise NotImplementedError

    def binaries(self, problem: Problem) -> int:
        """The binaries of the attack's variables that differ between forms (selection and slot
        assignment; the hinge/ReLU binaries are about the same in every form)."""
        return 0

    def size(self, problem: Problem, steps: int) -> int:
        """Program size that ``auto`` compares: bilinear products plus attack binaries."""
        return self.cost(problem, steps) + self.binaries(problem)

    def pays(self, problem: Problem, steps: int) -> bool:
        """Whether this form has fewer bilinear products than the per-point form."""
        return self.cost(problem, steps) < per_point_cost(problem, steps)

    def prepare(self, b: Builder, problem: Problem) -> FormState:
        raise NotImplementedError

    def gradient(
        self, b: Builder, problem: Problem, state: FormState, theta: list[Expr], idx, tag: str
    ) -> list[Expr]:
        """The batch-mean gradient over the batch ``idx`` at the parameters ``theta`` (flat
        order); ``tag`` keeps variable names unique between steps."""
        raise NotImplementedError
