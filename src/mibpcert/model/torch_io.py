"""Import/export of parameters from/to a ``torch.nn.Sequential`` (optional extra: ``torch``),
and a ``torch.nn.Sequential`` as a frozen feature-extractor prefix (:func:`prefix_from_torch`,
:func:`load_prefix`).

torch is imported lazily and only here; mibpcert never needs it otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mibpcert.errors import ModelError
from mibpcert.model.network import Architecture
from mibpcert.model.prefix import FrozenPrefix, PrefixLayer

#: torch layers a frozen prefix may hold (no-ops at inference: Flatten of 2-d inputs, Identity,
#: Dropout in eval mode)
PREFIX_LAYERS = ("Linear", "ReLU", "Tanh", "Sigmoid", "Flatten", "Identity", "Dropout")


def _linear_layers(module: Any) -> list[Any]:
    children = list(module.children()) if hasattr(module, "children") else list(module)
    linears, expect_linear = [], True
    for c in children:
        kind = type(c).__name__
        if kind == "Linear":
            if not expect_linear:
                raise ModelError(
                    "torch model: two Linear layers in a row; mibpcert models alternate "
                    "Linear and ReLU (Linear, ReLU, ..., Linear)."
                )
            linears.append(c)
            expect_linear = False
        elif kind == "ReLU":
            if expect_linear:
                raise ModelError("torch model: a ReLU must follow a Linear layer.")
            expect_linear = True
        elif kind in ("Flatten", "Identity"):
            continue
        else:
            raise ModelError(
                f"torch model: unsupported layer {kind}; only Linear and ReLU are supported."
            )
    if not linears or expect_linear:
        raise ModelError("torch model: it must end with a Linear layer.")
    return linears


def _to_numpy(t: Any) -> np.ndarray:
    return np.asarray(t.detach().cpu().double().numpy(), dtype=np.float64)


def from_torch(module: Any) -> tuple[Architecture, np.ndarray]:
    """Architecture and flat parameters of a ``nn.Sequential`` of Linear/ReLU layers."""
    linears = _linear_layers(module)
    sizes = [int(linears[0].in_features)] + [int(lin.out_features) for lin in linears]
    arch = Architecture(tuple(sizes))
    layers = []
    for lin in linears:
        if lin.bias is None:
            raise ModelError("torch model: Linear layers without bias are not supported.")
        layers.append((_to_numpy(lin.weight), _to_numpy(lin.bias)))
    return arch, arch.flatten(layers)


def to_torch(arch: Architecture, theta: np.ndarray) -> Any:
    """A float64 ``nn.Sequential`` holding ``theta``."""
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise ModelError(
            "exporting to PyTorch needs torch: pip install 'mibpcert[torch]'."
        ) from exc
    mods: list[Any] = []
    for k, (W, b) in enumerate(arch.unflatten(np.asarray(theta, dtype=np.float64))):
        lin = nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        mods.append(lin)
        if k < arch.n_layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def prefix_from_torch(module: Any, source: str = "torch") -> FrozenPrefix:
    """A frozen feature map from a ``torch.nn.Sequential`` of Linear, ReLU, Tanh and Sigmoid
    layers (Flatten, Identity and Dropout are inference no-ops and skipped); its weights are
    copied in float64. Any order is accepted (e.g. ending with a Linear layer)."""
    children = list(module.children()) if hasattr(module, "children") else list(module)
    if not children:
        raise ModelError("torch prefix: the module holds no layers; pass an nn.Sequential.")
    layers: list[PrefixLayer] = []
    for pos, c in enumerate(children):
        kind = type(c).__name__
        if kind == "Linear":
            W = _to_numpy(c.weight)
            b = np.zeros(W.shape[0]) if c.bias is None else _to_numpy(c.bias)
            layers.append(PrefixLayer("linear", W, b))
        elif kind in ("ReLU", "Tanh", "Sigmoid"):
            layers.append(PrefixLayer(kind.lower()))
        elif kind in ("Flatten", "Identity", "Dropout"):
            continue
        else:
            raise ModelError(
                f"torch prefix: layer {pos} is {kind}, which a frozen prefix cannot bound yet; "
                f"use {', '.join(PREFIX_LAYERS)}."
            )
    return FrozenPrefix(tuple(layers), source)


def load_prefix(path: str | Path) -> FrozenPrefix:
    """A frozen prefix from a file written by ``torch.save(nn.Sequential(...), path)``.

    The file is read with ``weights_only=True``, allowing only the layer classes of
    :data:`PREFIX_LAYERS`: no other code from the file runs.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"prefix file {str(path)!r} does not exist.")
    if path.is_dir():
        raise ModelError(f"prefix file {str(path)!r} is a directory; pass a torch.save'd file.")
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise ModelError(
            "a torch prefix (--prefix) needs torch: pip install 'mibpcert[torch]'."
        ) from exc
    allowed = [nn.Sequential] + [getattr(nn, name) for name in PREFIX_LAYERS]
    try:
        with torch.serialization.safe_globals(allowed):
            module = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"cannot read prefix file {str(path)!r} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); save it with "
            f"torch.save(nn.Sequential(...), path), using only {', '.join(PREFIX_LAYERS)}."
        ) from None
    if not isinstance(module, nn.Sequential):
        raise ModelError(
            f"prefix file {str(path)!r} holds a {type(module).__name__}, not an nn.Sequential; "
            "save the module itself: torch.save(nn.Sequential(...), path)."
        )
    return prefix_from_torch(module, f"torch prefix {path.name}")
