"""swinzoo: Swin, Swin V2 and SimMIM weights converted from the official checkpoints and verified."""

__version__ = "0.1.0"
