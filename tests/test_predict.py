"""`swinzoo predict`: the ranking must be the softmax of logits computed independently.

The reference runs transformers' model holding the same weights on images preprocessed by timm's own eval
transform (torchvision), with the preprocessing the checkpoint declares; swinzoo's predict must give the
same classes in the same order with the same probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import random_model, transformers_twin
from hubserver import HubServer, hub_env
from PIL import Image
from test_publish import make_folder, small_config

from swinzoo.cli import main
from swinzoo.images import IMAGENET_MEAN, IMAGENET_STD, sample_image_paths
from swinzoo.modeling import SwinForImageClassification, SwinForMaskedImageModeling
from swinzoo.predict import PredictError, load_classifier, predict, preprocessing_for
from swinzoo.publish import publish

LABELS = ["apple", "bicycle", "cat", "dune", "espresso", "falcon", "guitar", "harbour", "igloo", "jellyfish"]


def labelled_model(**config) -> SwinForImageClassification:
    return random_model(SwinForImageClassification, small_config(id2label=dict(enumerate(LABELS)), **config))


def reference_top_k(
    model, images: list[Path], input_size: int, crop_pct: float, k: int, crop_mode: str = "center"
) -> list[list[tuple]]:
    """(label, probability) lists from transformers' model on timm-preprocessed images."""
    timm = pytest.importorskip("timm")
    transform = timm.data.create_transform(
        input_size=input_size,
        crop_pct=crop_pct,
        crop_mode=crop_mode,
        interpolation="bicubic",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        is_training=False,
    )
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in images])
    with torch.inference_mode():
        probabilities = transformers_twin(model)(batch).logits.softmax(-1)
    values, indices = probabilities.topk(k, dim=-1)
    return [
        [(LABELS[i], v) for v, i in zip(vs, idx, strict=True)]
        for vs, idx in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def assert_same_ranking(results, expected, atol: float = 1e-5) -> None:
    assert len(results) == len(expected)
    for result, want in zip(results, expected, strict=True):
        assert [p.label for p in result.predictions] == [label for label, _ in want], result.image
        for p, (_, probability) in zip(result.predictions, want, strict=True):
            assert abs(p.probability - probability) <= atol, (result.image, p.label)


@pytest.fixture
def images() -> list[Path]:
    return sample_image_paths()


def test_ranking_equals_softmax_of_transformers_logits(tmp_path: Path, images: list[Path]) -> None:
    model = labelled_model()
    folder = make_folder(tmp_path / "tiny", model)
    results = predict(images, str(folder), top_k=3)
    # no zoo entry: the Swin eval recipe at the config's size (crop 0.875, bicubic, ImageNet mean/std)
    assert_same_ranking(results, reference_top_k(model, images, 64, 0.875, 3))
    assert [r.image for r in results] == [str(p) for p in images]


def test_zoo_name_loads_converted_name_with_the_entrys_preprocessing(
    tmp_path: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # swin-base-patch4-window12-384 is evaluated with a squash, no crop (TEST.CROP False): not the default recipe
    entry = "swin-base-patch4-window12-384"
    model = labelled_model(image_size=384, window_size=12, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
    make_folder(tmp_path / "converted" / entry, model, entry=entry)
    monkeypatch.chdir(tmp_path)
    loaded = load_classifier(entry)
    assert (loaded.preprocessing.crop_pct, loaded.preprocessing.crop_mode) == (1.0, "squash")
    assert loaded.preprocessing.input_size == 384
    results = predict(images[:3], entry, top_k=5)
    assert_same_ranking(results, reference_top_k(model, images[:3], 384, 1.0, 5, crop_mode="squash"))
    cropped = reference_top_k(model, images[:3], 384, 1.0, 5)
    # and the test can tell: a centre crop of the short side (the old reading of TEST.CROP False) differs
    with_crop = [p for r in cropped for _, p in r]
    assert (
        max(
            abs(a.probability - b) for a, b in zip([p for r in results for p in r.predictions], with_crop, strict=False)
        )
        > 1e-4
    )


def test_preprocessing_falls_back_to_the_entry_named_in_the_weights(tmp_path: Path) -> None:
    model = labelled_model(image_size=384, window_size=12, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
    folder = make_folder(tmp_path / "x", model, entry="swin-base-patch4-window12-384")
    (folder / "conversion.json").unlink()  # as in a repo that only has config.json + model.safetensors
    pp = preprocessing_for(folder / "model.safetensors", model.config)
    assert (pp.input_size, pp.crop_pct, pp.crop_mode) == (384, 1.0, "squash")


def test_a_zoo_name_not_yet_converted_says_to_run_convert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PredictError, match=r"no folder converted/swin-tiny-patch4-window7-224.*swinzoo convert"):
        load_classifier("swin-tiny-patch4-window7-224")


def test_an_unknown_model_is_named_with_close_zoo_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        PredictError, match=r"'swin-tiny-patch4-window7-22'.*did you mean: swin-tiny-patch4-window7-224"
    ):
        load_classifier("swin-tiny-patch4-window7-22")


def test_a_simmim_pretrain_model_has_no_classes_to_predict(tmp_path: Path) -> None:
    model = random_model(SwinForMaskedImageModeling, small_config(num_labels=1, encoder_stride=16))
    folder = make_folder(tmp_path / "mim", model)
    with pytest.raises(PredictError, match="needs a classifier"):
        load_classifier(str(folder))


def test_a_hub_repo_predicts_like_its_folder(tmp_path: Path, images: list[Path]) -> None:
    model = labelled_model()
    folder = make_folder(tmp_path / "tiny", model)
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token="hf_predict_test"):
        published = publish(folder, "alice/tiny", tag="v1")
        results = predict(images[:2], "alice/tiny", revision="v1", top_k=4)
        assert load_classifier("alice/tiny").source == f"alice/tiny@main (commit {published.commit})"
    assert_same_ranking(results, reference_top_k(model, images[:2], 64, 0.875, 4))


def test_cli_prints_labels_and_json_parses(tmp_path: Path, images: list[Path]) -> None:
    model = labelled_model()
    folder = make_folder(tmp_path / "tiny", model)
    expected = reference_top_k(model, images[:2], 64, 0.875, 2)
    args = ["predict", str(images[0]), str(images[1]), "--model", str(folder), "--top-k", "2"]
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0] == f"{images[0]}:" and lines[1].split(maxsplit=1)[1] == expected[0][0][0]
    assert float(lines[1].split()[0]) == pytest.approx(expected[0][0][1], abs=1e-4)

    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["model"] == str(folder)
    got = [[(p["label"], p["probability"]) for p in r["predictions"]] for r in data["results"]]
    assert [[label for label, _ in r] for r in got] == [[label for label, _ in r] for r in expected]
    for r, e in zip(got, expected, strict=True):
        assert [p for _, p in r] == pytest.approx([p for _, p in e], abs=1e-5)


def test_cli_errors_exit_1_with_a_message(tmp_path: Path, images: list[Path]) -> None:
    out = CliRunner().invoke(main, ["predict", str(images[0]), "--model", str(tmp_path / "missing/x/y")])
    assert out.exit_code == 1 and "not a folder, a zoo entry name or a Hub id" in out.output
    folder = make_folder(tmp_path / "tiny", labelled_model())
    out = CliRunner().invoke(main, ["predict", str(tmp_path / "nope.jpg"), "--model", str(folder)])
    assert out.exit_code == 1 and "nope.jpg does not exist" in out.output
