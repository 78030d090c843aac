"""Import/export of parameters from/to a ``torch.nn.Sequential`` (optional extra: ``torch``).

torch is imported lazily and only here; mibpcert never needs it otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mibpcert.errors import ModelError
from mibpcert.model.network import Architecture


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
