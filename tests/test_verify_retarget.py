"""`swinzoo verify --converted` on a retargeted folder (`swinzoo convert --image-size/--window-size/--num-labels`):
timm and transformers are built at the folder's new geometry and given the source file moved there by
swinzoo.verify.reference_retarget (not swinzoo.retarget, the converter's path), so a retargeted folder passes only when
two implementations of the official loaders agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_verify
import torch
import torch.nn.functional as F
from conftest import tiny_config
from safetensors.torch import load_file, save_file
from test_verify import by_reference

import swinzoo.manifest as manifest
from swinzoo import verify as V
from swinzoo.convert import convert, resolve_source
from swinzoo.loading import read_safetensors_metadata
from swinzoo.safeload import load_state_dict
from swinzoo.synthetic import official_state_dict
from swinzoo.verify import reference_retarget as rr

zoo, cache = test_verify.zoo, test_verify.cache  # the tiny zoo and the session's synthetic-source cache
BUFFERS = ("relative_position_index", "attn_mask", "relative_coords_table")
TABLE = "swin.stages.1.blocks.0.attn.relative_position_bias_table"


def retargeted_folder(name: str, cache: Path, tmp_path: Path, source: Path | None = None, **args) -> Path:
    """``swinzoo convert NAME --image-size/--window-size/--num-labels`` of the synthetic source (or ``source``)."""
    given = dict(source=source) if source else dict(synthetic=True)
    out = tmp_path / name
    convert(name, **given, cache_dir=cache, out_dir=out, progress=False, **args)
    return out


def _rewrite(folder: Path, edit) -> None:
    """``edit`` the folder's weights in place (its safetensors metadata kept)."""
    path = folder / "model.safetensors"
    metadata = read_safetensors_metadata(path)
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path), metadata=metadata)


def edit_record(folder: Path, edit) -> None:
    conversion = json.loads((folder / "conversion.json").read_text())
    edit(conversion["retarget"])
    (folder / "conversion.json").write_text(json.dumps(conversion))


CASES = [
    # entry, retarget arguments, the windows per stage at the new geometry, transformers holds it
    ("tiny-swin", dict(image_size=96, window_size=6, num_labels=10), [6, 6, 6], True),  # v1 bicubic, zero head
    ("tiny-swinv2", dict(image_size=128, window_size=8), [8, 8, 8, 4], True),  # v2: cpb_mlp, pretrained windows
    ("tiny-simmim-swin-pretrain", dict(image_size=96, window_size=6), [6, 6, 6], True),  # SimMIM -> classifier
    ("tiny-simmim-swinv2-pretrain", dict(image_size=128, window_size=8, num_labels=5), [8, 8, 8, 4], True),
    # 64 / window 8: stage grids 16, 8, 4 -> windows 8, 8, 4, which transformers' Swin v1 cannot hold
    ("tiny-swin", dict(window_size=8), [8, 8, 4], False),
]


@pytest.mark.parametrize(("name", "args", "windows", "transformers"), CASES, ids=[str(c[1]) for c in CASES])
def test_retargeted_folder_passes_against_timm_and_transformers_at_the_new_geometry(
    zoo, cache, tmp_path, name, args, windows, transformers
):
    folder = retargeted_folder(name, cache, tmp_path, **args)
    record = json.loads((folder / "conversion.json").read_text())["retarget"]
    assert record["to"]["stage_windows"] == windows
    report = V.verify_entry(name, synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "pass", report.to_dict()
    assert report.task == "image-classification" and report.unchecked == []
    refs = by_reference(report)
    assert refs["timm"].status == "pass"
    if transformers:
        assert refs["transformers"].status == "pass"
    else:
        assert refs["transformers"].status == "n/a" and "per-stage windows [8, 8, 4]" in refs["transformers"].reason
    for ref in report.references:
        if ref.status == "pass":
            names = [c.name for c in ref.comparisons]
            assert "logits" in names and all(f"stage{i + 1}" in names for i in range(len(windows)))
            # not trivially zero (the logits of a new head are: it starts at zero)
            assert all(c.ref_max_abs > 0.1 for c in ref.comparisons if c.name != "logits")
    assert json.loads((folder / "verification.json").read_text())["passed"] is True


def test_cli_verify_converted_exits_0_on_a_retargeted_folder_and_1_once_a_weight_is_changed(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-swinv2", cache, tmp_path, image_size=96, window_size=6)
    args = ("tiny-swinv2", "--synthetic", "--cache-dir", str(cache), "--converted", str(folder))
    code, out, err = test_verify.cli(*args)
    assert code == 0, out + err
    code, out, err = test_verify.cli("--cache-dir", str(cache), "--converted", str(folder))  # the folder names all
    assert code == 0, out + err
    _rewrite(folder, lambda state: state["swin.stages.0.blocks.1.attn.logit_scale"].add_(0.1))
    code, out, err = test_verify.cli(*args)
    assert code == 1 and "verification FAILED for: tiny-swinv2" in err


def test_simmim_v2_file_with_rpe_mlp_keys_passes_retargeted_to_a_classifier(zoo, cache, tmp_path):
    name = "tiny-simmim-swinv2-pretrain"
    synthetic = load_state_dict(resolve_source(manifest.get_entry(name), synthetic=True, cache_dir=cache).path)
    older = {k.replace(".cpb_mlp.", ".rpe_mlp."): v for k, v in synthetic.items()}
    assert sum(".rpe_mlp." in k for k in older) == 3 * sum(zoo[name].architecture.depths)
    source = tmp_path / "older.pth"
    torch.save({"model": older}, source)
    folder = retargeted_folder(name, cache, tmp_path, source=source, image_size=96, window_size=6)
    report = V.verify_entry(name, source=source, cache_dir=cache, converted=folder)
    assert report.status == "pass", report.to_dict()
    assert {r.reference: r.status for r in report.references} == {"timm": "pass", "transformers": "pass"}


def test_folder_retargeted_from_a_source_file_alone_passes(zoo, cache, tmp_path):
    source = resolve_source(manifest.get_entry("tiny-swin"), synthetic=True, cache_dir=cache).path
    folder = tmp_path / "from-source"
    convert(source=source, out_dir=folder, image_size=96, window_size=6, num_labels=3, progress=False)
    assert json.loads((folder / "conversion.json").read_text())["retarget"]["to"]["window_size"] == 6
    code, out, err = test_verify.cli("--converted", str(folder), "--json")
    assert code == 0, out + err
    (entry,) = json.loads(out)["entries"]
    assert {r["reference"]: r["status"] for r in entry["references"]} == {"timm": "pass", "transformers": "pass"}


def test_22k_head_retargeted_to_1k_passes_with_the_rows_both_maps_pick(zoo, cache, tmp_path):
    real = manifest.get_entry("swin-tiny-patch4-window7-224-22k")
    zoo["tiny-swin-22k"] = test_verify._shrink(real, "tiny-swin-22k", depths=(2, 2, 2))  # the zoo fixture reads it
    folder = retargeted_folder("tiny-swin-22k", cache, tmp_path, image_size=96, window_size=6, num_labels=1000)
    record = json.loads((folder / "conversion.json").read_text())["retarget"]
    assert record["methods"]["head"].startswith("map22kto1k") and record["to"]["num_labels"] == 1000
    report = V.verify_entry("tiny-swin-22k", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "pass", report.to_dict()
    for ref in report.references:  # a head of real rows: the logits are compared, and are not zero
        logits = next(c for c in ref.comparisons if c.name == "logits")
        assert ref.status == "pass" and logits.ref_max_abs > 0.1


def test_retargeted_simmim_pretrain_uses_the_geometric_method(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-simmim-swin-pretrain", cache, tmp_path, image_size=96, window_size=6)
    record = json.loads((folder / "conversion.json").read_text())["retarget"]
    assert record["methods"]["relative_position_bias_table"].startswith("geometric")
    # recorded as bicubic, the reference resizes the tables bicubically: they no longer agree
    edit_record(folder, lambda r: r["methods"].update(relative_position_bias_table="bicubic: (edited)"))
    report = V.verify_entry("tiny-simmim-swin-pretrain", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "fail"
    assert {r.status for r in report.references} == {"fail"}


def test_retargeted_folder_with_one_table_value_changed_fails(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-swin", cache, tmp_path, image_size=96, window_size=6, num_labels=10)
    _rewrite(folder, lambda state: state[TABLE][60, 0].add_(0.5))  # centre offset (5, 5) of the 11 x 11 table, head 0
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "fail"
    for ref in report.references:
        assert ref.status == "fail"
        passed = {c.name: c.passed for c in ref.comparisons}
        assert passed["stage1"] and not passed["stage2"]  # the damage is in stage 2's table


def test_retargeted_folder_whose_recorded_method_disagrees_with_its_tables_fails(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-swin", cache, tmp_path, image_size=96, window_size=6)
    edit_record(folder, lambda r: r["methods"].update(relative_position_bias_table="geometric: (edited)"))
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "fail"
    for ref in report.references:
        passed = {c.name: c.passed for c in ref.comparisons}
        assert ref.status == "fail" and not passed["stage1"]


def test_retargeted_folder_recording_tables_kept_is_an_error_naming_the_table(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-swin", cache, tmp_path, image_size=96, window_size=6)
    edit_record(folder, lambda r: r["methods"].update(relative_position_bias_table="kept: (edited)"))
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "error"
    for ref in report.references:
        assert ref.status == "error" and "relative_position_bias_table" in ref.reason and "'kept'" in ref.reason


def test_retarget_record_from_another_geometry_than_the_manifest_fails(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-swin", cache, tmp_path, image_size=96, window_size=6)
    edit_record(folder, lambda r: r["from"].update(window_size=5))
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "fail"
    assert any("retarget.from.window_size is 5, the manifest says 4" in p for p in report.problems)


def test_config_at_another_geometry_than_the_retarget_record_fails(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-swin", cache, tmp_path, image_size=96, window_size=6)
    edit_record(folder, lambda r: r["to"].update(image_size=128))
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status in ("fail", "error")
    assert any("config.json: image_size is 96, retarget.to says 128" in p for p in report.problems)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda r: r.pop("from"), "retarget.from: missing or not an object"),
        (lambda r: r["to"].update(window_size="six"), "retarget.to.window_size: 'six' is not a size"),
        (lambda r: r.update(target_task="masked-image-modeling"), "retarget.target_task: 'masked-image-modeling'"),
    ],
)
def test_unusable_retarget_record_is_an_error_naming_the_field(zoo, cache, tmp_path, edit, named):
    folder = retargeted_folder("tiny-swin", cache, tmp_path, image_size=96, window_size=6)
    edit_record(folder, edit)
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "error" and report.references == []
    (problem,) = report.problems
    assert "conversion.json: " + named in problem


def test_upstream_copies_are_not_applicable_to_a_retargeted_folder(zoo, cache, tmp_path, monkeypatch):
    folder = retargeted_folder("tiny-swin", cache, tmp_path, image_size=96, window_size=6)
    monkeypatch.setattr(
        "swinzoo.verify.references.upstream.UpstreamTimm.ident", lambda self, ctx: "swin_tiny_patch4_window7_224"
    )
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, converted=folder, references=("upstream",))
    refs = by_reference(report)
    assert refs["upstream-timm"].status == "n/a" and "retargeted" in refs["upstream-timm"].reason


def test_bfloat16_retargeted_folder_passes_at_bfloat16_tolerance(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-swinv2", cache, tmp_path, image_size=96, window_size=6)
    _rewrite(folder, lambda state: state.update({k: v.to(torch.bfloat16) for k, v in state.items()}))
    report = V.verify_entry("tiny-swinv2", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "pass", report.to_dict()
    assert report.dtype == "bfloat16"


# --------------------------------------------------------------------------------------------- the reference path
def _official_move(state, target_image=(64, 64), target_window=4, num_labels=None, method="bicubic"):
    return rr.reference_retarget(
        state,
        patch_size=4,
        source_image=(64, 64),
        source_window=4,
        target_image=target_image,
        target_window=target_window,
        num_labels=num_labels,
        method=method,
        layout="official",
    )


@pytest.mark.parametrize("version", [1, 2])
def test_reference_moves_a_simmim_file_into_the_official_classifier_layout(version):
    config = tiny_config(version)
    suffix = "v2" if version == 2 else ""
    simmim = official_state_dict(config.copy(num_labels=1), f"simmim-swin{suffix}-pretrain", seed=1)
    if version == 2:  # the older official name, as released SimMIM V2 files may carry it
        simmim = {k.replace(".cpb_mlp.", ".rpe_mlp."): v for k, v in simmim.items()}
    out = _official_move(simmim, num_labels=10, method="geometric")
    classifier = official_state_dict(config.copy(num_labels=10), f"official-swin{suffix}")
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        k: tuple(v.shape) for k, v in classifier.items() if not k.endswith(BUFFERS)
    }
    assert not out["head.weight"].any() and not out["head.bias"].any()  # a new head starts at zero
    for key, value in out.items():
        if not key.startswith("head."):  # the same geometry: every encoder tensor is the file's own
            assert torch.equal(value, simmim["encoder." + key.replace(".cpb_mlp.", ".rpe_mlp.")]), key
    both = {**simmim, "encoder.layers.0.blocks.0.attn.cpb_mlp.0.weight": torch.zeros(1)}
    if version == 2:
        with pytest.raises(rr.ReferenceRetargetError, match=r"attn\.cpb_mlp\.0\.weight: held twice"):
            _official_move(both, num_labels=10)


def test_reference_moves_official_v1_tables_and_positions_as_the_official_loader_states():
    config = tiny_config(1, depths=[2, 2, 2], num_heads=[1, 2, 4])  # 64 / window 4: windows 4, 4, 4
    state = official_state_dict(config, "official-swin", seed=2)
    state["absolute_pos_embed"] = torch.full((1, 16 * 16, 32), 0.25)
    out = _official_move(state, target_image=(96, 96), target_window=6)
    key = "layers.1.blocks.0.attn.relative_position_bias_table"
    # utils.load_pretrained: per head, F.interpolate(bicubic, corners not aligned) from 7 x 7 to 11 x 11 offsets
    heads = state[key].shape[1]
    grid = state[key].T.reshape(1, heads, 7, 7)
    official = F.interpolate(grid, size=(11, 11), mode="bicubic", align_corners=False).reshape(heads, 121).T
    assert out[key].shape == (121, heads) and torch.allclose(out[key], official, atol=1e-6)
    # a constant position grid stays constant (the cubic weights sum to one), on the 24 x 24 patch grid
    assert out["absolute_pos_embed"].shape == (1, 24 * 24, 32)
    assert torch.allclose(out["absolute_pos_embed"], torch.tensor(0.25), atol=1e-6)
    assert torch.equal(out["head.weight"], state["head.weight"])  # the same class count keeps the head
    assert not any(k.endswith(BUFFERS) for k in out)  # the model at the new geometry builds its own
    state[key] = state[key][:-1]
    with pytest.raises(rr.ReferenceRetargetError, match=r"layers\.1\.blocks\.0\.attn\.relative_position_bias_table"):
        _official_move(state, target_image=(96, 96), target_window=6)


def test_from_pretrained_image_size_retargets_the_processor_as_convert_does(zoo, cache, tmp_path):
    import swinzoo

    plain = tmp_path / "plain"
    convert("tiny-swinv2", synthetic=True, cache_dir=cache, out_dir=plain, progress=False)
    moved = retargeted_folder("tiny-swinv2", cache, tmp_path, image_size=128, window_size=8)
    at_load = swinzoo.from_pretrained(plain, image_size=128, window_size=8)
    written = swinzoo.ImageProcessor.from_pretrained(moved)  # what convert wrote for the same retarget
    assert written.preprocessing.input_size == 128
    assert at_load.image_processor == written
    assert at_load.image_processor(images=[torch.rand(3, 150, 170)])["pixel_values"].shape[-2:] == (128, 128)


def _card_agrees_with_the_folder(folder: Path) -> str:
    """The card's transform line is the one the folder's processor applies (input size and crop from its records)."""
    import math

    import swinzoo

    card = (folder / "README.md").read_text()
    p = swinzoo.ImageProcessor.from_pretrained(folder).preprocessing
    short = math.floor(p.input_size / p.crop_pct)
    expected = f"resize the short side to {short}, centre-crop {p.input_size}" if short != p.input_size else ""
    assert expected in card, (expected, card)
    size = json.loads((folder / "config.json").read_text())["image_size"]
    assert p.input_size == (size if isinstance(size, int) else size[0])  # the processor fits the model
    return card


def test_a_retargeted_folders_card_states_its_own_classes_and_transform(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-swin", cache, tmp_path, image_size=96, window_size=6, num_labels=10)
    card = _card_agrees_with_the_folder(folder)
    assert "10 classes (a new zero-initialised head" in card and "ImageNet-1K" not in card.split("## Source")[0]
    assert "centre-crop 64" not in card

    real = manifest.get_entry("swin-tiny-patch4-window7-224-22k")
    zoo["tiny-swin-22k"] = test_verify._shrink(real, "tiny-swin-22k", depths=(2, 2, 2))
    folder = retargeted_folder("tiny-swin-22k", cache, tmp_path, image_size=96, window_size=6, num_labels=1000)
    card = _card_agrees_with_the_folder(folder)
    description = card.split("## Source")[0]
    assert "ImageNet-1K (1000 classes" in description and "21841" not in description


def test_convert_says_it_retargeted_and_names_the_default_folder_for_the_new_model(zoo, cache, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from swinzoo.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["--image-size", "96", "--window-size", "6", "--num-labels", "10", "--cache-dir", str(cache)]
    result = CliRunner().invoke(main, ["convert", "tiny-swin", "--synthetic", "--quiet", *args])
    assert result.exit_code == 0, result.output
    folder = Path("converted/tiny-swin-96px-window6-10labels")
    assert json.loads((folder / "config.json").read_text())["num_labels"] == 10
    assert not Path("converted/tiny-swin").exists()
    assert "retargeted" in result.output and "to image 96, window 6 (per stage [6, 6, 6]), 10 classes" in result.output


def test_a_zero_initialised_head_is_said_to_carry_no_information_and_pooled_features_are_compared(zoo, cache, tmp_path):
    folder = retargeted_folder("tiny-swin", cache, tmp_path, image_size=96, window_size=6, num_labels=10)
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "pass", report.to_dict()
    for ref in report.references:
        named = {c.name: c for c in ref.comparisons}
        assert named["logits"].ref_max_abs == 0.0 and "no information" in named["logits"].note
        assert ref.top5_per_image is None  # no top-5 agreement claimed on all-zero logits
        pooled = named["pooled features"]
        assert pooled.passed and pooled.ref_max_abs > 0.1, (ref.reference, pooled)
    table = V.format_table([report])
    assert "tiny-swin: timm: logits all zero (a zero-initialised head): no information" in table


def test_pooled_features_that_differ_fail_when_the_head_is_zero():
    from swinzoo.verify.references.base import classification_comparisons
    from swinzoo.verify.results import ReferenceResult
    from swinzoo.verify.tolerances import TOLERANCES

    tol = TOLERANCES["float32"]
    features = torch.randn(2, 3, 3, 8)
    for shifted, expected in ((features, True), (features + 0.01, False)):
        result = ReferenceResult("x", "")
        classification_comparisons(result, torch.zeros(2, 10), torch.zeros(2, 10), tol, (shifted, features))
        assert result.comparisons[-1].name == "pooled features" and result.comparisons[-1].passed is expected
