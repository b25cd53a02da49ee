"""A published repo used the way transformers and timm users use it: pipeline(), AutoImageProcessor, timm's data
config, and a fine-tuning run from a loaded checkpoint (issue 8).

Expected values come from the other libraries' own code paths (transformers' pipeline and image processor,
timm's create_transform) and from swinzoo's predict on the same photos.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import random_model, tiny_config
from hubserver import HubServer, hub_env
from huggingface_hub import HfApi
from PIL import Image

import swinzoo
from swinzoo.cli import main
from swinzoo.images import sample_image_paths
from swinzoo.loading import save_pretrained
from swinzoo.modeling import SwinForImageClassification
from swinzoo.processing import ImageProcessor
from swinzoo.publish import export_timm, export_transformers

TOKEN = "hf_ecosystem_token_33aa"


def small(**changes):
    base = dict(depths=[2, 2, 2], num_heads=[1, 2, 4], embed_dim=16, image_size=64, window_size=4, num_labels=10)
    base.update(changes)
    return tiny_config(1, **base)


def folder_with(tmp_path: Path, crop_mode: str, *, entry: str = "", **config) -> Path:
    """A converted folder whose conversion.json records an eval transform (centre crop or squash)."""
    model = random_model(SwinForImageClassification, small(**config))
    folder = save_pretrained(model, tmp_path / f"model-{crop_mode}")
    preprocessing = {
        "input_size": 64,
        "crop_pct": 0.875 if crop_mode == "center" else 1.0,
        "crop_mode": crop_mode,
        "interpolation": "bicubic",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    record = {"swinzoo_version": swinzoo.__version__, "entry": entry, "preprocessing": preprocessing}
    (folder / "conversion.json").write_text(json.dumps(record))
    return folder


def photos() -> list[Path]:
    return sample_image_paths()


def non_square_photo() -> Image.Image:
    image = Image.open(next(p for p in photos() if p.name == "chelsea.jpg")).convert("RGB")
    assert image.size == (451, 300)
    return image


@pytest.mark.parametrize("crop_mode", ["center", "squash"])
def test_pipeline_on_a_transformers_export_gives_swinzoo_predicts_top5(tmp_path, crop_mode):
    import transformers

    folder = folder_with(tmp_path, crop_mode)
    export = tmp_path / "hf"
    export_transformers(folder, export)
    assert (export / "preprocessor_config.json").is_file()
    ours = CliRunner().invoke(main, ["predict", *map(str, photos()), "--model", str(folder), "--json", "--top-k", "5"])
    assert ours.exit_code == 0, ours.output
    expected = [[p["label"] for p in r["predictions"]] for r in json.loads(ours.output)["results"]]
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token=TOKEN):
        HfApi().create_repo("org/tiny")
        HfApi().upload_folder(repo_id="org/tiny", folder_path=export)
        processor = transformers.AutoImageProcessor.from_pretrained("org/tiny", backend="pil")
        classify = transformers.pipeline("image-classification", model="org/tiny", image_processor=processor)
        got = [[p["label"] for p in classify(Image.open(path), top_k=5)] for path in photos()]
    assert got == expected


@pytest.mark.parametrize("crop_mode", ["center", "squash"])
def test_auto_image_processor_of_the_export_gives_swinzoos_pixels(tmp_path, crop_mode):
    import transformers

    folder = folder_with(tmp_path, crop_mode)
    export_transformers(folder, tmp_path / "hf")
    theirs = transformers.AutoImageProcessor.from_pretrained(tmp_path / "hf", backend="pil")
    ours = swinzoo.from_pretrained(folder).image_processor
    image = non_square_photo()
    expected = ours(images=[image])["pixel_values"]
    assert torch.equal(theirs(images=[image], return_tensors="pt")["pixel_values"], expected)


@pytest.mark.parametrize("crop_mode", ["center", "squash"])
def test_timm_data_config_of_the_export_gives_swinzoos_pixels(tmp_path, crop_mode):
    import timm
    from timm.data import create_transform, resolve_data_config

    folder = folder_with(tmp_path, crop_mode)
    export_timm(folder, tmp_path / "timm")
    model = timm.create_model(f"local-dir:{tmp_path / 'timm'}", pretrained=True)
    transform = create_transform(**resolve_data_config(model=model))
    assert model.pretrained_cfg["crop_mode"] == crop_mode
    image = non_square_photo()
    expected = ImageProcessor.from_pretrained(folder)(images=[image])["pixel_values"][0]
    assert torch.equal(transform(image), expected)


def test_timm_export_of_an_imagenet_head_names_synsets_and_descriptions(tmp_path):
    from timm.data import ImageNetInfo

    entry = swinzoo.manifest.get_entry("swin-tiny-patch4-window7-224")
    labels = entry.config().id2label
    folder = folder_with(tmp_path, "center", entry=entry.name, num_labels=1000, id2label=labels)
    export_timm(folder, tmp_path / "timm")
    config = json.loads((tmp_path / "timm" / "config.json").read_text())
    info = ImageNetInfo("imagenet-1k")
    assert config["label_names"] == list(info.label_names())
    assert config["label_descriptions"]["n01440764"] == labels[0]


def test_fine_tuning_a_new_head_lowers_the_loss_and_reloads_equal(tmp_path):
    folder = folder_with(tmp_path, "center")
    model = swinzoo.from_pretrained(folder, num_labels=3, ignore_mismatched_sizes=True, drop_path_rate=0.0)
    model.train()
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(6, 3, 64, 64, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        out = model(pixels, labels=labels)
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
    model.eval()
    saved = model.save_pretrained(tmp_path / "fine-tuned")
    again = swinzoo.from_pretrained(saved)
    assert again.config.num_labels == 3
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
