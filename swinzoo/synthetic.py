"""Synthetic checkpoints in the exact official Microsoft layouts, for offline end-to-end tests.

Independence matters: these files are built from *timm's* model (its parameters and its own buffers),
laid out as the official repositories save them (documented in timm's ``checkpoint_filter_fn``: the
downsample of stage i is stored with stage i, the classifier is ``head``, buffers are persistent), never
through swinzoo's converter. Every tensor gets distinct random values, so a swapped or dropped tensor shows.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import types
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .config import SwinConfig
from .converters.official import LAYOUTS  # layout names only; no mapping logic is shared
from .converters.timm_layout import create_timm_model
from .fetch import write_cache_file
from .manifest import CPB_MLP_NAMES, SAVED_BY
from .meta_device import build_on_meta, rebuild_timm_buffers, timm_supports_meta
from .modeling import GEOMETRY_BUFFERS


def _generator(seed: int, key: str) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))


def random_like(key: str, tensor: torch.Tensor, seed: int) -> torch.Tensor:
    """Distinct random values for one tensor, scaled so a deep network stays numerically sane."""
    g = _generator(seed, key)
    noise = torch.randn(tensor.shape, generator=g, dtype=torch.float32)
    name = key.rsplit(".", 1)[-1]
    if name == "logit_scale":
        out = math.log(10.0) + 0.3 * noise
    elif name in ("relative_position_bias_table",):
        out = 0.5 * noise
    elif tensor.ndim == 1 and name == "weight":  # LayerNorm scale
        out = 1.0 + 0.1 * noise
    elif tensor.ndim == 1:  # biases (incl. q_bias / v_bias / LayerNorm shift)
        out = 0.05 * noise
    elif name == "mask_token" or "pos_embed" in key:
        out = 0.1 * noise
    else:
        fan_in = tensor[0].numel() if tensor.ndim > 1 else tensor.numel()
        out = noise / math.sqrt(max(fan_in, 1))
    return out.to(tensor.dtype)


def randomize_state(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Every floating tensor replaced by distinct random values (integer buffers are kept)."""
    return {k: random_like(k, v, seed) if v.is_floating_point() else v.clone() for k, v in state.items()}


def _timm_model(config: SwinConfig, num_classes: int) -> torch.nn.Module:
    if num_classes:
        return create_timm_model(config.copy(num_labels=max(num_classes, 1)))
    model = create_timm_model(config.copy(num_labels=1))
    model.reset_classifier(0)
    return model


def _random_timm(config: SwinConfig, num_classes: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.nn.Module]:
    """timm's model holding :func:`random_like` values, and its state dict (the same tensors: one copy).

    Built on the meta device, each parameter then given its random values (no initialisation that would be
    overwritten, no second copy); timm computes its buffers itself once the weights are real. A timm without
    meta-device support builds on the CPU and each tensor is replaced in turn (one tensor more at a time).
    """
    model = build_on_meta(lambda: _timm_model(config, num_classes))
    on_meta = timm_supports_meta(model)
    if not on_meta:
        model = _timm_model(config, num_classes)
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for key in list(state):
            tensor = state.pop(key)  # the old values go as soon as the module holds the new ones
            if tensor.is_floating_point():
                value = random_like(key, tensor, seed)
                if isinstance(tensor, torch.nn.Parameter):
                    value = torch.nn.Parameter(value, requires_grad=False)
                owner, _, name = key.rpartition(".")
                target = model.get_submodule(owner)
                if name in target._parameters:
                    assert isinstance(value, torch.nn.Parameter), "keep_vars=True yields parameters as Parameter"
                    target._parameters[name] = value
                else:
                    target._buffers[name] = value
    if on_meta:
        rebuild_timm_buffers(model)
    return {k: v.detach() for k, v in model.state_dict().items()}, model


def official_state_dict(config: SwinConfig, layout: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The ``model`` state dict an official checkpoint of this architecture and layout holds."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    simmim = layout.endswith("-pretrain")
    params, timm_model = _random_timm(config, 0 if simmim else config.num_labels, seed)
    state: dict[str, torch.Tensor] = {}
    for key, value in params.items():
        # timm keeps merging at the start of the next stage; the official code at the end of the stage.
        key = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", key)
        key = re.sub(r"^head\.fc\.", "head.", key)
        state[key] = value
    # The official modules register these buffers as persistent, so the files carry them.
    for name, buf in timm_model.named_buffers():
        if name.endswith(GEOMETRY_BUFFERS):
            state[name] = buf
    del timm_model, params
    if simmim:
        dim = config.embed_dim
        state = {f"encoder.{k}": v for k, v in state.items()}
        state["encoder.mask_token"] = random_like("encoder.mask_token", torch.empty(1, 1, dim), seed)
        stride, out_dim = config.encoder_stride, config.num_features
        conv_w = torch.empty(stride**2 * config.num_channels, out_dim, 1, 1)
        state["decoder.0.weight"] = random_like("decoder.0.weight", conv_w, seed)
        state["decoder.0.bias"] = random_like("decoder.0.bias", torch.empty(conv_w.shape[0]), seed)
    return state


class _CfgNode(dict):
    """Pickles as yacs' ``CfgNode`` does (a frozen config): a dict subclass whose instance ``__dict__`` holds
    yacs' four attributes, so protocol 2 writes NEWOBJ, SETITEMS, then BUILD, byte for byte what yacs writes."""

    def __init__(self, **items: Any) -> None:
        super().__init__(items)
        self.__dict__.update(
            {"__immutable__": True, "__deprecated_keys__": set(), "__renamed_keys__": {}, "__new_allowed__": False}
        )


def _config_node(entry_name: str, saved_by: str) -> _CfgNode:
    """A small frozen run config in the official shape (``MODEL.TYPE``, ``TRAIN.EPOCHS``...)."""
    return _CfgNode(
        MODEL=_CfgNode(TYPE="swin", NAME=entry_name, SWIN=_CfgNode(EMBED_DIM=96, DEPTHS=[2, 2, 6, 2])),
        TRAIN=_CfgNode(EPOCHS=300, START_EPOCH=0, BASE_LR=1e-4),
        AMP_OPT_LEVEL="O1" if saved_by == "simmim-save-checkpoint" else "",
    )


def _training_extras(state: dict[str, torch.Tensor], seed: int, saved_by: str) -> dict[str, Any]:
    """What the official ``save_checkpoint`` adds next to the weights, in its key order (optimizer state for a
    few parameters only: enough to carry every kind of entry, not the size of a real Adam state)."""
    g = _generator(seed, "optimizer")
    some = list(state.items())[:4]
    optimizer = {
        "state": {
            i: {"step": torch.tensor(10.0), "exp_avg": torch.randn(v.shape, generator=g)}
            for i, (_, v) in enumerate(some)
        },
        "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": list(range(len(some)))}],
    }
    extras: dict[str, Any] = {
        "optimizer": optimizer,
        "lr_scheduler": {"last_epoch": 99, "base_lrs": [1e-4]},
        "max_accuracy": 0.0,
    }
    if saved_by == "swin-save-checkpoint":
        extras["scaler"] = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000}
    extras["epoch"] = 99
    extras["config"] = _config_node("synthetic", saved_by)
    if saved_by == "simmim-save-checkpoint":
        extras["amp"] = {"loss_scaler0": {"loss_scale": 65536.0, "unskipped": 0}}
    return extras


@contextlib.contextmanager
def _pickled_as_yacs() -> Iterator[None]:
    """While saving, :class:`_CfgNode` is named ``yacs.config.CfgNode`` (the pickle records that name)."""
    module = types.ModuleType("yacs.config")
    previous = {name: sys.modules.get(name) for name in ("yacs", "yacs.config")}
    _CfgNode.__module__, _CfgNode.__qualname__ = "yacs.config", "CfgNode"
    module.CfgNode = _CfgNode  # type: ignore[attr-defined]  # a bare ModuleType standing in for yacs.config
    sys.modules.setdefault("yacs", types.ModuleType("yacs"))
    sys.modules["yacs.config"] = module
    try:
        yield
    finally:
        _CfgNode.__module__, _CfgNode.__qualname__ = __name__, "_CfgNode"
        for name, mod in previous.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def checkpoint_payload(
    config: SwinConfig,
    layout: str,
    *,
    seed: int = 0,
    saved_by: str = "swin-save-checkpoint",
    cpb_mlp_name: str = "cpb_mlp",
) -> dict[str, Any]:
    """What an official file of this layout holds, saved ``saved_by`` with the MLP named ``cpb_mlp_name``."""
    if saved_by not in SAVED_BY:
        raise ValueError(f"unknown saved_by {saved_by!r}; known: {', '.join(SAVED_BY)}")
    if cpb_mlp_name not in CPB_MLP_NAMES:
        raise ValueError(f"unknown cpb_mlp_name {cpb_mlp_name!r}; known: {', '.join(CPB_MLP_NAMES)}")
    state = official_state_dict(config, layout, seed)
    if cpb_mlp_name != "cpb_mlp":
        state = {k.replace(".cpb_mlp.", f".{cpb_mlp_name}."): v for k, v in state.items()}
    payload: dict[str, Any] = {"model": state}
    if saved_by != "weights-only":
        payload.update(_training_extras(state, seed, saved_by))
    return payload


def write_official_checkpoint(
    path: str | os.PathLike,
    config: SwinConfig,
    layout: str,
    *,
    seed: int = 0,
    training_state: bool = True,
    saved_by: str | None = None,
    cpb_mlp_name: str = "cpb_mlp",
    keep_existing: bool = False,
) -> Path:
    """Write a synthetic checkpoint file in the official layout. Returns its path.

    The same arguments give the same bytes (saved through a file object, torch names the archive's records
    ``archive/...``, not after a temporary file). Written as every cache write is (``fetch.write_cache_file``:
    an ``O_EXCL | O_NOFOLLOW`` temporary, then one rename). ``saved_by`` defaults to a training checkpoint
    (``weights-only`` when not ``training_state``).
    """
    path = Path(path)
    if saved_by is None:
        saved_by = "swin-save-checkpoint" if training_state else "weights-only"
    payload = checkpoint_payload(config, layout, seed=seed, saved_by=saved_by, cpb_mlp_name=cpb_mlp_name)
    path.parent.mkdir(parents=True, exist_ok=True)

    def save(f: BinaryIO) -> None:
        with _pickled_as_yacs():
            torch.save(payload, f)

    return write_cache_file(path, save, keep_existing=keep_existing)
