"""The project's closed vocabularies, each defined once.

Every value is a ``str`` enum: it compares equal to its plain string (``Verdict.CERTIFIED ==
"certified"``), prints and formats as that string, and serialises to it in JSON, so reports and
configuration files keep their plain words while the code names every value it uses.

* :class:`Verdict` -- what a test point's certificate says;
* :class:`Provenance` -- which proof produced a certificate;
* :class:`Status` -- how a solve ended (shared by every solver backend);
* :class:`RelaxMode` -- which program a per-step or test-time solve uses;
* :class:`Outcome` -- what one ``exact`` program established (closed, replay differs, open).
"""

from __future__ import annotations

from enum import Enum

from mibpcert.errors import ConfigError


class _Word(str, Enum):
    """A ``str`` enum that prints, formats and serialises as its plain value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def parse(cls, value: str | _Word, what: str) -> _Word:
        """``value`` as a member, or a :class:`~mibpcert.errors.ConfigError` listing the words."""
        try:
            return cls(value)
        except ValueError:
            words = ", ".join(repr(m.value) for m in cls)
            raise ConfigError(f"unknown {what} {value!r}; use one of {words}.") from None


class Verdict(_Word):
    """What the certificate of one test point says."""

    #: the prediction is provably the same for every model the attacker can cause
    CERTIFIED = "certified"
    #: an attack inside the threat model (replayed) changes or ties the prediction
    NOT_CERTIFIED = "not certified"
    #: neither proven nor refuted
    UNKNOWN = "unknown"


class Provenance(_Word):
    """Which proof certified a test point (``certified_by`` in reports)."""

    #: interval propagation through the final parameter box
    INTERVAL = "interval"
    #: a test-time MIP over the final parameter box (padded dual bounds)
    MIP = "mip"
    #: the ``exact`` method's program over poisoning, training and the test point
    EXACT = "exact"


class Status(_Word):
    """How a solve ended; every backend maps its native statuses onto these."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIME_LIMIT = "time_limit"
    GAP_LIMIT = "gap_limit"
    NODE_LIMIT = "node_limit"
    INTERRUPTED = "interrupted"
    NUMERICAL = "numerical"
    ERROR = "error"
    NOT_SOLVED = "not_solved"


#: statuses after which the solver's dual bound is kept (branch-and-bound bounds stay valid when
#: a search stops early); all others report no dual bound, except ``infeasible``.
BOUND_VALID_STATUSES = frozenset(
    {Status.OPTIMAL, Status.TIME_LIMIT, Status.GAP_LIMIT, Status.NODE_LIMIT, Status.INTERRUPTED}
)


class RelaxMode(_Word):
    """The program a solve uses: the bilinear MIP itself or a McCormick relaxation of it.

    ``"exact"`` is accepted as an old name of ``bilinear``.
    """

    #: bilinear products kept: a nonconvex MIQCP (SCIP, Gurobi)
    BILINEAR = "bilinear"
    #: products replaced by McCormick envelopes, binaries kept
    MILP = "milp"
    #: McCormick envelopes and binaries relaxed to [0, 1]
    LP = "lp"

    @classmethod
    def _missing_(cls, value: object) -> RelaxMode | None:
        return cls.BILINEAR if value == "exact" else None

    @property
    def capability(self) -> str:
        """The solver capability this program needs (see :mod:`mibpcert.solvers`)."""
        return str(self.value)


RELAX_MODES = tuple(m.value for m in RelaxMode)
"""The relax modes' names (``bilinear``, ``milp``, ``lp``)."""


class Outcome(_Word):
    """What one program of method ``exact`` established, beside the solver's own status.

    ``closed``: the best *replayed* attack meets the certified bound (relative gap <= 1e-4):
    proved optimal and replayed. ``replay_differs``: the solver reports optimality for a value
    that no replayed attack reaches (an incumbent at a hinge/ReLU kink or within tolerances; the
    worst case may be a supremum approached from one side). ``open``: a gap remains.
    """

    CLOSED = "closed"
    REPLAY_DIFFERS = "replay_differs"
    OPEN = "open"
