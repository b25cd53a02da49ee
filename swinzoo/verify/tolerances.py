"""The comparison and tolerance policy: how one output of swinzoo is held against a reference's.

Change a tolerance here (:data:`TOLERANCES`, one line per stored dtype); docs/verification.md says why the
values are what they are. Every reference compares through :func:`compare` and :func:`top5_agreement`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from .errors import VerifyError


@dataclass(frozen=True)
class Tolerance:
    """Allowed ``max |ours - reference|`` for one output: ``atol + rtol * max |reference|``.

    Relative to the output's own scale because Swin's residual stream grows stage by stage (hidden states of
    real checkpoints reach the hundreds) while logits and reconstructions stay near 1-10.
    """

    atol: float
    rtol: float

    def limit(self, scale: float) -> float:
        return self.atol + self.rtol * scale

    def to_dict(self) -> dict[str, float]:
        return {"atol": self.atol, "rtol": self.rtol}


# Both sides always run in float32. A bfloat16 / float16 folder is upcast, and the reference gets the source's
# weights rounded to the same dtype first, so both hold bit-identical weights and only float32 implementation
# differences remain: measured <= 1.3e-6 relative on real-size synthetic Swin-T / SwinV2-T / SimMIM Swin-L (every
# stage), 3.8e-6 for a normalised-target SimMIM loss. So one bound serves every dtype, 25-100x above that noise;
# a 1e-2 shift of one attention bias of a real-size Swin-T (the hardest case measured) comes out at 8x the bound.
# Kept per dtype so a change for one dtype is one line.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(atol=1e-5, rtol=1e-4),
    "bfloat16": Tolerance(atol=1e-5, rtol=1e-4),
    "float16": Tolerance(atol=1e-5, rtol=1e-4),
}


def tolerance_for(dtype: torch.dtype | str) -> Tolerance:
    name = str(dtype).removeprefix("torch.")
    if name not in TOLERANCES:
        raise VerifyError(f"no tolerance policy for weights stored as {name}; known: {', '.join(TOLERANCES)}")
    return TOLERANCES[name]


@dataclass
class Comparison:
    """One output compared: ``max_abs_diff`` against ``limit`` (from the tolerance and ``ref_max_abs``)."""

    name: str
    max_abs_diff: float
    ref_max_abs: float
    limit: float
    passed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compare(name: str, ours: torch.Tensor, ref: torch.Tensor, tol: Tolerance) -> Comparison:
    """``ours`` against ``ref`` in float64: a shape mismatch or a non-finite difference fails outright."""
    ours, ref = ours.detach().double(), ref.detach().double()
    if tuple(ours.shape) != tuple(ref.shape):
        return Comparison(
            name, math.inf, math.nan, 0.0, False, f"shapes differ: swinzoo {tuple(ours.shape)}, {tuple(ref.shape)}"
        )
    diff = (ours - ref).abs().max().item() if ours.numel() else 0.0
    scale = ref.abs().max().item() if ref.numel() else 0.0
    if not math.isfinite(diff):
        return Comparison(name, math.inf, scale, tol.limit(scale), False, "non-finite values")
    limit = tol.limit(scale)
    return Comparison(name, diff, scale, limit, diff <= limit)


def top5_agreement(ours: torch.Tensor, ref: torch.Tensor, limit: float) -> list[bool]:
    """Per image: do both give the same top-5 classes (as a set)?

    A disagreement is forgiven only for a tie at the boundary: every class in the difference has a reference
    logit within ``2 * limit`` of the reference's 5th-largest one, so float noise may order them either way.
    """
    k = min(5, ref.shape[-1])
    agree = []
    for a, b in zip(ours.double(), ref.double(), strict=True):
        top_a, top_b = set(a.topk(k).indices.tolist()), set(b.topk(k).indices.tolist())
        if top_a == top_b:
            agree.append(True)
            continue
        kth = b.topk(k).values[-1].item()
        agree.append(all(abs(b[c].item() - kth) <= 2 * limit for c in top_a ^ top_b))
    return agree
