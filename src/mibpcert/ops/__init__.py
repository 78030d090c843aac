"""Every operation of a training step and of test-time certification, one module each.

A module holds the operation's math in every domain it supports, side by side: the numpy version
(the ordinary trainer), the interval version (outward-rounded bounds, :mod:`mibpcert.bounds`) and
the program version (expressions over a solver-neutral program, :mod:`mibpcert.encode`). The
compositions -- the trainer, the interval passes through the network, the per-step and unrolled
encoders -- call these and re-derive nothing.

:data:`SUPPORT` is the table of which domain each operation supports (docs/methods.md prints it).
"""

from __future__ import annotations

#: operation module -> (what it computes, domains supported)
SUPPORT: dict[str, tuple[str, tuple[str, ...]]] = {
    "affine": ("affine layer a W^T + b and its backward pass", ("numpy", "interval", "program")),
    "relu": ("ReLU and its derivative mask", ("numpy", "interval", "program")),
    "hinge": (
        "hinge loss (binary, one-vs-rest) and its gradient",
        ("numpy", "interval", "program"),
    ),
    "bce": ("binary cross-entropy and its gradient (sigmoid)", ("numpy", "interval", "program*")),
    "ce": ("cross-entropy and its gradient (softmax)", ("numpy", "interval", "program*")),
    "mse": ("squared loss and its gradient", ("numpy", "interval", "program")),
    "margin": ("class margins and predictions", ("numpy", "interval", "program")),
    "sgd": ("SGD update theta - lr g", ("numpy", "interval", "program")),
    "clip": ("per-sample elementwise gradient clipping", ("numpy", "interval")),
}
"""``program*``: a sound relaxation (the sigmoid / softmax is bounded, not encoded exactly)."""

DOMAINS = ("numpy", "interval", "program")


def support_table() -> str:
    """:data:`SUPPORT` as a Markdown table (one row per operation, one column per domain)."""
    head = "| operation | what | " + " | ".join(DOMAINS) + " |"
    rule = "|---|---|" + "---|" * len(DOMAINS)
    rows = [head, rule]
    for name, (what, domains) in SUPPORT.items():
        marks = []
        for d in DOMAINS:
            if d in domains:
                marks.append("yes")
            elif f"{d}*" in domains:
                marks.append("relaxed")
            else:
                marks.append("-")
        rows.append(f"| `ops/{name}.py` | {what} | " + " | ".join(marks) + " |")
    return "\n".join(rows)


__all__ = ["DOMAINS", "SUPPORT", "support_table"]
