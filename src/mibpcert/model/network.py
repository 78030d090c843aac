"""Framework-free feed-forward networks: architecture, flat parameter vectors, initialisation.

A model is ``Linear -> ReLU -> ... -> Linear`` with layer sizes ``(d, h1, ..., out)``; a linear
model is the special case ``(d, out)``. Parameters live in one flat float64 vector ``theta``,
ordered layer by layer, weight matrix ``W`` (shape (out, in), row-major) then bias ``b``, exactly as
``torch.nn.Linear`` stores them. Every method's parameter box is a box over this vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mibpcert.errors import ModelError
from mibpcert.ops import affine, relu


@dataclass(frozen=True)
class Architecture:
    """Layer sizes of a ReLU MLP, input first: ``Architecture((2, 10, 1))`` is 2-10-1."""

    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.sizes) < 2:
            raise ModelError(
                f"an architecture needs at least an input and an output size, got {self.sizes}; "
                "write it like '2-10-1' (MLP) or '4-3' (linear model)."
            )
        for s in self.sizes:
            if not isinstance(s, (int, np.integer)) or s < 1:
                raise ModelError(f"layer sizes must be positive integers, got {self.sizes}.")

    @classmethod
    def parse(cls, spec: str | Architecture | tuple | list) -> Architecture:
        """Parse ``'2-10-1'`` (or a tuple/list of sizes)."""
        if isinstance(spec, Architecture):
            return spec
        if isinstance(spec, (tuple, list)):
            return cls(tuple(int(s) for s in spec))
        parts = str(spec).replace("x", "-").split("-")
        try:
            sizes = tuple(int(p) for p in parts)
        except ValueError:
            raise ModelError(
                f"cannot parse model {spec!r}: write the layer sizes joined by '-', "
                "input first, e.g. '2-10-1' or '4-16-16-3'."
            ) from None
        return cls(sizes)

    def __str__(self) -> str:
        return "-".join(str(s) for s in self.sizes)

    @property
    def n_inputs(self) -> int:
        return self.sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.sizes[-1]

    @property
    def n_layers(self) -> int:
        """Number of affine layers."""
        return len(self.sizes) - 1

    @property
    def is_linear(self) -> bool:
        return self.n_layers == 1

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of each affine layer."""
        return [(self.sizes[i + 1], self.sizes[i]) for i in range(self.n_layers)]

    @property
    def n_params(self) -> int:
        return sum(o * i + o for o, i in self.layer_shapes)

    def slices(self) -> list[tuple[slice, slice]]:
        """For each layer, the slices of ``theta`` holding W and b."""
        out, pos = [], 0
        for o, i in self.layer_shapes:
            w = slice(pos, pos + o * i)
            pos += o * i
            b = slice(pos, pos + o)
            pos += o
            out.append((w, b))
        return out

    def unflatten(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Views ``[(W1, b1), ...]`` into ``theta`` (last axis is the parameter axis)."""
        theta = np.asarray(theta)
        if theta.shape[-1] != self.n_params:
            raise ModelError(
                f"model {self} has {self.n_params} parameters, got a vector of length "
                f"{theta.shape[-1]}."
            )
        lead = theta.shape[:-1]
        return [
            (theta[..., w].reshape(*lead, o, i), theta[..., b])
            for (w, b), (o, i) in zip(self.slices(), self.layer_shapes, strict=True)
        ]

    def flatten(self, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Inverse of :meth:`unflatten`, with shape checks."""
        if len(layers) != self.n_layers:
            raise ModelError(f"model {self} has {self.n_layers} layers, got {len(layers)}.")
        parts = []
        for k, ((W, b), (o, i)) in enumerate(zip(layers, self.layer_shapes, strict=True)):
            W = np.asarray(W, dtype=np.float64)
            b = np.asarray(b, dtype=np.float64)
            if W.shape != (o, i) or b.shape != (o,):
                raise ModelError(
                    f"layer {k + 1} of model {self} needs W of shape {(o, i)} and b of shape "
                    f"{(o,)}, got {W.shape} and {b.shape}."
                )
            parts += [W.ravel(), b]
        return np.concatenate(parts)

    def param_names(self) -> list[str]:
        names = []
        for k, (o, i) in enumerate(self.layer_shapes, start=1):
            names += [f"W{k}[{r},{c}]" for r in range(o) for c in range(i)]
            names += [f"b{k}[{r}]" for r in range(o)]
        return names


def init_params(arch: Architecture, seed: int = 0) -> np.ndarray:
    """PyTorch-default initialisation of ``nn.Linear``: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Seeded with numpy's PCG64 (``np.random.default_rng(seed)``), so it is reproducible here but
    not bit-identical to torch's generator; load torch weights with :func:`load_params` instead.
    """
    rng = np.random.default_rng(seed)
    layers = []
    for o, i in arch.layer_shapes:
        bound = 1.0 / np.sqrt(i)
        layers.append((rng.uniform(-bound, bound, size=(o, i)), rng.uniform(-bound, bound, size=o)))
    return arch.flatten(layers)


def load_params(path: str | Path, arch: Architecture) -> np.ndarray:
    """Load initial parameters from an ``.npz`` file and check them against ``arch``.

    Accepted layouts: a single flat array ``theta``; arrays ``W1, b1, W2, b2, ...``; or the keys of
    a ``torch.nn.Sequential`` state dict (``0.weight``, ``0.bias``, ``2.weight``, ...), saved with
    ``np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})``.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"initial-parameter file {str(path)!r} does not exist.")
    if path.is_dir():
        raise ModelError(f"initial-parameter file {str(path)!r} is a directory; pass an .npz file.")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except Exception as exc:
        with open(path, "rb") as fh:
            is_zip = fh.read(4) == b"PK\x03\x04"
        what = (
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            if is_zip
            else "not an NPZ (zip) archive"
        )
        raise ModelError(
            f"cannot read initial-parameter file {str(path)!r} ({what}); save the weights with "
            "numpy.savez(path, theta=theta) or numpy.savez(path, W1=..., b1=..., ...)."
        ) from None
    if "theta" in data:
        theta = np.asarray(data["theta"], dtype=np.float64).ravel()
        if theta.size != arch.n_params:
            raise ModelError(
                f"{str(path)!r}: 'theta' has {theta.size} entries, model {arch} has "
                f"{arch.n_params} parameters."
            )
        out = theta
    elif all(f"W{k}" in data and f"b{k}" in data for k in range(1, arch.n_layers + 1)):
        out = arch.flatten([(data[f"W{k}"], data[f"b{k}"]) for k in range(1, arch.n_layers + 1)])
    else:
        weights = sorted(
            (k for k in data if k.endswith(".weight")), key=lambda k: _module_index(k, path)
        )
        if len(weights) != arch.n_layers:
            raise ModelError(
                f"{str(path)!r} holds arrays {sorted(data)}; expected 'theta', or "
                f"'W1','b1',..., or "
                f"{arch.n_layers} torch Linear layers ('0.weight', '0.bias', ...)."
            )
        layers = []
        for wk in weights:
            bk = wk[: -len("weight")] + "bias"
            if bk not in data:
                raise ModelError(f"{str(path)!r}: {wk!r} has no matching {bk!r}.")
            layers.append((data[wk], data[bk]))
        out = arch.flatten(layers)
    if not np.all(np.isfinite(out)):
        raise ModelError(f"{str(path)!r}: initial parameters contain NaN or inf.")
    return np.asarray(out, dtype=np.float64)


def _module_index(key: str, path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in key.split(".")[:-1])
    except ValueError:
        raise ModelError(f"{str(path)!r}: cannot order layer key {key!r}.") from None


def forward(arch: Architecture, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Network output for inputs ``X`` (n, d) -> (n, out)."""
    a = X
    layers = arch.unflatten(theta)
    for k, (W, b) in enumerate(layers):
        z = affine.forward(a, W, b)
        a = relu.forward(z) if k < len(layers) - 1 else z
    return a
