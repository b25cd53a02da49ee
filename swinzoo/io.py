"""Saving and loading converted models: a folder (or Hub repo) with model.safetensors + config.json.

Folders are written atomically: everything goes to a temporary sibling that is renamed into place, so a
failure or Ctrl-C never leaves a half-written folder. Loading is safetensors-only and strict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import __version__
from .config import SwinConfig
from .errors import SwinzooError
from .folder import CONFIG_NAME, WEIGHTS_NAME, atomic_output
from .modeling import TASK_CLASSES, SwinBackbone, SwinPreTrainedModel

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LoadError(SwinzooError, RuntimeError):
    """A model folder or Hub repo cannot be loaded; the message names the repo, revision, file or key."""


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    if name is None or isinstance(name, torch.dtype):
        return name
    if name not in _DTYPES:
        raise ValueError(f"dtype: {name!r} is not one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


def atomic_directory(target: str | os.PathLike, *, overwrite: bool = False):
    """Kept for callers of the old name: :func:`swinzoo.folder.atomic_output`."""
    return atomic_output(target, overwrite=overwrite)


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
    save_file(state, str(directory / WEIGHTS_NAME), metadata=meta)
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


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


# --------------------------------------------------------------------------------------------- loading
def _resolve_files(name_or_path: str | os.PathLike, revision: str | None, cache_dir: str | None) -> tuple[Path, Path]:
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
    return _download_from_hub(str(name_or_path), revision, cache_dir)


def _download_from_hub(repo_id: str, revision: str | None, cache_dir: str | None) -> tuple[Path, Path]:
    """config.json and model.safetensors of one commit: the weights are fetched at the commit the config came
    from, so a push landing between the two downloads cannot pair one commit's config with another's weights.
    With HF_HUB_OFFLINE=1 (or no network) both come from the Hugging Face cache."""
    import re

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f"{repo_id}@{revision or 'main'}"
    files: list[Path] = []
    pinned = revision
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            files.append(Path(hf_hub_download(repo_id, filename, revision=pinned, cache_dir=cache_dir)))
        except RepositoryNotFoundError as exc:
            raise LoadError(f"Hub repo {repo_id!r} not found (or private: log in with `hf auth login`)") from exc
        except RevisionNotFoundError as exc:
            raise LoadError(f"Hub repo {repo_id!r} has no revision {revision!r}") from exc
        except LocalEntryNotFoundError as exc:  # before EntryNotFoundError: it is a subclass
            raise LoadError(
                f"{at}: {filename} is not in the local cache and the Hub cannot be reached "
                "(offline, or HF_HUB_OFFLINE=1): download it once with a network"
            ) from exc
        except EntryNotFoundError as exc:
            extra = " (swinzoo loads safetensors only)" if filename == WEIGHTS_NAME else ""
            raise LoadError(f"{at}: no file {filename}{extra}") from exc
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", "?")
            raise LoadError(f"{at}: the Hub answered {status} for {filename}") from exc
        # The cache keeps each file under snapshots/<commit>/: pin the next download to that commit.
        commit = files[-1].parent.name
        if re.fullmatch(r"[0-9a-f]{40}", commit):
            pinned = commit
    return files[0], files[1]


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
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise LoadError(f"{weights_file}: {key} holds {bad} non-finite value(s) (NaN or Inf)")
    if len(dtypes) > 1:
        shown = ", ".join(f"{k} is {str(d).removeprefix('torch.')}" for d, k in dtypes.items())
        raise LoadError(f"{weights_file}: mixed dtypes ({shown}); a swinzoo folder stores one dtype")


def from_pretrained(
    name_or_path: str | os.PathLike,
    *,
    model_class: type[SwinPreTrainedModel] | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    dtype: str | torch.dtype | None = None,
    **config_overrides: Any,
) -> SwinPreTrainedModel:
    """Load a converted folder or a Hub repo (``org/name``, optionally at ``revision``) into the right class.

    Strict: every parameter must be present with the shape the config implies. Works offline from the
    Hugging Face cache (``HF_HUB_OFFLINE=1``).
    """
    config_file, weights_file = _resolve_files(name_or_path, revision, cache_dir)
    try:
        raw = json.loads(config_file.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise LoadError(f"{config_file}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise LoadError(f"{config_file}: expected a JSON object of config fields, got {type(raw).__name__}")
    saved_task = raw.pop("task", None)
    raw.pop("architectures", None)
    raw.pop("swinzoo_version", None)
    raw.pop("torch_dtype", None)
    if saved_task not in TASK_CLASSES:
        raise LoadError(f"{config_file}: 'task' is {saved_task!r}, expected one of {list(TASK_CLASSES)}")
    raw.update(config_overrides)
    try:
        config = SwinConfig.from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise LoadError(f"{config_file}: {exc}") from exc
    if not isinstance(saved_task, str):
        raise LoadError(f"{config_file}: 'task' is {saved_task!r}, expected one of {list(TASK_CLASSES)}")
    cls = model_class if model_class not in (None, SwinPreTrainedModel) else TASK_CLASSES[saved_task]
    wanted_task = next(t for t, c in TASK_CLASSES.items() if c is cls)
    with torch.device("meta"):
        model = cls(config)
    try:
        from safetensors.torch import load_file

        state = load_file(str(weights_file))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise LoadError(f"{weights_file}: not a readable safetensors file ({exc})") from exc
    _check_weights(state, weights_file)
    state = _adapt_keys(state, saved_task, wanted_task)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if wanted_task == "backbone":
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
        raise LoadError(f"{name_or_path}: weights do not fit the config: " + " | ".join(parts))
    # Built on the meta device, the parameters are the loaded tensors themselves (no second copy);
    # non-persistent buffers are derived from shapes and were built on the CPU.
    model.load_state_dict(state, strict=wanted_task != "backbone", assign=True)
    if wanted_task == "backbone":
        model.stage_norms = SwinBackbone(config.copy(depths=[1] * config.num_layers)).stage_norms
    model.eval()
    dtype = parse_dtype(dtype)
    if dtype is not None:
        model = model.to(dtype)
    return model
