"""Sample images and the eval preprocessing, checked against timm's transform and stated arithmetic."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from swinzoo.config import ConfigError
from swinzoo.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageError,
    Preprocessing,
    denormalize,
    load_image,
    load_samples,
    preprocess,
    sample_image_paths,
)

SHIPPED = sample_image_paths()
ATTRIBUTION = SHIPPED[0].parent / "ATTRIBUTION.md"

# The eval settings the zoo uses: Swin 224, SwinV2 256 (timm's crop_pct 0.9), 384 fine-tunes (no crop),
# SwinV2 192 pre-training with bilinear; the last one is where floor and round of 224 / 0.95 = 235.8 differ,
# and covers nearest.
SETTINGS = [
    Preprocessing(224, 0.875, "bicubic"),
    Preprocessing(256, 0.9, "bicubic"),
    Preprocessing(384, 1.0, "bicubic"),
    Preprocessing(192, 0.875, "bilinear"),
    Preprocessing(224, 0.95, "nearest"),
    # TEST.CROP False: both sides to 384, no crop; and timm's squash with a crop (both sides to 256, crop 224).
    Preprocessing(384, 1.0, "bicubic", crop_mode="squash"),
    Preprocessing(224, 0.875, "bicubic", crop_mode="squash"),
]


def _timm_eval_transform(pp: Preprocessing):
    timm_data = pytest.importorskip("timm.data")
    return timm_data.create_transform(
        input_size=pp.input_size,
        crop_pct=pp.crop_pct,
        crop_mode=pp.crop_mode,
        interpolation=pp.interpolation,
        mean=pp.mean,
        std=pp.std,
        is_training=False,
    )


def _normalise_by_hand(image: Image.Image, pp: Preprocessing) -> torch.Tensor:
    """(pixels / 255 - mean) / std from the PIL pixels, in float64: arithmetic independent of preprocess."""
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    out = (pixels - np.array(pp.mean)) / np.array(pp.std)
    return torch.from_numpy(out.transpose(2, 0, 1).copy())


# --- shipped images and their attribution -----------------------------------------------------------


def test_at_least_four_photographs_are_shipped_within_the_size_budget():
    assert len(SHIPPED) >= 4
    sizes = {p.name: p.stat().st_size for p in SHIPPED}
    assert all(size < 200_000 for size in sizes.values()), sizes
    assert sum(sizes.values()) < 1_000_000, sizes


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_image_loads_as_rgb(path):
    image = load_image(path)
    assert image.mode == "RGB"
    assert min(image.size) >= 224, "samples must be at least as large as the smallest crop"


def test_attribution_names_every_shipped_image_with_author_source_and_licence():
    text = ATTRIBUTION.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `([^`]+)`\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    assert sorted(sections) == sorted(p.name for p in SHIPPED)
    for name, body in sections.items():
        for key in ("Title", "Author", "Source", "Licence"):
            assert re.search(rf"^- {key}: \S", body, flags=re.M), f"{name}: no '{key}:' line"
        licence = re.search(r"^- Licence: (.*)$", body, flags=re.M).group(1)
        assert licence.startswith(("public domain", "CC0")), f"{name}: licence {licence!r}"


def test_attribution_file_is_not_counted_as_an_image():
    assert ATTRIBUTION.is_file()
    assert ATTRIBUTION not in SHIPPED


# --- preprocessing equals timm's eval transform -------------------------------------------------------
# Tolerance: exact (max abs difference 0). timm's eval transform is torchvision on PIL images: the same
# Pillow resize call on the same pixels, a crop, uint8 -> float32 / 255 and float32 (x - mean) / std;
# swinzoo makes the same calls in the same order, so nothing is left to differ by.


@pytest.mark.parametrize(
    "pp", SETTINGS, ids=lambda pp: f"{pp.input_size}-{pp.crop_pct}-{pp.interpolation}-{pp.crop_mode}"
)
def test_preprocess_equals_timm_eval_transform_on_every_shipped_image(pp):
    reference = _timm_eval_transform(pp)
    for path in SHIPPED:
        image = load_image(path)
        ours = preprocess(image, pp)
        theirs = reference(image)
        assert ours.shape == (3, pp.input_size, pp.input_size)
        assert ours.dtype == torch.float32
        max_diff = (ours - theirs).abs().max().item()
        assert max_diff == 0.0, f"{path.name}: max abs diff {max_diff} vs timm for {pp}"


def test_a_different_crop_pct_is_far_from_timm_so_the_equality_check_has_teeth():
    # Swapping 0.875 for 0.9 at 224 resizes to 248 instead of 256: a few pixels of scale, and the
    # comparison above must see it.
    reference = _timm_eval_transform(Preprocessing(224, 0.875))
    for path in SHIPPED:
        image = load_image(path)
        wrong = preprocess(image, Preprocessing(224, 0.9))
        assert (wrong - reference(image)).abs().max().item() > 0.5, path.name


def test_resize_size_is_floor_of_input_size_over_crop_pct():
    # 224/0.875 = 256 exactly; 256/0.9 = 284.4; 384/1.0 = 384; 192/0.875 = 219.4; 224/0.95 = 235.8.
    assert [pp.resize_size for pp in SETTINGS] == [256, 284, 384, 219, 235, 384, 256]


@pytest.mark.parametrize(
    ("name", "resized", "left"),
    [
        # rocket 640x427 -> short side 256, long int(256 * 640 / 427) = 383; (383 - 224) / 2 = 79.5 -> 80
        ("rocket.jpg", (383, 256), 80),
        # hubble 587x512 -> long int(256 * 587 / 512) = 293; (293 - 224) / 2 = 34.5 -> 34
        ("hubble_deep_field.jpg", (293, 256), 34),
    ],
)
def test_centre_crop_rounds_half_to_even_like_torchvision(name, resized, left):
    # The two .5 cases round in opposite directions, so floor, ceil and round-half-up each fail one.
    pp = Preprocessing(224, 0.875, "bicubic")
    image = load_image(SHIPPED[0].parent / name)
    scaled = image.resize(resized, Image.Resampling.BICUBIC)
    top = 16  # (256 - 224) / 2
    expected = _normalise_by_hand(scaled.crop((left, top, left + 224, top + 224)), pp)
    shifted = _normalise_by_hand(scaled.crop((left + 1, top, left + 225, top + 224)), pp)
    ours = preprocess(image, pp).double()
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    assert (ours - shifted).abs().max().item() > 0.1, "a one-pixel shift must be visible"


def test_crop_pct_one_at_384_crops_only_the_long_side():
    # 384 / 1.0 = 384: the short side is resized to the crop size, so the crop keeps its whole height.
    pp = Preprocessing(384, 1.0, "bicubic")
    image = load_image(SHIPPED[0].parent / "coffee.jpg")  # 600x400 -> 576x384, left = 96
    scaled = image.resize((576, 384), Image.Resampling.BICUBIC)
    expected = _normalise_by_hand(scaled.crop((96, 0, 480, 384)), pp)
    torch.testing.assert_close(preprocess(image, pp).double(), expected, rtol=0, atol=1e-5)


def test_squash_resizes_both_sides_and_keeps_the_whole_image():
    # TEST.CROP False: Resize((384, 384)) of the 600x400 photo, nothing cropped.
    pp = Preprocessing(384, 1.0, "bicubic", crop_mode="squash")
    image = load_image(SHIPPED[0].parent / "coffee.jpg")
    expected = _normalise_by_hand(image.resize((384, 384), Image.Resampling.BICUBIC), pp)
    torch.testing.assert_close(preprocess(image, pp).double(), expected, rtol=0, atol=1e-5)


def test_an_image_already_at_the_resize_size_is_only_cropped_and_normalised():
    pp = Preprocessing(224, 0.875, "bicubic")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, size=(256, 300, 3), dtype=np.uint8))
    expected = _normalise_by_hand(image.crop((38, 16, 262, 240)), pp)  # (300 - 224) / 2 = 38
    torch.testing.assert_close(preprocess(image, pp).double(), expected, rtol=0, atol=1e-5)


def test_normalisation_of_a_flat_colour_is_the_stated_arithmetic():
    pp = Preprocessing(224, 0.875, "bilinear")
    out = preprocess(Image.new("RGB", (320, 240), (255, 0, 128)), pp)
    for channel, value in enumerate((255, 0, 128)):
        expected = (value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert out[channel].min().item() == pytest.approx(expected, abs=1e-6)
        assert out[channel].max().item() == pytest.approx(expected, abs=1e-6)


def test_preprocess_converts_greyscale_to_three_equal_channels():
    pp = Preprocessing(224, 0.875, "bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    grey = Image.fromarray(np.arange(256 * 256, dtype=np.uint32).reshape(256, 256).astype(np.uint8), mode="L")
    out = preprocess(grey, pp)
    assert out.shape == (3, 224, 224)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_preprocess_rejects_a_tensor():
    with pytest.raises(TypeError, match="PIL"):
        preprocess(torch.zeros(3, 224, 224), Preprocessing())


# --- Preprocessing validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"input_size": 0}, "input_size"),
        ({"input_size": 224.0}, "input_size"),
        ({"crop_pct": 0.0}, "crop_pct"),
        ({"crop_pct": 1.2}, "crop_pct"),
        ({"interpolation": "area"}, "interpolation"),
        ({"crop_mode": "border"}, "crop_mode"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"std": (0.2, 0.0, 0.2)}, "std"),
        ({"std": "abc"}, "std"),
    ],
)
def test_invalid_preprocessing_raises_naming_the_field(kwargs, field_name):
    with pytest.raises(ConfigError, match=rf"Preprocessing\.{field_name}"):
        Preprocessing(**kwargs)


def test_preprocessing_given_lists_stores_tuples_and_stays_hashable():
    pp = Preprocessing(224, 0.875, "bicubic", mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    assert pp.mean == (0.5, 0.5, 0.5) and pp.std == (0.25, 0.25, 0.25)
    assert hash(pp) == hash(Preprocessing(224, 0.875, "bicubic", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))


# --- loading errors -----------------------------------------------------------------------------------


def test_random_bytes_with_a_jpg_suffix_raise_image_error_naming_the_file(tmp_path):
    bad = tmp_path / "noise.jpg"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match=r"noise\.jpg.*(identify|decode)"):
        load_image(bad)


def test_truncated_jpeg_raises_image_error_naming_the_file_and_truncation(tmp_path):
    data = (SHIPPED[0].parent / "chelsea.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.jpg.*truncated"):
        load_image(cut)


def test_text_file_named_png_raises_image_error(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image\n")
    with pytest.raises(ImageError, match=r"notes\.png"):
        load_image(fake)


def test_missing_file_raises_image_error_naming_it(tmp_path):
    with pytest.raises(ImageError, match=r"absent\.jpg does not exist"):
        load_image(tmp_path / "absent.jpg")


def test_exif_orientation_is_applied(tmp_path):
    # A 40x20 image whose EXIF says "rotate 90 degrees clockwise to display" (orientation 6).
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0)  # red at the stored top-left
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.png"
    image.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    assert loaded.getpixel((19, 0)) == (255, 0, 0)  # top-left moves to top-right after a clockwise turn


def test_rgba_and_palette_images_load_as_rgb(tmp_path):
    Image.new("RGBA", (32, 32), (10, 20, 30, 40)).save(tmp_path / "a.png")
    Image.new("P", (32, 32), 7).save(tmp_path / "p.gif")
    for name in ("a.png", "p.gif"):
        assert load_image(tmp_path / name).mode == "RGB"
    assert load_image(tmp_path / "a.png").getpixel((0, 0)) == (10, 20, 30)


# --- directories and batches --------------------------------------------------------------------------


def test_empty_directory_raises_image_error_naming_it(tmp_path):
    (tmp_path / "README.txt").write_text("no images here\n")
    with pytest.raises(ImageError, match=re.escape(str(tmp_path)) + ".*no images"):
        sample_image_paths(tmp_path)


def test_missing_directory_raises_image_error_naming_it(tmp_path):
    with pytest.raises(ImageError, match=r"nowhere does not exist"):
        sample_image_paths(tmp_path / "nowhere")


def test_a_file_given_as_directory_raises(tmp_path):
    file = tmp_path / "x.jpg"
    file.write_bytes(b"")
    with pytest.raises(ImageError, match="is not a directory"):
        sample_image_paths(file)


def test_sample_paths_are_sorted_images_only(tmp_path):
    for name in ("b.png", "a.JPG", "c.txt", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    assert [p.name for p in sample_image_paths(tmp_path)] == ["a.JPG", "b.png"]


def test_load_samples_batches_every_shipped_image_in_name_order_like_timm():
    pp = Preprocessing(224, 0.875, "bicubic")
    reference = _timm_eval_transform(pp)
    batch, names = load_samples(pp)
    assert names == sorted(p.name for p in SHIPPED)
    assert batch.shape == (len(SHIPPED), 3, 224, 224) and batch.dtype == torch.float32
    for row, name in zip(batch, names, strict=True):
        assert torch.equal(row, reference(load_image(SHIPPED[0].parent / name))), name


def test_load_samples_reads_a_given_directory(tmp_path):
    source = SHIPPED[0].parent
    for name in ("coffee.jpg", "chelsea.jpg"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    (tmp_path / "LICENSE.md").write_text("ignored\n")
    batch, names = load_samples(Preprocessing(192, 0.875, "bilinear"), tmp_path)
    assert names == ["chelsea.jpg", "coffee.jpg"]
    assert batch.shape == (2, 3, 192, 192)


def test_load_samples_names_a_corrupt_file_in_the_directory(tmp_path):
    (tmp_path / "good.jpg").write_bytes((SHIPPED[0].parent / "coffee.jpg").read_bytes())
    (tmp_path / "zz_bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageError, match=r"zz_bad\.jpg"):
        load_samples(Preprocessing(), tmp_path)


# --- denormalize --------------------------------------------------------------------------------------


def test_denormalize_recovers_the_cropped_pixels():
    pp = Preprocessing(224, 0.875, "bicubic")
    image = load_image(SHIPPED[0].parent / "chelsea.jpg")  # 451x300 -> 384x256, crop at (80, 16)
    cropped = image.resize((384, 256), Image.Resampling.BICUBIC).crop((80, 16, 304, 240))
    expected = torch.from_numpy(np.asarray(cropped, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    restored = denormalize(preprocess(image, pp), pp)
    torch.testing.assert_close(restored, expected, rtol=0, atol=1e-6)
    batched = denormalize(preprocess(image, pp).unsqueeze(0), pp)
    assert batched.shape == (1, 3, 224, 224)


def test_denormalize_clamps_out_of_range_values_unless_told_not_to():
    pp = Preprocessing()
    x = torch.full((3, 2, 2), 10.0)
    assert denormalize(x, pp).max().item() == 1.0
    expected = 10.0 * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    assert denormalize(x, pp, clamp=False)[0, 0, 0].item() == pytest.approx(expected, rel=1e-6)


def test_denormalize_rejects_a_wrong_channel_count():
    with pytest.raises(ValueError, match=r"\(4, 8, 8\)"):
        denormalize(torch.zeros(4, 8, 8), Preprocessing())
