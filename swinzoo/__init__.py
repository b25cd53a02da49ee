"""swinzoo: Swin, Swin V2 and SimMIM weights converted from the official checkpoints and verified."""

__version__ = "0.1.0"

from .config import ConfigError, SwinConfig  # noqa: E402
from .io import LoadError, from_pretrained, save_pretrained  # noqa: E402
from .modeling import (  # noqa: E402
    SwinBackbone,
    SwinForImageClassification,
    SwinForMaskedImageModeling,
    SwinModel,
    SwinPreTrainedModel,
)

__all__ = [
    "ConfigError",
    "LoadError",
    "SwinBackbone",
    "SwinConfig",
    "SwinForImageClassification",
    "SwinForMaskedImageModeling",
    "SwinModel",
    "SwinPreTrainedModel",
    "from_pretrained",
    "save_pretrained",
]
