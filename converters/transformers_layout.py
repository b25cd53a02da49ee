"""swinzoo <-> Hugging Face transformers Swin / Swinv2 layouts (classification, SimMIM, base model).

transformers splits the fused qkv projection into query/key/value (v2 has no key bias) and keeps a row for
a class token in its absolute position embeddings. transformers >= 5 renamed Swin v1's attention to
``q_proj/k_proj/v_proj/o_proj``; ``style="legacy"`` writes the 4.x names, which both 4.x and 5.x load.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from swinzoo.config import SwinConfig

from .engine import IDENTITY, Fused, Ignored, LayoutError, Rename, Rule, Transform, shapes_of

CLASS_ROW = Transform(
    "positions (1, N, C) <-> (1, 1 + N, C) with a class-token row transformers does not use for patches",
    to_foreign=lambda t: torch.cat([torch.zeros_like(t[:, :1]), t], dim=1),
    to_swinzoo=lambda t: t[:, 1:],
)


def class_row(config: SwinConfig, write_row: bool) -> Transform:
    """Absolute positions to transformers' layout (with the class-token row when ``write_row``) and back. Read
    back, the row is dropped only where the tensor has one: transformers 5 saves Swin v1 without it, under
    either key style."""
    n = config.num_patches
    return Transform(
        CLASS_ROW.name if write_row else "positions (1, N, C), with a class-token row dropped where one is stored",
        to_foreign=CLASS_ROW.to_foreign if write_row else IDENTITY.to_foreign,
        to_swinzoo=lambda t: t[:, 1:] if t.shape[1] == n + 1 else t,
    )


def detect_style(foreign_keys: Iterable[str]) -> str:
    """'q_proj' (transformers >= 5 Swin v1) or 'legacy' (4.x names, also Swinv2 in 5.x)."""
    return "q_proj" if any(".attention.q_proj." in k for k in foreign_keys) else "legacy"


def transformers_rules(config: SwinConfig, task: str = "image-classification", style: str = "legacy") -> list[Rule]:
    p = "swin" if config.version == 1 else "swinv2"
    if task == "base":
        p = ""
    pre = f"{p}." if p else ""
    src = "swin." if task != "base" else ""
    blk = f"{src}stages.{{i}}.blocks.{{j}}."
    hf = f"{pre}encoder.layers.{{i}}.blocks.{{j}}."
    rules: list[Rule] = [
        Rename(f"{src}patch_embed.proj.{{rest}}", f"{pre}embeddings.patch_embeddings.projection.{{rest}}"),
        Rename(f"{src}patch_embed.norm.{{rest}}", f"{pre}embeddings.norm.{{rest}}"),
        Rename(f"{src}patch_embed.mask_token", f"{pre}embeddings.mask_token"),
        # transformers 4.x and Swinv2 keep a class-token row; transformers 5's Swin (q_proj style) does not.
        Rename(
            f"{src}patch_embed.position_embeddings",
            f"{pre}embeddings.position_embeddings",
            class_row(config, write_row=not (config.version == 1 and style == "q_proj")),
        ),
        Rename(blk + "norm1.{rest}", hf + "layernorm_before.{rest}"),
        Rename(blk + "norm2.{rest}", hf + "layernorm_after.{rest}"),
    ]
    if config.version == 1 and style == "q_proj":
        att = hf + "attention."
        rules += [
            Fused(blk + "attn.qkv.weight", (att + "q_proj.weight", att + "k_proj.weight", att + "v_proj.weight")),
            Fused(blk + "attn.qkv.bias", (att + "q_proj.bias", att + "k_proj.bias", att + "v_proj.bias")),
            Rename(blk + "attn.proj.{rest}", att + "o_proj.{rest}"),
            Rename(
                blk + "attn.relative_position_bias_table",
                att + "relative_position_bias.relative_position_bias_table",
            ),
            Rename(blk + "mlp.fc1.{rest}", hf + "mlp.fc1.{rest}"),
            Rename(blk + "mlp.fc2.{rest}", hf + "mlp.fc2.{rest}"),
        ]
    else:
        att = hf + "attention.self."
        rules += [
            Fused(blk + "attn.qkv.weight", (att + "query.weight", att + "key.weight", att + "value.weight")),
            Rename(blk + "attn.proj.{rest}", hf + "attention.output.dense.{rest}"),
            Rename(blk + "mlp.fc1.{rest}", hf + "intermediate.dense.{rest}"),
            Rename(blk + "mlp.fc2.{rest}", hf + "output.dense.{rest}"),
        ]
        if config.version == 1:
            rules += [
                Fused(blk + "attn.qkv.bias", (att + "query.bias", att + "key.bias", att + "value.bias")),
                Rename(blk + "attn.relative_position_bias_table", att + "relative_position_bias_table"),
            ]
        else:
            rules += [
                Rename(blk + "attn.q_bias", att + "query.bias"),  # v2: no key bias
                Rename(blk + "attn.v_bias", att + "value.bias"),
                Rename(blk + "attn.logit_scale", att + "logit_scale"),
                Rename(blk + "attn.cpb_mlp.{rest}", att + "continuous_position_bias_mlp.{rest}"),
            ]
    rules += [
        # transformers 4.x keeps this as a persistent buffer (5.x does not); the model builds it from its config
        Ignored(f"{pre}encoder.layers.{{i}}.blocks.{{j}}.attention.self.relative_position_index", BUILT_REASON),
        Rename(f"{src}stages.{{i}}.merge.{{rest}}", f"{pre}encoder.layers.{{i}}.downsample.{{rest}}"),
        Rename(f"{src}norm.{{rest}}", f"{pre}layernorm.{{rest}}"),
        Rename("head.{rest}", "classifier.{rest}"),
        Rename("decoder.conv.{rest}", "decoder.0.{rest}"),
    ]
    return rules


# Buffers some transformers versions keep in the state dict although the model computes them from its config.
BUILT_BY_MODEL = ("relative_position_index",)
BUILT_REASON = "a buffer transformers computes from the config (persistent in 4.x)"


def foreign_shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    """The tensors a transformers model takes from a state dict: its own computed buffers left out."""
    return {k: v for k, v in shapes_of(model).items() if not k.endswith(BUILT_BY_MODEL)}


def load_transformers_state(model: torch.nn.Module, state: dict[str, torch.Tensor], assign: bool = False) -> None:
    """``model.load_state_dict(state, strict=True, assign=assign)``, the buffers the model computes itself taken
    from it. ``assign``: the model's tensors become ``state``'s (say, a memory-mapped file's pages), not copies."""
    own = {k: v for k, v in model.state_dict().items() if k.endswith(BUILT_BY_MODEL) and k not in state}
    model.load_state_dict({**state, **own}, strict=True, assign=assign)


# The config fields swinzoo and transformers' SwinConfig / Swinv2Config share, under the same names (plus v2's
# pretrained_window_sizes): both directions read this list.
_SHARED_FIELDS = (
    "image_size", "patch_size", "num_channels", "embed_dim", "depths", "num_heads", "window_size", "mlp_ratio",
    "qkv_bias", "hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate", "hidden_act",
    "use_absolute_embeddings", "layer_norm_eps", "initializer_range", "encoder_stride", "id2label", "label2id",
)  # fmt: skip


def transformers_config(config: SwinConfig) -> Any:  # transformers.SwinConfig | Swinv2Config
    """The transformers config with this architecture (SwinConfig or Swinv2Config)."""
    import transformers

    if config.version == 1:
        window_sizes = {config.stage_window(i)[0] for i in range(config.num_layers)}
        if window_sizes != {config.window_size}:
            raise LayoutError(
                "transformers' Swin (v1) builds every stage with one window, but the official clamp gives "
                f"per-stage windows {[config.stage_window(i)[0] for i in range(config.num_layers)]} at image size "
                f"{config.image_size}: this checkpoint cannot be represented in transformers' Swin layout"
            )
    cls = transformers.SwinConfig if config.version == 1 else transformers.Swinv2Config
    kwargs: dict[str, Any] = {name: getattr(config, name) for name in _SHARED_FIELDS}
    kwargs.update(
        depths=list(config.depths),
        num_heads=list(config.num_heads),
        id2label={int(k): v for k, v in config.id2label.items()},
        label2id=dict(config.label2id),
        problem_type=config.problem_type,
    )
    if config.version == 2:
        kwargs["pretrained_window_sizes"] = list(config.pretrained_window_sizes)
    return cls(**kwargs)


def transformers_class(version: int, task: str = "image-classification") -> type:
    """transformers' model class for Swin ``version`` 1 or 2 and ``task`` (image-classification,
    masked-image-modeling, base): the one table that building and downloading a transformers model both read."""
    import transformers

    names = {
        ("image-classification", 1): "SwinForImageClassification",
        ("image-classification", 2): "Swinv2ForImageClassification",
        ("masked-image-modeling", 1): "SwinForMaskedImageModeling",
        ("masked-image-modeling", 2): "Swinv2ForMaskedImageModeling",
        ("base", 1): "SwinModel",
        ("base", 2): "Swinv2Model",
    }
    if (task, version) not in names:
        raise LayoutError(f"transformers has no Swin model for version {version!r} and task {task!r}")
    return getattr(transformers, names[(task, version)])


def create_transformers_model(config: SwinConfig, task: str = "image-classification") -> torch.nn.Module:
    hf_config = transformers_config(config)
    cls = transformers_class(config.version, task)
    hf_config._attn_implementation = "eager"
    return cls(hf_config)


# Read back from transformers' config.json as well: what the model does with its outputs and losses.
_READ_FIELDS = (
    *_SHARED_FIELDS,
    "problem_type",
    "output_hidden_states",
    "output_attentions",
    "return_dict",
    "out_features",
    "out_indices",
)


_TASK_OF_ARCHITECTURE = {
    "ForImageClassification": "image-classification",
    "ForMaskedImageModeling": "masked-image-modeling",
    "Model": "base",
}


def is_transformers_config(data: dict) -> bool:
    return data.get("model_type") in ("swin", "swinv2") and "task" not in data


def swinzoo_config_from_transformers(data: dict) -> tuple[SwinConfig, str]:
    """A transformers ``config.json`` (Swin or Swinv2) as a swinzoo config and task, read field by field."""
    version = 1 if data["model_type"] == "swin" else 2
    fields = {k: data[k] for k in _READ_FIELDS if k in data and data[k] is not None}
    windows = data.get("pretrained_window_sizes")
    if version == 2 and isinstance(windows, list) and isinstance(fields.get("depths"), list):
        # transformers reads pretrained_window_sizes[i] per stage and ignores the rest: its default of four
        # zeros stays in config.json of a model with fewer stages.
        fields["pretrained_window_sizes"] = windows[: len(fields["depths"])]
    architectures = data.get("architectures") or []
    base = "Swin" if version == 1 else "Swinv2"
    task = None
    for arch in architectures:
        for suffix, name in _TASK_OF_ARCHITECTURE.items():
            if arch == base + suffix:
                task = name
    if task is None:
        raise LayoutError(f"architectures {architectures}: swinzoo reads {base}ForImageClassification, "
                         f"{base}ForMaskedImageModeling and {base}Model repos")  # fmt: skip
    return SwinConfig(version=version, **fields), task
