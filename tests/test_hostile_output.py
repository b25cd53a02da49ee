"""Hostile and careless inputs to the output folder, the config, the loader and the image path (issue 11).

Each case asserts the contract of tests/hostile.py: non-zero exit, one line naming the culprit, no traceback,
bounded memory and time, nothing outside the output touched, nothing left behind.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
import torch
from hostile import assert_clean_failure, leftovers, run_cli, run_cli_subprocess, tree_digest
from PIL import Image
from safetensors.torch import load_file, save_file

import swinzoo
from swinzoo import folder as folder_mod
from swinzoo.config import SwinConfig
from swinzoo.synthetic import write_official_checkpoint

HOSTILE: list[str] = []  # the hostile inputs tried here, by name


def tiny(version: int = 1, **changes) -> SwinConfig:
    base = dict(version=version, embed_dim=16, depths=[2, 2], num_heads=[1, 2], window_size=2, image_size=32)
    base.update(num_labels=changes.pop("num_labels", 5), drop_path_rate=0.0, **changes)
    return SwinConfig(**base)


@pytest.fixture
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "mini.pth"
    write_official_checkpoint(path, tiny(1), "official-swin")
    return path


def convert_args(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["convert", "--source", str(ckpt), "--out", str(out), "--quiet", *extra]


# --------------------------------------------------------------------------------------------- --out
def test_out_holding_user_files_is_refused_and_left_as_it_was(tmp_path, ckpt):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    before = tree_digest(tmp_path)
    assert_clean_failure(run_cli(*convert_args(ckpt, out)), str(out), "not a swinzoo output", "notes.txt")
    assert tree_digest(tmp_path) == before and leftovers(tmp_path) == []


def test_out_being_the_folder_of_the_source_keeps_the_source(tmp_path, ckpt):
    src_dir = ckpt.parent
    before = tree_digest(src_dir)
    assert_clean_failure(run_cli(*convert_args(ckpt, src_dir)), str(src_dir), "mini.pth")
    assert tree_digest(src_dir) == before and ckpt.is_file()


def test_overwrite_also_refuses_a_folder_that_swinzoo_did_not_write(tmp_path, ckpt):
    out = tmp_path / "d"
    out.mkdir()
    (out / "README.md").write_text("my own notes")
    assert_clean_failure(run_cli(*convert_args(ckpt, out, "--overwrite")), "not a swinzoo output")
    assert (out / "README.md").read_text() == "my own notes"


def test_previous_output_needs_overwrite_which_replaces_only_swinzoo_files(tmp_path, ckpt):
    out = tmp_path / "d"
    assert run_cli(*convert_args(ckpt, out)).exit_code == 0
    (out / "notes.txt").write_text("keep me")
    (out / "verification.json").write_text(json.dumps({"swinzoo_version": "0", "passed": True}))
    first = tree_digest(out)
    assert_clean_failure(run_cli(*convert_args(ckpt, out)), "--overwrite")
    assert tree_digest(out) == first

    other = ckpt.parent / "other.pth"
    write_official_checkpoint(other, tiny(1), "official-swin", seed=5)
    result = run_cli(*convert_args(other, out, "--overwrite"))
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "keep me"
    assert not (out / "verification.json").exists(), "a verdict on the old weights must not survive"
    assert first["model.safetensors"] != tree_digest(out)["model.safetensors"]
    assert leftovers(tmp_path) == []


def _verified_output(tmp_path: Path, ckpt: Path) -> Path:
    out = tmp_path / "d"
    assert run_cli(*convert_args(ckpt, out)).exit_code == 0
    (out / "verification.json").write_text(json.dumps({"swinzoo_version": "0", "passed": True}))
    return out


def test_overwrite_onto_a_readme_that_is_a_folder_leaves_the_old_output_whole(tmp_path, ckpt):
    """issue 21: the replace used to stop midway (new weights beside the old card, the verdict deleted)."""
    HOSTILE.append("--overwrite with README.md a folder")
    out = _verified_output(tmp_path, ckpt)
    (out / "README.md").unlink()
    (out / "README.md").mkdir()
    (out / "README.md" / "draft.txt").write_text("my draft")
    before = tree_digest(out)
    other = ckpt.parent / "other.pth"
    write_official_checkpoint(other, tiny(1), "official-swin", seed=5)
    assert_clean_failure(
        run_cli(*convert_args(other, out, "--overwrite")), str(out / "README.md"), "nothing was replaced"
    )
    assert tree_digest(out) == before
    assert leftovers(tmp_path) == []


def test_overwrite_failing_midway_puts_every_old_file_back(tmp_path, ckpt, monkeypatch):
    """Any rename of the replace failing (here the third) undoes the ones before it: old weights, card and
    verdict, as they were."""
    HOSTILE.append("--overwrite failing midway")
    out = _verified_output(tmp_path, ckpt)
    before = tree_digest(out)
    other = ckpt.parent / "other.pth"
    write_official_checkpoint(other, tiny(1), "official-swin", seed=5)
    real_rename, calls = os.rename, []

    def flaky_rename(src, dst, *args, **kwargs):
        calls.append((src, dst))
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(src))
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(folder_mod.os, "rename", flaky_rename)
    assert_clean_failure(run_cli(*convert_args(other, out, "--overwrite")), "left as it was")
    monkeypatch.undo()
    assert tree_digest(out) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["dangling", "to-folder"])
def test_out_as_a_symlink_is_refused_before_any_work(tmp_path, ckpt, kind):
    HOSTILE.append(f"--out symlink {kind}")
    target = tmp_path / "elsewhere"
    if kind == "to-folder":
        target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    assert_clean_failure(run_cli(*convert_args(ckpt, link)), str(link), "symbolic link")
    assert leftovers(tmp_path) == []
    assert not target.exists() or list(target.iterdir()) == []


@pytest.mark.parametrize("name", [".", "..", "sub/..", "x" * 300])
def test_out_names_that_cannot_be_a_new_folder_are_refused(tmp_path, ckpt, name, monkeypatch):
    HOSTILE.append(f"--out {name[:10]}")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert_clean_failure(run_cli(*convert_args(ckpt, Path(name))), "--out")
    assert leftovers(tmp_path) == [] and list(work.iterdir()) == []


def test_out_below_a_file_is_refused(tmp_path, ckpt):
    (tmp_path / "afile").write_text("x")
    assert_clean_failure(run_cli(*convert_args(ckpt, tmp_path / "afile" / "out")), "afile", "not a folder")


def test_stale_partials_of_dead_processes_are_removed_live_ones_kept(tmp_path, ckpt):
    dead = tmp_path / ".out.999999.abc.partial"
    live = tmp_path / f".out.{os.getppid()}.abc.partial"
    for d in (dead, live):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 10)
    assert run_cli(*convert_args(ckpt, tmp_path / "out")).exit_code == 0
    assert not dead.exists() and live.exists()


def test_output_modes_follow_the_umask(tmp_path, ckpt):
    old = os.umask(0o022)
    try:
        assert run_cli(*convert_args(ckpt, tmp_path / "out")).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "out" / "model.safetensors").stat().st_mode) == 0o644


def test_interrupt_during_the_final_rename_completes_it_and_says_so(tmp_path, ckpt, monkeypatch):
    real = folder_mod._commit

    def commit_with_ctrl_c(tmp, target):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the final step
        time.sleep(0.05)
        real(tmp, target)

    monkeypatch.setattr(folder_mod, "_commit", commit_with_ctrl_c)
    out = tmp_path / "out"
    result = run_cli(*convert_args(ckpt, out))
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert "was written completely" in result.output and "nothing was written" not in result.output
    assert (out / "model.safetensors").is_file() and leftovers(tmp_path) == []


def test_sigterm_during_convert_cleans_up_like_ctrl_c(tmp_path):
    HOSTILE.append("SIGTERM mid-convert")
    big = tmp_path / "big.pth"
    write_official_checkpoint(
        big, SwinConfig(version=2, image_size=256, window_size=8, num_labels=1000), "official-swinv2"
    )
    proc = run_cli_subprocess("convert", "--source", big, "--out", tmp_path / "out", "--quiet", cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".out.*.partial")) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the conversion finished before SIGTERM arrived")
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert leftovers(tmp_path) == [] and not (tmp_path / "out").exists()


def test_ctrl_c_while_starting_prints_no_traceback(monkeypatch, capsys):
    from swinzoo import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "main", interrupted)
    with pytest.raises(SystemExit) as exc:
        cli.run()
    assert exc.value.code == 130 and "interrupted" in capsys.readouterr().err


def test_image_size_zero_is_refused(tmp_path, ckpt):
    result = run_cli(*convert_args(ckpt, tmp_path / "o", "--image-size", "0"))
    assert result.exit_code == 2 and "--image-size" in result.output and not (tmp_path / "o").exists()


def test_verify_json_file_that_is_a_folder_is_one_line(tmp_path, monkeypatch):
    HOSTILE.append("verify --json-file DIR")
    from swinzoo.verify import reporting

    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(reporting, "summary", lambda reports, selected=None: {"entries": []})
    reports: list = []
    message = assert_clean_failure(run_cli_json_file(results, reports))
    assert str(results) in message and list(results.iterdir()) == []


def run_cli_json_file(path, reports):
    """write_json, as the verify command calls it for --json-file, through the CLI's error handling."""
    import click

    from swinzoo.cli import _run
    from swinzoo.verify import write_json

    @click.command()
    def one() -> None:
        _run(write_json, str(path), reports)

    from click.testing import CliRunner

    result = CliRunner().invoke(one, [])
    from hostile import CliResult

    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.output, exc)


# --------------------------------------------------------------------------------------------- config.json
@pytest.fixture
def folder(tmp_path, ckpt) -> Path:
    out = tmp_path / "model"
    assert run_cli(*convert_args(ckpt, out)).exit_code == 0
    return out


def _edit_config(folder: Path, **changes) -> None:
    data = json.loads((folder / "config.json").read_text())
    data.update(changes)
    (folder / "config.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"[]", "JSON object"), (b"null", "JSON object"), (b"\xff\xfe{", "not valid JSON"), (b"[" * 100000, "JSON")],
    ids=["list", "null", "bad-utf8", "deep-nesting"],
)
def test_config_json_that_is_not_an_object_is_one_line(folder, content, needle):
    HOSTILE.append(f"config.json {needle}")
    (folder / "config.json").write_bytes(content)
    assert_clean_failure(run_cli("predict", swinzoo_image(folder), "--model", folder), "config.json", needle)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("num_labels", 3e7, "num_labels"),
        ("depths", [int(1e8), 1], "depths"),
        ("embed_dim", int(1e9), "embed_dim"),
        ("window_size", "abc", "window_size"),
        ("image_size", [32], "image_size"),
        ("layer_norm_eps", float("nan"), "layer_norm_eps"),
        ("id2label", {str(i): "x" * 10**6 for i in range(1)}, "id2label"),
    ],
)
def test_config_values_beyond_sane_maxima_are_refused_before_allocating(folder, field, value, needle):
    HOSTILE.append(f"config.json {field}")
    changes = {field: value}
    if field == "id2label":
        changes.update(num_labels=1, label2id={"x" * 10: 0})
    elif field == "num_labels":
        changes.update(id2label=None, label2id=None)
    _edit_config(folder, **changes)
    message = assert_clean_failure(run_cli("predict", swinzoo_image(folder), "--model", folder, memory_mb=800), needle)
    assert len(message) < 2500


def test_num_labels_is_settable_like_transformers():
    config = tiny(1)
    config.num_labels = 10
    assert config.num_labels == 10 and config.id2label[9] == "LABEL_9" and config.label2id["LABEL_0"] == 0
    with pytest.raises(swinzoo.ConfigError, match="num_labels"):
        config.num_labels = 0


# --------------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("kind", ["int64", "mixed", "nan"])
def test_weights_of_the_wrong_dtype_or_non_finite_are_refused(folder, kind):
    HOSTILE.append(f"weights {kind}")
    path = folder / "model.safetensors"
    state = load_file(str(path))
    key = "head.weight"
    if kind == "int64":
        state[key] = state[key].to(torch.int64)
    elif kind == "mixed":
        state[key] = state[key].to(torch.float16)
    else:
        state[key][0, 0] = float("nan")
    save_file(state, str(path), metadata={"format": "pt"})
    needle = {"int64": "int64", "mixed": "mixed dtypes", "nan": "non-finite"}[kind]
    assert_clean_failure(run_cli("predict", swinzoo_image(folder), "--model", folder), key, needle)


# --------------------------------------------------------------------------------------------- images
def swinzoo_image(where: Path) -> Path:
    path = where.parent / "photo.png"
    if not path.exists():
        Image.new("RGB", (40, 30), (120, 30, 200)).save(path)
    return path


def test_a_tiny_png_with_an_extreme_aspect_ratio_is_refused_cheaply(folder, tmp_path):
    HOSTILE.append("1x4000 png")
    png = tmp_path / "strip.png"
    Image.new("RGB", (1, 4000)).save(png)
    assert png.stat().st_size < 2000
    assert_clean_failure(run_cli("predict", png, "--model", folder, memory_mb=600), "strip.png", "aspect ratio")


def test_a_decompression_bomb_is_refused_without_a_raw_warning(folder, tmp_path):
    HOSTILE.append("png bomb")
    png = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(png)  # 50 MB of 1-bit pixels compress to a few kB
    result = run_cli("predict", png, "--model", folder, memory_mb=900)
    assert_clean_failure(result, "bomb.png", "pixels")
    assert "DecompressionBombWarning" not in result.output


def test_a_fifo_given_as_an_image_is_refused_not_waited_on(folder, tmp_path):
    HOSTILE.append("fifo image")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert_clean_failure(run_cli("predict", fifo, "--model", folder, seconds=30), "pipe.jpg", "not a regular file")
