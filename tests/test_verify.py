"""`swinzoo verify`: passes on every official layout, and fails, naming the entry, whenever the weights that
would be published do not compute what the official file computes in timm and transformers.

The references load the synthetic official file by their own paths (timm's checkpoint filter; a separate
official -> transformers rename table), so a broken swinzoo mapping shows as a disagreement. Small
architectures (width 16, image 64) keep the default run fast; one real-size Swin-T run is marked slow.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import swinzoo.converters.official as official
import swinzoo.manifest as manifest
from swinzoo import verify as V
from swinzoo.cli import main
from swinzoo.convert import convert, resolve_source
from swinzoo.converters.engine import Rename, Transform
from swinzoo.images import sample_image_paths
from swinzoo.verify.folder_checks import plan_converted_run

SHIPPED_IMAGES = [p.name for p in sample_image_paths()]


# --------------------------------------------------------------------------------------------- tiny zoo
def _shrink(base: manifest.ZooEntry, name: str, depths=(2, 2, 2, 2), pretrained=None, **simmim) -> manifest.ZooEntry:
    """A real entry's layout, labels and preprocessing with a width-16 architecture at image size 64."""
    heads = (1, 2, 4, 8)[: len(depths)]
    arch = dataclasses.replace(
        base.architecture,
        image_size=64,
        window_size=4,
        embed_dim=16,
        depths=depths,
        num_heads=heads,
        pretrained_window_sizes=pretrained or (0,) * len(depths),
        derive_from_checkpoint=(),
    )
    changes = {}
    if base.simmim is not None:  # stride of the last stage; 16-pixel mask squares: 4x4 squares per image
        changes["simmim"] = dataclasses.replace(
            base.simmim, encoder_stride=4 * 2 ** (len(depths) - 1), mask_patch_size=16, **simmim
        )
    pp = dataclasses.replace(base.preprocessing, input_size=64)
    return dataclasses.replace(base, name=name, architecture=arch, preprocessing=pp, **changes)


# name -> (real entry it copies, changes). Three stages for v1 keep one window in every stage (4, 4, 4*), which
# transformers' Swin v1 can represent; "tiny-swin-clamped" has four (window 2 in the last), which it cannot.
TINY = {
    "tiny-swin": ("swin-tiny-patch4-window7-224", {"depths": (2, 2, 2)}),
    "tiny-swin-clamped": ("swin-tiny-patch4-window7-224", {}),
    "tiny-swinv2": ("swinv2-tiny-patch4-window8-256", {}),
    "tiny-swinv2-pretrained-windows": (
        "swinv2-base-patch4-window12to16-192to256-22kto1k-ft",
        {"pretrained": (3, 3, 3, 2)},
    ),
    "tiny-simmim-swin-pretrain": ("simmim-swin-base-window6-192-100ep", {"depths": (2, 2, 2)}),
    "tiny-simmim-swinv2-pretrain": ("simmim-swinv2-small-1k-125k", {"norm_target_patch_size": 7}),
    "tiny-simmim-swin-finetune": ("simmim-swin-base-window7-224-100ep-ft", {"depths": (2, 2, 2)}),
    "tiny-simmim-swinv2-finetune": ("simmim-swinv2-small-1k-125k-ft", {"pretrained": (3, 3, 3, 2)}),
}


@pytest.fixture
def zoo(monkeypatch) -> dict[str, manifest.ZooEntry]:
    """The real zoo plus the tiny entries (get_entry, convert and verify all look entries up through it)."""
    real = manifest.load_manifests()
    tiny = {name: _shrink(real[base], name, **changes) for name, (base, changes) in TINY.items()}
    original = manifest.load_manifests
    monkeypatch.setattr(
        manifest,
        "load_manifests",
        lambda directory=None: {**real, **tiny} if directory is None else original(directory),
    )
    return tiny


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """One download/synthetic cache for the session: each tiny synthetic file is generated once."""
    return tmp_path_factory.mktemp("swinzoo-cache")


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["verify", *args, "--quiet"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def by_reference(report: V.EntryReport) -> dict[str, V.ReferenceResult]:
    return {r.reference: r for r in report.references}


# --------------------------------------------------------------------------------------------- passing
@pytest.mark.parametrize("name", list(TINY))
def test_synthetic_checkpoint_of_every_layout_passes_against_timm_and_transformers(zoo, cache, name):
    report = V.verify_entry(name, synthetic=True, cache_dir=cache)
    assert report.status == "pass", report.to_dict()
    assert report.images == SHIPPED_IMAGES and report.unchecked == []
    refs = by_reference(report)
    assert refs["timm"].status == "pass"
    if name == "tiny-swin-clamped":  # windows 4, 4, 4, 2: not one window for all stages
        assert refs["transformers"].status == "n/a" and "per-stage windows [4, 4, 4, 2]" in refs["transformers"].reason
    else:
        assert refs["transformers"].status == "pass"
    stages = len(zoo[name].architecture.depths)
    timm_names = [c.name for c in refs["timm"].comparisons]
    assert timm_names[: stages + 1] == [f"stage{i + 1}" for i in range(stages)] + ["features"]
    pretrain = zoo[name].kind == "simmim-pretrain"
    assert timm_names[stages + 1 :] == (["reconstruction", "loss"] if pretrain else ["logits"])
    for ref in report.references:
        for c in ref.comparisons:
            assert c.passed and c.max_abs_diff <= 1e-5 + 1e-4 * c.ref_max_abs, (ref.reference, c)
            assert c.ref_max_abs > 0.1  # the compared outputs are not trivially zero
        if not pretrain and ref.status == "pass":
            assert ref.top5_per_image == [True] * len(SHIPPED_IMAGES)
    if pretrain:
        # ceil(0.6 * 16) = 10 of the 4x4 mask squares, each 16/4 = 4x4 model patches, of (64/4)^2 = 256 patches
        assert report.mask["masked_patches_per_image"] == 160 and report.mask["patches_per_image"] == 256


def test_cli_prints_the_table_and_json_and_exits_0_on_pass(zoo, cache):
    code, out, err = cli("tiny-swinv2", "--synthetic", "--cache-dir", str(cache), "--json")
    assert code == 0, err
    data = json.loads(out)  # with --json, stdout holds only the JSON; the table goes to stderr
    assert data["passed"] is True and data["counts"] == {"pass": 1}
    (entry,) = data["entries"]
    assert [r["reference"] for r in entry["references"]] == ["timm", "transformers"]
    assert entry["tolerance"] == {"atol": 1e-5, "rtol": 1e-4}
    progress, header = err.splitlines()[:2]
    assert progress.startswith("tiny-swinv2: pass (")  # one line per entry as it finishes
    assert header.split() == ["entry", "reference", "logits|recon", "hidden", "top-5", "result", "[entry]", "time"]
    assert "tiny-swinv2" in err and "pass [pass]" in err and "6/6" in err


def test_verify_reports_the_readable_inference_path_beside_the_fast_one(zoo, cache):
    code, out, err = cli("tiny-swinv2", "--synthetic", "--cache-dir", str(cache), "--json")
    assert code == 0, err
    readable = json.loads(out)["entries"][0]["inference_paths"]["readable"]
    assert readable["status"] == "pass" and readable["hidden_max_abs_diff"] <= 1e-5
    assert "inference paths: fast (checked by the references above), readable" in err


def test_a_readable_path_that_differs_from_the_fast_one_fails_the_entry(zoo, cache, monkeypatch):
    """Break only the readable block (the fast path is left alone): verify must see it."""
    from swinzoo import modeling

    original = modeling.SwinBlock.forward

    def broken(self, x, head_mask=None, output_attentions=False, fast=False):
        out, probs = original(self, x, head_mask, output_attentions, fast)
        return (out if fast else out * 1.01), probs

    monkeypatch.setattr(modeling.SwinBlock, "forward", broken)
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache)
    assert report.status == "fail" and report.inference_paths["readable"]["status"] == "fail"
    assert any("readable inference path differs" in p for p in report.problems)


def test_evict_sources_deletes_each_checkpoint_after_its_entry_and_keeps_the_verdict(zoo, tmp_path):
    cache = tmp_path / "own-cache"  # not the session's: this run deletes what it generates
    code, out, err = cli(
        "tiny-swin", "tiny-swinv2", "--synthetic", "--cache-dir", str(cache), "--evict-sources", "--json"
    )
    assert code == 0, err
    entries = json.loads(out)["entries"]
    assert [(e["entry"], e["status"], e["source_evicted"]) for e in entries] == [
        ("tiny-swin", "pass", True),
        ("tiny-swinv2", "pass", True),
    ]
    assert [p.name for p in (cache / "synthetic").iterdir()] == []
    code, out, err = cli("tiny-swin", "--synthetic", "--cache-dir", str(cache), "--json")  # without the flag: kept
    assert code == 0 and json.loads(out)["entries"][0]["source_evicted"] is False
    assert [p.name for p in (cache / "synthetic").iterdir()] == ["tiny-swin-seed0.pth"]


def test_evict_sources_never_deletes_a_source_the_user_gave(zoo, cache, tmp_path):
    from swinzoo.convert import resolve_source

    src = resolve_source(zoo["tiny-swin"], synthetic=True, cache_dir=cache, progress=False)
    mine = tmp_path / "mine.pth"
    mine.write_bytes(src.path.read_bytes())
    report = V.verify_entry("tiny-swin", source=mine, cache_dir=cache, evict_sources=True)
    assert report.status == "pass" and report.source_evicted is False and mine.is_file()


# --------------------------------------------------------------------------------------------- converted folders
@pytest.fixture
def folder(zoo, cache, tmp_path) -> Path:
    convert("tiny-swin", synthetic=True, cache_dir=cache, out_dir=tmp_path / "tiny-swin", progress=False)
    return tmp_path / "tiny-swin"


def _rewrite_weights(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path), metadata=metadata)


def test_intact_converted_folder_passes_and_records_verification_json(folder, cache):
    import timm
    import transformers

    # --converted may also name the parent holding one NAME/ folder per entry, as `swinzoo convert` writes them
    code, out, err = cli("tiny-swin", "--synthetic", "--cache-dir", str(cache), "--converted", str(folder.parent))
    assert code == 0, out + err
    data = json.loads((folder / "verification.json").read_text())
    source = resolve_source(manifest.get_entry("tiny-swin"), synthetic=True, cache_dir=cache)
    assert data["source_sha256"] == hashlib.sha256(Path(source.path).read_bytes()).hexdigest()
    assert data["passed"] is True and data["status"] == "pass" and data["dtype"] == "float32"
    assert data["libraries"]["timm"] == timm.__version__
    assert data["libraries"]["transformers"] == transformers.__version__
    assert data["images"] == SHIPPED_IMAGES and data["tolerance"] == {"atol": 1e-5, "rtol": 1e-4}
    refs = {r["reference"]: r for r in data["references"]}
    assert refs["timm"]["status"] == refs["transformers"]["status"] == "pass"
    assert refs["timm"]["top5_agreement"] == 1.0 and refs["timm"]["output_max_abs_diff"] <= 1e-4


def test_bfloat16_folder_passes_with_reference_weights_rounded_the_same_way(zoo, cache, tmp_path):
    out_dir = tmp_path / "bf16"
    convert("tiny-swinv2", synthetic=True, cache_dir=cache, out_dir=out_dir, dtype="bfloat16", progress=False)
    report = V.verify_entry("tiny-swinv2", synthetic=True, cache_dir=cache, converted=out_dir)
    assert report.status == "pass", report.to_dict()
    assert report.dtype == "bfloat16" and report.tolerance == V.TOLERANCES["bfloat16"]


def test_folder_with_two_same_shape_tensors_swapped_fails(folder, cache):
    def swap(state):
        a, b = "swin.stages.0.blocks.0.mlp.fc1.weight", "swin.stages.0.blocks.1.mlp.fc1.weight"
        assert state[a].shape == state[b].shape
        state[a], state[b] = state[b].clone(), state[a].clone()

    _rewrite_weights(folder, swap)
    code, out, err = cli("tiny-swin", "--synthetic", "--cache-dir", str(cache), "--converted", str(folder))
    assert code == 1
    assert "verification FAILED for: tiny-swin" in err
    assert "fail [fail]" in out
    assert json.loads((folder / "verification.json").read_text())["passed"] is False


def test_folder_with_one_tensor_perturbed_by_1e_2_fails(folder, cache, tmp_path):
    def perturb(state):
        state["swin.stages.1.blocks.0.attn.proj.bias"] += 1e-2

    _rewrite_weights(folder, perturb)
    results = tmp_path / "results.json"
    code, _, err = cli(
        "tiny-swin", "--synthetic", "--cache-dir", str(cache), "--converted", str(folder), "--json-file", str(results)
    )
    assert code == 1 and "verification FAILED for: tiny-swin" in err
    (entry,) = json.loads(results.read_text())["entries"]
    assert entry["status"] == "fail"
    for ref in entry["references"]:
        assert ref["status"] == "fail"
        # the damage starts at stage 2: stage 1 still agrees, stage 2 does not (a uniform shift of the residual
        # stream, which LayerNorms hide from everything downstream: only the stage outputs show it)
        first, second = ref["comparisons"][:2]
        assert (first["name"], first["passed"]) == ("stage1", True)
        assert (second["name"], second["passed"]) == ("stage2", False)


def test_folder_recording_another_source_sha256_fails_even_with_identical_weights(folder, cache):
    conversion = json.loads((folder / "conversion.json").read_text())
    real = conversion["source_sha256"]
    conversion["source_sha256"] = "0" * 64
    (folder / "conversion.json").write_text(json.dumps(conversion))
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, converted=folder)
    assert report.status == "fail"
    assert all(r.status == "pass" for r in report.references)  # the weights are fine: the sha pin is what fails
    (problem,) = report.problems
    assert "conversion.json: source_sha256 is '" + "0" * 64 + "'" in problem and real in problem
    code, _, err = cli("tiny-swin", "--synthetic", "--cache-dir", str(cache), "--converted", str(folder))
    assert code == 1 and "tiny-swin" in err


def test_folder_verified_against_a_different_source_file_fails(folder, cache, zoo, tmp_path):
    other = tmp_path / "other.pth"
    from swinzoo.synthetic import write_official_checkpoint

    write_official_checkpoint(other, zoo["tiny-swin"].config(), "official-swin", seed=7)
    report = V.verify_entry("tiny-swin", source=other, cache_dir=cache, converted=folder)
    assert report.status == "fail"
    assert any("this folder was not converted from this file" in p for p in report.problems)
    assert all(r.status == "fail" for r in report.references)


# --------------------------------------------------------------------------------------------- the folder's records
def _verified_folder(zoo, cache, tmp_path, seed: int = 0) -> Path:
    out = tmp_path / "tiny-swinv2"
    convert("tiny-swinv2", synthetic=True, seed=seed, cache_dir=cache, out_dir=out, progress=False)
    code, out_text, err = cli("--converted", str(out), "--cache-dir", str(cache))
    assert code == 0, out_text + err
    return out


def test_converted_folder_alone_names_its_entry_synthetic_source_and_seed(zoo, cache, tmp_path):
    # seed 3: verify must read it from the folder (its default, 0, would generate another file and fail)
    folder = _verified_folder(zoo, cache, tmp_path, seed=3)
    data = json.loads((folder / "verification.json").read_text())
    assert data["entry"] == "tiny-swinv2" and data["passed"] is True
    source = resolve_source(manifest.get_entry("tiny-swinv2"), synthetic=True, seed=3, cache_dir=cache)
    assert data["source_sha256"] == hashlib.sha256(Path(source.path).read_bytes()).hexdigest()
    assert "VERIFICATION FAILED" not in (folder / "README.md").read_text()


def test_the_cards_advice_verify_converted_dir_works_as_written(zoo, cache, tmp_path):
    out = tmp_path / "fresh"
    convert("tiny-swin", synthetic=True, cache_dir=cache, out_dir=out, progress=False)
    advice = re.search(r"`(swinzoo verify --converted \S+)`", (out / "README.md").read_text())
    assert advice is not None
    args = advice.group(1).split()[2:]
    code, _, err = cli(*args, "--cache-dir", str(cache))
    assert code == 0, err
    assert "NOT VERIFIED" not in (out / "README.md").read_text()


def test_several_synthetic_folders_need_synthetic_and_their_seed_before_anything_is_written(zoo, cache, tmp_path):
    for name, seed in (("tiny-swin", 0), ("tiny-swinv2", 4)):
        convert(name, synthetic=True, seed=seed, cache_dir=cache, out_dir=tmp_path / name, progress=False)
    # without --synthetic the first folder's records say synthetic, seed 0: the second, made with seed 4, differs
    code, _, err = cli("tiny-swin", "tiny-swinv2", "--converted", str(tmp_path), "--cache-dir", str(cache))
    assert code == 1 and str(tmp_path / "tiny-swinv2") in err and "seed 4, not --seed 0" in err, err
    code, _, err = cli(
        "tiny-swin", "tiny-swinv2", "--synthetic", "--converted", str(tmp_path), "--cache-dir", str(cache)
    )
    assert code == 1 and f"{tmp_path / 'tiny-swinv2'} was made with --seed 4: verify it on its own" in err, err
    assert not list(tmp_path.glob("*/verification.json"))
    plan = plan_converted_run(tmp_path / "tiny-swinv2", ["tiny-swinv2"], cache_dir=cache)
    assert (plan.entries, plan.synthetic, plan.seed) == (["tiny-swinv2"], True, 4)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["tiny-swin"], ["'tiny-swinv2'", "not 'tiny-swin'"]),  # another entry's NAME
        (["tiny-swinv2", "--synthetic", "--seed", "5"], ["seed 0", "--seed 5"]),  # another synthetic file
        (["--synthetic", "--seed", "5"], ["seed 0", "--seed 5"]),
    ],
)
def test_a_name_or_seed_the_folder_was_not_made_from_is_refused_before_writing(zoo, cache, tmp_path, args, needles):
    from hostile import assert_clean_failure, run_cli, tree_digest

    folder = _verified_folder(zoo, cache, tmp_path)
    before = tree_digest(folder)
    result = run_cli("verify", *args, "--converted", folder, "--cache-dir", cache, "--quiet")
    assert_clean_failure(result, str(folder), *needles)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert tree_digest(folder) == before  # the good verification.json and card are untouched


def test_a_source_file_with_another_sha256_is_refused_before_writing(zoo, cache, tmp_path):
    from hostile import assert_clean_failure, run_cli, tree_digest

    from swinzoo.synthetic import write_official_checkpoint

    folder = _verified_folder(zoo, cache, tmp_path)
    other = tmp_path / "other.pth"
    write_official_checkpoint(other, zoo["tiny-swinv2"].config(), "official-swinv2", seed=7)
    other_sha = hashlib.sha256(other.read_bytes()).hexdigest()
    before = tree_digest(folder)
    for name in ([], ["tiny-swinv2"]):
        result = run_cli("verify", *name, "--source", other, "--converted", folder, "--cache-dir", cache, "--quiet")
        assert_clean_failure(result, str(folder), other_sha, "not converted from this file")
        assert tree_digest(folder) == before


def test_a_library_run_with_the_wrong_file_reports_fail_and_keeps_the_folders_verdict(zoo, cache, tmp_path):
    from swinzoo.synthetic import write_official_checkpoint

    folder = _verified_folder(zoo, cache, tmp_path)
    before = (folder / "verification.json").read_bytes(), (folder / "README.md").read_bytes()
    other = tmp_path / "other.pth"
    write_official_checkpoint(other, zoo["tiny-swinv2"].config(), "official-swinv2", seed=7)
    report = V.verify_entry("tiny-swinv2", source=other, cache_dir=cache, converted=folder)
    assert report.status == "fail" and any("not converted from this file" in p for p in report.problems)
    assert ((folder / "verification.json").read_bytes(), (folder / "README.md").read_bytes()) == before


@pytest.mark.parametrize("name", ["tiny-swinv2", "tiny-simmim-swinv2-pretrain"])
def test_a_folder_converted_from_source_alone_is_verified_from_its_own_config(zoo, cache, tmp_path, name):
    source = resolve_source(manifest.get_entry(name), synthetic=True, cache_dir=cache)
    folder = tmp_path / "from-source"
    convert(None, source=source.path, cache_dir=cache, out_dir=folder, source_image_size=64, progress=False)
    assert json.loads((folder / "conversion.json").read_text())["entry"] == ""
    # the record names the local file: `swinzoo verify --converted DIR` finds it
    code, out, err = cli("--converted", str(folder), "--cache-dir", str(cache))
    assert code == 0, out + err
    data = json.loads((folder / "verification.json").read_text())
    assert data["passed"] is True and data["source_sha256"] == hashlib.sha256(source.path.read_bytes()).hexdigest()
    assert {r["reference"]: r["status"] for r in data["references"]} == {"timm": "pass", "transformers": "pass"}


def test_a_source_folder_whose_file_is_gone_says_why_in_one_line(zoo, cache, tmp_path):
    from hostile import assert_clean_failure, run_cli, tree_digest

    source = resolve_source(manifest.get_entry("tiny-swin"), synthetic=True, cache_dir=cache)
    copy = tmp_path / "copy.pth"
    shutil.copy(source.path, copy)
    folder = tmp_path / "from-source"
    convert(None, source=copy, cache_dir=cache, out_dir=folder, progress=False)
    copy.unlink()
    before = tree_digest(folder)
    result = run_cli("verify", "--converted", folder, "--cache-dir", cache, "--quiet")
    message = assert_clean_failure(result, str(folder), "no zoo entry", "--source FILE")
    assert len(message.splitlines()) == 1 and tree_digest(folder) == before
    # given the file again (or with the entry it belongs to), it is verified
    code, _, err = cli("--source", str(source.path), "--converted", str(folder), "--cache-dir", str(cache))
    assert code == 0, err
    code, _, err = cli("tiny-swin", "--source", str(source.path), "--converted", str(folder), "--cache-dir", str(cache))
    assert code == 0, err
    assert json.loads((folder / "verification.json").read_text())["passed"] is True


def test_json_is_a_flag_and_json_file_is_kept_current(zoo, cache, tmp_path):
    results = tmp_path / "results.json"
    code, out, err = cli("tiny-swin", "tiny-swinv2", "--synthetic", "--cache-dir", str(cache), "--json",
                         "--json-file", str(results))  # fmt: skip
    assert code == 0, err
    printed, written = json.loads(out), json.loads(results.read_text())
    assert [e["entry"] for e in printed["entries"]] == ["tiny-swin", "tiny-swinv2"]
    assert written["entries"] == printed["entries"] and written["counts"] == {"pass": 2}


def test_json_file_is_rewritten_after_each_entry(zoo, cache, tmp_path, monkeypatch):
    import swinzoo.verify.reporting as reporting

    results = tmp_path / "results.json"
    seen = []
    original = reporting._write_json_atomic

    def spy(path, data):
        original(path, data)
        seen.append([e["entry"] for e in json.loads(Path(path).read_text())["entries"]])

    monkeypatch.setattr(reporting, "_write_json_atomic", spy)
    code, _, err = cli(
        "tiny-swin", "tiny-swinv2", "--synthetic", "--cache-dir", str(cache), "--json-file", str(results)
    )
    assert code == 0, err
    assert seen[:2] == [["tiny-swin"], ["tiny-swin", "tiny-swinv2"]]


def test_progress_lines_name_the_synthetic_file_and_each_reference_on_a_terminal(zoo, cache, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, progress=True)
    err = capsys.readouterr().err
    assert "tiny-swin: synthetic checkpoint" in err
    assert "tiny-swin: timm reference" in err and "tiny-swin: transformers reference" in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, progress=True)
    assert "reference" not in capsys.readouterr().err  # not a terminal: no progress


# --------------------------------------------------------------------------------------------- broken converter
def _swap_q_k(t: torch.Tensor) -> torch.Tensor:
    q, k, v = t.chunk(3, dim=0)
    return torch.cat([k, q, v])


@pytest.mark.parametrize("name", ["tiny-swin", "tiny-swinv2"])
def test_converter_swapping_q_and_k_fails(zoo, cache, monkeypatch, tmp_path, name):
    original = official.official_rules
    swap = Transform("q <-> k", _swap_q_k, _swap_q_k)

    def broken(prefix="", simmim=False):
        rule = Rename(
            "swin.stages.{i}.blocks.{j}.attn.qkv.weight", prefix + "layers.{i}.blocks.{j}.attn.qkv.weight", swap
        )
        return [rule, *original(prefix, simmim)]

    monkeypatch.setattr(official, "official_rules", broken)
    code, _, err = cli(name, "--synthetic", "--cache-dir", str(cache), "--json-file", str(tmp_path / "r.json"))
    assert code == 1 and f"verification FAILED for: {name}" in err
    (entry,) = json.loads((tmp_path / "r.json").read_text())["entries"]
    assert entry["status"] == "fail"
    assert [r["status"] for r in entry["references"]] == ["fail", "fail"]  # neither reference uses the rules


def test_converter_swapping_two_blocks_norms_fails(zoo, cache, monkeypatch, tmp_path):
    original = official.official_rules

    def broken(prefix="", simmim=False):
        swapped = [
            Rename("swin.stages.2.blocks.0.norm1.{rest}", prefix + "layers.2.blocks.1.norm1.{rest}"),
            Rename("swin.stages.2.blocks.1.norm1.{rest}", prefix + "layers.2.blocks.0.norm1.{rest}"),
        ]
        return swapped + original(prefix, simmim)

    monkeypatch.setattr(official, "official_rules", broken)
    name, results = "tiny-simmim-swinv2-pretrain", tmp_path / "results.json"
    code, _, err = cli(name, "--synthetic", "--cache-dir", str(cache), "--json-file", str(results))
    assert code == 1 and f"verification FAILED for: {name}" in err
    (entry,) = json.loads(results.read_text())["entries"]
    assert entry["status"] == "fail"
    for ref in entry["references"]:
        failed = [c["name"] for c in ref["comparisons"] if not c["passed"]]
        assert ref["status"] == "fail" and "reconstruction" in failed and "loss" in failed


# --------------------------------------------------------------------------------------------- cannot check
def test_corrupt_image_is_an_error_naming_the_file(zoo, cache, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(sample_image_paths()[0], images)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code, out, err = cli("tiny-swin", "--synthetic", "--cache-dir", str(cache), "--images", str(images))
    assert code == 1
    assert "broken.jpg" in out and "error" in out and "tiny-swin" in err


@pytest.mark.parametrize("library", ["timm", "transformers"])
def test_missing_reference_library_is_an_error_not_a_pass(zoo, cache, monkeypatch, library):
    resolve_source(zoo["tiny-swin"], synthetic=True, cache_dir=cache)  # the synthetic file is made with timm
    monkeypatch.setitem(sys.modules, library, None)  # `import <library>` now raises ImportError
    code, out, err = cli("tiny-swin", "--synthetic", "--cache-dir", str(cache))
    assert code == 1
    assert f"the {library} reference needs the '{library}' package" in out and "pip install" in out
    assert "verification FAILED for: tiny-swin" in err


def test_entry_no_reference_can_represent_is_unchecked_and_fails(zoo, cache):
    code, out, _ = cli("tiny-swin-clamped", "--synthetic", "--cache-dir", str(cache), "--reference", "transformers")
    assert code == 1
    assert "n/a [unchecked]" in out and "no reference could check encoder, classifier" in out


def test_google_drive_only_entry_without_source_cannot_be_checked(cache):
    name = "simmim-swin-large-window12-192-800ep"
    code, out, err = cli(name, "--cache-dir", str(cache))
    assert code == 1
    assert "cannot be downloaded automatically" in out and "--source PATH" in out and name in err
    code, out, _ = cli(name, "--cache-dir", str(cache), "--skip-manual")
    assert code == 0 and "skipped" in out


def test_upstream_reference_offline_is_an_error(zoo, cache, monkeypatch, tmp_path):
    from huggingface_hub import constants

    entry = dataclasses.replace(
        zoo["tiny-swin"],
        upstream=manifest.Upstream(timm="swin_tiny_patch4_window7_224.ms_in1k", transformers="microsoft/x"),
    )
    zoo["tiny-swin"] = entry
    source = resolve_source(entry, synthetic=True, cache_dir=cache).path
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    report = V.verify_entry("tiny-swin", source=source, cache_dir=cache, references=["upstream"])
    assert report.status == "error"
    assert [(r.reference, r.status) for r in report.references] == [
        ("upstream-timm", "error"),
        ("upstream-transformers", "error"),
    ]
    assert all("offline" in r.reason for r in report.references)
    synthetic = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, references=["upstream"])
    assert synthetic.status == "error" and all("synthetic" in r.reason for r in synthetic.references)


def test_upstream_reference_passes_for_the_published_weights_and_fails_for_others(zoo, cache, monkeypatch, tmp_path):
    """The Hub is simulated: timm.create_model / from_pretrained return models holding a given official file."""
    import timm
    import transformers
    from timm.models.swin_transformer import checkpoint_filter_fn

    from swinzoo.converters.timm_layout import create_timm_model
    from swinzoo.converters.transformers_layout import create_transformers_model, load_transformers_state
    from swinzoo.safeload import load_state_dict
    from swinzoo.synthetic import write_official_checkpoint

    entry = dataclasses.replace(zoo["tiny-swin"], upstream=manifest.Upstream(timm="tag.x", transformers="microsoft/x"))
    zoo["tiny-swin"] = entry
    source = resolve_source(entry, synthetic=True, cache_dir=cache).path
    other = write_official_checkpoint(tmp_path / "other.pth", entry.config(), "official-swin", seed=9)
    published = {"file": source}
    calls = []

    def fake_timm(tag, pretrained=False, **kw):
        calls.append(("timm", tag, pretrained))
        model = create_timm_model(entry.config())
        model.load_state_dict(checkpoint_filter_fn(load_state_dict(published["file"]), model))
        return model

    def fake_hub(repo, **kw):
        calls.append(("transformers", repo))
        model = create_transformers_model(entry.config())
        style = "q_proj" if any(".attention.q_proj." in k for k in model.state_dict()) else "legacy"
        # strict, but for the index buffer 4.x keeps in its state dict and builds itself (as from_pretrained does)
        load_transformers_state(model, V.official_to_transformers(load_state_dict(published["file"]), 1, False, style))
        return model

    monkeypatch.setattr(timm, "create_model", fake_timm)
    monkeypatch.setattr(transformers.SwinForImageClassification, "from_pretrained", fake_hub)
    report = V.verify_entry("tiny-swin", source=source, cache_dir=cache, references=["upstream"])
    assert calls == [("timm", "tag.x", True), ("transformers", "microsoft/x")]
    assert report.status == "pass", [r.reason for r in report.references]
    assert [r.status for r in report.references] == ["pass", "pass"]
    published["file"] = other  # the Hub holds different weights than the file converted
    report = V.verify_entry("tiny-swin", source=source, cache_dir=cache, references=["upstream"])
    assert report.status == "fail" and [r.status for r in report.references] == ["fail", "fail"]


# --------------------------------------------------------------------------------------------- selection
def test_shards_are_greedy_largest_first_onto_the_lightest_shard():
    sizes = {"a": 10, "b": 7, "c": 5, "d": 4, "e": 1}
    entries = [types.SimpleNamespace(name=n, num_params=s) for n, s in sizes.items()]
    # 10 -> shard 1; 7 -> 2; 5 -> 2 (7 < 10); 4 -> 1 (10 < 12); 1 -> 2 (12 < 14)
    assert [e.name for e in V.select_shard(entries, 1, 2)] == ["a", "d"]
    assert [e.name for e in V.select_shard(entries, 2, 2)] == ["b", "c", "e"]


def test_all_shards_cover_the_zoo_once_and_balance_parameters():
    zoo = manifest.load_manifests()
    shards = [V.select_entries(all_entries=True, shard=f"{k}/8") for k in range(1, 9)]
    flat = [n for s in shards for n in s]
    assert sorted(flat) == sorted(zoo) and len(flat) == len(set(flat))
    loads = [sum(zoo[n].num_params for n in s) for s in shards]
    assert max(loads) - min(loads) <= max(e.num_params for e in zoo.values())
    assert shards == [V.select_entries(all_entries=True, shard=f"{k}/8") for k in range(1, 9)]  # deterministic


@pytest.mark.parametrize("bad", ["0/8", "9/8", "3", "a/b"])
def test_bad_shard_is_a_usage_error(bad):
    code, _, err = cli("--all", "--shard", bad)
    assert code == 1 and "--shard" in err


def test_one_model_folder_for_several_entries_is_refused(folder, cache):
    code, _, err = cli("tiny-swin", "tiny-swinv2", "--synthetic", "--converted", str(folder))
    assert code == 1 and "is one model folder, but several entries are selected" in err


def test_names_and_all_together_are_refused():
    code, _, err = cli("swin-tiny-patch4-window7-224", "--all")
    assert code == 1 and "NAMEs or --all" in err


# --------------------------------------------------------------------------------------------- arithmetic
def test_norm_targets_match_a_brute_force_window_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 9, 11, generator=g)
    size, r = 5, 2
    expected = np.zeros(x.shape)
    a = x.double().numpy()
    for c in range(2):
        for i in range(9):
            for j in range(11):
                window = a[0, c, max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1]
                var = window.var(ddof=1)  # unbiased, over the part of the window inside the image
                expected[0, c, i, j] = (a[0, c, i, j] - window.mean()) / math.sqrt(var + 1e-6)
    got = V.local_norm_targets(x, size).double().numpy()
    assert np.abs(got - expected).max() < 1e-5


def test_simmim_mask_masks_whole_squares_at_the_stated_ratio_and_is_seeded():
    mask = V.simmim_mask(3, image_size=192, patch_size=4, mask_patch_size=32, mask_ratio=0.6, seed=1)
    assert mask.shape == (3, 48 * 48) and mask.dtype == torch.bool
    grid = mask.view(3, 6, 8, 6, 8)  # 6x6 squares of 8x8 patches
    squares = grid[:, :, 0, :, 0]
    assert torch.equal(grid, squares[:, :, None, :, None].expand_as(grid))  # constant inside each square
    assert squares.flatten(1).sum(1).tolist() == [math.ceil(36 * 0.6)] * 3  # 22 of 36 squares
    assert torch.equal(mask, V.simmim_mask(3, 192, 4, 32, 0.6, seed=1))
    assert not torch.equal(mask, V.simmim_mask(3, 192, 4, 32, 0.6, seed=2))


def test_transformers_table_names_the_official_key_it_cannot_place():
    with pytest.raises(ValueError, match="layers.0.blocks.0.attn.mystery"):
        V.official_to_transformers({"layers.0.blocks.0.attn.mystery": torch.zeros(1)}, version=1, simmim=False)


# --------------------------------------------------------------------------------------------- released names
def _as_released(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SwinV2's continuous position bias MLP under the name the released SimMIM V2 files use (issue #271)."""
    return {k.replace(".cpb_mlp.", ".rpe_mlp."): v for k, v in state.items()}


@pytest.mark.parametrize("name", ["tiny-simmim-swinv2-pretrain", "tiny-simmim-swinv2-finetune"])
def test_simmim_v2_file_naming_cpb_mlp_rpe_mlp_passes_both_references(zoo, cache, tmp_path, name):
    from swinzoo.safeload import load_state_dict

    canonical = load_state_dict(resolve_source(manifest.get_entry(name), synthetic=True, cache_dir=cache).path)
    released = _as_released({k.replace(".rpe_mlp.", ".cpb_mlp."): v for k, v in canonical.items()})
    assert sum(".rpe_mlp." in k for k in released) == 3 * sum(zoo[name].architecture.depths)
    source = tmp_path / "released.pth"
    torch.save({"model": released}, source)
    report = V.verify_entry(name, source=source, cache_dir=cache)
    assert report.status == "pass", report.to_dict()
    assert {r.reference: r.status for r in report.references} == {"timm": "pass", "transformers": "pass"}


def test_transformers_table_reads_rpe_mlp_as_cpb_mlp_and_refuses_both_names_at_once():
    w, b = torch.randn(512, 2), torch.randn(512)
    released = {"layers.0.blocks.0.attn.rpe_mlp.0.weight": w, "layers.0.blocks.0.attn.rpe_mlp.0.bias": b}
    mapped = V.official_to_transformers(released, version=2, simmim=False)
    prefix = "swinv2.encoder.layers.0.blocks.0.attention.self.continuous_position_bias_mlp.0."
    assert mapped.keys() == {prefix + "weight", prefix + "bias"}
    assert mapped[prefix + "weight"] is w and mapped[prefix + "bias"] is b
    both = {**released, "layers.0.blocks.0.attn.cpb_mlp.0.weight": w.clone()}
    with pytest.raises(V.VerifyError, match=r"layers\.0\.blocks\.0\.attn\.cpb_mlp\.0\.weight.*held twice"):
        V.official_to_transformers(both, version=2, simmim=False)


# --------------------------------------------------------------------------------------------- real size
@pytest.mark.slow
def test_real_size_swin_tiny_synthetic_passes(cache):
    code, out, err = cli("swin-tiny-patch4-window7-224", "--synthetic", "--cache-dir", str(cache))
    assert code == 0, out + err
    assert out.count("pass") >= 2


# --------------------------------------------------------------------------------------------- structure
PACKAGE_ROOTS = {"swinzoo": Path(V.__file__).parents[1], "swinzoo.converters": Path(official.__file__).parent}
INDEPENDENT = [
    "swinzoo.verify.simmim",
    "swinzoo.verify.transformers_names",
    "swinzoo.verify.official_state",
    "swinzoo.verify.retargeted",
    "swinzoo.verify.reference_retarget",
]
# swinzoo.retarget is the converter's retargeting: verify restates it (reference_retarget) instead of reusing it
CONVERTER = {"swinzoo.converters.official", "swinzoo.converters.engine", "swinzoo.convert", "swinzoo.retarget"}


def _module_file(name: str) -> Path | None:
    """The source file of a swinzoo module (converters/ installs as swinzoo.converters), or None."""
    root = "swinzoo.converters" if name.startswith("swinzoo.converters") else "swinzoo"
    if not name.startswith(root):
        return None
    parts = name.split(".")[len(root.split(".")) :]
    base = PACKAGE_ROOTS[root].joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _executed_nodes(tree: ast.AST):
    """Every node of ``tree`` except ``if TYPE_CHECKING:`` bodies, which never run (type checkers only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
            continue
        todo += list(ast.iter_child_nodes(node))


def _imports(name: str, *, module_level_only: bool = False) -> set[str]:
    """swinzoo modules that module ``name`` names in its import statements (read with ast, never imported)."""
    path = _module_file(name)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else _executed_nodes(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from . import submodule`
    return {m for m in found if _module_file(m) is not None}


def _reachable(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += _imports(current)
    return seen


@pytest.mark.parametrize("module", INDEPENDENT)
def test_independent_reference_pieces_reach_none_of_the_converter_by_any_import(module):
    reached = _reachable(module)
    assert not reached & CONVERTER, f"{module} reaches {sorted(reached & CONVERTER)}"


def test_import_walker_finds_the_converter_where_a_reference_does_use_it():
    # the transformers reference builds its model with converters/transformers_layout.py, which imports the engine
    assert "swinzoo.converters.engine" in _reachable("swinzoo.verify.references.transformers")


def test_verify_modules_have_no_import_cycle():
    modules = sorted(
        ".".join(("swinzoo", *p.relative_to(PACKAGE_ROOTS["swinzoo"]).with_suffix("").parts)).removesuffix(".__init__")
        for p in (PACKAGE_ROOTS["swinzoo"] / "verify").rglob("*.py")
    )
    # statically: no cycle among the module-level imports of swinzoo's modules that verify reaches
    graph = {m: _imports(m, module_level_only=True) for m in set().union(*(_reachable(m) for m in modules))}
    state: dict[str, str] = {}

    def visit(m: str, path: tuple[str, ...]) -> None:
        if state.get(m) == "open":
            raise AssertionError("import cycle: " + " -> ".join((*path[path.index(m) :], m)))
        if m not in state:
            state[m] = "open"
            for dep in graph.get(m, ()):
                visit(dep, (*path, m))
            state[m] = "done"

    for m in graph:
        visit(m, ())
    # and at run time: each module imported first (in a child interpreter, swinzoo's modules cleared before each)
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'swinzoo' or m.startswith('swinzoo.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


class _Absent(V.LibraryReference):
    """A fourth reference as a newcomer would write one, which can never represent an entry."""

    name = "absent"
    library = "torch"

    def not_applicable(self, ctx):
        return f"absent cannot represent {ctx.entry.name} ({ctx.task})"


class _Broken:
    """A reference written straight against the protocol whose run raises."""

    name = "broken"

    def not_applicable(self, ctx):
        return None

    def run(self, ctx):
        raise RuntimeError("broken reference")


def test_a_reference_added_to_the_registry_is_selectable_and_run_like_the_others(zoo, cache, monkeypatch):
    monkeypatch.setitem(V.REFERENCES, "absent", _Absent())
    monkeypatch.setitem(V.REFERENCES, "broken", _Broken())
    assert V.parse_references("timm, absent") == ("timm", "absent")
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, references=["timm", "absent"])
    assert [(r.reference, r.status) for r in report.references] == [("timm", "pass"), ("absent", "n/a")]
    assert (report.references[1].library, report.references[1].library_version) == ("torch", torch.__version__)
    assert report.references[1].reason == "absent cannot represent tiny-swin (image-classification)"
    assert report.status == "pass"  # timm checked every part; an n/a alone fails nothing
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, references=["absent"])
    assert report.status == "unchecked" and "absent: absent cannot represent tiny-swin" in report.problems[0]
    report = V.verify_entry("tiny-swin", synthetic=True, cache_dir=cache, references=["broken"])
    assert report.status == "error"
    assert [(r.reference, r.status, r.reason) for r in report.references] == [
        ("broken", "error", "RuntimeError: broken reference")
    ]


def test_unregistered_reference_names_are_refused_with_the_registered_ones():
    with pytest.raises(V.VerifyError, match="--reference: mmpretrain not one of timm, transformers, upstream"):
        V.parse_references("timm,mmpretrain")
    with pytest.raises(V.VerifyError, match="--reference: mmpretrain"):
        V.VerifyOptions(references=("mmpretrain",))


def test_options_bundle_and_keywords_are_one_run_and_an_entry_is_looked_up_once(zoo, cache, monkeypatch):
    lookups = []
    patched = manifest.load_manifests
    monkeypatch.setattr(manifest, "load_manifests", lambda directory=None: lookups.append(1) or patched(directory))
    options = V.VerifyOptions(synthetic=True, cache_dir=cache, references="transformers")
    assert options.references == ("transformers",)
    (by_options,) = V.verify([zoo["tiny-swinv2"]], options)
    assert lookups == []  # an entry object is never looked up again
    (by_keywords,) = V.verify(["tiny-swinv2"], synthetic=True, cache_dir=str(cache), references=["transformers"])
    assert len(lookups) == 1  # a name: once, for the whole run
    for report in (by_options, by_keywords):
        assert report.status == "pass" and [r.reference for r in report.references] == ["transformers"]
    assert [c.max_abs_diff for c in by_options.references[0].comparisons] == [
        c.max_abs_diff for c in by_keywords.references[0].comparisons
    ]
    with pytest.raises(TypeError, match="convertd"):
        V.verify_entry("tiny-swinv2", options, convertd="typo")


def test_transformers_class_table_agrees_with_transformers_own_auto_mappings():
    from transformers.models.auto import modeling_auto as auto

    from swinzoo.converters.transformers_layout import transformers_class

    tables = {
        "image-classification": auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
        "masked-image-modeling": auto.MODEL_FOR_MASKED_IMAGE_MODELING_MAPPING_NAMES,
        "base": auto.MODEL_MAPPING_NAMES,
    }
    for task, names in tables.items():
        for version, model_type in ((1, "swin"), (2, "swinv2")):
            assert transformers_class(version, task).__name__ == names[model_type], (task, version)
    with pytest.raises(ValueError, match="version 3 and task 'image-classification'"):
        transformers_class(3, "image-classification")


# --------------------------------------------------------------------------------------------- folder records
def test_a_zoo_entry_converted_from_a_local_file_is_verified_against_the_file_it_records(zoo, cache, tmp_path):
    synthetic = resolve_source(manifest.get_entry("tiny-swin"), synthetic=True, cache_dir=cache).path
    own = tmp_path / "my-download.pth"
    shutil.copyfile(synthetic, own)
    folder = tmp_path / "out"
    convert("tiny-swin", source=own, out_dir=folder, progress=False)
    empty_cache = tmp_path / "empty-cache"  # nothing to download from: the recorded file must be used
    code, out, err = cli("--cache-dir", str(empty_cache), "--converted", str(folder), "--json")
    assert code == 0, out + err
    (entry,) = json.loads(out)["entries"]
    assert entry["entry"] == "tiny-swin" and entry["status"] == "pass"
    assert not empty_cache.exists() or not any(empty_cache.rglob("*.pth"))


def test_a_parent_folder_verifies_each_entry_folder_as_its_records_say(zoo, cache, tmp_path):
    parent = tmp_path / "converted"
    for name in ("tiny-swin", "tiny-swinv2"):
        convert(name, synthetic=True, cache_dir=cache, out_dir=parent / name, progress=False)
    code, out, err = cli("--cache-dir", str(cache), "--converted", str(parent), "--json")
    assert code == 0, out + err
    assert sorted(e["entry"] for e in json.loads(out)["entries"]) == ["tiny-swin", "tiny-swinv2"]
    for name in ("tiny-swin", "tiny-swinv2"):
        assert json.loads((parent / name / "verification.json").read_text())["status"] == "pass"


def test_a_stopped_shard_leaves_a_json_file_that_says_it_is_incomplete_and_evicts_the_entry_it_stopped_in(
    zoo, tmp_path, monkeypatch
):
    import swinzoo.verify.orchestration as orchestration

    real, calls = orchestration._run_reference, []

    def stop_in_the_second_entry(ref, ctx):
        calls.append(ref)
        if len(calls) == 3:  # two references per entry: the second entry's first one
            raise KeyboardInterrupt
        return real(ref, ctx)

    monkeypatch.setattr(orchestration, "_run_reference", stop_in_the_second_entry)
    cache_dir, results = tmp_path / "cache", tmp_path / "results.json"
    args = ("tiny-swin", "tiny-swinv2", "--synthetic", "--evict-sources", "--cache-dir", str(cache_dir))
    code, out, err = cli(*args, "--json-file", str(results))
    assert code == 130, out + err
    written = json.loads(results.read_text())
    assert (written["complete"], written["selected"], written["done"], written["passed"]) == (False, 2, 1, False)
    assert [e["entry"] for e in written["entries"]] == ["tiny-swin"]
    assert sorted(p.name for p in (cache_dir / "synthetic").glob("*.pth")) == []  # both files evicted


def test_a_verified_synthetic_folders_card_tags_agree_with_its_passing_table(zoo, cache, tmp_path):
    from huggingface_hub import ModelCard

    folder = _verified_folder(zoo, cache, tmp_path)
    card = ModelCard((folder / "README.md").read_text())
    assert json.loads((folder / "verification.json").read_text())["status"] == "pass"
    assert "pipeline-verified" in card.data.tags and "synthetic-weights" in card.data.tags
    assert "not-verified" not in card.data.tags and "verified" not in card.data.tags  # never the published model's
