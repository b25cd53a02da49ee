"""The error for a wrong verify request; a problem with an entry itself goes into its report instead."""

from __future__ import annotations

from ..errors import SwinzooError


class VerifyError(SwinzooError, ValueError):
    """The request itself is wrong (bad --shard, --source with several entries...); nothing was verified."""
