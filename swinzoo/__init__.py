"""swinzoo: Swin, Swin V2 and SimMIM weights converted from the official checkpoints and verified.

The public names load on first use, so ``import swinzoo.cli`` (the command line's start) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name and the module it lives in: the one list (the imports below mirror it for type checkers;
# tests/test_records.py checks that they do).
_PUBLIC = {
    "ConfigError": "config",
    "SwinConfig": "config",
    "ConvertedFolder": "folder",
    "ConversionRecord": "records",
    "VerificationRecord": "records",
    "ImageProcessor": "processing",
    "LoadError": "loading",
    "from_pretrained": "loading",
    "save_pretrained": "loading",
    "SwinzooError": "errors",
    "SwinBackbone": "modeling",
    "SwinForImageClassification": "modeling",
    "SwinForMaskedImageModeling": "modeling",
    "SwinModel": "modeling",
    "SwinPreTrainedModel": "modeling",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:  # what type checkers see (`X as X`: re-exported); the names of _PUBLIC, from the same modules
    from .config import ConfigError as ConfigError
    from .config import SwinConfig as SwinConfig
    from .errors import SwinzooError as SwinzooError
    from .folder import ConvertedFolder as ConvertedFolder
    from .loading import LoadError as LoadError
    from .loading import from_pretrained as from_pretrained
    from .loading import save_pretrained as save_pretrained
    from .modeling import SwinBackbone as SwinBackbone
    from .modeling import SwinForImageClassification as SwinForImageClassification
    from .modeling import SwinForMaskedImageModeling as SwinForMaskedImageModeling
    from .modeling import SwinModel as SwinModel
    from .modeling import SwinPreTrainedModel as SwinPreTrainedModel
    from .processing import ImageProcessor as ImageProcessor
    from .records import ConversionRecord as ConversionRecord
    from .records import VerificationRecord as VerificationRecord


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'swinzoo' has no attribute {name!r}")
