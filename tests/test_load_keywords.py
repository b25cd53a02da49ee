"""from_pretrained as a transformers user calls it: dtype, device, new heads, backbone features, wrong keywords,
and folders in transformers' and timm's own formats (written by those libraries' exports)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import max_diff, random_model, tiny_config
from hubserver import HubServer, hub_env

import swinzoo
from swinzoo.loading import LoadError, save_pretrained
from swinzoo.modeling import SwinBackbone, SwinForImageClassification

TOKEN = "hf_load_keywords_token_71c2"


def small(version: int = 1, **changes):
    base = dict(depths=[2, 2, 2], num_heads=[1, 2, 4], embed_dim=16, image_size=64, window_size=4, num_labels=10)
    base.update(changes)
    return tiny_config(version, **base)


@pytest.fixture
def model() -> SwinForImageClassification:
    return random_model(SwinForImageClassification, small())


@pytest.fixture
def folder(tmp_path: Path, model) -> Path:
    return save_pretrained(model, tmp_path / "m")


def probe(config) -> torch.Tensor:
    return torch.randn(2, 3, *config.image_hw, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])
@pytest.mark.parametrize("value", [torch.bfloat16, "bfloat16", "torch.bfloat16"])
def test_dtype_and_torch_dtype_cast_the_weights(folder, keyword, value):
    loaded = swinzoo.from_pretrained(folder, **{keyword: value})
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}


def test_auto_dtype_keeps_what_is_stored(tmp_path, model):
    save_pretrained(model, tmp_path / "bf16", dtype="bfloat16")
    assert next(swinzoo.from_pretrained(tmp_path / "bf16", torch_dtype="auto").parameters()).dtype == torch.bfloat16


def test_device_places_the_model(folder):
    assert {p.device.type for p in swinzoo.from_pretrained(folder, device="cpu").parameters()} == {"cpu"}


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"device_map": {"swin": "cpu", "head": "cpu"}}, "device_map.*one device"),
        ({"max_memory": {0: "1GB"}}, "max_memory is not supported"),
        ({"use_safetensors": False}, "safetensors only"),
        ({"num_label": 3}, "did you mean 'num_labels'"),
        ({"torch_dtyp": "float16"}, "did you mean 'torch_dtype'"),
        ({"embed_dim": 64}, "embed_dim cannot change"),
        ({"dtype": "float64"}, "float64"),
        ({"dtype": "float16", "torch_dtype": "bfloat16"}, "disagree"),
    ],
)
def test_unknown_or_impossible_keywords_are_refused_by_name(folder, kwargs, needle):
    with pytest.raises((LoadError, ValueError), match=needle):
        swinzoo.from_pretrained(folder, **kwargs)


def test_runtime_fields_can_change_at_load_time(folder):
    assert swinzoo.from_pretrained(folder, drop_path_rate=0.3).config.drop_path_rate == 0.3


def test_a_new_head_needs_ignore_mismatched_sizes_and_starts_at_zero(folder, model):
    with pytest.raises(LoadError, match="ignore_mismatched_sizes=True"):
        swinzoo.from_pretrained(folder, num_labels=3)
    new = swinzoo.from_pretrained(folder, num_labels=3, ignore_mismatched_sizes=True)
    assert new.config.num_labels == 3 and new.config.id2label[2] == "LABEL_2"
    assert new.head.weight.shape == (3, model.config.num_features)
    assert not new.head.weight.any() and not new.head.bias.any()
    x = probe(model.config)
    with torch.no_grad():  # the encoder is the stored one: pooled features equal
        assert max_diff(new.swin(x).pooler_output, model.swin(x).pooler_output) == 0.0


def test_the_same_class_count_keeps_the_head_and_its_labels(tmp_path):
    m = random_model(SwinForImageClassification, small(id2label={i: f"c{i}" for i in range(10)}))
    folder = save_pretrained(m, tmp_path / "m")
    same = swinzoo.from_pretrained(folder, num_labels=10)
    assert same.config.id2label[3] == "c3" and torch.equal(same.head.weight, m.head.weight)


def test_id2label_gives_a_new_head_with_those_names(folder):
    new = swinzoo.from_pretrained(folder, id2label={0: "cat", 1: "dog"}, ignore_mismatched_sizes=True)
    assert new.config.label2id == {"cat": 0, "dog": 1} and new.head.weight.shape[0] == 2


def test_backbone_out_features_alone_derive_out_indices(folder):
    backbone = SwinBackbone.from_pretrained(folder, out_features=["stage2", "stage3"])
    assert backbone.config.out_indices == [2, 3]
    maps = backbone(probe(backbone.config)).feature_maps
    assert [tuple(f.shape[1:]) for f in maps] == [(32, 8, 8), (64, 4, 4)]
    by_index = SwinBackbone.from_pretrained(folder, out_indices=[1])
    assert by_index.config.out_features == ["stage1"]


def test_num_labels_is_settable_on_a_loaded_config(folder):
    config = swinzoo.SwinConfig.from_pretrained(folder)
    config.num_labels = 4
    assert config.num_labels == 4 and len(config.label2id) == 4


# --------------------------------------------------------------------------------------------- other formats
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("fmt", ["transformers", "timm"])
def test_transformers_and_timm_exports_load_back_into_swinzoo_exactly(tmp_path, version, fmt):
    from swinzoo.publish import export_timm, export_transformers

    model = random_model(SwinForImageClassification, small(version))
    folder = save_pretrained(model, tmp_path / "m")
    (folder / "conversion.json").write_text('{"swinzoo_version": "0.1.0", "entry": ""}')
    export = tmp_path / fmt
    (export_transformers if fmt == "transformers" else export_timm)(folder, export)
    loaded = swinzoo.from_pretrained(export)
    assert loaded.loaded_format == fmt and isinstance(loaded, SwinForImageClassification)
    assert swinzoo.SwinConfig.from_pretrained(export).embed_dim == model.config.embed_dim
    theirs, ours = loaded.state_dict(), model.state_dict()
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in ours)  # bit for bit
    x = probe(model.config)
    with torch.no_grad():  # memory layout alone moves float32 results by ~1e-6
        assert max_diff(loaded(x).logits, model(x).logits) < 1e-5
    assert loaded.config.id2label == model.config.id2label


def test_a_config_without_task_or_foreign_type_says_what_it_is_not(folder):
    (folder / "config.json").write_text('{"embed_dim": 16}')
    with pytest.raises(LoadError, match="not a swinzoo, transformers or timm config"):
        swinzoo.from_pretrained(folder)


def test_push_to_hub_then_from_pretrained_round_trip(tmp_path, model):
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token=TOKEN):
        url = model.push_to_hub("me/tiny-finetune", commit_message="fine-tuned")
        assert "me/tiny-finetune" in url
        loaded = swinzoo.from_pretrained("me/tiny-finetune")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
