"""SwinConfig: JSON round trips, validation errors that name the field, and the official window clamp."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_config

from swinzoo.config import ConfigError, SwinConfig
from swinzoo.converters.timm_layout import create_timm_model
from swinzoo.modeling import SwinModel

SWIN_L_192 = dict(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=12, image_size=192)


# --------------------------------------------------------------------------------------------- JSON
ROUND_TRIP_CONFIGS = {
    "v1 defaults": dict(),
    "v2 with pretrained windows": dict(
        version=2,
        window_size=24,
        image_size=384,
        pretrained_window_sizes=[12, 12, 12, 6],
        embed_dim=128,
        num_heads=[4, 8, 16, 32],
    ),
    "labels and backbone outputs": dict(
        id2label={0: "cat", 1: "dog", 2: "bird"}, out_features=["stem", "stage2", "stage4"]
    ),
    "rectangular image, SimMIM targets": dict(
        image_size=[192, 256], mim_norm_target=True, mim_norm_target_patch_size=47, encoder_stride=32
    ),
}


@pytest.mark.parametrize("fields", ROUND_TRIP_CONFIGS.values(), ids=list(ROUND_TRIP_CONFIGS))
def test_json_file_round_trip_keeps_every_field(tmp_path, fields):
    config = SwinConfig(**fields)
    path = tmp_path / "config.json"
    config.to_json_file(path)
    again = SwinConfig.from_json_file(path)
    assert again == config
    assert again.to_dict() == config.to_dict()
    assert json.loads(path.read_text()) == json.loads(config.to_json_string())
    for name, value in fields.items():  # what was given comes back (JSON's string label keys as ints again)
        assert getattr(again, name) == value, name


def test_save_pretrained_writes_config_json_that_from_pretrained_reads(tmp_path):
    config = SwinConfig(version=2, window_size=16, image_size=256, num_labels=5)
    path = config.save_pretrained(tmp_path / "model")
    assert path == tmp_path / "model" / "config.json"
    assert json.loads(path.read_text())["window_size"] == 16
    assert SwinConfig.from_pretrained(tmp_path / "model") == config


def test_unknown_json_keys_are_kept(tmp_path):
    """transformers' bookkeeping in a foreign config.json survives a load/save cycle."""
    data = SwinConfig().to_dict() | {"transformers_version": "4.45.0", "torch_dtype": "float32"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    config = SwinConfig.from_json_file(path)
    assert config.to_dict()["transformers_version"] == "4.45.0"
    assert config.extra == {"transformers_version": "4.45.0", "torch_dtype": "float32"}


def test_invalid_json_file_raises_config_error_naming_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="config.json"):
        SwinConfig.from_json_file(path)


def test_invalid_value_in_json_file_raises_config_error_naming_the_field(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(SwinConfig().to_dict() | {"window_size": 0}))
    with pytest.raises(ConfigError, match="window_size"):
        SwinConfig.from_json_file(path)


# --------------------------------------------------------------------------------------------- validation
INVALID = {
    "depths and num_heads lengths differ": (dict(depths=[2, 2, 6], num_heads=[3, 6, 12, 24]), "num_heads"),
    "embed_dim not divisible by heads": (dict(embed_dim=96, num_heads=[5, 6, 12, 24]), "embed_dim"),
    "stage width not divisible by heads": (
        dict(embed_dim=96, num_heads=[3, 6, 12, 25]),
        "embed_dim: stage 4 .*num_heads\\[3\\]",
    ),
    "window_size 0": (dict(window_size=0), "window_size"),
    "negative window_size": (dict(window_size=-7), "window_size"),
    "unknown hidden_act": (dict(hidden_act="tanhh"), "hidden_act"),
    "hidden dropout 1": (dict(hidden_dropout_prob=1.0), "hidden_dropout_prob"),
    "negative attention dropout": (dict(attention_probs_dropout_prob=-0.1), "attention_probs_dropout_prob"),
    "drop_path_rate 1.5": (dict(drop_path_rate=1.5), "drop_path_rate"),
    "unknown out_features": (dict(out_features=["stage1", "stage9"]), "out_features"),
    "out_features and out_indices disagree": (
        dict(out_features=["stage1", "stage2"], out_indices=[1, 3]),
        "out_features",
    ),
    "out_indices out of range": (dict(out_indices=[5]), "out_indices"),
    "pretrained windows on v1": (dict(version=1, pretrained_window_sizes=[12, 12, 12, 6]), "pretrained_window_sizes"),
    "pretrained windows of the wrong length": (
        dict(version=2, pretrained_window_sizes=[12, 12, 6]),
        "pretrained_window_sizes",
    ),
    "version 3": (dict(version=3), "version"),
    "even SimMIM target patch": (dict(mim_norm_target_patch_size=46), "mim_norm_target_patch_size"),
    "image smaller than a patch": (dict(image_size=2, patch_size=4), "image_size"),
    "num_labels disagrees with id2label": (dict(num_labels=3, id2label={0: "a", 1: "b"}), "num_labels"),
    "empty depths": (dict(depths=[], num_heads=[]), "depths"),
    "zero-block stage": (dict(depths=[2, 0, 6, 2]), "depths"),
}


@pytest.mark.parametrize(("fields", "field"), INVALID.values(), ids=list(INVALID))
def test_invalid_value_raises_config_error_naming_the_field(fields, field):
    with pytest.raises(ConfigError, match=rf"^{field}"):  # the message starts with the field at fault
        SwinConfig(**fields)


def test_config_error_message_starts_with_the_field():
    with pytest.raises(ConfigError) as exc:
        SwinConfig(window_size=0)
    assert str(exc.value).startswith("window_size")
    assert "0" in str(exc.value)


def test_copy_is_validated_again():
    with pytest.raises(ConfigError, match="window_size"):
        SwinConfig().copy(window_size=0)


def test_out_features_and_out_indices_agree_when_either_is_given():
    by_name = SwinConfig(out_features=["stem", "stage3"])
    by_index = SwinConfig(out_indices=[0, -2])
    assert by_name.out_indices == [0, 3]
    assert by_index.out_features == ["stem", "stage3"]
    assert SwinConfig().out_features == ["stage4"]


# --------------------------------------------------------------------------------------------- the window clamp
def test_official_clamp_for_swin_large_window12_at_192():
    """192 / patch 4 = 48 tokens, halved by each merging: 48, 24, 12, 6. A stage no larger than the window
    uses a window equal to its size and no shift: windows 12, 12, 12, 6; stages 3 (12 <= 12) and 4 unshifted."""
    config = SwinConfig(**SWIN_L_192)
    assert [config.stage_resolution(i) for i in range(4)] == [(48, 48), (24, 24), (12, 12), (6, 6)]
    assert [config.stage_window(i) for i in range(4)] == [(12, True), (12, True), (12, False), (6, False)]


@pytest.mark.parametrize(
    ("image_size", "window", "expected"),
    [
        (224, 7, [(7, True), (7, True), (7, True), (7, False)]),  # 56, 28, 14, 7
        (384, 12, [(12, True), (12, True), (12, True), (12, False)]),  # 96, 48, 24, 12
        (256, 16, [(16, True), (16, True), (16, False), (8, False)]),  # 64, 32, 16, 8
        (384, 24, [(24, True), (24, True), (24, False), (12, False)]),  # 96, 48, 24, 12
        (100, 7, [(7, True), (7, True), (7, False), (4, False)]),  # 25, 13, 7, 4 (merging rounds up)
        ([192, 128], 8, [(8, True), (8, True), (8, False), (4, False)]),  # min(48, 32)=32, 16, 8, 4
    ],
)
def test_stage_window_follows_the_clamp_arithmetic(image_size, window, expected):
    config = SwinConfig(image_size=image_size, window_size=window)
    assert [config.stage_window(i) for i in range(4)] == expected


@pytest.mark.parametrize("version", [1, 2])
def test_model_blocks_use_the_same_windows_and_shifts_as_timm(version):
    """The clamp the model builds equals timm's (an independent implementation), block by block."""
    geometry = dict(window_size=12, image_size=192, depths=[2, 2, 2, 2])
    config = tiny_config(version, **geometry)
    ours = SwinModel(config)
    timm_model = create_timm_model(config)
    mine = [(b.window, b.shift) for stage in ours.stages for b in stage.blocks]
    theirs = [
        (tuple(b.window_size)[0], tuple(b.shift_size)[0] if isinstance(b.shift_size, tuple) else b.shift_size)
        for layer in timm_model.layers
        for b in layer.blocks
    ]
    assert mine == theirs
    assert mine == [(12, 0), (12, 6), (12, 0), (12, 6), (12, 0), (12, 0), (6, 0), (6, 0)]
