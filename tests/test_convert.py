"""Official checkpoint -> swinzoo conversion, checked against timm's own official-checkpoint filter and
transformers' masked-image-modelling model loading the same synthetic file."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import timm.models.swin_transformer as timm_v1
import timm.models.swin_transformer_v2 as timm_v2
import torch
from click.testing import CliRunner
from safetensors import safe_open

import swinzoo
from swinzoo.cli import main
from swinzoo.config import SwinConfig
from swinzoo.convert import ConvertError, convert
from swinzoo.converters.engine import MappingError, convert_state_dict, shapes_of
from swinzoo.converters.official import deduce_architecture
from swinzoo.converters.timm_layout import create_timm_model, timm_rules
from swinzoo.converters.transformers_layout import (
    create_transformers_model,
    detect_style,
    foreign_shapes,
    load_transformers_state,
    transformers_rules,
)
from swinzoo.manifest import get_entry
from swinzoo.modeling import SwinForImageClassification
from swinzoo.safeload import load_checkpoint
from swinzoo.synthetic import write_official_checkpoint

TOL = 1e-4


def tiny(version: int, **kw) -> SwinConfig:
    base = dict(
        version=version,
        image_size=64,
        embed_dim=16,
        depths=[1, 2, 2, 1],
        num_heads=[1, 2, 2, 4],
        window_size=4,
        num_labels=7,
        drop_path_rate=0.0,
    )
    base.update(kw)
    return SwinConfig(**base)


def timm_reference(checkpoint: Path, config: SwinConfig) -> torch.nn.Module:
    """timm's model loading the official file through timm's own filter: independent of swinzoo's mapping."""
    model = create_timm_model(config).eval()
    filter_fn = (timm_v1 if config.version == 1 else timm_v2).checkpoint_filter_fn
    model.load_state_dict(filter_fn(load_checkpoint(checkpoint), model), strict=True)
    return model


def transformers_mim_reference(checkpoint: Path, config: SwinConfig) -> torch.nn.Module:
    """transformers' SimMIM model fed the official file via timm's filter for the encoder (not swinzoo's official
    converter), plus the mask token and decoder, which only SimMIM has."""
    raw = load_checkpoint(checkpoint)["model"]
    encoder = {k.removeprefix("encoder."): v for k, v in raw.items() if k.startswith("encoder.")}
    encoder.pop("mask_token")
    timm_model = create_timm_model(config.copy(num_labels=1))
    timm_model.reset_classifier(0)
    filter_fn = (timm_v1 if config.version == 1 else timm_v2).checkpoint_filter_fn
    timm_state = filter_fn(encoder, timm_model)
    rules = [r for r in timm_rules() if not r.swinzoo.startswith("head.")]
    swin_state, _ = convert_state_dict(
        timm_state, rules, {f"swin.{k}": v for k, v in _encoder_shapes(config).items()}, to_swinzoo=True
    )
    swin_state["swin.patch_embed.mask_token"] = raw["encoder.mask_token"]
    swin_state["decoder.conv.weight"] = raw["decoder.0.weight"]
    swin_state["decoder.conv.bias"] = raw["decoder.0.bias"]
    hf = create_transformers_model(config, "masked-image-modeling").eval()
    target = foreign_shapes(hf)  # transformers 4.x keeps Swin's computed index buffer in its state dict
    hf_state, _ = convert_state_dict(
        swin_state,
        transformers_rules(config, "masked-image-modeling", detect_style(target)),
        target,
        to_swinzoo=False,
    )
    load_transformers_state(hf, hf_state)
    return hf


def _encoder_shapes(config: SwinConfig) -> dict[str, torch.Size]:
    model = swinzoo.SwinModel(config, add_pooling_layer=False)
    return {k: v.shape for k, v in model.state_dict().items()}


CLASSIFICATION_LAYOUTS = [
    ("official-swin", tiny(1)),
    ("official-swinv2", tiny(2)),
    ("official-swinv2", tiny(2, window_size=8, image_size=128, pretrained_window_sizes=[4, 4, 4, 2])),
    ("simmim-swin-finetune", tiny(1, window_size=7, image_size=112)),
    ("simmim-swinv2-finetune", tiny(2, window_size=7, image_size=112, pretrained_window_sizes=[4, 4, 4, 2])),
]


@pytest.mark.parametrize(
    ("layout", "config"),
    CLASSIFICATION_LAYOUTS,
    ids=["swin", "swinv2", "swinv2-pretrained-windows", "simmim-swin-ft", "simmim-swinv2-ft"],
)
def test_classification_layout_matches_timm_loading_the_same_file(tmp_path, layout, config):
    ckpt = write_official_checkpoint(tmp_path / "ckpt.pth", config, layout, seed=3)
    result = convert(source=ckpt, out_dir=tmp_path / "out", progress=False)
    assert result.config.pretrained_window_sizes == config.pretrained_window_sizes  # read off the stored buffers
    assert result.config.image_size == config.image_size  # read off the stored shift masks
    model = swinzoo.from_pretrained(tmp_path / "out")
    reference = timm_reference(ckpt, config)
    x = torch.randn(2, 3, *config.image_hw, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (model(x).logits - reference(x)).abs().max().item()
    assert diff <= TOL


@pytest.mark.parametrize("version", [1, 2])
def test_simmim_pretrain_layout_matches_transformers_reconstruction_and_loss(tmp_path, version):
    config = tiny(version, image_size=128, encoder_stride=32, num_labels=1)  # no clamped stage: fits transformers v1
    layout = "simmim-swin-pretrain" if version == 1 else "simmim-swinv2-pretrain"
    ckpt = write_official_checkpoint(tmp_path / "ckpt.pth", config, layout, seed=5)
    convert(source=ckpt, out_dir=tmp_path / "out", progress=False)
    model = swinzoo.from_pretrained(tmp_path / "out")
    assert isinstance(model, swinzoo.SwinForMaskedImageModeling)
    reference = transformers_mim_reference(ckpt, config)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 128, 128, generator=g)
    mask = torch.rand(2, 32 * 32, generator=g) < 0.6
    with torch.no_grad():
        ours, theirs = model(x, bool_masked_pos=mask), reference(x, bool_masked_pos=mask)
    assert (ours.reconstruction - theirs.reconstruction).abs().max().item() <= TOL
    if version == 2:  # inferred SimMIM V2: the official 47x47-normalised targets, not transformers' raw-pixel L1
        from swinzoo.verify import masked_l1_loss

        theirs.loss = masked_l1_loss(x, theirs.reconstruction, mask, config.patch_size, 47)
    assert abs(ours.loss.item() - theirs.loss.item()) <= TOL


def test_21841_class_head_of_a_real_22k_entry_converts(tmp_path, monkeypatch):
    entry = get_entry("swin-tiny-patch4-window7-224-22k")
    small = dataclasses.replace(
        entry, architecture=dataclasses.replace(entry.architecture, embed_dim=24, depths=(1, 1, 1, 1))
    )
    monkeypatch.setattr("swinzoo.convert.get_entry", lambda name: small)
    result = convert(entry.name, synthetic=True, cache_dir=tmp_path, out_dir=tmp_path / "out", progress=False)
    assert result.model.head.weight.shape == (21841, 192)
    assert result.config.id2label[0] != "LABEL_0"  # real ImageNet-22K names from the label set
    ckpt = result.source.path
    reference = timm_reference(ckpt, result.config)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (result.model(x).logits - reference(x)).abs().max().item() <= TOL


def test_deduce_architecture_reads_architecture_off_the_keys(tmp_path):
    config = tiny(2, window_size=8, image_size=128, pretrained_window_sizes=[6, 6, 6, 3], num_labels=11)
    ckpt = write_official_checkpoint(tmp_path / "c.pth", config, "official-swinv2")
    inferred = deduce_architecture(load_checkpoint(ckpt)["model"])
    for field in ("version", "embed_dim", "depths", "num_heads", "window_size", "image_size", "num_labels"):
        assert getattr(inferred.config, field) == getattr(config, field), field
    assert inferred.config.pretrained_window_sizes == [6, 6, 6, 3]
    assert inferred.layout == "official-swinv2"
    assert any("image size 128" in note for note in inferred.notes)


def test_derive_from_checkpoint_entries_take_the_architecture_from_the_file(tmp_path, monkeypatch):
    entry = get_entry("simmim-swinv2-giant-22k-500k")  # manifest dims are a guess; the file decides
    file_config = tiny(2, window_size=12, image_size=192, embed_dim=24, num_heads=[2, 4, 4, 8], num_labels=1)
    ckpt = write_official_checkpoint(tmp_path / "giant.pth", file_config, "simmim-swinv2-pretrain")
    monkeypatch.setattr("swinzoo.convert.get_entry", lambda name: entry)
    result = convert(entry.name, source=ckpt, out_dir=tmp_path / "out", progress=False)
    assert result.config.embed_dim == 24 and result.config.depths == [1, 2, 2, 1]
    assert result.config.mim_norm_target  # the entry's SimMIM settings still apply
    assert any("embed_dim 24" in n for n in result.notes)


def test_source_with_an_extra_or_missing_key_is_refused_listing_the_keys(tmp_path):
    config = tiny(1)
    ckpt = write_official_checkpoint(tmp_path / "c.pth", config, "official-swin", training_state=False)
    state = torch.load(ckpt, weights_only=True)["model"]
    state["layers.0.blocks.0.attn.surprise"] = torch.zeros(3)
    del state["layers.1.blocks.1.mlp.fc2.bias"]
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(MappingError) as err:
        convert(source=tmp_path / "bad.pth", out_dir=tmp_path / "out", progress=False)
    message = str(err.value)
    assert "layers.0.blocks.0.attn.surprise" in message
    assert "swin.stages.1.blocks.1.mlp.fc2.bias" in message
    assert not (tmp_path / "out").exists()


def test_stored_buffers_that_disagree_with_the_architecture_are_named(tmp_path, monkeypatch):
    """A v2 file whose coordinate table was built for another pretrained window is not this entry."""
    config = tiny(2, window_size=8, image_size=128, pretrained_window_sizes=[4, 4, 4, 2])
    ckpt = write_official_checkpoint(tmp_path / "c.pth", config, "official-swinv2", training_state=False)
    state = torch.load(ckpt, weights_only=True)["model"]
    with pytest.raises(MappingError) as err:
        from swinzoo.convert import build_model

        build_model(state, config.copy(pretrained_window_sizes=[0, 0, 0, 0]), "official-swinv2")
    assert "relative_coords_table" in str(err.value) and "differ" in str(err.value)
    # A mask for another resolution: the stored shape says so.
    with pytest.raises(MappingError) as err:
        build_model(state, config.copy(image_size=256), "official-swinv2")
    assert re.search(r"attn_mask: stored shape", str(err.value))


def test_failed_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    ckpt = write_official_checkpoint(tmp_path / "c.pth", tiny(1), "official-swin")
    out = tmp_path / "out"

    def explode(folder):
        assert (Path(folder) / "model.safetensors").exists()  # half-way through writing
        raise KeyboardInterrupt

    monkeypatch.setattr("swinzoo.convert.write_card", explode)  # the card convert writes
    with pytest.raises(KeyboardInterrupt):
        convert(source=ckpt, out_dir=out, progress=False)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]  # no temporary folder either


def test_reconverting_with_overwrite_replaces_swinzoo_files_and_keeps_the_users(tmp_path):
    ckpt = write_official_checkpoint(tmp_path / "c.pth", tiny(1), "official-swin")
    out = tmp_path / "out"
    convert(source=ckpt, out_dir=out, progress=False)
    (out / "stale.txt").write_text("old")
    convert(source=ckpt, out_dir=out, progress=False, overwrite=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", "config.json", "conversion.json", "model.safetensors", "stale.txt"]


def test_dtype_and_provenance_are_recorded(tmp_path):
    ckpt = write_official_checkpoint(tmp_path / "c.pth", tiny(2), "official-swinv2")
    result = convert(source=ckpt, out_dir=tmp_path / "out", dtype="bfloat16", progress=False)
    with safe_open(str(tmp_path / "out" / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
        assert f.get_tensor("head.weight").dtype == torch.bfloat16
    import hashlib

    assert meta["source_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest() == result.source.sha256
    assert meta["swinzoo_version"] == swinzoo.__version__ and meta["converter"] == "official-swinv2"
    conversion = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert conversion["dtype"] == "bfloat16"
    dropped = conversion["dropped"]
    assert all(k.endswith(("relative_position_index", "attn_mask", "relative_coords_table")) for k in dropped)
    assert set(conversion["buffers_checked"]) == set(dropped)
    model = swinzoo.from_pretrained(tmp_path / "out")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_cli_convert_source_prints_what_it_inferred_and_the_unpinned_hash(tmp_path):
    ckpt = write_official_checkpoint(tmp_path / "c.pth", tiny(1, num_labels=3), "official-swin")
    result = CliRunner().invoke(main, ["convert", "--source", str(ckpt), "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "inferred: Swin: embed_dim 16, depths [1, 2, 2, 1]" in result.output
    assert "source not pinned; sha256 seen" in result.output
    as_json = CliRunner().invoke(
        main, ["convert", "--source", str(ckpt), "--out", str(tmp_path / "o2"), "--quiet", "--json"]
    )
    assert json.loads(as_json.output)["layout"] == "official-swin"


def test_cli_convert_errors_exit_nonzero_with_the_cause(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["convert", "--source", str(tmp_path / "nope.pth")])
    assert missing.exit_code == 1 and "nope.pth" in missing.output
    unknown = runner.invoke(main, ["convert", "swin-tiny-patch4-window7-22"])
    assert unknown.exit_code == 1 and "swin-tiny-patch4-window7-224" in unknown.output
    drive = runner.invoke(main, ["convert", "simmim-swin-base-window6-192-100ep"])
    assert drive.exit_code == 1 and "--source" in drive.output
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    junk = runner.invoke(main, ["convert", "--source", str(tmp_path / "junk.pth")])
    assert junk.exit_code == 1 and "junk.pth" in junk.output


def test_entry_name_with_a_file_of_another_architecture_is_refused(tmp_path):
    ckpt = write_official_checkpoint(tmp_path / "c.pth", tiny(1), "official-swin")
    with pytest.raises(ConvertError, match="embed_dim is 16 in the file, 96 in the manifest"):
        convert("swin-tiny-patch4-window7-224", source=ckpt, out_dir=tmp_path / "o", progress=False)


def test_convert_downloads_from_a_url_and_checks_the_pinned_hash(tmp_path, monkeypatch):
    from httpserver import serve_files  # tests/httpserver.py

    ckpt = write_official_checkpoint(tmp_path / "c.pth", tiny(1), "official-swin")
    entry = get_entry("swin-tiny-patch4-window7-224")
    with serve_files({"ckpt.pth": ckpt.read_bytes()}) as server:
        url = server.url("ckpt.pth")
        wrong = dataclasses.replace(
            entry,
            source=dataclasses.replace(entry.source, urls=(url,), sha256="0" * 64, pinned=True),
            architecture=dataclasses.replace(
                entry.architecture,
                embed_dim=16,
                depths=(1, 2, 2, 1),
                num_heads=(1, 2, 2, 4),
                window_size=4,
                image_size=64,
            ),
        )
        monkeypatch.setattr("swinzoo.convert.get_entry", lambda name: wrong)
        with pytest.raises(Exception, match="0" * 64):
            convert(entry.name, cache_dir=tmp_path / "cache", out_dir=tmp_path / "o", progress=False)
        assert not (tmp_path / "o").exists()


def test_converted_model_keeps_its_head_through_swinzoo_mapping_of_timm(tmp_path):
    """Sanity: the converted classifier equals a direct timm->swinzoo mapping of the same weights."""
    config = tiny(1)
    ckpt = write_official_checkpoint(tmp_path / "c.pth", config, "official-swin")
    convert(source=ckpt, out_dir=tmp_path / "out", progress=False)
    ours = swinzoo.from_pretrained(tmp_path / "out").state_dict()
    reference = timm_reference(ckpt, config)
    mapped, _ = convert_state_dict(
        reference.state_dict(), timm_rules(), shapes_of(SwinForImageClassification(config)), to_swinzoo=True
    )
    assert set(mapped) == set(ours)
    assert all(torch.equal(mapped[k], ours[k]) for k in ours)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "swin-tiny-patch4-window7-224",
        "swinv2-tiny-patch4-window16-256",
        "swinv2-base-patch4-window12to16-192to256-22kto1k-ft",
    ],
)
def test_real_size_synthetic_entries_match_timm(tmp_path, name):
    result = convert(name, synthetic=True, cache_dir=tmp_path, out_dir=tmp_path / "out", progress=False)
    reference = timm_reference(result.source.path, result.config)
    x = torch.randn(2, 3, *result.config.image_hw)
    with torch.no_grad():
        assert (result.model(x).logits - reference(x)).abs().max().item() <= TOL


def test_a_simmim_folder_loads_as_base_model_and_backbone_without_its_mask_token(tmp_path):
    config = tiny(2, image_size=128, num_labels=1)
    ckpt = write_official_checkpoint(tmp_path / "c.pth", config, "simmim-swinv2-pretrain")
    convert(source=ckpt, out_dir=tmp_path / "out", progress=False)
    mim = swinzoo.from_pretrained(tmp_path / "out")
    base = swinzoo.SwinModel.from_pretrained(tmp_path / "out")
    backbone = swinzoo.SwinBackbone.from_pretrained(tmp_path / "out")
    assert base.patch_embed.mask_token is None
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = mim.swin(x).last_hidden_state
        assert torch.equal(base(x).last_hidden_state, expected)
        assert backbone(x).feature_maps[-1].shape == (1, 128, 4, 4)
