"""What a verify run says: one :class:`ReferenceResult` per reference, one :class:`EntryReport` per entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .tolerances import TOLERANCES, Comparison, Tolerance

#: The parts of a model each task has; an entry passes only when a passing reference checked every part.
PARTS = {
    "image-classification": ("encoder", "classifier"),
    "masked-image-modeling": ("encoder", "simmim-head"),
}


@dataclass
class ReferenceResult:
    """What one reference said about one entry.

    ``status``: ``pass``; ``fail`` (outputs differ beyond tolerance, or top-5 disagrees); ``n/a`` (the reference
    cannot represent this checkpoint: ``reason`` says why); ``error`` (it could not run: missing library,
    no network, a load failure; ``reason`` has the message).
    """

    reference: str
    status: str
    reason: str = ""
    library: str = ""
    library_version: str = ""
    checked: tuple[str, ...] = ()
    comparisons: list[Comparison] = field(default_factory=list)
    top5_agreement: float | None = None
    top5_per_image: list[bool] | None = None
    seconds: float = 0.0

    def _max(self, names: Callable[[str], bool]) -> float | None:
        values = [c.max_abs_diff for c in self.comparisons if names(c.name)]
        return max(values) if values else None

    @property
    def output_max_abs_diff(self) -> float | None:
        """Logits (classifiers) or reconstruction (SimMIM pretrain)."""
        return self._max(lambda n: n in ("logits", "reconstruction"))

    @property
    def hidden_max_abs_diff(self) -> float | None:
        return self._max(lambda n: n.startswith(("stage", "hidden", "features")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "status": self.status,
            "reason": self.reason,
            "library": self.library,
            "library_version": self.library_version,
            "checked": list(self.checked),
            "output_max_abs_diff": self.output_max_abs_diff,
            "hidden_max_abs_diff": self.hidden_max_abs_diff,
            "top5_agreement": self.top5_agreement,
            "top5_per_image": self.top5_per_image,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class EntryReport:
    """The verdict on one zoo entry.

    ``status``: ``pass``; ``fail`` (a reference disagrees, or the converted folder does not match its source);
    ``error`` (it could not be checked: no source, unreadable image, missing library...); ``unchecked`` (no
    reference could check some part of it); ``skipped`` (manual download, and skipping was asked for).
    Only ``pass`` and ``skipped`` count as success.
    """

    entry: str
    status: str = "error"
    layout: str = ""
    task: str = ""
    problems: list[str] = field(default_factory=list)
    references: list[ReferenceResult] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    source: str = ""
    source_sha256: str = ""
    synthetic: bool = False
    converted: str | None = None
    dtype: str = "float32"
    tolerance: Tolerance = TOLERANCES["float32"]
    images: list[str] = field(default_factory=list)
    seed: int = 0
    mask: dict[str, Any] | None = None
    seconds: float = 0.0
    source_seconds: float = 0.0  # finding the source: generating a synthetic file, or fetching and hashing one
    convert_seconds: float = 0.0  # swinzoo's model (converted in memory, or the folder's) and its outputs
    source_evicted: bool = False  # the checkpoint was deleted from the cache after the run (--evict-sources)
    bound: dict[str, str | None] | None = None  # --converted: sha256 of the folder's files as verify read them
    # Both inference paths of swinzoo's model: "fast" (what the references checked) and "readable" (modeling.py's
    # code, compared with the fast one at the same batch): {"readable": {"status", "output_max_abs_diff", ...}}
    inference_paths: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "skipped")

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "status": self.status,
            "passed": self.passed,
            "layout": self.layout,
            "task": self.task,
            "problems": self.problems,
            "unchecked": self.unchecked,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "synthetic": self.synthetic,
            "converted": self.converted,
            "dtype": self.dtype,
            "tolerance": self.tolerance.to_dict(),
            "images": self.images,
            "seed": self.seed,
            "mask": self.mask,
            "references": [r.to_dict() for r in self.references],
            "seconds": round(self.seconds, 3),
            "source_seconds": round(self.source_seconds, 3),
            "convert_seconds": round(self.convert_seconds, 3),
            "source_evicted": self.source_evicted,
            "inference_paths": self.inference_paths,
        }
