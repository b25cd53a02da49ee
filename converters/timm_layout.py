"""swinzoo <-> timm (>= 0.9) Swin / Swin V2 classification layout.

timm differs from swinzoo in two places: patch merging is the *first* module of the next stage
(``layers.{i+1}.downsample``) and the classifier is ``head.fc``.
"""

from __future__ import annotations

import torch

from swinzoo.config import SwinConfig

from .engine import LayoutError, Rename, Rule


def timm_rules() -> list[Rule]:
    """The same for every architecture (timm has no absolute position embeddings: :func:`timm_model_args` refuses
    a config that uses them)."""
    return [
        Rename("swin.patch_embed.proj.{rest}", "patch_embed.proj.{rest}"),
        Rename("swin.patch_embed.norm.{rest}", "patch_embed.norm.{rest}"),
        Rename("swin.stages.{i}.blocks.{j}.{rest}", "layers.{i}.blocks.{j}.{rest}"),
        Rename("swin.stages.{i}.merge.{rest}", "layers.{i+1}.downsample.{rest}"),  # shift downsample layers
        Rename("swin.norm.{rest}", "norm.{rest}"),
        Rename("head.{rest}", "head.fc.{rest}"),
    ]


def timm_model_args(config: SwinConfig) -> dict:
    """The keyword arguments of timm's SwinTransformer(V2) for this architecture (JSON-able: a Hub config's
    ``model_args`` and :func:`create_timm_model` use the same ones)."""
    if config.hidden_act != "gelu" or config.layer_norm_eps != 1e-5:
        raise LayoutError("timm's Swin uses GELU and LayerNorm eps 1e-5; this config differs")
    if config.use_absolute_embeddings:
        raise LayoutError("timm's Swin has no absolute position embeddings (use_absolute_embeddings=True)")
    args = dict(
        img_size=list(config.image_hw),
        patch_size=config.patch_size,
        in_chans=config.num_channels,
        num_classes=config.num_labels,
        embed_dim=config.embed_dim,
        depths=list(config.depths),
        num_heads=list(config.num_heads),
        window_size=config.window_size,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
    )
    if config.version == 2:
        args["pretrained_window_sizes"] = list(config.pretrained_window_sizes)
    return args


def create_timm_model(config: SwinConfig) -> torch.nn.Module:
    """A timm model with exactly this architecture (random init, no dropout), for references and exports."""
    args = timm_model_args(config)
    args.update(img_size=tuple(args["img_size"]), depths=tuple(args["depths"]), num_heads=tuple(args["num_heads"]))
    if config.version == 1:
        from timm.models.swin_transformer import SwinTransformer

        return SwinTransformer(drop_rate=0.0, drop_path_rate=0.0, **args)
    from timm.models.swin_transformer_v2 import SwinTransformerV2

    args["pretrained_window_sizes"] = tuple(args["pretrained_window_sizes"])
    return SwinTransformerV2(drop_rate=0.0, drop_path_rate=0.0, **args)


def is_timm_config(data: dict) -> bool:
    return "architecture" in data and ("model_args" in data or "pretrained_cfg" in data) and "task" not in data


def swinzoo_config_from_timm(data: dict) -> SwinConfig:
    """A timm Hub ``config.json`` (as ``save_for_hf`` writes it, with ``model_args``) as a swinzoo config."""
    arch = str(data.get("architecture", ""))
    if not arch.startswith("swin"):
        raise LayoutError(f"architecture {arch!r} is not a timm Swin")
    args = data.get("model_args")
    if not isinstance(args, dict):
        raise LayoutError(
            f"architecture {arch!r} without model_args: swinzoo reads the architecture from model_args, which "
            "`swinzoo publish --format timm` writes"
        )
    version = 2 if arch.startswith("swinv2") else 1
    fields = dict(
        image_size=args.get("img_size", 224),
        patch_size=args.get("patch_size", 4),
        num_channels=args.get("in_chans", 3),
        embed_dim=args["embed_dim"],
        depths=args["depths"],
        num_heads=args["num_heads"],
        window_size=args.get("window_size", 7),
        mlp_ratio=args.get("mlp_ratio", 4.0),
        qkv_bias=args.get("qkv_bias", True),
    )
    if version == 2:
        fields["pretrained_window_sizes"] = args.get("pretrained_window_sizes")
    num_classes = args.get("num_classes", data.get("num_classes", 1000))
    labels = data.get("label_names")
    descriptions = data.get("label_descriptions")
    if isinstance(labels, list) and isinstance(descriptions, dict):  # timm: synsets + their descriptions
        labels = [descriptions.get(name, name) for name in labels]
    if isinstance(labels, list) and len(labels) == num_classes:
        fields["id2label"] = dict(enumerate(labels))
    else:
        fields["num_labels"] = num_classes
    return SwinConfig(version=version, **fields)
