"""The ``upstream`` reference (needs a network): the weights others published, not the official file.

timm's Hub weights (``timm.create_model(tag, pretrained=True)``) and the transformers ``microsoft/*`` repo named in
the manifest's ``[entry.upstream]``; each is its own result (``upstream-timm``, ``upstream-transformers``).
"""

from __future__ import annotations

import weakref

import torch

from ...converters.transformers_layout import transformers_class
from ..context import Context, release
from ..official_state import round_through
from ..results import PARTS, ReferenceResult
from .base import LibraryReference, classification_comparisons, finish, stage_comparisons
from .timm import timm_classify
from .transformers import run_then_release


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub is a core dependency
        return False


def _round_module(model: torch.nn.Module, dtype: torch.dtype) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(round_through(p.float(), dtype))


class _PublishedCopy(LibraryReference):
    """One published copy: the manifest names it (else n/a); it is downloaded and compared unless the source is
    synthetic or the Hub is offline (both errors: random weights cannot match, and no network is no pass)."""

    def ident(self, ctx: Context) -> str | None:
        """The Hub id the manifest gives this copy."""
        raise NotImplementedError

    def compare_published(self, ctx: Context, ident: str, result: ReferenceResult) -> ReferenceResult:
        raise NotImplementedError

    def not_applicable(self, ctx: Context) -> str | None:
        if not self.ident(ctx):
            return f"the manifest names no {self.library} upstream copy of this entry"
        if ctx.retarget is not None:
            return "a retargeted folder: the published copies are at the source's geometry and head"
        return None

    def check(self, ctx: Context, result: ReferenceResult) -> ReferenceResult:
        ident = self.ident(ctx) or ""  # never empty here: not_applicable said so
        if ctx.synthetic:
            result.reason = (
                "a synthetic checkpoint has random weights: it cannot match the published upstream weights "
                f"({ident}); verify the real source against upstream"
            )
        elif _hub_offline():
            result.reason = f"cannot download {ident}: the Hugging Face Hub is offline (HF_HUB_OFFLINE=1)"
        else:
            result = self.compare_published(ctx, ident, result)
        return result

    def failure(self, ctx: Context, result: ReferenceResult, exc: Exception) -> ReferenceResult:
        result.status = "error"
        result.reason = (
            f"could not load upstream {self.library} weights {self.ident(ctx)!r}: {type(exc).__name__}: {exc}"
        )
        return result


class UpstreamTimm(_PublishedCopy):
    name = "upstream-timm"
    library = "timm"

    def ident(self, ctx: Context) -> str | None:
        return ctx.entry.upstream.timm

    def not_applicable(self, ctx: Context) -> str | None:
        reason = super().not_applicable(ctx)
        if reason is None and ctx.task != "image-classification":
            reason = "timm has no SimMIM models"
        return reason

    def compare_published(self, ctx: Context, ident: str, result: ReferenceResult) -> ReferenceResult:
        import timm

        model = timm.create_model(ident, pretrained=True).eval().float()
        _round_module(model, ctx.dtype)
        final, stages, logits = timm_classify(model, ctx.pixels)
        ref = weakref.ref(model)
        del model
        release(ref)
        result.comparisons = stage_comparisons(ctx.ours, stages, final, ctx.tol)
        assert ctx.ours.logits is not None, "a classifier always returns logits"
        classification_comparisons(result, ctx.ours.logits, logits, ctx.tol)
        return finish(result, PARTS[ctx.task])


class UpstreamTransformers(_PublishedCopy):
    name = "upstream-transformers"
    library = "transformers"

    def ident(self, ctx: Context) -> str | None:
        return ctx.entry.upstream.transformers

    def check(self, ctx: Context, result: ReferenceResult) -> ReferenceResult:
        result = super().check(ctx, result)
        if ctx.entry.upstream.transformers_inferred:
            result.reason = (result.reason + "; " if result.reason else "") + (
                "the manifest marks this repo id as inferred (it may hold other weights)"
            )
        return result

    def compare_published(self, ctx: Context, ident: str, result: ReferenceResult) -> ReferenceResult:
        cls = transformers_class(ctx.config.version, ctx.task)
        model = cls.from_pretrained(ident, attn_implementation="eager").eval().float()
        _round_module(model, ctx.dtype)
        return run_then_release(model, ctx, result)


class UpstreamReference:
    """``--reference upstream``: every published copy, one result each (each says for itself when it is n/a)."""

    name = "upstream"
    copies: tuple[LibraryReference, ...] = (UpstreamTimm(), UpstreamTransformers())

    def not_applicable(self, ctx: Context) -> str | None:
        return None

    def run(self, ctx: Context) -> list[ReferenceResult]:
        return [result for copy in self.copies for result in copy.run(ctx)]
