"""swinzoo.ImageProcessor against the official eval transform (data/build.py, written here with torchvision),
timm's transform from the processor's pretrained_cfg, and transformers' AutoImageProcessor from its config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from hostile import assert_clean_failure, leftovers, run_cli, tree_digest
from hubserver import HubServer, hub_env
from PIL import Image
from test_predict import labelled_model
from test_publish import make_folder

import swinzoo
from swinzoo.images import ImageError, Preprocessing, load_image, sample_image_paths
from swinzoo.manifest import get_entry
from swinzoo.processing import PROCESSOR_NAME, ImageProcessor, ProcessorError
from swinzoo.publish import publish

PHOTOS = {p.name: p for p in sample_image_paths()}
SQUASH_ENTRY = "swin-base-patch4-window12-384"  # configs/swin/swin_base_patch4_window12_384_finetune.yaml
CROP_ENTRY = "swin-tiny-patch4-window7-224"  # configs/swin/swin_tiny_patch4_window7_224.yaml (TEST.CROP default)
# Non-square photos whose centre-crop margin is even at 224 (see test_transformers_* for why that matters).
NON_SQUARE = ["chelsea.jpg", "coffee.jpg"]


def official_eval_transform(img_size: int, test_crop: bool):
    """microsoft/Swin-Transformer data/build.py build_transform(is_train=False) at commit f82860b, with
    DATA.INTERPOLATION 'bicubic' and timm's IMAGENET_DEFAULT_MEAN/STD, written from the source."""
    transforms = pytest.importorskip("torchvision.transforms")
    bicubic = transforms.InterpolationMode.BICUBIC
    t = []
    if test_crop:
        t.append(transforms.Resize(int((256 / 224) * img_size), interpolation=bicubic))
        t.append(transforms.CenterCrop(img_size))
    else:
        t.append(transforms.Resize((img_size, img_size), interpolation=bicubic))
    t.append(transforms.ToTensor())
    t.append(transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    return transforms.Compose(t)


def photo(name: str) -> Image.Image:
    return load_image(PHOTOS[name])


def entry_processor(name: str) -> ImageProcessor:
    return ImageProcessor(get_entry(name).preprocessing)


CASES = [(SQUASH_ENTRY, 384, False), (CROP_ENTRY, 224, True)]


# --- the official transform, timm and transformers -------------------------------------------------------


@pytest.mark.parametrize(("entry", "size", "test_crop"), CASES, ids=["384-squash", "224-crop"])
def test_entry_processor_equals_the_official_transform_on_non_square_photos(entry, size, test_crop):
    processor = entry_processor(entry)
    official = official_eval_transform(size, test_crop)
    for name in [*NON_SQUARE, "rocket.jpg", "hubble_deep_field.jpg"]:
        ours = processor(images=[photo(name)], return_tensors="pt")["pixel_values"]
        assert ours.dtype == torch.float32 and ours.shape == (1, 3, size, size)
        assert (ours[0] - official(photo(name))).abs().max().item() == 0.0, name


def test_squash_differs_from_a_short_side_crop_so_the_equality_has_teeth():
    # crop_pct 1.0 with a centre crop (swinzoo's old reading of TEST.CROP False) cuts the sides of a 451x300 photo.
    official = official_eval_transform(384, test_crop=False)(photo("chelsea.jpg"))
    old = ImageProcessor(input_size=384, crop_pct=1.0, crop_mode="center")(images=photo("chelsea.jpg"))
    assert (old["pixel_values"][0] - official).abs().max().item() > 0.5


@pytest.mark.parametrize(("entry", "size", "test_crop"), CASES, ids=["384-squash", "224-crop"])
def test_timm_transform_from_pretrained_cfg_equals_the_official_one(entry, size, test_crop):
    timm_data = pytest.importorskip("timm.data")
    cfg = entry_processor(entry).to_timm_pretrained_cfg()
    transform = timm_data.create_transform(**timm_data.resolve_data_config(pretrained_cfg=cfg), is_training=False)
    official = official_eval_transform(size, test_crop)
    for name in NON_SQUARE:
        assert (transform(photo(name)) - official(photo(name))).abs().max().item() == 0.0, name


def _auto_processor(folder: Path, config: dict, **kwargs):
    transformers = pytest.importorskip("transformers")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROCESSOR_NAME).write_text(json.dumps(config))
    return transformers.AutoImageProcessor.from_pretrained(str(folder), **kwargs)


@pytest.mark.parametrize(("entry", "size", "test_crop"), CASES, ids=["384-squash", "224-crop"])
def test_auto_image_processor_from_to_transformers_equals_swinzoo_and_the_official(tmp_path, entry, size, test_crop):
    processor = entry_processor(entry)
    hf = _auto_processor(tmp_path / "repo", processor.to_transformers(), backend="pil")
    assert type(hf).__name__.startswith("ViT" if not test_crop else "Bit")
    official = official_eval_transform(size, test_crop)
    images = [photo(name) for name in NON_SQUARE]
    theirs = hf(images=images, return_tensors="pt")["pixel_values"]
    ours = processor(images=images)["pixel_values"]
    assert theirs.shape == ours.shape == (2, 3, size, size)
    assert (theirs - ours).abs().max().item() == 0.0
    assert (ours - torch.stack([official(im) for im in images])).abs().max().item() == 0.0


def test_auto_image_processor_reads_the_file_save_pretrained_writes(tmp_path):
    transformers = pytest.importorskip("transformers")
    processor = entry_processor(SQUASH_ENTRY)
    processor.save_pretrained(tmp_path)
    hf = transformers.AutoImageProcessor.from_pretrained(str(tmp_path), backend="pil")
    image = photo("coffee.jpg")
    assert (
        hf(images=[image], return_tensors="pt")["pixel_values"] - processor(images=image)["pixel_values"]
    ).abs().max() == 0


def test_transformers_default_backend_is_within_two_levels_of_the_official(tmp_path):
    # transformers 5 resizes with torchvision on uint8 tensors by default: not PIL's rounding, within 2 / 255.
    processor = entry_processor(CROP_ENTRY)
    hf = _auto_processor(tmp_path / "repo", processor.to_transformers())
    image = photo("chelsea.jpg")
    diff = (hf(images=[image], return_tensors="pt")["pixel_values"] - processor(images=image)["pixel_values"]).abs()
    assert diff.max().item() <= 2.01 / 255 / min(processor.preprocessing.std)


# --- inputs --------------------------------------------------------------------------------------------


def _kinds(image: Image.Image) -> list:
    """The same RGB image as every input kind ImageProcessor takes."""
    hwc = np.asarray(image, dtype=np.uint8)
    chw = torch.from_numpy(hwc.copy()).permute(2, 0, 1)
    return [
        image,
        hwc,
        hwc.astype(np.float32) / 255,
        chw,
        chw.float() / 255,
        chw.to(torch.float64) / 255,
    ]


def test_a_batch_mixing_input_kinds_equals_the_images_one_by_one():
    processor = entry_processor(CROP_ENTRY)
    images = [photo("chelsea.jpg"), photo("rocket.jpg"), photo("coffee.jpg")]
    expected = [processor(images=[im])["pixel_values"][0] for im in images]
    mixed, want = [], []
    for i, image in enumerate(images):
        for kind in _kinds(image):
            mixed.append(kind)
            want.append(expected[i])
    mixed.append(PHOTOS["rocket.jpg"])  # a path
    want.append(expected[1])
    batch = processor(images=mixed)["pixel_values"]
    assert batch.shape == (len(want), 3, 224, 224) and batch.dtype == torch.float32
    for row, (got, exp) in enumerate(zip(batch, want, strict=True)):
        assert (got - exp).abs().max().item() == 0.0, f"item {row}"


def test_a_bchw_batch_and_a_greyscale_array_are_taken_as_images():
    processor = ImageProcessor(input_size=64, crop_pct=0.875)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(2, 80, 100, 3), dtype=np.uint8)
    batch = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    out = processor(images=batch)["pixel_values"]
    for i in range(2):
        assert torch.equal(out[i], processor(images=Image.fromarray(pixels[i]))["pixel_values"][0])
    grey = pixels[0, :, :, 0]
    as_pil = processor(images=Image.fromarray(grey, "L"))["pixel_values"]
    assert torch.equal(processor(images=grey)["pixel_values"], as_pil)
    assert torch.equal(processor(images=grey[:, :, None])["pixel_values"], as_pil)


def test_numpy_output_and_attribute_access():
    processor = ImageProcessor(input_size=32)
    out = processor(images=[np.zeros((40, 50, 3), np.uint8)], return_tensors="np")
    assert isinstance(out.pixel_values, np.ndarray) and out.pixel_values.shape == (1, 3, 32, 32)
    assert out.pixel_values.dtype == np.float32


@pytest.mark.parametrize(
    ("images", "culprit"),
    [
        ([], "empty list"),
        (torch.zeros(0, 3, 8, 8, dtype=torch.uint8), "empty batch"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 4), np.uint8)], r"images\[1\].*\(8, 8, 4\)"),
        ([torch.zeros(4, 8, 8)], r"images\[0\].*\(4, 8, 8\)"),
        ([torch.zeros(8, 8, 3)], r"images\[0\].*permute"),
        ([np.zeros((3, 8, 8), np.uint8)], r"images\[0\].*transpose"),
        ([np.zeros((8, 8, 3), np.int64)], r"images\[0\].*dtype int64"),
        ([torch.zeros(3, 8, 8, dtype=torch.bool)], r"images\[0\].*dtype bool"),
        ([torch.full((3, 8, 8), 2.5)], r"images\[0\].*2\.5\.\.2\.5.*\[0, 1\]"),
        ([np.full((8, 8, 3), np.nan, np.float32)], r"images\[0\].*NaN"),
        ([{"pixels": 1}], r"images\[0\] is a dict"),
        (42, "images has type int"),
        ([np.zeros((1, 5000, 3), np.uint8)], r"images\[0\].*aspect ratio"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_input_is_an_image_error_naming_it(images, culprit):
    with pytest.raises(ImageError, match=culprit):
        ImageProcessor(input_size=32)(images=images)


def test_unknown_keyword_and_return_tensors_are_refused():
    processor = ImageProcessor(input_size=32)
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ImageError, match="do_resize"):
        processor(images=[image], do_resize=False)
    with pytest.raises(ImageError, match="'tf'"):
        processor(images=[image], return_tensors="tf")


# --- records --------------------------------------------------------------------------------------------


def test_to_transformers_has_the_stated_sizes():
    crop = entry_processor(CROP_ENTRY).to_transformers()
    assert crop["image_processor_type"] == "BitImageProcessor"
    assert crop["size"] == {"shortest_edge": 256} and crop["crop_size"] == {"height": 224, "width": 224}
    assert crop["resample"] == 3 and crop["do_center_crop"] is True
    squash = entry_processor(SQUASH_ENTRY).to_transformers()
    assert squash["image_processor_type"] == "ViTImageProcessor"
    assert squash["size"] == {"height": 384, "width": 384} and not squash.get("do_center_crop")
    v2 = ImageProcessor(input_size=256).to_transformers()
    assert v2["size"] == {"shortest_edge": 292}  # int(256 / 224 * 256) = 292, as data/build.py


@pytest.mark.parametrize("size", [192, 224, 256, 384])
def test_a_transformers_only_config_reads_back_to_the_same_transform(tmp_path, size):
    for mode, pct in (("center", 0.875), ("squash", 1.0)):
        processor = ImageProcessor(input_size=size, crop_pct=pct, crop_mode=mode)
        (tmp_path / PROCESSOR_NAME).write_text(json.dumps(processor.to_transformers()))
        back = ImageProcessor.from_pretrained(tmp_path).preprocessing
        assert (back.input_size, back.crop_mode, back.resize_size) == (size, mode, processor.preprocessing.resize_size)
        assert (back.interpolation, back.mean, back.std) == (
            "bicubic",
            processor.preprocessing.mean,
            processor.preprocessing.std,
        )


def test_a_shortest_edge_whose_ratio_floors_low_still_reads_back_exactly(tmp_path):
    # 192 / (192 / 225) is 224.99999999999997 in floats: a naive crop_pct would resize to 224, not 225.
    config = {**ImageProcessor(input_size=192).to_transformers(), "size": {"shortest_edge": 225}}
    (tmp_path / PROCESSOR_NAME).write_text(json.dumps(config))
    assert ImageProcessor.from_pretrained(tmp_path).preprocessing.resize_size == 225


def test_float_pixels_between_levels_round_to_the_nearest_level():
    # The official transform resizes 8-bit images: a float image is quantised to round(x * 255) first.
    processor = ImageProcessor(input_size=32)
    levels = np.random.default_rng(1).integers(0, 255, size=(40, 48, 3)).astype(np.float64)
    for offset, expected_levels in ((0.4, levels), (0.6, levels + 1)):
        floats = torch.from_numpy((levels + offset) / 255).permute(2, 0, 1)
        want = processor(images=expected_levels.astype(np.uint8))["pixel_values"]
        assert torch.equal(processor(images=floats)["pixel_values"], want), offset


def test_save_pretrained_round_trips_and_follows_the_umask(tmp_path):
    processor = entry_processor(SQUASH_ENTRY)
    old = os.umask(0o022)
    try:
        path = processor.save_pretrained(tmp_path / "out")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert ImageProcessor.from_pretrained(tmp_path / "out") == processor
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [PROCESSOR_NAME]  # no temp file left
    processor.save_pretrained(tmp_path / "out")  # swinzoo's own file: replaced


def test_save_pretrained_keeps_a_file_swinzoo_did_not_write(tmp_path):
    (tmp_path / PROCESSOR_NAME).write_text('{"mine": true}')
    with pytest.raises(ProcessorError, match=f"{PROCESSOR_NAME} exists.*overwrite=True"):
        ImageProcessor().save_pretrained(tmp_path)
    assert json.loads((tmp_path / PROCESSOR_NAME).read_text()) == {"mine": True}


def _folder(tmp_path: Path, conversion: dict | None = None, config: dict | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    if conversion is not None:
        (tmp_path / "conversion.json").write_text(json.dumps(conversion))
    (tmp_path / "config.json").write_text(json.dumps(config or {"image_size": 384}))
    return tmp_path


def test_from_pretrained_takes_conversion_json_then_the_entry_then_the_recipe(tmp_path):
    recorded = _folder(tmp_path / "a", {"preprocessing": entry_processor(SQUASH_ENTRY).to_dict()})
    assert ImageProcessor.from_pretrained(recorded) == entry_processor(SQUASH_ENTRY)
    named = _folder(tmp_path / "b", {"entry": SQUASH_ENTRY})
    assert ImageProcessor.from_pretrained(named).preprocessing.crop_mode == "squash"
    bare = ImageProcessor.from_pretrained(_folder(tmp_path / "c"))
    assert bare.preprocessing == Preprocessing(input_size=384, crop_pct=0.875)
    assert "Swin eval recipe" in bare.origin


def test_a_record_from_before_crop_mode_reads_crop_pct_one_as_the_squash(tmp_path):
    old = {k: v for k, v in entry_processor(SQUASH_ENTRY).to_dict().items() if k != "crop_mode"}
    folder = _folder(tmp_path, {"preprocessing": old})
    assert ImageProcessor.from_pretrained(folder).preprocessing.crop_mode == "squash"


def test_a_timm_config_json_pretrained_cfg_is_read(tmp_path):
    cfg = entry_processor(SQUASH_ENTRY).to_timm_pretrained_cfg()
    folder = _folder(tmp_path, config={"architecture": "swin_base_patch4_window12_384", "pretrained_cfg": cfg})
    assert ImageProcessor.from_pretrained(folder) == entry_processor(SQUASH_ENTRY)


@pytest.mark.parametrize(
    ("files", "culprit"),
    [
        ({PROCESSOR_NAME: "{not json"}, "preprocessor_config.json: not valid JSON"),
        ({PROCESSOR_NAME: json.dumps({"image_processor_type": "CLIPImageProcessor"})}, "CLIPImageProcessor"),
        ({"conversion.json": json.dumps({"preprocessing": {"crop_mode": "border"}})}, "conversion.json.*crop_mode"),
        ({"config.json": json.dumps({"image_size": "big"})}, "config.json: image_size 'big'"),
    ],
    ids=["bad-json", "other-class", "bad-crop-mode", "bad-size"],
)
def test_a_bad_record_is_a_processor_error_naming_the_file(tmp_path, files, culprit):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ProcessorError, match=culprit):
        ImageProcessor.from_pretrained(tmp_path)


def test_for_model_uses_the_conversion_record_then_the_config(tmp_path):
    config = tiny_config(image_size=64)
    from_record = ImageProcessor.for_model(config, conversion={"preprocessing": {"input_size": 64, "crop_pct": 0.9}})
    assert from_record.preprocessing.crop_pct == 0.9
    assert ImageProcessor.for_model(config).preprocessing == Preprocessing(input_size=64, crop_pct=0.875)
    saved = tmp_path / "saved"
    ImageProcessor(input_size=64, crop_pct=0.95).save_pretrained(saved)
    assert ImageProcessor.for_model(config, folder=saved).preprocessing.crop_pct == 0.95
    named = _folder(tmp_path / "named", {"entry": SQUASH_ENTRY})
    assert ImageProcessor.for_model(config, folder=named) == entry_processor(SQUASH_ENTRY)
    with pytest.raises(ProcessorError, match="swinzoo model or SwinConfig"):
        ImageProcessor.for_model("not a model")


def test_image_processor_is_exported_from_swinzoo():
    assert swinzoo.ImageProcessor is ImageProcessor and "ImageProcessor" in swinzoo.__all__


def test_from_pretrained_reads_a_hub_repo_like_its_folder(tmp_path):
    model = labelled_model(image_size=384, window_size=12, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
    folder = make_folder(tmp_path / "big", model, entry=SQUASH_ENTRY)
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token="hf_processor_test"):
        publish(folder, "alice/big", tag="v1")
        processor = ImageProcessor.from_pretrained("alice/big", revision="v1")
        with pytest.raises(ProcessorError, match="alice/nothing"):
            ImageProcessor.from_pretrained("alice/nothing")
    assert processor == ImageProcessor.from_pretrained(folder) == entry_processor(SQUASH_ENTRY)


@pytest.mark.parametrize(
    ("record", "culprit"),
    [
        ({"size": {"shortest_edge": 10**9}}, "crop_pct"),  # a billion-pixel resize
        ({"size": {"height": 10**6, "width": 10**6}, "crop_size": {"height": 10**6, "width": 10**6}}, "input_size"),
        ({"resample": 99}, "resample 99"),
    ],
    ids=["huge-resize", "huge-input", "bad-resample"],
)
def test_predict_refuses_a_hostile_preprocessor_config_cleanly(tmp_path, record, culprit):
    folder = make_folder(tmp_path / "tiny", labelled_model())
    config = {**ImageProcessor(input_size=64).to_transformers(), **record}
    (folder / PROCESSOR_NAME).write_text(json.dumps(config))
    before = tree_digest(tmp_path)
    result = run_cli("predict", PHOTOS["chelsea.jpg"], "--model", folder)
    assert_clean_failure(result, PROCESSOR_NAME, culprit)
    assert tree_digest(tmp_path) == before and not leftovers(tmp_path)
