"""How a run is done (:class:`VerifyOptions`): one bundle, handed from :func:`verify` to each entry."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import VerifyError
from .references import DEFAULT_REFERENCES, REFERENCES


def parse_references(value: str | Iterable[str]) -> tuple[str, ...]:
    """``timm,transformers`` (or a sequence of names) as registered names, each once, in the given order."""
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in REFERENCES]
    if unknown or not names:
        raise VerifyError(f"--reference: {', '.join(unknown) or '(empty)'} not one of {', '.join(REFERENCES)}")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class VerifyOptions:
    """Options of a verify run (the command's flags); ``references`` is checked and normalised on creation.

    ``synthetic``: a random file in the official layout instead of the download; ``source``: the official file
    to use (one entry only); ``images_dir``: sample images [shipped]; ``cache_dir``: download cache; ``seed``:
    of synthetic files and SimMIM masks; ``skip_manual``: report entries without a download URL as skipped;
    ``evict_sources``: delete each entry's checkpoint from the cache once it is verified (a shard then needs disk
    for its largest checkpoint, not all of them; a ``source`` the user gave is never deleted).
    """

    synthetic: bool = False
    source: str | os.PathLike | None = None
    references: tuple[str, ...] = DEFAULT_REFERENCES
    images_dir: str | os.PathLike | None = None
    cache_dir: str | os.PathLike | None = None
    seed: int = 0
    skip_manual: bool = False
    evict_sources: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "references", parse_references(self.references))

    @classmethod
    def of(cls, options: VerifyOptions | None = None, **changes: Any) -> VerifyOptions:
        """``options`` (default: all defaults) with the keyword form's ``changes`` (VerifyOptions fields)."""
        options = options if options is not None else cls()
        return dataclasses.replace(options, **changes) if changes else options
