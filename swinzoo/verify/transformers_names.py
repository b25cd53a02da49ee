"""Official (Microsoft) names -> transformers' Swin / Swinv2 names: the transformers reference's own table.

Written for verification, apart from swinzoo's converter: it imports neither ``converters/official.py`` nor the
mapping engine (tests/test_verify.py checks these imports), so a wrong rule there shows as a disagreement.
"""

from __future__ import annotations

import re

import torch

from .official_state import BUFFER_SUFFIXES, official_names

# Official names -> transformers names, inside one block ``layers.{i}.blocks.{j}.`` (``{base}`` = swin / swinv2).
# The fused qkv projection is split into query, key and value; everything else is a plain rename.
_BLOCK_V1_LEGACY = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_BLOCK_V1_QPROJ = {  # transformers >= 5 renamed Swin v1's attention
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.o_proj",
    "attn.relative_position_bias_table": "attention.relative_position_bias.relative_position_bias_table",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_BLOCK_V2 = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "attn.q_bias": "attention.self.query.bias",
    "attn.v_bias": "attention.self.value.bias",  # v2 has no key bias
    "attn.logit_scale": "attention.self.logit_scale",
    "attn.cpb_mlp": "attention.self.continuous_position_bias_mlp",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_QKV = {"legacy": ("attention.self.query", "attention.self.key", "attention.self.value"),
        "q_proj": ("attention.q_proj", "attention.k_proj", "attention.v_proj")}  # fmt: skip


def official_to_transformers(
    state: dict[str, torch.Tensor], version: int, simmim: bool, style: str = "legacy"
) -> dict[str, torch.Tensor]:
    """An official (Microsoft) state dict renamed into transformers' Swin / Swinv2 layout.

    Written for verification, apart from swinzoo's converter: a plain table of renames per official name,
    the fused ``qkv`` split into query / key / value. Buffers the models rebuild (relative_position_index,
    attn_mask, relative_coords_table) are dropped; ``rpe_mlp`` (the released SimMIM V2 files' name) is read as
    ``cpb_mlp``. ``style`` is ``q_proj`` for transformers >= 5 Swin v1.
    """
    state = official_names(state)
    base = "swin" if version == 1 else "swinv2"
    block_table = _BLOCK_V2 if version == 2 else (_BLOCK_V1_QPROJ if style == "q_proj" else _BLOCK_V1_LEGACY)
    qkv_names = _QKV["legacy" if version == 2 else style]
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        k = key
        if simmim:
            if k.startswith("decoder."):
                out[k] = value  # decoder.0 (1x1 conv) in both
                continue
            if not k.startswith("encoder."):
                unknown.append(key)
                continue
            k = k.removeprefix("encoder.")
            if k == "mask_token":
                out[f"{base}.embeddings.mask_token"] = value
                continue
            if k.startswith("head."):
                continue  # SimMIM pretraining trains no classifier
        if k.endswith(BUFFER_SUFFIXES):
            continue
        block = re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)", k)
        if block:
            i, j, rest = block.groups()
            prefix = f"{base}.encoder.layers.{i}.blocks.{j}."
            if rest in ("attn.qkv.weight", "attn.qkv.bias"):
                kind = rest.rsplit(".", 1)[1]
                for name, chunk in zip(qkv_names, value.chunk(3, dim=0), strict=True):
                    out[f"{prefix}{name}.{kind}"] = chunk.contiguous()
                continue
            for old, new in block_table.items():
                if rest == old or rest.startswith(old + "."):
                    out[prefix + new + rest[len(old) :]] = value
                    break
            else:
                unknown.append(key)
            continue
        renames = [
            (r"patch_embed\.proj\.(.+)", rf"{base}.embeddings.patch_embeddings.projection.\1"),
            (r"patch_embed\.norm\.(.+)", rf"{base}.embeddings.norm.\1"),
            (r"layers\.(\d+)\.downsample\.(.+)", rf"{base}.encoder.layers.\1.downsample.\2"),
            (r"norm\.(.+)", rf"{base}.layernorm.\1"),
            (r"head\.(.+)", r"classifier.\1"),
        ]
        for pattern, repl in renames:
            if re.fullmatch(pattern, k):
                out[re.sub(pattern, repl, k)] = value
                break
        else:
            if k == "absolute_pos_embed":
                # Swinv2 and transformers 4.x Swin keep a class-token row in front (unused by patches); 5.x Swin not.
                if not (version == 1 and style == "q_proj"):
                    value = torch.cat([torch.zeros_like(value[:, :1]), value], 1)
                out[f"{base}.embeddings.position_embeddings"] = value
            else:
                unknown.append(key)
    if unknown:
        raise ValueError(f"no transformers name for official key(s): {', '.join(unknown[:10])}")
    return out
