"""What a reference is (:class:`Reference`), the usual way to write one (:class:`LibraryReference`), and the
comparisons every reference makes of its outputs against swinzoo's.
"""

from __future__ import annotations

import math
import time
from types import ModuleType
from typing import Protocol

import torch

from ..context import Context, Outputs
from ..results import ReferenceResult
from ..simmim import masked_l1_loss
from ..tolerances import Comparison, Tolerance, compare, top5_agreement


class Reference(Protocol):
    """An implementation swinzoo did not write, that the converted weights are checked against.

    ``name`` is the ``--reference`` value. ``not_applicable`` says why the reference cannot represent this
    entry's config or task (reported "n/a" with that reason), or None. ``run`` returns its results (usually
    one; ``upstream`` gives one per published copy), never raising for a problem with the entry: a failure is
    a result with status "error". Register a new reference in ``references/__init__.py``.
    """

    name: str

    def not_applicable(self, ctx: Context) -> str | None: ...

    def run(self, ctx: Context) -> list[ReferenceResult]: ...


def import_reference(name: str) -> ModuleType:
    """The reference library ``name``; missing, an ImportError naming the package and how to install it."""
    try:
        return __import__(name)
    except ImportError as exc:
        raise ImportError(
            f"the {name} reference needs the '{name}' package, which cannot be imported ({exc}); "
            "install the references with: pip install 'swinzoo[verify]'"
        ) from exc


def error_result(name: str, library: str, exc: Exception) -> ReferenceResult:
    return ReferenceResult(name, "error", f"{type(exc).__name__}: {exc}", library=library)


class LibraryReference:
    """A reference backed by one library: :meth:`run` imports it (a missing one is an error naming the install
    command), asks :meth:`not_applicable`, then calls :meth:`check`; anything raised is the result's error.
    A subclass sets ``name`` and ``library`` and writes ``check`` (and ``not_applicable`` when it has limits).
    """

    name: str
    library: str

    def not_applicable(self, ctx: Context) -> str | None:
        return None

    def check(self, ctx: Context, result: ReferenceResult) -> ReferenceResult:
        """Fill ``result`` (status "error", library version set) with comparisons; see :func:`finish`."""
        raise NotImplementedError

    def failure(self, ctx: Context, result: ReferenceResult, exc: Exception) -> ReferenceResult:
        """The result when ``check`` (or the import) raised ``exc``."""
        return error_result(self.name, self.library, exc)

    def run(self, ctx: Context) -> list[ReferenceResult]:
        result = ReferenceResult(self.name, "error", library=self.library)
        started = time.perf_counter()
        try:
            result.library_version = import_reference(self.library).__version__
            reason = self.not_applicable(ctx)
            if reason:
                result.status, result.reason = "n/a", reason
            else:
                result = self.check(ctx, result)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # recorded: an error fails the entry
            result = self.failure(ctx, result, exc)
        result.seconds = time.perf_counter() - started
        return [result]


def stage_comparisons(
    ours: Outputs, stages: list[torch.Tensor], final: torch.Tensor, tol: Tolerance
) -> list[Comparison]:
    comps = [
        compare(f"stage{i + 1}", a, b, tol) for i, (a, b) in enumerate(zip(ours.before_merge, stages, strict=False))
    ]
    if len(stages) != len(ours.before_merge):
        comps.append(
            Comparison("stages", math.inf, math.nan, 0.0, False, f"{len(ours.before_merge)} vs {len(stages)} stages")
        )
    assert ours.features is not None, "run_swinzoo always records the final features"
    comps.append(compare("features", ours.features, final, tol))
    return comps


def classification_comparisons(
    result: ReferenceResult,
    ours: torch.Tensor,
    logits: torch.Tensor,
    tol: Tolerance,
    features: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> None:
    """Logits and their top-5. All-zero reference logits (a zero-initialised head, as a retarget to a new class
    count makes) carry no information: the comparison says so, no top-5 is claimed, and the pooled ``features``
    (ours, the reference's; (B, ..., C)) are compared instead, the input the trained head will see."""
    comp = compare("logits", ours, logits, tol)
    result.comparisons.append(comp)
    if not logits.detach().any() and features is not None:
        comp.note = "all zero (a zero-initialised head): no information; the pooled features are compared instead"
        mine, theirs = (f.detach().flatten(1, -2).mean(1) for f in features)
        pooled = compare("pooled features", mine, theirs, tol)
        pooled.note = "mean over positions of the final features (the head's input)"
        result.comparisons.append(pooled)
        return
    if tuple(ours.shape) == tuple(logits.shape):
        agree = top5_agreement(ours, logits, comp.limit)
        result.top5_per_image = agree
        result.top5_agreement = sum(agree) / len(agree)


def mim_comparisons(
    result: ReferenceResult, ctx: Context, reconstruction: torch.Tensor, loss: torch.Tensor | None
) -> None:
    assert ctx.ours.reconstruction is not None and ctx.ours.loss is not None, "a SimMIM model returns both"
    assert ctx.mask is not None, "a SimMIM context always carries its mask"
    result.comparisons.append(compare("reconstruction", ctx.ours.reconstruction, reconstruction, ctx.tol))
    if loss is None:
        target = ctx.config.mim_norm_target_patch_size if ctx.config.mim_norm_target else None
        loss = masked_l1_loss(ctx.pixels, reconstruction, ctx.mask, ctx.config.patch_size, target)
    result.comparisons.append(compare("loss", ctx.ours.loss, loss, ctx.tol))


def finish(result: ReferenceResult, parts: tuple[str, ...]) -> ReferenceResult:
    ok = bool(result.comparisons) and all(c.passed for c in result.comparisons)
    top5_ok = result.top5_per_image is None or all(result.top5_per_image)
    result.status = "pass" if ok and top5_ok else "fail"
    if result.status == "fail":
        bad = [c.name for c in result.comparisons if not c.passed]
        if not top5_ok:
            bad.append("top-5")
        result.reason = result.reason or f"outside tolerance: {', '.join(bad)}"
    result.checked = parts if result.status == "pass" else ()
    return result
