"""The comparison and tolerance policy: how one output of swinzoo is held against a reference's.

The policy itself (:data:`TOLERANCES`, one line per stored dtype) lives in :mod:`swinzoo.gate`, since a verdict
counts only if it was computed under it; change a tolerance there. docs/verification.md says why the values are
what they are. Every reference compares through :func:`compare` and :func:`top5_agreement`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..gate import TOLERANCES, Tolerance
from .errors import VerifyError

__all__ = ["TOLERANCES", "Comparison", "Tolerance", "compare", "tolerance_for", "top5_agreement"]


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
