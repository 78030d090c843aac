"""A frozen feature-extractor prefix: fixed layers in front of the trained model (fine-tuning).

Fine-tuning trains only the last layers of a network; the first ones are fixed, so they are a
fixed feature map ``phi``: the trained model sees ``phi(x)`` in place of ``x``. A
:class:`FrozenPrefix` is that map, a sequence of fixed layers -- affine (``a W^T + b``), ReLU,
tanh, sigmoid -- taken from the first layers of a model (``--freeze N``,
:meth:`FrozenPrefix.from_arch`) or from a ``torch.nn.Sequential``
(:func:`mibpcert.model.torch_io.prefix_from_torch`).

The training pipeline computes the features in float64 (:meth:`FrozenPrefix.forward`, the
same operations as the network's own forward pass, so ``--freeze N`` trains bit-for-bit what
training the whole network with its first ``N`` layers held fixed trains, up to the rounding of
the layers' matrix products). The attacker moves
the *raw* inputs; what the trained layers see of a moved point is bounded by
:meth:`FrozenPrefix.image`, a per-point box that contains the float64 features of every input in
the raw box (sound for the computed features, not only for the real-number map):

* affine layer, point weights: the range of ``a W^T + b`` over a box ``a = m +- r`` is exactly
  ``m W^T + b +- r |W|^T`` (midpoint-radius); both terms are computed in float64, so the box is
  widened by ``4 (K + 1) u (|m| + r) |W|^T + |b|) + 2 K tiny`` (``K`` = fan-in + 1, ``u`` =
  2**-52): Higham's bound on the rounding of the two products, plus the rounding of the float64
  forward pass at any input of the box, each with a factor-2 margin;
* ReLU: exact (``max(lo, 0), max(hi, 0)``);
* tanh, sigmoid (monotone): ``[f(lo), f(hi)]`` widened by 8 ulps on each side, covering libm's
  error at the endpoints and at the evaluated point (glibc: within 2 ulps).

The box is a hull: the features a raw box can produce form a curved set inside it, so bounds
computed from it are sound but may be looser than the raw threat model; attacks in feature
space may not be realisable by any input, which is why attack-producing methods refuse a prefix
with feature perturbations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mibpcert.domains.interval import TINY, UNIT, Interval, round_out
from mibpcert.errors import ModelError
from mibpcert.ops import affine, relu

ACTIVATIONS = ("relu", "tanh", "sigmoid")
_MONOTONE_ULPS = 8.0


def expit(x: np.ndarray) -> np.ndarray:
    """The logistic sigmoid (scipy's ``expit``, imported on first use)."""
    from scipy.special import expit as _expit

    return _expit(x)


@dataclass(frozen=True, eq=False)
class PrefixLayer:
    """One fixed layer: ``kind`` is ``"linear"`` (with ``W`` (out, in) and ``b`` (out,)) or an
    activation of :data:`ACTIVATIONS`."""

    kind: str
    W: np.ndarray | None = None
    b: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind == "linear":
            W = np.asarray(self.W, dtype=np.float64)
            b = np.asarray(self.b, dtype=np.float64)
            if W.ndim != 2 or b.shape != (W.shape[0],):
                raise ModelError(
                    f"a frozen linear layer needs W of shape (out, in) and b of shape (out,), "
                    f"got {W.shape} and {b.shape}."
                )
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise ModelError("a frozen linear layer has NaN or inf weights.")
            object.__setattr__(self, "W", W)
            object.__setattr__(self, "b", b)
        elif self.kind not in ACTIVATIONS:
            raise ModelError(
                f"unknown frozen layer {self.kind!r}; use 'linear' or one of {ACTIVATIONS}."
            )

    def forward(self, a: np.ndarray) -> np.ndarray:
        if self.kind == "linear":
            return affine.forward(a, self.W, self.b)
        if self.kind == "relu":
            return relu.forward(a)
        if self.kind == "tanh":
            return np.tanh(a)
        return expit(a)

    def image(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A box containing the float64 :meth:`forward` of every input in ``[lo, hi]``."""
        if self.kind == "relu":
            return np.maximum(lo, 0.0), np.maximum(hi, 0.0)
        if self.kind == "linear":
            W, b = self.W, self.b
            with np.errstate(over="ignore", invalid="ignore"):
                m = 0.5 * lo + 0.5 * hi
                r = np.nextafter(np.maximum(hi - m, m - lo), np.inf)
                absW = np.abs(W)
                c = m @ W.T + b
                rho = r @ absW.T
                K = W.shape[1] + 1
                mag = (np.abs(m) + r) @ absW.T + np.abs(b)
                err = 4.0 * (K + 1) * UNIT * mag + 2.0 * K * TINY
            out = round_out(c - rho, c + rho, err)
            return out.lo, out.hi
        f = np.tanh if self.kind == "tanh" else expit
        flo, fhi = f(lo), f(hi)
        pad_lo = _MONOTONE_ULPS * UNIT * np.abs(flo) + TINY
        pad_hi = _MONOTONE_ULPS * UNIT * np.abs(fhi) + TINY
        lo_out, hi_out = flo - pad_lo, fhi + pad_hi
        if self.kind == "tanh":
            return np.maximum(lo_out, -1.0), np.minimum(hi_out, 1.0)
        return np.maximum(lo_out, 0.0), np.minimum(hi_out, 1.0)

    def describe(self) -> dict:
        if self.kind == "linear":
            return {"kind": "linear", "in": int(self.W.shape[1]), "out": int(self.W.shape[0])}
        return {"kind": self.kind}


@dataclass(frozen=True, eq=False)
class FrozenPrefix:
    """A fixed feature map: the layers applied, in order, to the raw inputs.

    ``source`` says where it came from (``"freeze 1 of 2-16-2"``, ``"torch"``); it is reported.
    ``model_layers``: how many of its affine layers are the trained model's own first layers
    (``--freeze``), so that reports number the trained layers as in the whole model.
    """

    layers: tuple[PrefixLayer, ...]
    source: str = "prefix"
    model_layers: int = 0

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not any(layer.kind == "linear" for layer in layers):
            raise ModelError("a frozen prefix needs at least one linear layer.")
        width = None
        for k, layer in enumerate(layers):
            if layer.kind != "linear":
                continue
            if width is not None and layer.W.shape[1] != width:
                raise ModelError(
                    f"frozen prefix: layer {k} takes {layer.W.shape[1]} inputs but the layer "
                    f"before it gives {width}."
                )
            width = layer.W.shape[0]
        object.__setattr__(self, "layers", layers)

    @property
    def _linears(self) -> list[PrefixLayer]:
        return [layer for layer in self.layers if layer.kind == "linear"]

    @property
    def n_inputs(self) -> int:
        return int(self._linears[0].W.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self._linears[-1].W.shape[0])

    @classmethod
    def from_arch(cls, arch, theta: np.ndarray, n_frozen: int) -> FrozenPrefix:
        """The first ``n_frozen`` affine layers of ``arch`` at parameters ``theta``, each
        followed by its ReLU (every hidden layer of a model has one)."""
        if not isinstance(n_frozen, (int, np.integer)) or isinstance(n_frozen, bool):
            raise ModelError(f"freeze must be an integer number of layers, got {n_frozen!r}.")
        if arch.n_layers == 1:
            raise ModelError(
                f"freeze = {n_frozen}: model {arch} is a linear model (one affine layer), which "
                "has no layer to freeze while training the rest; use a hidden layer."
            )
        if not 1 <= n_frozen < arch.n_layers:
            raise ModelError(
                f"freeze = {n_frozen}: model {arch} has {arch.n_layers} affine layer(s); freeze "
                f"between 1 and {arch.n_layers - 1} of them, so at least the last one is "
                "trained."
            )
        layers: list[PrefixLayer] = []
        for W, b in arch.unflatten(np.asarray(theta, dtype=np.float64))[:n_frozen]:
            layers += [PrefixLayer("linear", W.copy(), b.copy()), PrefixLayer("relu")]
        return cls(tuple(layers), f"freeze {n_frozen} of {arch}", int(n_frozen))

    def then(self, other: FrozenPrefix) -> FrozenPrefix:
        """This prefix followed by ``other``."""
        if other.n_inputs != self.n_outputs:
            raise ModelError(
                f"cannot chain frozen prefixes: the first gives {self.n_outputs} features, the "
                f"second takes {other.n_inputs}."
            )
        return FrozenPrefix(
            self.layers + other.layers,
            f"{self.source}, then {other.source}",
            self.model_layers + other.model_layers,
        )

    def forward(self, X: np.ndarray) -> np.ndarray:
        """The features of inputs ``X`` (n, d) in float64 (what the training pipeline uses)."""
        a = np.asarray(X, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != self.n_inputs:
            raise ModelError(
                f"the frozen prefix takes inputs with {self.n_inputs} features, got an array "
                f"of shape {a.shape}."
            )
        for layer in self.layers:
            a = layer.forward(a)
        return a

    def image(
        self, lo: np.ndarray, hi: np.ndarray, features: np.ndarray | None = None
    ) -> Interval:
        """Per-point box of the features of every input in ``[lo, hi]`` (n, d): sound for the
        float64 :meth:`forward` in any order of summation. Rows whose raw box is a point get
        their features: the rows of ``features`` (the data's computed features), or
        :meth:`forward` of the point."""
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        flo, fhi = lo, hi
        for layer in self.layers:
            flo, fhi = layer.image(flo, fhi)
        fixed = np.all(lo == hi, axis=1)
        if fixed.any():
            exact = self.forward(lo[fixed]) if features is None else features[fixed]
            flo, fhi = flo.copy(), fhi.copy()
            flo[fixed], fhi[fixed] = exact, exact
        flo = np.where(np.isnan(flo), -np.inf, flo)
        fhi = np.where(np.isnan(fhi), np.inf, fhi)
        return Interval(flo, fhi)

    def describe(self) -> dict:
        """JSON-serialisable summary (used in reports)."""
        return {
            "source": self.source,
            "n_inputs": self.n_inputs,
            "n_features": self.n_outputs,
            "layers": [layer.describe() for layer in self.layers],
        }

    def fingerprint(self) -> bytes:
        """Bytes identifying the prefix's layers and weights (for checkpoints)."""
        parts = []
        for layer in self.layers:
            parts.append(layer.kind.encode())
            if layer.kind == "linear":
                parts += [layer.W.tobytes(), layer.b.tobytes()]
        return b"|".join(parts)
