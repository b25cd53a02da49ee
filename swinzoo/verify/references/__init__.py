"""The references swinzoo's weights are checked against, one module each, registered in :data:`REFERENCES`.

To add one (mmpretrain, torchvision, the official code where it is installed): write ``references/NAME.py`` with
a class following :class:`~.base.Reference` (usually a :class:`~.base.LibraryReference` subclass: a ``name``, the
``library`` it needs, ``not_applicable`` and ``check``), and add one line below. ``--reference NAME`` then
selects it; nothing else reads a reference's name.
"""

from __future__ import annotations

from .base import LibraryReference, Reference
from .timm import TimmReference
from .transformers import TransformersReference
from .upstream import UpstreamReference

#: ``--reference`` name -> reference, in the order their results are reported.
REFERENCES: dict[str, Reference] = {
    ref.name: ref
    for ref in (
        TimmReference(),
        TransformersReference(),
        UpstreamReference(),
    )
}
#: What a run checks against unless told otherwise (``upstream`` needs a network).
DEFAULT_REFERENCES = ("timm", "transformers")

__all__ = ["DEFAULT_REFERENCES", "REFERENCES", "LibraryReference", "Reference"]
