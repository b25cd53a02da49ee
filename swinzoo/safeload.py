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

import contextlib
import pickle
import re
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import _weights_only_unpickler as _wou
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
    "check_tensors",
    "count_nonfinite",
    "UnsupportedTensorError",
    "OversizedCheckpointError",
]

_ZIP_MAGIC = b"PK\x03\x04"
# Bounds on what a small file may make the loader allocate (issue 11). Official checkpoints pickle a few
# hundred KB of structure next to their tensors; these caps are far above that and far below a bomb.
MAX_PICKLE_BYTES = 64 * 1024 * 1024  # the inflated data.pkl of a zip checkpoint
MAX_INFLATED_BYTES = 8 * 1024**3  # all deflate-compressed records together, inflated
MAX_DEFLATE_RATIO = 50  # inflated / compressed size of one record; float weights deflate to ~0.9
MAX_ITEMS = 100_000  # entries of any non-tensor container (list, dict, set, range, ...)
MAX_BYTES = 1024 * 1024  # length of any str / bytes / bytearray
MAX_DEPTH = 64  # nesting of non-tensor containers
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


class UnsupportedTensorError(StateDictError):
    """A weight has a dtype, layout, storage or value swinzoo cannot convert faithfully."""


class OversizedCheckpointError(CorruptCheckpointError):
    """The file claims more memory than its size can justify (a decompression or container bomb)."""


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

    def __init__(
        self,
        items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (),
        *,
        pickled_class: str = "",
        pickled_state: Mapping[str, Any] | None = None,
    ) -> None:
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

    def __new__(cls: type, *args: Any, **kwargs: Any) -> OrderedDict:  # arguments ignored: inert
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


_BOUNDED = "a pickled "  # how the bounded stand-ins below start their refusals


def _bounded_range(*args: Any) -> range:
    """``range`` for the unpickler, refused past MAX_ITEMS: frozenset/set of a huge range would fill memory."""
    r = range(*args)
    if len(r) > MAX_ITEMS:
        raise pickle.UnpicklingError(f"a pickled range of {len(r)} items (more than {MAX_ITEMS})")
    return r


def _bounded_bytearray(*args: Any) -> bytearray:
    """``bytearray`` for the unpickler, refused past MAX_BYTES: ``bytearray(3_000_000_000)`` is a 9-byte bomb."""
    if args and isinstance(args[0], int) and not isinstance(args[0], bool) and args[0] > MAX_BYTES:
        raise pickle.UnpicklingError(f"a pickled bytearray of {args[0]} bytes (more than {MAX_BYTES})")
    out = bytearray(*args)
    if len(out) > MAX_BYTES:
        raise pickle.UnpicklingError(f"a pickled bytearray of {len(out)} bytes (more than {MAX_BYTES})")
    return out


#: (stand-in, pickled name) pairs handed to ``torch.serialization.safe_globals`` while loading.
#: Only data containers belong here: the stand-ins store what they are given and run nothing.
STANDIN_GLOBALS: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
    (_dict_standin("yacs.config.CfgNode"), "yacs.config.CfgNode"),
    (_dict_standin("easydict.EasyDict"), "easydict.EasyDict"),
    (PickledNamespace, "argparse.Namespace"),
    (_SimpleNamespaceStandIn, "types.SimpleNamespace"),
    # Immutable built-in data types torch does not allowlist by default.
    (frozenset, "builtins.frozenset"),
    (slice, "builtins.slice"),
    (_bounded_range, "builtins.range"),
]

# safe_globals() edits a process-wide set and removes it on exit; serialise our loads so two threads
# do not pull the stand-ins out from under each other.
_LOAD_LOCK = threading.RLock()


@contextlib.contextmanager
def _bounded_builtins() -> Iterator[None]:
    """Swap torch's default-allowed ``bytearray`` for the bounded one while we load (under _LOAD_LOCK).

    torch checks its own allowlist before user globals, so safe_globals cannot override it."""
    allowed = _wou._get_allowed_globals()
    previous = allowed.get("builtins.bytearray")
    allowed["builtins.bytearray"] = _bounded_bytearray
    try:
        yield
    finally:
        if previous is None:
            allowed.pop("builtins.bytearray", None)
        else:
            allowed["builtins.bytearray"] = previous


def _finish_standins(obj: Any, memo: dict[int, Any] | None = None, depth: int = 0) -> Any:
    """Replace marked OrderedDicts (see above) with PickledConfig, recursing through containers.

    Also the bound on what the pickle built: containers of more than MAX_ITEMS entries, strings over MAX_BYTES
    and nesting deeper than MAX_DEPTH raise :class:`OversizedCheckpointError` (the caller adds the file)."""
    if memo is None:
        memo = {}
    if isinstance(obj, (str, bytes, bytearray)):
        if len(obj) > MAX_BYTES:
            raise OversizedCheckpointError(f"a {type(obj).__name__} of {len(obj)} characters (more than {MAX_BYTES})")
        return obj
    if isinstance(obj, torch.Tensor) or isinstance(obj, (int, float, bool, complex, type(None))):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    if depth > MAX_DEPTH:
        raise OversizedCheckpointError(f"containers nested more than {MAX_DEPTH} deep")
    size = len(vars(obj)) if isinstance(obj, PickledNamespace) else len(obj) if hasattr(obj, "__len__") else 0
    if size > MAX_ITEMS:
        raise OversizedCheckpointError(f"a {type(obj).__name__} of {size} entries (more than {MAX_ITEMS})")
    d = depth + 1
    if isinstance(obj, OrderedDict) and _MARKER in getattr(obj, "__dict__", {}):
        state = {k: v for k, v in vars(obj).items() if k != _MARKER}
        out: Any = PickledConfig(pickled_class=vars(obj)[_MARKER], pickled_state=state)
        memo[key] = out
        for k, v in obj.items():
            dict.__setitem__(out, k, _finish_standins(v, memo, d))
        out.pickled_state = {k: _finish_standins(v, memo, d) for k, v in state.items()}
        return out
    if isinstance(obj, dict):
        memo[key] = obj
        for k, v in list(obj.items()):
            _finish_standins(k, memo, d)
            new = _finish_standins(v, memo, d)
            if new is not v:
                obj[k] = new
        return obj
    if isinstance(obj, list):
        memo[key] = obj
        for i, v in enumerate(obj):
            obj[i] = _finish_standins(v, memo, d)
        return obj
    if isinstance(obj, tuple):
        items = [_finish_standins(v, memo, d) for v in obj]
        out = obj if all(a is b for a, b in zip(items, obj, strict=True)) else tuple(items)
        memo[key] = out
        return out
    if isinstance(obj, (set, frozenset)):
        memo[key] = obj
        for v in obj:
            _finish_standins(v, memo, d)
        return obj
    if isinstance(obj, PickledNamespace):
        memo[key] = obj
        for k, v in list(vars(obj).items()):
            setattr(obj, k, _finish_standins(v, memo, d))
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
    allowed = set(_wou._get_allowed_globals()) | set(_wou._get_user_allowed_globals())
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


def _zip_records(path: Path) -> bool:
    """Check each record's inflated size before torch reads any; True when some record is compressed.

    torch.save writes stored (uncompressed) records, which are memory-mapped. A re-zipped file may deflate
    them: torch's mmap path then reads the compressed bytes as raw tensor data, so those files are read
    without mmap, and only when the inflated sizes are sane.
    """
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise CorruptCheckpointError(f"{path}: corrupt zip archive: {e}") from e
    inflated = 0
    compressed = False
    for info in infos:
        name = info.filename
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CorruptCheckpointError(
                f"{path}: record {name!r} uses zip compression method {info.compress_type}, which torch cannot read"
            )
        if name.endswith("data.pkl") and info.file_size > MAX_PICKLE_BYTES:
            raise OversizedCheckpointError(
                f"{path}: record {name!r} inflates to {info.file_size} bytes of pickle (at most {MAX_PICKLE_BYTES})"
            )
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size > size:
                raise CorruptCheckpointError(
                    f"{path}: record {name!r} claims {info.file_size} bytes, more than the whole file ({size} bytes)"
                )
            continue
        compressed = True
        inflated += info.file_size
        if info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1024):
            raise OversizedCheckpointError(
                f"{path}: record {name!r} inflates from {info.compress_size} to {info.file_size} bytes "
                f"(more than {MAX_DEFLATE_RATIO}x: a decompression bomb)"
            )
    if inflated > MAX_INFLATED_BYTES:
        raise OversizedCheckpointError(
            f"{path}: its compressed records inflate to {inflated} bytes (at most {MAX_INFLATED_BYTES})"
        )
    _check_crcs(path)
    return compressed


def _check_crcs(path: Path) -> None:
    """Every record's bytes against the CRC-32 its zip entry states (torch's reader does not check them): a file
    spliced from two versions (a resumed download of a changed file) or damaged on disk is refused by name
    instead of loading wrong tensors. One streaming pass in 1 MiB chunks (sizes were checked first)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                with zf.open(info) as record:
                    while record.read(1 << 20):
                        pass
    except zipfile.BadZipFile as e:  # "Bad CRC-32 for file 'archive/data/0'"
        raise CorruptCheckpointError(
            f"{path}: corrupt checkpoint: {e} (the file was damaged, or spliced from two versions of a download): "
            "delete it and download it again"
        ) from e
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise CorruptCheckpointError(f"{path}: corrupt zip archive: {e}") from e


def load_checkpoint(path: str | Path, *, mmap: bool = True, notes: list[str] | None = None) -> dict[str, Any]:
    """Load a ``.pth``/``.bin``/``.safetensors`` checkpoint into a dict, never executing pickled code.

    Zip-format (torch >= 1.6) files are memory-mapped (unless ``mmap`` is False, or a record is
    deflate-compressed), so a multi-GB training checkpoint does not need to fit in RAM twice. yacs configs
    and argparse namespaces come back as :class:`PickledConfig` / :class:`PickledNamespace`. Raises
    :class:`UnsafeCheckpointError` for any other global, before unpickling; :class:`CorruptCheckpointError`
    for truncated, foreign or oversized files. What the loader chose to do is appended to ``notes``.
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
    if is_zip and _zip_records(path):
        mmap = False
        if notes is not None:
            notes.append("the checkpoint's zip records are deflate-compressed: read without memory-mapping")

    with _LOAD_LOCK, serialization.safe_globals(STANDIN_GLOBALS), _bounded_builtins():
        try:
            unsafe = _unsafe_globals(path, is_zip)
        except Exception as e:  # the scanner is plain pickletools: any failure means a malformed pickle
            raise CorruptCheckpointError(f"{path}: cannot read the checkpoint's pickle: {_first_line(e)}") from e
        if unsafe:
            raise UnsafeCheckpointError(path, unsafe)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip and mmap)
        except pickle.UnpicklingError as e:
            # weights_only refused something the static scan could not see (or a legacy file it could
            # not scan). Nothing was executed either way.
            detail = _weights_only_detail(str(e))
            named = re.findall(r"GLOBAL (\S+) (?:was not an allowed global|whose module)", str(e))
            if named or "unrecognized function" in detail:
                raise UnsafeCheckpointError(path, named, detail=detail) from e
            if detail.startswith(_BOUNDED):
                raise OversizedCheckpointError(
                    f"{path}: refusing to load: the pickle builds a {detail[len(_BOUNDED) :]}"
                ) from None
            raise CorruptCheckpointError(f"{path}: corrupt or unsupported checkpoint pickle: {detail}") from e
        except Exception as e:  # TypeError, KeyError, struct.error, MemoryError, RecursionError, ...: bad data
            raise CorruptCheckpointError(f"{path}: truncated or corrupt checkpoint: {_first_line(e)}") from e

    try:
        obj = _finish_standins(obj)
    except OversizedCheckpointError as e:
        raise OversizedCheckpointError(f"{path}: refusing to load: the pickle holds {e}") from None
    except RecursionError:
        raise OversizedCheckpointError(f"{path}: refusing to load: containers nested too deep") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict at the top level of the checkpoint, got {type(obj).__name__}")
    return obj


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first[:300]}" if first else type(e).__name__


def _describe_keys(obj: Mapping[Any, Any], limit: int = 12) -> str:
    keys = [repr(k) for k in list(obj)[:limit]]
    more = f", ... ({len(obj)} keys)" if len(obj) > limit else ""
    return "[" + ", ".join(keys) + more + "]"


def extract_state_dict(
    obj: Mapping[str, Any], path: str | Path, notes: list[str] | None = None
) -> dict[str, torch.Tensor]:
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
    return check_tensors(state, path, notes)


_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: Buffers that are integer by nature (token-offset indices); every other entry must be a float weight.
INTEGER_BUFFER_SUFFIXES = ("relative_position_index", "num_batches_tracked")


def _refuse(path: str | Path, key: str, t: torch.Tensor, why: str) -> UnsupportedTensorError:
    shape = tuple(t.shape) if t.layout == torch.strided or t.is_sparse else "?"
    if len(key) > 300:
        key = f"{key[:150]}...({len(key)} characters)"
    return UnsupportedTensorError(f"{path}: {key!r} (shape {shape}, {str(t.dtype).removeprefix('torch.')}) {why}")


def _overlaps_itself(t: torch.Tensor) -> bool:
    """True when two elements share memory (a stride-0 broadcast or overlapping strides)."""
    dims = sorted((st, sz) for st, sz in zip(t.stride(), t.shape, strict=True) if sz > 1)
    reach = 1
    for stride, size in dims:
        if stride < reach:
            return True
        reach = stride * size
    return False


#: Elements checked for NaN/Inf per step: ``torch.isfinite`` builds float and bool temporaries the size of its
#: input (~1.8x a float32 weight), so a whole 30M-element weight would briefly cost 200+ MB on top of it.
FINITE_CHUNK = 1 << 20


def count_nonfinite(t: torch.Tensor) -> int:
    """How many elements of a float tensor are NaN or infinite, checked in chunks of :data:`FINITE_CHUNK`."""
    if t.numel() == 0:
        return 0
    if t.is_contiguous():  # (0-d tensors are contiguous)
        t = t.view(-1)
    rows = max(1, FINITE_CHUNK // max(1, t[0].numel()))  # a chunk of rows is a view of any strided tensor
    bad = 0
    for part in t.split(rows):
        finite = torch.isfinite(part)
        if not bool(finite.all()):
            bad += part.numel() - int(finite.sum())
    return bad


def check_tensors(
    state: dict[str, torch.Tensor], path: str | Path, notes: list[str] | None = None
) -> dict[str, torch.Tensor]:
    """Refuse tensors swinzoo cannot convert faithfully, naming the key; float64 becomes float32 (noted).

    Refused: quantised, sparse, nested and meta tensors; complex, float8 and other exotic dtypes; integer
    or bool where a float weight belongs; tensors whose elements overlap (stride 0) or that overlap another
    entry's memory (their logical size is not backed by bytes in the file); NaN or infinite values.
    """
    spans: dict[int, list[tuple[int, int, str]]] = {}
    logical = 0
    widened: list[str] = []
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        if t.is_quantized:
            raise _refuse(path, key, t, "is a quantised tensor; swinzoo converts float weights only")
        if t.layout != torch.strided or t.is_nested:
            raise _refuse(path, key, t, f"has layout {t.layout}; swinzoo converts dense (strided) tensors only")
        if t.device.type != "cpu":
            raise _refuse(path, key, t, f"is a {t.device.type} tensor with no data in the file")
        if t.dtype not in _FLOAT_DTYPES and t.dtype != torch.float64:
            if t.dtype.is_complex or t.dtype.is_floating_point:
                raise _refuse(path, key, t, "has a dtype swinzoo cannot convert (float32/float16/bfloat16/float64)")
            if not key.endswith(INTEGER_BUFFER_SUFFIXES):
                raise _refuse(path, key, t, "is integer/bool where a float weight is expected")
        if t.numel() and _overlaps_itself(t):
            raise _refuse(path, key, t, f"has overlapping strides {t.stride()} (e.g. stride 0): its elements "
                          "share memory, so its size is not backed by the file")  # fmt: skip
        if t.numel():
            storage = t.untyped_storage()
            start = t.storage_offset() * t.element_size()
            end = start + (sum((n - 1) * st for n, st in zip(t.shape, t.stride(), strict=True)) + 1) * t.element_size()
            spans.setdefault(storage.data_ptr(), []).append((int(start), int(end), key))
        logical += t.numel() * t.element_size()
        if t.dtype == torch.float64:
            widened.append(key)
            t = t.to(torch.float32)
        if t.is_floating_point():
            bad = count_nonfinite(t)
            if bad:
                raise _refuse(path, key, t, f"holds {bad} NaN/infinite values")
        out[key] = t
    backed = 0
    for items in spans.values():
        items.sort()
        reach, holder = -1, ""
        for start, end, key in items:
            if start < reach:
                raise UnsupportedTensorError(
                    f"{path}: {holder!r} and {key!r} share the same memory in the file (aliased tensors); "
                    "swinzoo needs one stored copy per weight"
                )
            if end > reach:
                reach, holder = end, key
        backed += sum(end - start for start, end, _ in items)
    if logical > backed:
        raise OversizedCheckpointError(
            f"{path}: the tensors claim {logical} bytes but only {backed} bytes of storage back them"
        )
    if widened and notes is not None:
        notes.append(
            f"converted {len(widened)} float64 tensor(s) to float32 (first: {widened[0]}); "
            "values beyond float32's precision were rounded"
        )
    return out


def load_state_dict(path: str | Path, *, mmap: bool = True, notes: list[str] | None = None) -> dict[str, torch.Tensor]:
    """``extract_state_dict(load_checkpoint(path), path)``: the weights of a checkpoint file, checked.

    ``mmap=False`` reads through torch's own non-mmap reader (verify's references use it, so a bug in the
    mmap path cannot hide from verify). Loader decisions (float64 widened, compressed records) go to ``notes``.
    """
    return extract_state_dict(load_checkpoint(path, mmap=mmap, notes=notes), path, notes)
