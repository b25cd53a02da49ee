"""Saving and loading converted models: a folder (or Hub repo) with model.safetensors + config.json.

Folders are written atomically: everything goes to a temporary sibling that is renamed into place, so a
failure or Ctrl-C never leaves a half-written folder. Loading is safetensors-only and strict.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from safetensors.torch import save_file

from . import __version__
from .config import SwinConfig
from .converters.engine import MappingError, convert_state_dict, shapes_of
from .converters.timm_layout import is_timm_config, swinzoo_config_from_timm, timm_rules
from .converters.transformers_layout import (
    detect_style,
    is_transformers_config,
    swinzoo_config_from_transformers,
    transformers_rules,
)
from .errors import SwinzooError, one_line, redact
from .fetch import git_blob_sha1, sha256_file
from .folder import CONFIG_NAME, CONVERSION_NAME, WEIGHTS_NAME, atomic_output, check_free_space, disk_full
from .folder import read_safetensors_metadata as read_safetensors_metadata  # public here too, where it lived first
from .modeling import GEOMETRY_BUFFERS, TASK_CLASSES, SwinBackbone, SwinPreTrainedModel
from .processing import ImageProcessor
from .records import RecordError, read_json
from .retarget import retarget
from .safeload import count_nonfinite
from .system import network_errors

if TYPE_CHECKING:
    from .retarget import RetargetRecord

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LoadError(SwinzooError, RuntimeError):
    """A model folder or Hub repo cannot be loaded; the message names the repo, revision, file or key."""


class LoadArgumentError(LoadError, ValueError):
    """A from_pretrained argument swinzoo cannot use (a dtype, device or repo id); the message names the value."""


class DtypeError(LoadArgumentError):
    """A dtype swinzoo does not store or load; the message names the value."""


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """A dtype from its name; ``None`` and ``"auto"`` mean: keep what is stored."""
    if name is None or name == "auto":
        return None
    if isinstance(name, torch.dtype):
        if name not in _DTYPES.values():
            raise DtypeError(f"dtype: {name} is not one of {', '.join(_DTYPES)}")
        return name
    if not isinstance(name, str) or name.removeprefix("torch.") not in _DTYPES:
        raise DtypeError(f"dtype: {name!r} is not one of {', '.join(_DTYPES)} or 'auto'")
    name = name.removeprefix("torch.")
    return _DTYPES[name]


def _check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a torch.device this machine has, or :class:`LoadArgumentError` naming it."""
    if device is None:
        return None
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise LoadArgumentError(f"device={device!r} is not a torch device ({exc})") from exc
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise LoadArgumentError(f"device={device!r}: no CUDA GPU is available here (load on 'cpu')")
        if resolved.index is not None and resolved.index >= count:
            raise LoadArgumentError(f"device={device!r}: this machine has {count} CUDA GPU(s)")
    elif resolved.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise LoadArgumentError(f"device={device!r}: MPS is not available here")
    return resolved


def bfloat16_is_native(device: str | torch.device | None = None) -> bool:
    """Does ``device`` run bfloat16 matmuls in hardware (CUDA: Ampere or later; CPU: AMX or AVX512-BF16)?

    On other CPUs torch emulates bfloat16 through float32 and it is slower than float32, so "auto" avoids it.
    """
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    if "AMX" in torch.backends.cpu.get_cpu_capability().upper():
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def compute_dtype(name: str | torch.dtype | None, device: str | torch.device | None = None) -> torch.dtype:
    """The dtype to run in for ``predict --dtype`` / ``evaluate --dtype``: "auto" is bfloat16 where
    :func:`bfloat16_is_native`, else float32 (None: float32). Unlike ``from_pretrained(dtype="auto")``, which
    keeps the stored dtype as transformers does, this picks for speed on the machine at hand."""
    if name is None:
        return torch.float32
    if name == "auto":
        return torch.bfloat16 if bfloat16_is_native(device) else torch.float32
    dtype = parse_dtype(name)
    assert dtype is not None
    return dtype


def task_of(model: SwinPreTrainedModel) -> str:
    for task, cls in TASK_CLASSES.items():
        if type(model) is cls:
            return task
    raise TypeError(f"not a swinzoo model: {type(model).__name__}")


def write_model_files(
    model: SwinPreTrainedModel,
    directory: Path,
    *,
    metadata: dict[str, str] | None = None,
    dtype: str | torch.dtype | None = None,
) -> None:
    """Write model.safetensors and config.json into an existing folder (no atomicity: see save_pretrained)."""
    dtype = parse_dtype(dtype)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    state = {k: v.contiguous() for k, v in state.items()}
    meta = {"format": "pt", "swinzoo_version": __version__, "task": task_of(model)}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    needed = sum(v.numel() * v.element_size() for v in state.values()) + (1 << 20)  # tensors and a header
    check_free_space(directory, needed, WEIGHTS_NAME)
    try:
        save_file(state, str(directory / WEIGHTS_NAME), metadata=meta)
    except Exception as exc:  # safetensors reports a full disk as its own error type
        if isinstance(exc, OSError) or "os error" in str(exc) or "No space" in str(exc):
            raise disk_full(directory / WEIGHTS_NAME, needed, exc) from exc
        raise
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    config["task"] = task_of(model)
    config["swinzoo_version"] = __version__
    if dtype is not None:
        config["torch_dtype"] = str(dtype).removeprefix("torch.")
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def save_pretrained(
    model: SwinPreTrainedModel,
    directory: str | os.PathLike,
    *,
    metadata: dict[str, str] | None = None,
    dtype: str | torch.dtype | None = None,
    overwrite: bool = True,
) -> Path:
    """Save ``model`` to ``directory`` atomically (model.safetensors + config.json).

    An earlier swinzoo save there is replaced (``overwrite=False`` refuses); a folder holding other files is
    refused, so a save never deletes what a user had.
    """
    with atomic_output(directory, overwrite=overwrite) as tmp:
        write_model_files(model, tmp, metadata=metadata, dtype=dtype)
    return Path(directory)


# --------------------------------------------------------------------------------------------- loading
def _resolve_files(
    name_or_path: str | os.PathLike,
    revision: str | None,
    cache_dir: str | None,
    only_config: bool = False,
    hub: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """config.json and model.safetensors of a folder, or of a Hub repo (``hub``: hf_hub_download's token,
    force_download, local_files_only)."""
    path = Path(name_or_path)
    if path.is_dir():
        if revision is not None:
            raise LoadError(f"{path} is a local folder: revision={revision!r} only applies to Hub repos")
        config, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
        for f in (config, weights):
            if not f.is_file():
                extra = " (swinzoo loads safetensors only)" if f.name == WEIGHTS_NAME else ""
                raise LoadError(f"{path}: no {f.name}{extra}")
        return config, weights
    if path.suffix or path.exists() or str(name_or_path).count("/") != 1:
        raise LoadError(f"{name_or_path}: not a folder with {CONFIG_NAME} and {WEIGHTS_NAME}, nor a Hub id ORG/NAME")
    return _download_from_hub(str(name_or_path), revision, cache_dir, only_config, hub or {})


# How long the reachability probe waits for the Hub's host to accept a connection.
HUB_PROBE_TIMEOUT_S = 5.0


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _hub_reachable() -> bool:
    """Does the Hub's host accept a TCP connection? huggingface_hub retries a refused connection for ~25 s,
    logging each try; one probe tells the same at once. With a proxy configured, the client is trusted."""
    import socket
    import urllib.parse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True
    parts = urllib.parse.urlsplit(constants.ENDPOINT)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return True  # a malformed endpoint: let the client say what is wrong with it
    if not parts.hostname:
        return True
    try:
        with socket.create_connection((parts.hostname, port), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_quiet() -> Iterator[None]:
    """huggingface_hub's own log lines (retries, warnings) off: swinzoo says what failed in one line."""
    import logging

    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _offline(hub: dict[str, Any], offline: bool) -> dict[str, Any]:
    """hf_hub_download's keywords, answering from the cache alone when the Hub cannot be reached."""
    return {**hub, "local_files_only": True} if offline else hub


def _check_hub_hash(path: Path, what: str) -> None:
    """The weights huggingface_hub gave are the bytes the Hub states: its cache names each blob after the file's
    ETag (for an LFS file the ``X-Linked-Etag``, its sha256; for a regular file git's blob sha1), which the
    client does not check against the bytes it stored. A mismatch (a tampered mirror or cache, a corrupted
    transfer) is refused by name."""
    import re

    blob = path.resolve()
    stated = blob.name
    if re.fullmatch(r"[0-9a-f]{64}", stated):
        actual, kind = sha256_file(blob), "sha256"
    elif re.fullmatch(r"[0-9a-f]{40}", stated):
        actual, kind = git_blob_sha1(blob), "git blob sha1"
    else:
        return  # not a Hub cache blob (a local_dir copy): nothing stated to check against
    if actual != stated:
        raise LoadError(
            f"{what}: the Hub states {kind} {stated}, but the downloaded file ({blob}) has {actual}: a corrupted "
            "download or a tampered mirror or cache; delete that file and download again"
        )


def _download_from_hub(
    repo_id: str, revision: str | None, cache_dir: str | None, only_config: bool = False, hub: dict | None = None
) -> tuple[Path, Path]:
    """config.json and model.safetensors of one commit: the weights are fetched at the commit the config came
    from, so a push landing between the two downloads cannot pair one commit's config with another's weights.
    With HF_HUB_OFFLINE=1 (or no network) both come from the Hugging Face cache."""
    import re

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f"{repo_id}@{revision or 'main'}"
    files: list[Path] = []
    pinned = revision
    offline = not _hub_reachable()  # unreachable: the cache answers at once instead of 25 s of retries
    for filename in (CONFIG_NAME,) if only_config else (CONFIG_NAME, WEIGHTS_NAME):
        try:
            with _hub_quiet():
                got = hf_hub_download(
                    repo_id, filename, revision=pinned, cache_dir=cache_dir, **_offline(hub or {}, offline)
                )
            files.append(Path(got))
        except HFValidationError as exc:  # a malformed id or revision, refused before any request
            raise LoadArgumentError(f"{repo_id!r} (revision {revision!r}) is not a valid Hub repo id: {exc}") from exc
        except RepositoryNotFoundError as exc:
            raise LoadError(f"Hub repo {repo_id!r} not found (or private: log in with `hf auth login`)") from exc
        except RevisionNotFoundError as exc:
            raise LoadError(f"Hub repo {repo_id!r} has no revision {revision!r}") from exc
        except LocalEntryNotFoundError as exc:  # before EntryNotFoundError: it is a subclass
            raise LoadError(
                f"{at}: {filename} is not in the local cache and the Hub ({_endpoint()}) cannot be reached "
                "(offline, or HF_HUB_OFFLINE=1): download it once with a network"
            ) from exc
        except EntryNotFoundError as exc:
            extra = " (swinzoo loads safetensors only)" if filename == WEIGHTS_NAME else ""
            raise LoadError(f"{at}: no file {filename}{extra}") from exc
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", "?")
            raise LoadError(f"{at}: the Hub answered {status} for {filename}") from exc
        except network_errors() as exc:  # the connection failed or dropped midway: one line naming the repo
            why = redact(one_line(str(exc) or type(exc).__name__))
            raise LoadError(f"{at}: cannot download {filename} from the Hub (network failure: {why})") from exc
        if filename == WEIGHTS_NAME:
            _check_hub_hash(files[-1], f"{at}: {filename}")
        # The cache keeps each file under snapshots/<commit>/: pin the next download to that commit.
        commit = files[-1].parent.name
        if re.fullmatch(r"[0-9a-f]{40}", commit):
            pinned = commit
    if not only_config and pinned is not None:
        for optional in OPTIONAL_RECORDS:
            _fetch_optional(repo_id, optional, pinned, cache_dir, _offline(hub or {}, offline))
    return files[0], files[-1]


# Records a repo may carry beside the weights: provenance and the eval transform (read by the card, predict and
# the image processor). Fetched into the same snapshot when present.
OPTIONAL_RECORDS = (CONVERSION_NAME, "preprocessor_config.json")


def _fetch_optional(repo_id: str, filename: str, commit: str, cache_dir: str | None, hub: dict) -> None:
    """Download an optional file into the same snapshot (ignored when absent, or offline and not cached)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        with _hub_quiet():
            hf_hub_download(repo_id, filename, revision=commit, cache_dir=cache_dir, **hub)
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError):
        pass


def _adapt_keys(state: dict[str, torch.Tensor], saved_task: str, wanted_task: str) -> dict[str, torch.Tensor]:
    """Load a task checkpoint into the base model or backbone (drop the head, strip the ``swin.`` prefix)."""
    if saved_task == wanted_task:
        return state
    # Only SimMIM's encoder carries a mask token; the base model and the backbone have none.
    encoder = {k: v for k, v in state.items() if k.startswith("swin.") and not k.endswith("patch_embed.mask_token")}
    if wanted_task == "base":
        return {k.removeprefix("swin."): v for k, v in encoder.items()}
    if wanted_task == "backbone":
        return encoder
    raise LoadError(f"a {saved_task} checkpoint cannot be loaded as {wanted_task}")


_WEIGHT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


_HEADER_DTYPES = {"F32": 4, "BF16": 2, "F16": 2}  # what swinzoo weights may be stored as, and their sizes
_MAX_HEADER_BYTES = 100 * 1024 * 1024


def safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) from a safetensors file's header alone (no tensor read), size-capped."""
    import struct

    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > _MAX_HEADER_BYTES:
                raise LoadError(
                    f"{path}: a {size}-byte safetensors header, above the {_MAX_HEADER_BYTES} swinzoo reads"
                )
            header = json.loads(f.read(size))
    except (struct.error, ValueError, RecursionError) as exc:
        raise LoadError(f"{path}: not a readable safetensors file (its header: {exc})") from exc
    if not isinstance(header, dict):
        raise LoadError(f"{path}: not a readable safetensors file (its header is not a JSON object)")
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise LoadError(f"{path}: tensor {name!r} has no valid shape in the header")
        out[name] = (str(info.get("dtype")), tuple(shape))
    return out


def _check_header(weights_file: Path, config: SwinConfig, task: str, fmt: str) -> None:
    """Names and total size from the header against the model ``config`` describes, before any
    tensor is read: a file with one extra 6 GB tensor is refused in milliseconds, not after reading it."""
    header = safetensors_header(weights_file)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in TASK_CLASSES[task](config).state_dict().items()}
    budget = sum(math.prod(s) for s in expected.values()) * 4
    stored = 0
    for name, (dtype, shape) in header.items():
        itemsize = _HEADER_DTYPES.get(dtype, 8)
        stored += math.prod(shape) * itemsize
        if fmt == "swinzoo" and name not in expected and not name.endswith("relative_position_index"):
            raise LoadError(
                f"{weights_file}: tensor {name!r} ({dtype} {list(shape)}) is not a weight of this "
                f"Swin v{config.version} {task} model (config.json); refused before reading any tensor"
            )
    # Foreign layouts name tensors their own way and keep a few buffers: their total is bounded instead.
    if stored > budget * 5 // 4 + (1 << 20):
        raise LoadError(
            f"{weights_file}: its tensors hold {stored} bytes, more than the {budget} bytes (float32) of the model "
            "config.json describes; refused before reading any tensor"
        )


def _check_weights(state: dict[str, torch.Tensor], weights_file: Path) -> None:
    """Weights of one supported float dtype, all finite: what a swinzoo folder holds (index buffers aside)."""
    dtypes: dict[torch.dtype, str] = {}
    for key, value in state.items():
        if key.endswith("relative_position_index"):
            continue
        if value.dtype not in _WEIGHT_DTYPES:
            raise LoadError(
                f"{weights_file}: {key} is {str(value.dtype).removeprefix('torch.')}; swinzoo weights are "
                "float32, bfloat16 or float16"
            )
        dtypes.setdefault(value.dtype, key)
        bad = count_nonfinite(value)
        if bad:
            raise LoadError(f"{weights_file}: {key} holds {bad} non-finite value(s) (NaN or Inf)")
    if len(dtypes) > 1:
        shown = ", ".join(f"{k} is {str(d).removeprefix('torch.')}" for d, k in dtypes.items())
        raise LoadError(f"{weights_file}: mixed dtypes ({shown}); a swinzoo folder stores one dtype")


# Keyword arguments that change a runtime setting of the config (as transformers allows); architecture fields are
# refused, since the weights fix them (image_size / window_size retarget the weights instead).
RUNTIME_FIELDS = frozenset(
    {"hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate", "initializer_range", "mim_norm_target",
     "mim_norm_target_patch_size", "problem_type", "output_hidden_states", "output_attentions", "return_dict",
     "output_block_attentions"}
)  # fmt: skip
ARCHITECTURE_FIELDS = frozenset(
    {"version", "patch_size", "num_channels", "embed_dim", "depths", "num_heads", "mlp_ratio", "qkv_bias",
     "hidden_act", "use_absolute_embeddings", "layer_norm_eps", "pretrained_window_sizes", "encoder_stride"}
)  # fmt: skip
LOAD_KEYWORDS = (
    "model_class", "revision", "cache_dir", "token", "local_files_only", "force_download", "dtype", "torch_dtype",
    "device", "device_map", "num_labels", "id2label", "label2id", "ignore_mismatched_sizes", "out_features",
    "out_indices", "output_loading_info", "use_safetensors", "weights_only", "low_cpu_mem_usage",
    "trust_remote_code", "attn_implementation", "subfolder", "variant", "config",
)  # fmt: skip
# transformers' from_pretrained keywords swinzoo does not honour, each with the reason given when one is passed.
REFUSED_KEYWORDS = {
    "state_dict": "load the folder, then model.load_state_dict(state)",
    "proxies": "set HTTPS_PROXY in the environment (huggingface_hub reads it)",
    "from_tf": "swinzoo loads PyTorch safetensors only",
    "from_flax": "swinzoo loads PyTorch safetensors only",
    "gguf_file": "swinzoo loads safetensors only",
    "quantization_config": "swinzoo models are not quantized; load, then quantize with torch.ao",
    "max_memory": "a swinzoo model lives on one device (device= or a one-device device_map)",
    "offload_folder": "a swinzoo model lives on one device",
    "offload_state_dict": "a swinzoo model lives on one device",
    "offload_buffers": "a swinzoo model lives on one device",
    "tp_plan": "tensor parallelism is not supported; the largest Swin fits one accelerator",
    "tp_size": "tensor parallelism is not supported; the largest Swin fits one accelerator",
    "key_mapping": "swinzoo maps swinzoo, transformers and timm layouts itself (converters/)",
    "adapter_name": "PEFT adapters are not supported",
    "adapter_kwargs": "PEFT adapters are not supported",
    "code_revision": "swinzoo runs no remote code",
    "use_kernels": "no hub kernels: swinzoo's CPU fast path is built in",
    "mirror": "removed from transformers; use HF_ENDPOINT",
    "resume_download": "deprecated in huggingface_hub: downloads always resume",
}


def _read_json_object(path: Path) -> dict[str, Any]:
    """config.json through the one capped JSON reader (:func:`swinzoo.records.read_json`)."""
    try:
        return read_json(path)
    except RecordError as exc:
        raise LoadError(str(exc)) from exc


def read_config(config_file: Path) -> tuple[SwinConfig, str, str]:
    """``config.json`` of a swinzoo, transformers or timm folder: (swinzoo config, task, format found)."""
    raw = _read_json_object(config_file)
    try:
        if is_transformers_config(raw):
            config, task = swinzoo_config_from_transformers(raw)
            return config, task, "transformers"
        if is_timm_config(raw):
            return swinzoo_config_from_timm(raw), "image-classification", "timm"
    except (ValueError, TypeError, KeyError) as exc:
        raise LoadError(f"{config_file}: {exc}") from exc
    task = raw.pop("task", None)
    for key in ("architectures", "swinzoo_version", "torch_dtype"):
        raw.pop(key, None)
    if task is None and raw.get("model_type") == SwinConfig.model_type:
        task = "base"  # a config saved on its own (SwinConfig.save_pretrained): no weights, no task
    if not isinstance(task, str) or task not in TASK_CLASSES:
        raise LoadError(
            f"{config_file}: 'task' is {task!r}, expected one of {list(TASK_CLASSES)} (and no transformers "
            "model_type or timm architecture either: not a swinzoo, transformers or timm config)"
        )
    try:
        return SwinConfig.from_dict(raw), task, "swinzoo"
    except (ValueError, TypeError) as exc:
        raise LoadError(f"{config_file}: {exc}") from exc


def _foreign_to_swinzoo(
    state: dict[str, torch.Tensor], config: SwinConfig, task: str, fmt: str, where: Path
) -> dict[str, torch.Tensor]:
    """A transformers or timm state dict renamed into swinzoo's names by the layout rules in ``converters/``."""
    with torch.device("meta"):
        model = TASK_CLASSES[task](config)
    rules = timm_rules() if fmt == "timm" else transformers_rules(config, task, style=detect_style(state))
    if fmt == "timm":  # buffers timm keeps in its state dict; swinzoo rebuilds them from the config
        state = {k: v for k, v in state.items() if not k.endswith(GEOMETRY_BUFFERS)}
    try:
        converted, _ = convert_state_dict(state, rules, shapes_of(model), to_swinzoo=True, what=str(where))
    except MappingError as exc:
        raise LoadError(f"{where}: the {fmt} weights do not map onto swinzoo's layout: {exc}") from exc
    return converted


def _config_changes(raw: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Config changes asked for at load time; unknown keywords are an error that names them."""
    import difflib

    changes = {k: kwargs.pop(k) for k in list(kwargs) if k in RUNTIME_FIELDS}
    refused = sorted(k for k in kwargs if k in REFUSED_KEYWORDS)
    if refused:
        raise LoadError(
            "from_pretrained: " + "; ".join(f"{k} is not supported ({REFUSED_KEYWORDS[k]})" for k in refused)
        )
    arch = sorted(k for k in kwargs if k in ARCHITECTURE_FIELDS)
    if arch:
        raise LoadError(
            f"from_pretrained: {', '.join(arch)} cannot change at load time (the weights fix the architecture); "
            "image_size, window_size and num_labels can"
        )
    if kwargs:
        known = [*LOAD_KEYWORDS, *RUNTIME_FIELDS, "image_size", "window_size"]
        hints = []
        for name in sorted(kwargs):
            close = difflib.get_close_matches(name, known, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise LoadError(f"from_pretrained got unexpected keyword argument(s) {', '.join(hints)}")
    raw.update(changes)
    return changes


def from_pretrained(
    name_or_path: str | os.PathLike,
    *,
    model_class: type[SwinPreTrainedModel] | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    dtype: str | torch.dtype | None = None,
    torch_dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    label2id: dict[str, int] | None = None,
    ignore_mismatched_sizes: bool = False,
    out_features: list[str] | None = None,
    out_indices: list[int] | None = None,
    image_size: int | tuple[int, int] | None = None,
    window_size: int | None = None,
    **kwargs: Any,
) -> SwinPreTrainedModel:
    """Load a swinzoo, transformers or timm folder or Hub repo (``org/name`` at ``revision``) into the right class.

    The keywords are transformers': ``dtype`` (or ``torch_dtype``; "auto" or None keeps the stored dtype),
    ``device``, ``num_labels``/``id2label`` with ``ignore_mismatched_sizes=True`` for a new head,
    ``out_features``/``out_indices`` (either one; the other follows) and runtime config fields such as
    ``drop_path_rate``. ``image_size`` / ``window_size`` move the weights to a new geometry as the official
    fine-tuning loaders do (:mod:`swinzoo.retarget`; ``model.retarget_record`` says how). Any other keyword is
    an error naming it. Strict: every parameter must be present with
    the shape the config implies. Works offline from the Hugging Face cache (``HF_HUB_OFFLINE=1``).
    """
    if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
        raise LoadError(f"from_pretrained: dtype={dtype!r} and torch_dtype={torch_dtype!r} disagree; give one")
    dtype = dtype if dtype is not None else torch_dtype
    parse_dtype("auto" if dtype is None else dtype)  # a bad dtype or device fails before any download
    options = _transformers_options(kwargs, device)
    device = _check_device(options.device)
    if options.subfolder and Path(name_or_path).is_dir():
        name_or_path = Path(name_or_path) / options.subfolder
    config_file, weights_file = _resolve_files(name_or_path, revision, cache_dir, hub=options.hub)
    saved_config, saved_task, fmt = read_config(config_file)
    if options.config is not None:  # transformers' config=: this config instead of the folder's
        saved_config = options.config
    raw = saved_config.to_dict()
    changes = _config_changes(raw, kwargs)
    if out_features is not None or out_indices is not None:
        raw.update(out_features=out_features, out_indices=out_indices)
    same_count = id2label is None and num_labels is not None and num_labels == saved_config.num_labels
    new_head = (num_labels is not None or id2label is not None) and not same_count
    if new_head:
        raw.pop("label2id", None)
        raw["id2label"] = id2label
        raw["num_labels"] = num_labels
        if label2id is not None:
            raw["label2id"] = label2id
    try:
        config = SwinConfig.from_dict({k: v for k, v in raw.items() if v is not None})
    except (ValueError, TypeError) as exc:
        raise LoadError(f"{config_file}: {exc}") from exc
    cls = model_class if model_class not in (None, SwinPreTrainedModel) else TASK_CLASSES[saved_task]
    wanted_task = next(t for t, c in TASK_CLASSES.items() if c is cls)
    _check_header(weights_file, saved_config, saved_task, fmt)
    try:
        from safetensors.torch import load_file

        state = load_file(str(weights_file))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise LoadError(f"{weights_file}: not a readable safetensors file ({exc})") from exc
    if fmt != "swinzoo":
        state = _foreign_to_swinzoo(state, saved_config, saved_task, fmt, weights_file)
    _check_weights(state, weights_file)
    record = None
    if image_size is not None or window_size is not None:
        if new_head and not ignore_mismatched_sizes:
            raise LoadError(f"{name_or_path}: a new head (num_labels/id2label) needs ignore_mismatched_sizes=True")
        source = saved_config.copy(**changes)  # the stored head and geometry, runtime fields as asked
        state, config, record, saved_task = _retarget(
            state, source, saved_task, image_size, window_size, config.num_labels if new_head else None, id2label
        )
        if out_features is not None or out_indices is not None:
            config = config.copy(out_features=out_features, out_indices=out_indices)
        if wanted_task == "masked-image-modeling" and saved_task != wanted_task:
            raise LoadError(f"{name_or_path}: a retargeted SimMIM pretrain is a classifier, not a SimMIM model")
    state = _adapt_keys(state, saved_task, wanted_task)
    if new_head and record is None and wanted_task == "image-classification" and "head.weight" in state:
        state = _new_head(state, config, ignore_mismatched_sizes, name_or_path)
    model = _assemble(cls, config, state, wanted_task, f"{name_or_path}", weights_file)
    dtype = parse_dtype("auto" if dtype is None else dtype)
    if dtype is not None:
        model = model.to(dtype)
    if device is not None:
        model = model.to(device)
    model.loaded_format = fmt  # which layout: swinzoo, transformers or timm
    model.retarget_record = record  # how the weights were moved to this geometry
    # The checkpoint's own eval transform, as transformers users get from AutoImageProcessor. A model the
    # processor cannot serve (a non-square image_size) still loads: the processor's refusal is kept to be shown.
    try:
        processor = ImageProcessor.for_model(model, folder=config_file.parent)
    except SwinzooError as exc:
        model.image_processor = None
        model.image_processor_error = str(exc)
    else:
        size = model.config.image_hw[0]
        if record is not None and processor.preprocessing.input_size != size:  # retargeted: the same kind of
            origin = f"{processor.origin}, retargeted to {size}"  # transform (crop or squash) at the new size
            processor = ImageProcessor(processor.preprocessing, input_size=size)
            processor.origin = origin
        model.image_processor = processor
    if options.output_loading_info:
        info: dict[str, list] = {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
        if new_head:
            info["mismatched_keys"] = ["head.weight", "head.bias"]
        return model, info  # type: ignore[return-value]
    return model


@dataclass
class _Options:
    """transformers' from_pretrained keywords that swinzoo honours beyond its own signature."""

    hub: dict[str, Any]  # hf_hub_download's token, force_download, local_files_only, subfolder
    device: str | torch.device | None
    subfolder: str
    output_loading_info: bool
    config: SwinConfig | None


def _transformers_options(kwargs: dict[str, Any], device: str | torch.device | None) -> _Options:
    """Take transformers' loading keywords out of ``kwargs``: honoured, accepted as what swinzoo always does,
    or refused with the reason (what is left is checked by :func:`_config_changes`)."""
    hub: dict[str, Any] = {}
    for name in ("token", "force_download", "local_files_only"):
        value = kwargs.pop(name, None)
        if value not in (None, False):
            hub[name] = value
    subfolder = kwargs.pop("subfolder", "") or ""
    if subfolder:
        hub["subfolder"] = subfolder
    device_map = kwargs.pop("device_map", None)
    if device_map is not None:
        if isinstance(device_map, dict) and set(device_map) == {""}:
            device_map = device_map[""]
        if isinstance(device_map, int) and not isinstance(device_map, bool):
            device_map = torch.device("cuda", device_map)
        if device_map == "auto":
            device_map = "cuda" if torch.cuda.is_available() else "cpu"
        if not isinstance(device_map, (str, torch.device)):
            raise LoadError(
                f"from_pretrained: device_map={device_map!r} splits the model; a swinzoo model lives on one device "
                "(device_map='cuda:0', 'auto' or {'': device})"
            )
        if device is not None and torch.device(device) != torch.device(device_map):
            raise LoadError(f"from_pretrained: device={device!r} and device_map={device_map!r} disagree")
        device = device_map
    checks = {
        "use_safetensors": (lambda v: v in (None, True), "swinzoo loads safetensors only"),
        "weights_only": (lambda v: v in (None, True), "swinzoo never unpickles: weights are safetensors"),
        "variant": (lambda v: v is None, "a swinzoo folder holds one model.safetensors, no variants"),
        "attn_implementation": (
            lambda v: v in (None, "eager", "sdpa"),
            "swinzoo runs SDPA, and the eager maths when attentions are asked for",
        ),
        "low_cpu_mem_usage": (lambda v: True, ""),  # always: built on the meta device, weights assigned
        "trust_remote_code": (lambda v: True, ""),  # swinzoo runs no remote code
    }
    for name, (ok, why) in checks.items():
        if name in kwargs:
            value = kwargs.pop(name)
            if not ok(value):
                raise LoadError(f"from_pretrained: {name}={value!r} is not supported ({why})")
    config = kwargs.pop("config", None)
    if config is not None and not isinstance(config, SwinConfig):
        config = load_config(config)
    return _Options(hub, device, subfolder, bool(kwargs.pop("output_loading_info", False)), config)


def _retarget(
    state: dict[str, torch.Tensor],
    config: SwinConfig,
    task: str,
    image_size: int | tuple[int, int] | None,
    window_size: int | None,
    num_labels: int | None,
    id2label: dict[int, str] | None,
) -> tuple[dict[str, torch.Tensor], SwinConfig, RetargetRecord, str]:
    """The loaded state moved to a new geometry (and head) by :func:`swinzoo.retarget.retarget`."""
    state, config, record = retarget(
        state, config, task, image_size=image_size, window_size=window_size, num_labels=num_labels
    )
    if id2label is not None:
        config = config.copy(id2label=id2label)
    return state, config, record, record.target_task


def _new_head(
    state: dict[str, torch.Tensor], config: SwinConfig, ignore_mismatched_sizes: bool, where: str | os.PathLike
) -> dict[str, torch.Tensor]:
    """A head of ``config.num_labels`` classes: the stored one when the count matches, else a new zero head.

    Zero, as the official fine-tuning starts a new head (utils.load_pretrained), and only when asked for with
    ``ignore_mismatched_sizes=True``, as transformers requires.
    """
    stored = state["head.weight"]
    if stored.shape[0] == config.num_labels:
        return state
    if not ignore_mismatched_sizes:
        raise LoadError(
            f"{where}: the stored head has {stored.shape[0]} classes, num_labels={config.num_labels} asks for "
            "another; pass ignore_mismatched_sizes=True to start a new (zero-initialised) head"
        )
    state = dict(state)
    state["head.weight"] = stored.new_zeros(config.num_labels, stored.shape[1])
    state["head.bias"] = stored.new_zeros(config.num_labels)
    return state


def _assemble(
    cls: type[SwinPreTrainedModel],
    config: SwinConfig,
    state: dict[str, torch.Tensor],
    task: str,
    where: str,
    weights_file: Path,
) -> SwinPreTrainedModel:
    """Build ``cls`` on the meta device and take ``state`` as its parameters (no second copy), strictly."""
    with torch.device("meta"):
        model = cls(config)
    expected = model.state_dict()
    if task == "backbone":  # norms of stages not asked for now (a backbone saved with other out_features) go
        state = {k: v for k, v in state.items() if not k.startswith("stage_norms.") or k in expected}
    missing = [k for k in expected if k not in state]
    fresh_norms: list[str] = []
    if task == "backbone":  # stage norms a classifier or base checkpoint does not have start fresh
        fresh_norms = sorted({k.split(".")[1] for k in missing if k.startswith("stage_norms.")})
        missing = [k for k in missing if not k.startswith("stage_norms.")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: file {tuple(state[k].shape)}, config {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape mismatches (the config does not match the weights): " + "; ".join(wrong[:10]))
        if missing:
            parts.append(f"missing from {weights_file.name}: " + ", ".join(missing[:10]))
        if unexpected:
            parts.append(f"not expected by {cls.__name__}: " + ", ".join(unexpected[:10]))
        raise LoadError(f"{where}: weights do not fit the config: " + " | ".join(parts))
    # Non-persistent buffers are derived from shapes and were built on the CPU.
    model.load_state_dict(state, strict=not fresh_norms, assign=True)
    if fresh_norms:  # a classifier or base checkpoint as a backbone: new (identity) norms for the stages it lacks
        fresh = SwinBackbone(config.copy(depths=[1] * config.num_layers)).stage_norms
        norms = cast(SwinBackbone, model).stage_norms
        for name in fresh_norms:
            norms[name] = fresh[name]
    return model.eval()


def load_config(
    name_or_path: str | os.PathLike, *, revision: str | None = None, cache_dir: str | None = None
) -> SwinConfig:
    """The swinzoo config of a folder or Hub repo in any format swinzoo loads (only ``config.json`` is fetched)."""
    path = Path(name_or_path)
    if path.is_dir():
        config_file = path / CONFIG_NAME
        if not config_file.is_file():
            raise LoadError(f"{path}: no {CONFIG_NAME}")
    elif path.is_file() and path.name == CONFIG_NAME:
        config_file = path
    else:
        config_file, _ = _resolve_files(name_or_path, revision, cache_dir, only_config=True)
    return read_config(config_file)[0]


def push_to_hub(
    model: SwinPreTrainedModel,
    repo_id: str,
    *,
    commit_message: str | None = None,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
) -> str:
    """Upload ``model`` (model.safetensors + config.json) to a Hub repo in one commit; returns the commit URL.

    For models you trained or changed: unlike ``swinzoo publish`` (which publishes verified conversions with
    their records and card), nothing is checked against a reference here.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="swinzoo-push-") as tmp:
        save_pretrained(model, Path(tmp) / "model")
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=Path(tmp) / "model",
                revision=revision,
                commit_message=commit_message or f"Upload {type(model).__name__} with swinzoo {__version__}",
            )
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise LoadError(one_line(f"push_to_hub {repo_id}: {exc}")) from exc
    return str(getattr(info, "commit_url", info))
