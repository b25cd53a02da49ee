"""The timm and transformers mappings: exact round trips and strict accounting.

swinzoo -> foreign -> swinzoo must give back every tensor bit for bit under the same keys, and a source that
does not fit (an unknown key, a missing key, a wrong shape) must raise MappingError naming the key. The
foreign key sets are the reference libraries' own models (timm, transformers), not the rules' output; the
transformers 4.x ("legacy") names of Swin v1 are stated below from transformers' own rename table.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import max_diff, random_model, tiny_config
from safetensors.torch import save_file

from swinzoo.config import SwinConfig
from swinzoo.converters.engine import MappingError, Rename, convert_state_dict, shapes_of
from swinzoo.converters.timm_layout import create_timm_model, timm_rules
from swinzoo.converters.transformers_layout import (
    create_transformers_model,
    detect_style,
    foreign_shapes,
    transformers_rules,
)
from swinzoo.modeling import SwinForImageClassification, SwinForMaskedImageModeling, SwinModel

pytestmark = pytest.mark.usefixtures("small_model_threads")

TASK_CLASSES = {
    "image-classification": SwinForImageClassification,
    "masked-image-modeling": SwinForMaskedImageModeling,
    "base": SwinModel,
}
# transformers >= 5 renamed Swin v1's attention and MLP; 4.x checkpoints use the names on the right
# (transformers' conversion_mapping.py, "swin"). Order matters: the longer names first.
V5_TO_V4_NAMES = [
    (
        "attention.relative_position_bias.relative_position_bias_table",
        "attention.self.relative_position_bias_table",
    ),
    ("attention.q_proj.", "attention.self.query."),
    ("attention.k_proj.", "attention.self.key."),
    ("attention.v_proj.", "attention.self.value."),
    ("attention.o_proj.", "attention.output.dense."),
    ("mlp.fc1.", "intermediate.dense."),
    ("mlp.fc2.", "output.dense."),
]


def config_for(version: int, **changes) -> SwinConfig:
    # grid 32, 16, 8, 4 with window 4: one window size in every stage, as transformers' Swin v1 needs.
    return tiny_config(version, embed_dim=16, image_size=128, depths=[1, 2, 1, 1], **changes)


def legacy_names(shapes: dict[str, torch.Size]) -> dict[str, torch.Size]:
    """4.x names; 4.x also kept a class-token row in Swin v1's absolute positions: (1, 1 + N, C)."""
    out = {}
    for key, shape in shapes.items():
        for new, old in V5_TO_V4_NAMES:
            key = key.replace(new, old)
        if key.endswith("embeddings.position_embeddings"):
            shape = torch.Size([shape[0], shape[1] + 1, shape[2]])
        out[key] = shape
    return out


def q_proj_names(shapes: dict[str, torch.Size]) -> dict[str, torch.Size]:
    """The inverse of ``legacy_names``: transformers >= 5 names and (1, N, C) positions, from 4.x's."""
    out = {}
    for key, shape in shapes.items():
        for new, old in V5_TO_V4_NAMES:  # attention.output.dense. is replaced before output.dense.
            key = key.replace(old, new)
        if key.endswith("embeddings.position_embeddings"):
            shape = torch.Size([shape[0], shape[1] - 1, shape[2]])
        out[key] = shape
    return out


def transformers_shapes(config: SwinConfig, task: str, style: str) -> dict[str, torch.Size]:
    """The key set and shapes of transformers' model in ``style``'s names (v1): the installed model's own
    parameters (4.x's computed buffers left out), renamed by the table above when the style is the other major's."""
    shapes = foreign_shapes(create_transformers_model(config, task))
    installed = detect_style(shapes)
    if config.version == 1 and style != installed:
        shapes = legacy_names(shapes) if style == "legacy" else q_proj_names(shapes)
        assert detect_style(shapes) == style
    return shapes


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b), f"keys differ: only in first {set(a) - set(b)}, only in second {set(b) - set(a)}"
    changed = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    assert not changed, f"tensors changed by the round trip: {changed}"


# --------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("version", [1, 2])
def test_timm_round_trip_is_exact(version):
    config = config_for(version)
    ours = random_model(SwinForImageClassification, config, seed=21)
    reference = create_timm_model(config)
    foreign, report = convert_state_dict(ours.state_dict(), timm_rules(), shapes_of(reference), to_swinzoo=False)
    reference.load_state_dict(foreign, strict=True)  # timm accepts exactly this key set
    assert len(report.renamed) == len(ours.state_dict()) and not report.dropped
    back, _ = convert_state_dict(foreign, timm_rules(), shapes_of(ours), to_swinzoo=True)
    assert_identical(back, ours.state_dict())


@pytest.mark.parametrize("style", ["legacy", "q_proj"])
@pytest.mark.parametrize("task", list(TASK_CLASSES))
@pytest.mark.parametrize("version", [1, 2])
def test_transformers_round_trip_is_exact(version, task, style):
    config = config_for(version)
    ours = random_model(TASK_CLASSES[task], config, seed=22)
    target = transformers_shapes(config, task, style)
    rules = transformers_rules(config, task, style=style)
    foreign, _ = convert_state_dict(ours.state_dict(), rules, target, to_swinzoo=False)
    assert set(foreign) == set(target)
    if version == 1:
        assert detect_style(foreign) == style
    back, _ = convert_state_dict(foreign, rules, shapes_of(ours), to_swinzoo=True)
    assert_identical(back, ours.state_dict())


@pytest.mark.parametrize("style", ["legacy", "q_proj"])
def test_transformers_round_trip_with_absolute_positions_is_exact(style):
    config = config_for(1, use_absolute_embeddings=True)
    ours = random_model(SwinForImageClassification, config, seed=27)
    target = transformers_shapes(config, "image-classification", style)
    rules = transformers_rules(config, style=style)
    foreign, _ = convert_state_dict(ours.state_dict(), rules, target, to_swinzoo=False)
    back, _ = convert_state_dict(foreign, rules, shapes_of(ours), to_swinzoo=True)
    assert_identical(back, ours.state_dict())


def test_transformers_legacy_layout_loads_into_installed_transformers(tmp_path):
    """'legacy' names are what 4.x saves (its native layout) and what the exports use; the installed
    transformers, 4.x or 5.x (through its own renames), must load them and give swinzoo's logits."""
    import transformers

    config = config_for(1)
    ours = random_model(SwinForImageClassification, config, seed=23)
    reference = create_transformers_model(config)
    installed = foreign_shapes(reference)
    target = installed if detect_style(installed) == "legacy" else legacy_names(installed)
    legacy, _ = convert_state_dict(
        ours.state_dict(), transformers_rules(config, style="legacy"), target, to_swinzoo=False
    )
    assert detect_style(legacy) == "legacy"
    reference.config.save_pretrained(tmp_path)
    save_file({k: v.contiguous() for k, v in legacy.items()}, str(tmp_path / "model.safetensors"))
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "swin"
    loaded = transformers.SwinForImageClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert max_diff(loaded(x).logits, ours(x).logits) <= 1e-4


# --------------------------------------------------------------------------------------------- strict accounting
def timm_case(version: int = 1):
    config = config_for(version)
    ours = random_model(SwinForImageClassification, config, seed=24)
    foreign, _ = convert_state_dict(
        ours.state_dict(), timm_rules(), shapes_of(create_timm_model(config)), to_swinzoo=False
    )
    return config, ours, foreign


def error_text(exc: pytest.ExceptionInfo) -> str:
    return str(exc.value)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    "key",
    [
        "layers.0.blocks.0.attn.bogus_scale",  # inside a block: a rule renames it, the target has no such key
        "stray_buffer",  # no rule matches at all
    ],
)
def test_unknown_source_key_raises_naming_it(version, key):
    config, ours, foreign = timm_case(version)
    foreign[key] = torch.zeros(3)
    with pytest.raises(MappingError) as exc:
        convert_state_dict(foreign, timm_rules(), shapes_of(ours), to_swinzoo=True)
    assert key in error_text(exc)


def test_missing_source_key_raises_naming_the_unfilled_parameter():
    config, ours, foreign = timm_case()
    del foreign["layers.1.blocks.0.norm1.weight"]
    with pytest.raises(MappingError) as exc:
        convert_state_dict(foreign, timm_rules(), shapes_of(ours), to_swinzoo=True)
    assert "swin.stages.1.blocks.0.norm1.weight" in error_text(exc)


def test_missing_downsample_is_named_with_swinzoo_stage_index():
    """timm's layers.2.downsample is swinzoo's stages.1.merge: the message names the swinzoo key."""
    config, ours, foreign = timm_case()
    del foreign["layers.2.downsample.reduction.weight"]
    with pytest.raises(MappingError) as exc:
        convert_state_dict(foreign, timm_rules(), shapes_of(ours), to_swinzoo=True)
    assert "swin.stages.1.merge.reduction.weight" in error_text(exc)


def test_wrong_shape_raises_naming_the_key_and_both_shapes():
    config, ours, foreign = timm_case()
    foreign["head.fc.weight"] = torch.zeros(config.num_labels + 1, config.num_features)
    with pytest.raises(MappingError) as exc:
        convert_state_dict(foreign, timm_rules(), shapes_of(ours), to_swinzoo=True)
    text = error_text(exc)
    assert "head.weight" in text and str((config.num_labels + 1, config.num_features)) in text
    assert str((config.num_labels, config.num_features)) in text


def test_missing_part_of_a_split_qkv_raises_naming_it():
    config = config_for(2)
    ours = random_model(SwinForImageClassification, config, seed=25)
    target = shapes_of(create_transformers_model(config))
    foreign, _ = convert_state_dict(ours.state_dict(), transformers_rules(config), target, to_swinzoo=False)
    key = "swinv2.encoder.layers.0.blocks.0.attention.self.key.weight"
    assert key in foreign
    del foreign[key]
    with pytest.raises(MappingError) as exc:
        convert_state_dict(foreign, transformers_rules(config), shapes_of(ours), to_swinzoo=True)
    assert key in error_text(exc)
    assert "swin.stages.0.blocks.0.attn.qkv.weight" in error_text(exc)


def test_exporting_to_a_target_with_an_extra_parameter_raises_naming_it():
    config, ours, _ = timm_case()
    target = dict(shapes_of(create_timm_model(config)))
    target["layers.0.blocks.0.attn.extra"] = torch.Size([4])
    with pytest.raises(MappingError) as exc:
        convert_state_dict(ours.state_dict(), timm_rules(), target, to_swinzoo=False)
    assert "layers.0.blocks.0.attn.extra" in error_text(exc)


def test_two_sources_for_one_target_raise():
    source = {"a.weight": torch.zeros(2), "b.weight": torch.ones(2)}
    rules = [Rename("a.{rest}", "x.{rest}"), Rename("b.{rest}", "x.{rest}")]
    with pytest.raises(MappingError, match="x.weight"):
        convert_state_dict(source, rules, {"x.weight": torch.Size([2])}, to_swinzoo=False)


def test_every_error_is_listed_at_once():
    """One run reports all problems, so a broken checkpoint is fixed in one pass, not key by key."""
    config, ours, foreign = timm_case()
    foreign["stray.key"] = torch.zeros(1)
    del foreign["norm.bias"]
    foreign["patch_embed.norm.weight"] = torch.zeros(5)
    with pytest.raises(MappingError) as exc:
        convert_state_dict(foreign, timm_rules(), shapes_of(ours), to_swinzoo=True)
    text = error_text(exc)
    for name in ("stray.key", "swin.norm.bias", "swin.patch_embed.norm.weight"):
        assert name in text


def test_absolute_position_embeddings_map_to_the_installed_transformers():
    """Swin v1 with use_absolute_embeddings: transformers >= 5 keeps (1, N, C) positions (no class-token row),
    4.x kept (1, 1 + N, C). The mapping must produce what the installed transformers' model holds."""
    from conftest import NO_ABSOLUTE_POSITIONS_FORWARD, transformers_positions_have_class_row, transformers_twin

    config = tiny_config(1, image_size=128, use_absolute_embeddings=True)
    ours = random_model(SwinForImageClassification, config, seed=26)
    hf = transformers_twin(ours)  # convert_state_dict raises MappingError on a shape mismatch
    positions = hf.swin.embeddings.position_embeddings.detach()
    expected = ours.swin.patch_embed.position_embeddings.detach()
    if transformers_positions_have_class_row():  # 4.x: a zero class-token row, then the patches' rows
        assert torch.equal(positions[:, :1], torch.zeros_like(positions[:, :1]))
        assert torch.equal(positions[:, 1:], expected)
        pytest.skip(NO_ABSOLUTE_POSITIONS_FORWARD + "; the mapped tensors are checked above")
    assert torch.equal(positions, expected)
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= 1e-4
