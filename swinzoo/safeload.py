"""Load checkpoints without ever executing pickled code.

Every ``.pth`` goes through ``torch.load(..., weights_only=True)``: torch's restricted unpickler, which
only rebuilds tensors and plain containers. Official Microsoft *training* checkpoints also pickle a yacs
``CfgNode`` (the run's config) and sometimes an ``argparse.Namespace``; weights_only refuses those.
Rather than trusting the real classes (importing yacs and calling its code), we map their pickled names
onto inert stand-ins defined here that only store the data. Anything else a file references by name
(``os.system``, ``builtins.eval``, arbitrary classes) is listed *before* unpickling starts and refused
with :class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

import pickle
import re
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import serialization
from torch._weights_only_unpickler import get_globals_in_pkl

from .errors import SwinzooError

__all__ = [
    "CheckpointError",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "StateDictError",
    "PickledConfig",
    "PickledNamespace",
    "STANDIN_GLOBALS",
    "load_checkpoint",
    "extract_state_dict",
    "load_state_dict",
]

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"
_STATE_DICT_KEYS = ("model", "state_dict")
_DDP_PREFIX = "module."


class CheckpointError(SwinzooError, ValueError):
    """A checkpoint could not be loaded or holds no usable weights; the message names the file."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, corrupt, or not a checkpoint at all."""


class UnsafeCheckpointError(CheckpointError):
    """The file references globals (functions, classes) that could run code when unpickled."""

    def __init__(self, path: Path, offending: list[str], detail: str | None = None) -> None:
        self.path = path
        self.offending = sorted(offending)
        names = ", ".join(self.offending) if self.offending else "(see detail)"
        message = (
            f"{path}: refusing to load: the pickle references globals that are not plain data and could "
            f"execute code when unpickled: {names}. Nothing was unpickled. swinzoo loads only tensors and "
            "data containers (weights_only=True); if you trust this file, re-save its state dict with "
            "torch.save(state_dict) or as safetensors and load that instead."
        )
        if detail:
            message += f" (torch: {detail})"
        super().__init__(message)


class StateDictError(CheckpointError):
    """The checkpoint loaded, but no state dict (name -> tensor) could be found in it."""


# --------------------------------------------------------------------------------------------------------
# Inert stand-ins for pickled data-container classes.
#
# How torch's weights_only unpickler treats a pickled instance of a dict subclass such as yacs' CfgNode
# (protocol 2): NEWOBJ calls ``cls.__new__(cls)``, then SETITEMS fills the items, then BUILD sets the
# instance ``__dict__``. SETITEMS is only allowed when the object's type is *exactly* dict, OrderedDict or
# Counter, so a dict-subclass stand-in would be rejected. Our stand-in's ``__new__`` therefore returns a
# plain OrderedDict carrying a marker attribute (OrderedDict instances have a ``__dict__``, and BUILD on
# an OrderedDict just updates it). After loading, :func:`_finish_standins` swaps every marked OrderedDict
# for a :class:`PickledConfig`. Namespace-like classes carry no items, so a plain object with a
# ``__dict__`` works directly.
# --------------------------------------------------------------------------------------------------------

_MARKER = "__swinzoo_pickled_class__"


class PickledConfig(dict):
    """Inert stand-in for a pickled config dict (yacs ``CfgNode``, ``EasyDict``): only data, no behaviour.

    Keys are readable as attributes (``cfg.MODEL.SWIN.EMBED_DIM``) like the original. ``pickled_class``
    names the class the file asked for; ``pickled_state`` holds the instance attributes it pickled
    (for a CfgNode: ``__immutable__``, ``__new_allowed__`` ...).
    """

    __slots__ = ("pickled_class", "pickled_state")

    def __init__(self, items: Mapping[Any, Any] = (), *, pickled_class: str = "", pickled_state=None):
        super().__init__(items)
        self.pickled_class = pickled_class
        self.pickled_state = dict(pickled_state or {})

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{self.pickled_class or 'config'} has no key {name!r}") from None

    def __repr__(self) -> str:
        return f"PickledConfig[{self.pickled_class}]({dict.__repr__(self)})"


def _dict_standin(qualname: str) -> type:
    """A class the unpickler may instantiate under ``qualname``; it yields a marked OrderedDict."""

    def __new__(cls, *args: Any, **kwargs: Any) -> OrderedDict:  # noqa: N807 - arguments ignored: inert
        od: OrderedDict = OrderedDict()
        od.__dict__[_MARKER] = qualname
        return od

    return type(f"_DictStandIn[{qualname}]", (), {"__new__": __new__, "__module__": __name__})


class PickledNamespace:
    """Inert stand-in for ``argparse.Namespace`` / ``types.SimpleNamespace``: attributes only."""

    pickled_class = "argparse.Namespace"

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        # BUILD hands us the pickled instance __dict__; accept only that shape.
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
            if isinstance(slots, dict):
                self.__dict__.update(slots)
        if isinstance(state, dict):
            self.__dict__.update(state)
        elif state is not None:
            raise pickle.UnpicklingError(f"unexpected namespace state of type {type(state).__name__}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PickledNamespace) and vars(self) == vars(other)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"PickledNamespace({body})"


class _SimpleNamespaceStandIn(PickledNamespace):
    pickled_class = "types.SimpleNamespace"


#: (stand-in, pickled name) pairs handed to ``torch.serialization.safe_globals`` while loading.
#: Only data containers belong here: the stand-ins store what they are given and run nothing.
STANDIN_GLOBALS: list[tuple[Any, str]] = [
    (_dict_standin("yacs.config.CfgNode"), "yacs.config.CfgNode"),
    (_dict_standin("easydict.EasyDict"), "easydict.EasyDict"),
    (PickledNamespace, "argparse.Namespace"),
    (_SimpleNamespaceStandIn, "types.SimpleNamespace"),
    # Immutable built-in data types torch does not allowlist by default.
    (frozenset, "builtins.frozenset"),
    (slice, "builtins.slice"),
    (range, "builtins.range"),
]

# safe_globals() edits a process-wide set and removes it on exit; serialise our loads so two threads
# do not pull the stand-ins out from under each other.
_LOAD_LOCK = threading.RLock()


def _finish_standins(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """Replace marked OrderedDicts (see above) with PickledConfig, recursing through containers."""
    if memo is None:
        memo = {}
    if isinstance(obj, torch.Tensor) or isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, OrderedDict) and _MARKER in getattr(obj, "__dict__", {}):
        state = {k: v for k, v in vars(obj).items() if k != _MARKER}
        out: Any = PickledConfig(pickled_class=vars(obj)[_MARKER], pickled_state=state)
        memo[key] = out
        for k, v in obj.items():
            dict.__setitem__(out, k, _finish_standins(v, memo))
        out.pickled_state = {k: _finish_standins(v, memo) for k, v in state.items()}
        return out
    if isinstance(obj, dict):
        memo[key] = obj
        for k, v in list(obj.items()):
            new = _finish_standins(v, memo)
            if new is not v:
                obj[k] = new
        return obj
    if isinstance(obj, list):
        memo[key] = obj
        for i, v in enumerate(obj):
            obj[i] = _finish_standins(v, memo)
        return obj
    if isinstance(obj, tuple):
        items = [_finish_standins(v, memo) for v in obj]
        out = obj if all(a is b for a, b in zip(items, obj, strict=True)) else tuple(items)
        memo[key] = out
        return out
    if isinstance(obj, PickledNamespace):
        memo[key] = obj
        for k, v in list(vars(obj).items()):
            setattr(obj, k, _finish_standins(v, memo))
        return obj
    return obj


def _legacy_globals(path: Path) -> set[str] | None:
    """Globals named in a legacy (pre-1.6, non-zip) torch.save file, or None if the scan cannot tell.

    The legacy format is four pickles in a row (magic number, protocol, sys info, the object) followed
    by raw storage bytes; the object's globals are in the first four.
    """
    try:
        with open(path, "rb") as f:
            found: set[str] = set()
            for _ in range(4):
                found |= get_globals_in_pkl(f)
            return found
    except Exception:  # an opcode the scanner does not know: let weights_only itself decide
        return None


def _weights_only_detail(message: str) -> str:
    """The unpickler's own sentence out of torch's long weights_only error text."""
    marker = "WeightsUnpickler error:"
    if marker in message:
        message = message.split(marker, 1)[1]
    lines = [ln.strip() for ln in message.splitlines() if ln.strip() and "Weights only load failed" not in ln]
    return lines[0] if lines else message.strip()


def _unsafe_globals(path: Path, is_zip: bool) -> list[str] | None:
    if is_zip:
        return sorted(serialization.get_unsafe_globals_in_checkpoint(str(path)))
    found = _legacy_globals(path)
    if found is None:
        return None
    allowed = set(torch._weights_only_unpickler._get_allowed_globals()) | set(
        torch._weights_only_unpickler._get_user_allowed_globals()
    )
    return sorted(found - allowed)


def _is_safetensors(path: Path, head: bytes) -> bool:
    if path.suffix == ".safetensors":
        return True
    # 8-byte little-endian header length, then a JSON object.
    return len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 100_000_000


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptCheckpointError(f"{path}: not a readable safetensors file: {e}") from e


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a ``.pth``/``.bin``/``.safetensors`` checkpoint into a dict, never executing pickled code.

    Zip-format (torch >= 1.6) files are memory-mapped, so a multi-GB training checkpoint does not need
    to fit in RAM twice. yacs configs and argparse namespaces come back as :class:`PickledConfig` /
    :class:`PickledNamespace`. Raises :class:`UnsafeCheckpointError` for any other global, before
    unpickling; :class:`CorruptCheckpointError` for truncated or foreign files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CorruptCheckpointError(f"{path}: the file is empty")

    if _is_safetensors(path, head):
        return _load_safetensors(path)

    is_zip = head.startswith(_ZIP_MAGIC)
    if is_zip and not zipfile.is_zipfile(path):
        raise CorruptCheckpointError(
            f"{path}: truncated or corrupt checkpoint ({path.stat().st_size} bytes; a torch.save zip archive "
            "without its central directory). Delete it and download it again."
        )
    if not is_zip and not head.startswith(_PICKLE_PROTO):
        raise CorruptCheckpointError(
            f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive, a legacy torch.save pickle "
            f"nor safetensors; first bytes {head[:8]!r})"
        )

    with _LOAD_LOCK, serialization.safe_globals(STANDIN_GLOBALS):
        try:
            unsafe = _unsafe_globals(path, is_zip)
        except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
            raise CorruptCheckpointError(f"{path}: cannot read the checkpoint's pickle: {e}") from e
        if unsafe:
            raise UnsafeCheckpointError(path, unsafe)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
        except pickle.UnpicklingError as e:
            # weights_only refused something the static scan could not see (or a legacy file it could
            # not scan). Nothing was executed either way.
            detail = _weights_only_detail(str(e))
            named = re.findall(r"GLOBAL (\S+) (?:was not an allowed global|whose module)", str(e))
            if named or "unrecognized function" in detail:
                raise UnsafeCheckpointError(path, named, detail=detail) from e
            raise CorruptCheckpointError(f"{path}: corrupt or unsupported checkpoint pickle: {detail}") from e
        except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CorruptCheckpointError(f"{path}: truncated or corrupt checkpoint: {first}") from e

    obj = _finish_standins(obj)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict at the top level of the checkpoint, got {type(obj).__name__}")
    return obj


def _describe_keys(obj: Mapping[Any, Any], limit: int = 12) -> str:
    keys = [repr(k) for k in list(obj)[:limit]]
    more = f", ... ({len(obj)} keys)" if len(obj) > limit else ""
    return "[" + ", ".join(keys) + more + "]"


def extract_state_dict(obj: Mapping[str, Any], path: str | Path) -> dict[str, torch.Tensor]:
    """Find the weights inside a loaded checkpoint and return them as ``{name: tensor}``.

    Looks in ``obj["model"]`` (official Microsoft layout), then ``obj["state_dict"]``, then ``obj``
    itself when every value is a tensor. A ``module.`` prefix (DistributedDataParallel) is removed when
    every key carries it. ``path`` is only used in error messages.
    """
    if not isinstance(obj, Mapping):
        raise StateDictError(f"{path}: expected a dict, got {type(obj).__name__}")
    candidate: Any = None
    where = "the top level"
    for key in _STATE_DICT_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            candidate, where = obj[key], f"[{key!r}]"
            break
    if candidate is None:
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            candidate = obj
        else:
            raise StateDictError(
                f"{path}: no state dict found: expected a 'model' or 'state_dict' entry, or a dict of "
                f"tensors; top-level keys are {_describe_keys(obj)}"
            )
    if not candidate:
        raise StateDictError(f"{path}: the state dict at {where} is empty")

    state: dict[str, torch.Tensor] = {}
    for key, value in candidate.items():
        if not isinstance(key, str):
            raise StateDictError(f"{path}: state dict at {where} has a non-string key {key!r}")
        if not isinstance(value, torch.Tensor):
            raise StateDictError(
                f"{path}: state dict at {where} maps {key!r} to a {type(value).__name__}, not a tensor"
            )
        state[key] = value

    if all(k.startswith(_DDP_PREFIX) for k in state):
        state = {k[len(_DDP_PREFIX) :]: v for k, v in state.items()}
    return state


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``extract_state_dict(load_checkpoint(path), path)``: the weights of a checkpoint file."""
    return extract_state_dict(load_checkpoint(path), path)
