"""swinzoo: Swin, Swin V2 and SimMIM weights converted from the official checkpoints and verified.

The public names load on first use, so ``import swinzoo.cli`` (the command line's start) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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

__all__ = [
    "ConfigError",
    "ConversionRecord",
    "ConvertedFolder",
    "ImageProcessor",
    "LoadError",
    "SwinBackbone",
    "SwinConfig",
    "SwinForImageClassification",
    "SwinForMaskedImageModeling",
    "SwinModel",
    "SwinPreTrainedModel",
    "SwinzooError",
    "VerificationRecord",
    "from_pretrained",
    "save_pretrained",
]

if TYPE_CHECKING:
    from .config import ConfigError, SwinConfig
    from .errors import SwinzooError
    from .folder import ConvertedFolder
    from .loading import LoadError, from_pretrained, save_pretrained
    from .modeling import (
        SwinBackbone,
        SwinForImageClassification,
        SwinForMaskedImageModeling,
        SwinModel,
        SwinPreTrainedModel,
    )
    from .processing import ImageProcessor
    from .records import ConversionRecord, VerificationRecord


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'swinzoo' has no attribute {name!r}")
