"""Hostile and careless inputs, round three (issue 21): images, text bound for the terminal, input read before
it is bounded, careless ground truth and arguments, and the error contract (issue 19).

Each case asserts the contract of tests/hostile.py: non-zero exit, one line naming the culprit, no traceback,
bounded memory and time, nothing left behind. Every input is generated here, at test time.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile import assert_clean_failure, run_cli
from PIL import Image
from test_hostile_output import ckpt, convert_args, folder, swinzoo_image, tiny  # noqa: F401 - fixtures

import swinzoo
from swinzoo.errors import SwinzooError
from swinzoo.evaluate import EvaluateError, scan_data
from swinzoo.images import Preprocessing, load_image
from swinzoo.processing import ImageProcessor

HOSTILE: list[str] = []  # the hostile inputs tried here, by name
ROOT = Path(__file__).resolve().parents[1]
WNID = "n01440764"  # ImageNet-1k class 0


# --------------------------------------------------------------------------------------------- images
def test_an_eps_named_jpg_never_reaches_ghostscript(folder, tmp_path, monkeypatch):  # noqa: F811
    HOSTILE.append("EPS named photo.jpg")
    import PIL.EpsImagePlugin as eps

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ghostscript-ran"
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(eps, "gs_binary", None)  # Pillow looks for gs again, and finds the planted one
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (16, 16), (10, 200, 30)).save(photo, "EPS")
    assert photo.read_bytes().startswith(b"%!PS")
    assert_clean_failure(run_cli("predict", photo, "--model", folder), "photo.jpg", "format")
    assert not marker.exists(), "Pillow ran the planted Ghostscript on the file"


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    HOSTILE.append("16-bit PNG")
    levels = np.array([[0, 257, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I")  # really stored as 16-bit
    got = np.asarray(load_image(path))
    # 16-bit v maps to the 8-bit level round(v / 257) (65535 -> 255, 257 -> 1): stated arithmetic, not Pillow
    want = np.rint(levels / 257.0).astype(np.uint8)
    assert got.shape == (4, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(got[:, :, channel], want)


def test_a_palette_image_with_transparency_converts_without_a_raw_warning(folder, tmp_path):  # noqa: F811
    HOSTILE.append("palette PNG with transparency bytes")
    image = Image.new("P", (40, 30), 1)
    image.putpalette([0, 0, 0, 200, 30, 60] + [0] * (256 * 3 - 6))
    path = tmp_path / "palette.png"
    image.save(path, transparency=bytes([0, 128] + [255] * 254))  # two alpha levels: stored as bytes
    assert isinstance(Image.open(path).info["transparency"], bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = load_image(path)
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (200, 30, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_cli("predict", path, "--model", folder)
    assert result.exit_code == 0 and "Palette images" not in result.output, result.output


def test_a_symlink_loop_in_an_image_folder_counts_each_file_once(tmp_path):
    HOSTILE.append("ImageFolder symlink loop")
    cls = tmp_path / "data" / WNID
    cls.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(cls / "one.png")
    (cls / "loop").symlink_to(cls, target_is_directory=True)
    (cls / "again.png").symlink_to(cls / "one.png")
    samples = scan_data(tmp_path / "data").samples
    assert [p.name for p, _ in samples] == ["again.png"] or [p.name for p, _ in samples] == ["one.png"]
    assert len({os.path.realpath(p) for p, _ in samples}) == len(samples) == 1


def test_one_file_linked_under_two_classes_is_refused_naming_both(tmp_path):
    HOSTILE.append("one image under two classes")
    data = tmp_path / "data"
    (data / WNID).mkdir(parents=True)
    (data / "n01443537").mkdir()
    Image.new("RGB", (8, 8)).save(data / WNID / "a.png")
    (data / "n01443537" / "b.png").symlink_to(data / WNID / "a.png")
    with pytest.raises(EvaluateError, match=r"a\.png and .*b\.png are the same file"):
        scan_data(data)


# --------------------------------------------------------------------------------------------- terminal text
def _edit_labels(model: Path, label: str) -> None:
    data = json.loads((model / "config.json").read_text())
    data["id2label"] = {str(i): f"{label}{i}" for i in range(data["num_labels"])}
    data["label2id"] = {f"{label}{i}": i for i in range(data["num_labels"])}
    (model / "config.json").write_text(json.dumps(data))


def test_control_characters_in_label_and_file_names_are_escaped(folder, tmp_path):  # noqa: F811
    HOSTILE.append("ESC / CR / newline in label names and image file names")
    _edit_labels(folder, "cat\x1b]0;owned\x07\r\n  1.0000  forged")
    image = tmp_path / "a\x1b[2Jb\nc.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(image)
    result = run_cli("predict", image, "--model", folder, "--top-k", "2")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\r" not in result.output and "\x07" not in result.output
    lines = [line for line in result.output.splitlines() if "warning" not in line]
    assert len(lines) == 3, lines  # the image line and two predictions: nothing forged
    assert "\\x1b[2J" in lines[0] and "\\n" in lines[0] and "\\x1b]0;owned\\x07\\r\\n" in lines[1]


def test_control_characters_in_an_error_message_are_escaped(folder, tmp_path):  # noqa: F811
    HOSTILE.append("ESC in a missing image's name")
    message = assert_clean_failure(run_cli("predict", tmp_path / "x\x1b]0;t\x07\ry.png", "--model", folder), "x")
    assert "\x1b" not in message and "\r" not in message and "\\x1b]0;t\\x07\\ry.png" in message


def test_a_checkpoint_key_with_escape_sequences_is_escaped(tmp_path, ckpt):  # noqa: F811
    HOSTILE.append("ESC in a checkpoint key name")
    from swinzoo.synthetic import official_state_dict

    state = official_state_dict(tiny(1), "official-swin")
    state["layers.0.blocks.0.attn.\x1b[2J\x1b]0;owned\x07evil\n  forged"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save({"model": state}, bad)
    result = run_cli(*convert_args(bad, tmp_path / "out"))
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b[2J\\x1b]0;owned\\x07evil\\n  forged" in result.output, result.output


# --------------------------------------------------------------------------------------------- bounded reading
def _padded_safetensors(path: Path, extra_bytes: int) -> None:
    """Append a tensor named 'extra' of ``extra_bytes`` to the header; the data is a hole (sparse file)."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    data = raw[8 + size :]
    offsets = [len(data), len(data) + extra_bytes]
    header["extra"] = {"dtype": "F32", "shape": [extra_bytes // 4], "data_offsets": offsets}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
        f.truncate(8 + len(text) + len(data) + extra_bytes)


def test_a_safetensors_file_with_an_extra_huge_tensor_is_refused_from_its_header(folder):  # noqa: F811
    HOSTILE.append("safetensors with an extra 2 GiB tensor")
    _padded_safetensors(folder / "model.safetensors", 2 << 30)
    started = time.monotonic()
    result = run_cli("predict", swinzoo_image(folder), "--model", folder, memory_mb=700, seconds=60)
    assert_clean_failure(result, "model.safetensors", "'extra'")
    assert time.monotonic() - started < 30


def test_config_json_above_the_cap_is_refused_before_it_is_read(folder):  # noqa: F811
    HOSTILE.append("config.json of 17 MiB")
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[:-1] + " " * (17 << 20) + "}")
    result = run_cli("predict", swinzoo_image(folder), "--model", folder, memory_mb=700)
    assert_clean_failure(result, "config.json", str(16 << 20))


def test_preprocessing_whose_factors_multiply_into_a_huge_resize_is_refused(folder, tmp_path):  # noqa: F811
    HOSTILE.append("input_size 4096 x crop_pct 0.25 x 64:1 image")
    ImageProcessor(Preprocessing(input_size=4096, crop_pct=0.25)).save_pretrained(folder, overwrite=True)
    strip = tmp_path / "strip.png"
    Image.new("RGB", (64 * 40, 40), (5, 6, 7)).save(strip)
    result = run_cli("predict", strip, "--model", folder, memory_mb=900, seconds=60)
    assert_clean_failure(result, "strip.png", "pixels")


# --------------------------------------------------------------------------------------------- careless input
def _flat_data(tmp_path: Path, lines: str, encoding: str = "utf-8") -> tuple[Path, Path]:
    data = tmp_path / "flat"
    data.mkdir(exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(data / name)
    gt = tmp_path / "gt.txt"
    gt.write_text(lines, encoding=encoding)
    return data, gt


def test_one_image_listed_twice_under_two_spellings_names_both_lines(folder, tmp_path):  # noqa: F811
    HOSTILE.append("ground truth a.png and ./a.png")
    data, gt = _flat_data(tmp_path, "a.png 1\nb.png 2\n./a.png 1\n")
    result = run_cli("evaluate", folder, "--data", data, "--ground-truth", gt, "--quiet")
    assert_clean_failure(result, "line 3", "./a.png", "line 1")


def test_a_mistyped_first_line_is_not_taken_for_a_header(folder, tmp_path):  # noqa: F811
    HOSTILE.append("ground truth mistyped first line")
    data, gt = _flat_data(tmp_path, "a.png 1O\nb.png 2\n")
    result = run_cli("evaluate", folder, "--data", data, "--ground-truth", gt, "--quiet")
    assert_clean_failure(result, "line 1", "1O")


def test_a_header_line_is_still_skipped(tmp_path):
    data, gt = _flat_data(tmp_path, "file,label\na.png,1\n")
    assert [(p.name, t) for p, t in scan_data(data, gt).samples] == [("a.png", 1)]


def test_a_byte_order_mark_is_not_part_of_the_first_file_name(tmp_path):
    HOSTILE.append("ground truth with a UTF-8 BOM")
    data, gt = _flat_data(tmp_path, "a.png 1\nb.png 2\n", encoding="utf-8-sig")
    assert gt.read_bytes().startswith(b"\xef\xbb\xbf")
    assert [(p.name, t) for p, t in scan_data(data, gt).samples] == [("a.png", 1), ("b.png", 2)]


@pytest.mark.parametrize("repo", ["org/..", "a/b c", "org/x\x1b[2J"])
def test_a_hub_id_that_is_no_repo_id_is_one_line(folder, repo):  # noqa: F811
    HOSTILE.append(f"--model {repo!r}")
    result = run_cli("predict", swinzoo_image(folder), "--model", repo)
    message = assert_clean_failure(result, "not a valid Hub repo id")
    assert "unexpected" not in message and "\x1b" not in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("rescale_factor", "1/255"), ("image_mean", ["a", "b", "c"]), ("resample", [3])],
)
def test_preprocessor_config_with_strings_where_numbers_belong_is_named(folder, field, value):  # noqa: F811
    HOSTILE.append(f"preprocessor_config {field}={value!r}")
    data = ImageProcessor(Preprocessing(input_size=32, crop_pct=0.875)).to_transformers()
    data[field] = value
    (folder / "preprocessor_config.json").write_text(json.dumps(data))
    message = assert_clean_failure(run_cli("predict", swinzoo_image(folder), "--model", folder), "preprocessor_config")
    assert "unexpected" not in message and field.removeprefix("image_") in message


def test_window_size_beyond_its_bound_is_refused_and_the_bound_converts(tmp_path, ckpt):  # noqa: F811
    HOSTILE.append("--window-size 256 --image-size 4096")
    result = run_cli(*convert_args(ckpt, tmp_path / "o", "--window-size", "256", "--image-size", "4096"), memory_mb=900)
    assert_clean_failure(result, "window_size", "64")
    assert not (tmp_path / "o").exists()
    at_bound = run_cli(*convert_args(ckpt, tmp_path / "p", "--window-size", "64", "--image-size", "4096"))
    assert at_bound.exit_code == 0, at_bound.output


def test_an_unreachable_hub_fails_fast_in_one_line(folder, tmp_path):  # noqa: F811
    HOSTILE.append("unreachable Hub")
    from hubserver import HubServer, hub_env

    with HubServer() as server:
        pass  # stopped: its port now refuses connections
    with hub_env(server, tmp_path / "hf-cache"):
        started = time.monotonic()
        result = run_cli("predict", swinzoo_image(folder), "--model", "org/name", seconds=60)
        elapsed = time.monotonic() - started
    message = assert_clean_failure(result, "org/name", "cannot be reached")
    assert len(message.splitlines()) == 1 and "Retry" not in message, message
    assert elapsed < 10, f"{elapsed:.1f}s before the one line"


def test_swinzoo_debug_0_means_off(folder, monkeypatch):  # noqa: F811
    HOSTILE.append("SWINZOO_DEBUG=0")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a planted bug")

    monkeypatch.setattr("swinzoo.predict.classify", broken)
    for value in ("0", "false", "off", ""):
        result = run_cli("predict", swinzoo_image(folder), "--model", folder, env={"SWINZOO_DEBUG": value})
        assert_clean_failure(result, "unexpected ZeroDivisionError", "a planted bug")
    on = run_cli("predict", swinzoo_image(folder), "--model", folder, env={"SWINZOO_DEBUG": "1"})
    assert isinstance(on.exception, ZeroDivisionError)


# --------------------------------------------------------------------------------------------- from Python
def _python_calls(model: Path):
    yield "dtype float64", lambda: swinzoo.from_pretrained(model, dtype="float64"), "float64"
    yield "bad repo id", lambda: swinzoo.from_pretrained("a/b c"), "a/b c"
    yield "device nonsense", lambda: swinzoo.from_pretrained(model, device="toaster"), "toaster"
    if not torch.cuda.is_available():
        yield "cuda without a GPU", lambda: swinzoo.from_pretrained(model, device="cuda"), "cuda"
    yield "mean of strings", lambda: Preprocessing(mean=["a", "b", "c"]), "mean"
    yield "interpolation list", lambda: Preprocessing(interpolation=["bicubic"]), "interpolation"
    yield "crop_mode number", lambda: Preprocessing(crop_mode=1), "crop_mode"


def test_python_callers_get_swinzoo_errors_naming_the_value(folder):  # noqa: F811
    for name, call, needle in _python_calls(folder):
        HOSTILE.append(f"python: {name}")
        with pytest.raises(SwinzooError) as info:
            call()
        assert needle in str(info.value), (name, str(info.value))


def test_converters_raise_swinzoo_errors_naming_the_field():
    from swinzoo.converters.official import rules_for_layout
    from swinzoo.converters.timm_layout import swinzoo_config_from_timm
    from swinzoo.converters.transformers_layout import swinzoo_config_from_transformers, transformers_class

    calls = [
        (lambda: swinzoo_config_from_timm({"architecture": "resnet50", "num_classes": 10}), "resnet50"),
        (lambda: transformers_class(7), "7"),
        (lambda: swinzoo_config_from_transformers({"model_type": "swin", "architectures": ["SwinForX"]}), "SwinForX"),
        (lambda: rules_for_layout("no-such-layout"), "no-such-layout"),
    ]
    for call, needle in calls:
        HOSTILE.append(f"converter: {needle}")
        with pytest.raises(SwinzooError, match=re.escape(needle)):
            call()


# --------------------------------------------------------------------------------------------- error contract
def _error_classes() -> set[str]:
    names: set[str] = set()
    for path in [*(ROOT / "swinzoo").rglob("*.py"), *(ROOT / "converters").rglob("*.py")]:
        names.update(re.findall(r"^class (\w+)\([^)]*(?:Error|Exception|SwinzooError)[^)]*\):", path.read_text(), re.M))
    return {n for n in names if not n.startswith("_")}


def test_every_public_error_is_in_the_written_error_contract():
    contract = (ROOT / "docs" / "errors.md").read_text()
    missing = sorted(n for n in _error_classes() if f"`{n}`" not in contract)
    assert not missing, f"docs/errors.md does not describe: {', '.join(missing)}"
    for code in ("1", "2", "130", "143"):
        assert f"| {code} " in contract or f"`{code}`" in contract


def test_the_card_follows_the_umask(folder):  # noqa: F811
    HOSTILE.append("umask 077: README.md")
    from swinzoo.card import write_card

    old = os.umask(0o077)
    try:
        card = write_card(folder)
    finally:
        os.umask(old)
    assert card.stat().st_mode & 0o777 == 0o600
