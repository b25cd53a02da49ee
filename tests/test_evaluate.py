"""`swinzoo evaluate`: accuracy counted against an independent loop, in one process and under torchrun.

The reference is timm's model holding the same weights, fed by timm's own eval transform
(``create_transform(**resolve_data_config(...))``) with the preprocessing the folder declares. The images are
generated here and their labels are chosen from the reference's ranking, so the expected counts are stated by
hand: of 13 images, 6 are labelled with the reference's top-1 class, 3 with its third class and 4 with a class
outside its top 5, giving top-1 = 6/13 and top-5 = 9/13.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_model, timm_twin
from hostile import assert_clean_failure, leftovers, run_cli, tree_digest
from PIL import Image
from test_publish import make_folder, small_config, verification_record

from swinzoo.evaluate import EvaluateError, evaluate, imagenet_synsets
from swinzoo.modeling import SwinForImageClassification, SwinForMaskedImageModeling

timm = pytest.importorskip("timm")

# A transform unlike the Swin default (crop 0.875, bicubic, ImageNet mean/std): evaluate must read the folder's.
PREPROCESSING = {
    "input_size": 64,
    "crop_pct": 0.9,
    "interpolation": "bilinear",
    "mean": [0.5, 0.45, 0.4],
    "std": [0.25, 0.2, 0.3],
}
SIZES = [(80, 72), (64, 96), (100, 100), (70, 90), (120, 66), (64, 64), (90, 75)]
N_IMAGES = 13  # odd: two ranks take 7 and 6
TOP1_LABELLED, THIRD_LABELLED = 6, 3  # images 0-5: reference top-1; 6-8: its 3rd class; 9-12: outside its top 5
TOP1, TOP5 = 6, 9
ACTIVE = [3, 41, 207, 388, 650, 999]  # the 1k classes the head favours, so the data need only a few wnids

pytestmark = pytest.mark.usefixtures("small_model_threads")


def biased_model(num_labels: int, rows: list[int], seed: int = 0) -> SwinForImageClassification:
    """A random classifier whose head rows ``rows`` win over every other row by far (bias -500 elsewhere)."""
    model = random_model(SwinForImageClassification, small_config(num_labels=num_labels), seed)
    with torch.no_grad():
        model.head.weight.mul_(10.0)  # wide gaps between the favoured rows: the ranking is not a rounding matter
        keep = model.head.bias[rows].clone()
        model.head.bias.fill_(-500.0)
        model.head.bias[rows] = keep
    return model


def model_folder(path: Path, model: SwinForImageClassification) -> Path:
    folder = make_folder(path, model, verification=False)
    record = json.loads((folder / "conversion.json").read_text())
    record["preprocessing"] = PREPROCESSING
    (folder / "conversion.json").write_text(json.dumps(record, indent=2))
    return folder


def generate_images(folder: Path) -> list[Path]:
    """13 smooth random colour images of various sizes, PNG and JPEG."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(N_IMAGES):
        w, h = SIZES[i % len(SIZES)]
        coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
        path = folder / f"img_{i:02d}.{'png' if i % 2 else 'jpg'}"
        image.save(path)
        paths.append(path)
    return paths


def reference_top5(model, paths: list[Path], class_map: list[int] | None = None) -> list[list[int]]:
    """Top-5 1k classes per image from timm's model (same weights) on timm's own eval transform."""
    from timm.data import create_transform, resolve_data_config

    reference = timm_twin(model)
    config = resolve_data_config(
        {
            "input_size": (3, PREPROCESSING["input_size"], PREPROCESSING["input_size"]),
            "crop_pct": PREPROCESSING["crop_pct"],
            "interpolation": PREPROCESSING["interpolation"],
            "mean": tuple(PREPROCESSING["mean"]),
            "std": tuple(PREPROCESSING["std"]),
        },
        model=reference,
    )
    transform = create_transform(**config, is_training=False)
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.inference_mode():
        logits = reference(batch)
    if class_map is not None:
        logits = logits[:, class_map]
    ranked = logits.sort(dim=-1, descending=True)
    # the ranking must be clear-cut, or the comparison would hinge on float rounding
    assert (ranked.values[:, :5] - ranked.values[:, 1:6]).min().item() > 1e-3
    return ranked.indices[:, :5].tolist()


def labels_by_hand(top5: list[list[int]], active: list[int]) -> list[int]:
    """The class of each image: reference top-1, then its 3rd class, then an active class outside its top 5."""
    labels = []
    for i, ranking in enumerate(top5):
        if i < TOP1_LABELLED:
            labels.append(ranking[0])
        elif i < TOP1_LABELLED + THIRD_LABELLED:
            labels.append(ranking[2])
        else:
            labels.append(next(c for c in active if c not in ranking))
    return labels


def image_folder(root: Path, paths: list[Path], labels: list[int]) -> dict[Path, int]:
    """One folder per WordNet id (ImageFolder layout); returns each placed file's class."""
    synsets = imagenet_synsets()
    placed = {}
    for path, label in zip(paths, labels, strict=True):
        target = root / synsets[label] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        placed[target] = label
    return placed


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("evaluate")
    model = biased_model(1000, ACTIVE)
    folder = model_folder(base / "model", model)
    (base / "verification.json").write_text(json.dumps(verification_record(), indent=2))  # for publish
    paths = generate_images(base / "flat")
    top5 = reference_top5(model, paths)
    labels = labels_by_hand(top5, ACTIVE)
    placed = image_folder(base / "val", paths, labels)
    expected = {
        base / "val" / imagenet_synsets()[lab] / p.name: r for p, lab, r in zip(paths, labels, top5, strict=True)
    }
    return {"base": base, "model": model, "folder": folder, "paths": paths, "labels": labels, "top5": top5,
            "data": base / "val", "placed": placed, "expected": expected}  # fmt: skip


def copy_folder(setup: dict, tmp_path: Path) -> Path:
    """A fresh model folder (tests that write evaluation.json must not see each other's), recorded as real weights:
    its head is built to give the counts stated by hand, so evaluate has no synthetic-weights warning to print."""
    folder = Path(shutil.copytree(setup["folder"], tmp_path / "model"))
    record = json.loads((folder / "conversion.json").read_text())
    (folder / "conversion.json").write_text(json.dumps({**record, "synthetic": False}, indent=2))
    return folder


# --------------------------------------------------------------------------------------------- accuracy
def test_predictions_are_timms_and_counts_are_the_ones_stated_by_hand(setup: dict, tmp_path: Path) -> None:
    result = evaluate(str(copy_folder(setup, tmp_path)), setup["data"], batch_size=4, workers=0, progress=False)
    got = {Path(p.path): list(p.top5) for p in result.predictions}
    assert got == setup["expected"]
    assert {Path(p.path): p.target for p in result.predictions} == setup["placed"]
    assert (result.images, result.top1_correct, result.top5_correct) == (N_IMAGES, TOP1, TOP5)
    assert result.top1 == TOP1 / N_IMAGES and result.top5 == TOP5 / N_IMAGES
    assert result.transform["crop_pct"] == 0.9 and result.transform["interpolation"] == "bilinear"


def test_cli_json_with_workers_and_the_record_written_into_the_folder(setup: dict, tmp_path: Path) -> None:
    folder = copy_folder(setup, tmp_path)
    result = run_cli("evaluate", folder, "--data", setup["data"], "--batch-size", "5", "--workers", "2", "--json",
                     "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)  # one JSON object and nothing else
    assert (data["images"], data["top1_correct"], data["top5_correct"]) == (N_IMAGES, TOP1, TOP5)
    assert data["top1"] == pytest.approx(TOP1 / N_IMAGES) and data["top5"] == pytest.approx(TOP5 / N_IMAGES)
    assert data["dataset"]["path"] == str(setup["data"].resolve()) and data["dataset"]["classes"] == len(
        set(setup["labels"])
    )
    assert data["workers"] == 2 and data["versions"]["torch"] == torch.__version__
    assert data["transform"]["input_size"] == 64 and data["images_per_second"] > 0
    record = json.loads((folder / "evaluation.json").read_text())
    assert {k: record[k] for k in ("images", "top1", "top5")} == {k: data[k] for k in ("images", "top1", "top5")}
    import hashlib

    assert record["weights_sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert leftovers(folder) == []


def test_text_output_states_counts(setup: dict, tmp_path: Path) -> None:
    result = run_cli("evaluate", copy_folder(setup, tmp_path), "--data", setup["data"], "--workers", "0", "--quiet")
    assert result.exit_code == 0, result.output
    assert f"({TOP1}/{N_IMAGES})" in result.output and f"({TOP5}/{N_IMAGES})" in result.output


def test_limit_takes_images_spread_over_the_data(setup: dict, tmp_path: Path) -> None:
    result = evaluate(str(setup["folder"]), setup["data"], limit=5, workers=0, write=False, progress=False)
    ordered = sorted(setup["expected"])  # evaluation order: class folder, then file name
    assert [Path(p.path) for p in result.predictions] == [ordered[i * N_IMAGES // 5] for i in range(5)]
    chosen = [ordered[i * N_IMAGES // 5] for i in range(5)]
    assert result.top1_correct == sum(setup["placed"][p] == setup["expected"][p][0] for p in chosen)


def test_only_all_50000_images_of_the_1000_classes_are_called_the_full_validation_set(tmp_path: Path) -> None:
    from swinzoo.evaluate import EvalData

    full = EvalData(tmp_path, "image-folder", tuple((tmp_path / f"{i}.jpg", i // 50) for i in range(50_000)))
    assert full.describe()["full_validation_set"] and full.describe()["name"] == "ImageNet-1k validation"
    assert not full.describe(evaluated=1000)["full_validation_set"]  # --limit 1000
    short = EvalData(tmp_path, "image-folder", full.samples[:-1])
    assert not short.describe()["full_validation_set"]


def test_flat_folder_with_a_ground_truth_file_gives_the_same_counts(setup: dict, tmp_path: Path) -> None:
    synsets = imagenet_synsets()
    names = [p.name for p in setup["paths"]]
    text = tmp_path / "val.txt"
    text.write_text("".join(f"{n} {lab}\n" for n, lab in zip(names, setup["labels"], strict=True)))
    csv = tmp_path / "val.csv"  # header, commas, WordNet ids
    csv.write_text("file,label\n" + "".join(f"{n},{synsets[lab]}\n" for n, lab in zip(names, setup["labels"],
                                                                                       strict=True)))  # fmt: skip
    for gt in (text, csv):
        result = evaluate(str(setup["folder"]), setup["base"] / "flat", ground_truth=gt, workers=0, write=False,
                          progress=False)  # fmt: skip
        assert (result.images, result.top1_correct, result.top5_correct) == (N_IMAGES, TOP1, TOP5), gt.name
        assert result.dataset["layout"] == "ground-truth"


def test_22k_head_is_read_through_the_class_map(setup: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    class_map = [int(r) for r in rng.permutation(21841)[:1000]]  # row of the 22k head for each 1k class
    model = biased_model(21841, [class_map[c] for c in ACTIVE], seed=1)
    folder = model_folder(tmp_path / "m22k", model)
    top5 = reference_top5(model, setup["paths"], class_map)
    labels = labels_by_hand(top5, ACTIVE)
    image_folder(tmp_path / "val", setup["paths"], labels)
    result = evaluate(str(folder), tmp_path / "val", class_map=class_map, workers=0, progress=False)
    assert (result.images, result.top1_correct, result.top5_correct) == (N_IMAGES, TOP1, TOP5)
    assert "22k->1k" in result.head
    assert sorted(list(p.top5) for p in result.predictions) == sorted(top5)


# --------------------------------------------------------------------------------------------- torchrun
def test_torchrun_two_processes_count_each_image_once(setup: dict, tmp_path: Path) -> None:
    folder = copy_folder(setup, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "swinzoo.cli", "evaluate", str(folder), "--data", str(setup["data"]), "--batch-size", "3",
               "--workers", "0", "--json", "--quiet"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout  # rank 0 alone prints
    data = json.loads(lines[0])
    # a padded DistributedSampler would evaluate 14 images (one twice); each of the 13 is counted once
    assert (data["images"], data["top1_correct"], data["top5_correct"]) == (N_IMAGES, TOP1, TOP5)
    assert data["world_size"] == 2
    assert json.loads((folder / "evaluation.json").read_text())["world_size"] == 2


# --------------------------------------------------------------------------------------------- bad input
def _fails(*args, needles: list[str], untouched: list[Path]) -> str:
    before = {p: tree_digest(p) for p in untouched}
    result = run_cli("evaluate", *args, "--workers", "0", "--quiet")
    message = assert_clean_failure(result, *needles)
    for p in untouched:
        assert tree_digest(p) == before[p], f"{p} changed"
        assert leftovers(p) == []
    return message


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d, "does not exist"),
        (lambda d: (d.parent.mkdir(parents=True, exist_ok=True), d.write_text("x"), d)[-1], "is not a folder"),
        (lambda d: (d.mkdir(parents=True), d)[-1], "empty"),
    ],
    ids=["missing", "a-file", "empty"],
)
def test_missing_file_or_empty_data_is_refused(setup: dict, tmp_path: Path, make, needle: str) -> None:
    data = make(tmp_path / "data")
    _fails(setup["folder"], "--data", data, needles=[str(data), needle], untouched=[setup["folder"]])


def test_an_unreadable_data_folder_is_named(setup: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "locked"
    data.mkdir()
    real = os.scandir

    def scandir(path="."):
        if Path(path) == data:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    _fails(setup["folder"], "--data", data, needles=[str(data), "Permission denied"], untouched=[setup["folder"]])


def test_a_class_folder_that_is_not_a_wordnet_id_is_named(setup: dict, tmp_path: Path) -> None:
    data = Path(shutil.copytree(setup["data"], tmp_path / "val"))
    (data / "cats").mkdir()
    shutil.copy(setup["paths"][0], data / "cats" / "a.png")
    _fails(setup["folder"], "--data", data, needles=["cats", "WordNet"], untouched=[setup["folder"], data])


def test_loose_images_without_ground_truth_ask_for_it(setup: dict) -> None:
    _fails(setup["folder"], "--data", setup["base"] / "flat", needles=["--ground-truth"], untouched=[setup["folder"]])


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("img_00.jpg 1000", "outside 0..999"),
        ("img_00.jpg n99999999", "n99999999"),
        ("nothere.jpg 3", "nothere.jpg"),
        ("img_00.jpg 3 extra", "two columns"),
        ("../img_00.jpg 3", "inside --data"),
        ("img_01.png 3\nimg_01.png 4", "listed twice"),
    ],
    ids=["index-range", "unknown-wnid", "missing-file", "three-columns", "outside", "duplicate"],
)
def test_a_bad_ground_truth_line_is_named(setup: dict, tmp_path: Path, line: str, needle: str) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text(f"img_02.jpg 5\n{line}\n")
    _fails(setup["folder"], "--data", setup["base"] / "flat", "--ground-truth", gt, needles=[needle, "gt.txt"],
           untouched=[setup["folder"]])  # fmt: skip


def test_a_corrupt_image_is_named_and_skipped_only_when_asked(setup: dict, tmp_path: Path) -> None:
    data = Path(shutil.copytree(setup["data"], tmp_path / "val"))
    # the first image is labelled with the reference's top-1: skipping it leaves 5 top-1 and 8 top-5 hits
    first = next(p for p in setup["placed"] if p.name == setup["paths"][0].name)
    broken = data / first.relative_to(setup["data"])
    broken.write_bytes(broken.read_bytes()[:40])
    folder = copy_folder(setup, tmp_path)
    _fails(folder, "--data", data, needles=[str(broken), "--skip-corrupt"], untouched=[folder, data])
    result = run_cli("evaluate", folder, "--data", data, "--workers", "0", "--skip-corrupt", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["images"], out["top1_correct"], out["top5_correct"], out["skipped"]) == (N_IMAGES - 1, 5, 8, 1)
    assert out["skipped_files"] == [str(broken)]


def test_a_head_that_does_not_fit_imagenet_1k_is_refused(setup: dict, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m7", random_model(SwinForImageClassification, small_config(num_labels=7)))
    _fails(folder, "--data", setup["data"], needles=[str(folder), "7 classes", "1000"], untouched=[folder])


def test_imagenet_labels_in_another_order_are_refused(setup: dict, tmp_path: Path) -> None:
    from swinzoo.manifest import label_names

    names = label_names("imagenet-1k")
    swapped = [names[1], names[0], *names[2:]]
    model = random_model(SwinForImageClassification, small_config(num_labels=1000, id2label=dict(enumerate(swapped))))
    folder = make_folder(tmp_path / "swapped", model)
    _fails(folder, "--data", setup["data"], needles=["id2label[0]", "wrong label order"], untouched=[folder])


def test_a_simmim_pretrain_folder_or_entry_is_refused_with_the_reason(setup: dict, tmp_path: Path) -> None:
    model = random_model(SwinForMaskedImageModeling, small_config(num_labels=1, encoder_stride=16))
    folder = make_folder(tmp_path / "mim", model)
    _fails(folder, "--data", setup["data"], needles=["SimMIM", "no classifier"], untouched=[folder])
    from swinzoo.manifest import load_manifests

    name = next(e.name for e in load_manifests().values() if e.kind == "simmim-pretrain")
    _fails(name, "--data", setup["data"], needles=[name, "no classifier"], untouched=[setup["data"]])


def test_a_22k_class_map_of_the_wrong_size_is_refused(setup: dict, tmp_path: Path) -> None:
    model = biased_model(21841, [0], seed=2)
    folder = model_folder(tmp_path / "m22k", model)
    with pytest.raises(EvaluateError, match="999 entries"):
        evaluate(str(folder), setup["data"], class_map=list(range(999)), workers=0, progress=False)


def test_a_22k_head_without_a_map_uses_swinzoos_official_one(
    setup: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    class_map = [int(r) for r in rng.permutation(21841)[:1000]]
    model = biased_model(21841, [class_map[c] for c in ACTIVE], seed=4)
    folder = model_folder(tmp_path / "m22k", model)
    top5 = reference_top5(model, setup["paths"], class_map)
    image_folder(tmp_path / "val", setup["paths"], labels_by_hand(top5, ACTIVE))
    monkeypatch.setattr("swinzoo.evaluate.map22kto1k", lambda: (class_map, {}))  # a map the test can score
    result = evaluate(str(folder), tmp_path / "val", workers=0, write=False, progress=False)
    assert (result.images, result.top1_correct, result.top5_correct) == (N_IMAGES, TOP1, TOP5)


def test_a_hub_repo_is_evaluated_and_its_cache_is_left_alone(setup: dict, tmp_path: Path) -> None:
    from hubserver import HubServer, hub_env

    from swinzoo.publish import publish

    folder = model_folder(tmp_path / "tiny", setup["model"])
    (folder / "verification.json").write_text((setup["base"] / "verification.json").read_text())
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token="hf_evaluate_test"):
        publish(folder, "alice/tiny", force=True)  # the gate is not under test here
        result = evaluate("alice/tiny", setup["data"], workers=0, progress=False)
    assert (result.images, result.top1_correct, result.top5_correct) == (N_IMAGES, TOP1, TOP5)
    assert result.model.startswith("alice/tiny@main") and result.written is None
    assert not list((tmp_path / "hf-cache").rglob("evaluation.json"))


def test_evaluating_synthetic_weights_warns_and_their_card_claims_no_accuracy(setup: dict, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    from swinzoo.card import build_card

    folder = copy_folder(setup, tmp_path)
    record = json.loads((folder / "conversion.json").read_text())
    record["synthetic"] = True
    (folder / "conversion.json").write_text(json.dumps(record, indent=2))
    result = run_cli("evaluate", folder, "--data", setup["data"], "--workers", "0", "--quiet")
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC weights" in result.output and "means nothing" in result.output
    assert (folder / "evaluation.json").is_file()  # measured, recorded, but not claimed
    card = ModelCard(str(build_card(folder)))
    assert card.data.eval_results is None and card.data.get("model-index") is None


# --------------------------------------------------------------------------------------------- dtype
def test_bfloat16_run_records_its_top1_agreement_with_float32(setup: dict, tmp_path: Path) -> None:
    folder = copy_folder(setup, tmp_path)
    result = run_cli("evaluate", folder, "--data", setup["data"], "--workers", "0", "--quiet", "--dtype", "bfloat16")
    assert result.exit_code == 0, result.output
    record = json.loads((folder / "evaluation.json").read_text())
    assert record["dtype"] == "bfloat16"
    # float32 top-1 here is timm's (setup["expected"]), not the float32 twin evaluate runs beside the model
    bf16 = evaluate(str(folder), setup["data"], workers=0, write=False, progress=False, dtype="bfloat16")
    same = sum(p.top5[0] == setup["expected"][Path(p.path)][0] for p in bf16.predictions) / bf16.images
    assert record["float32_top1_agreement"] == pytest.approx(same) and bf16.float32_top1_agreement == pytest.approx(
        same
    )
    assert f"bfloat16: top-1 agrees with float32 on {100 * same:.2f}%" in result.output
    float32 = evaluate(str(folder), setup["data"], workers=0, write=False, progress=False, dtype="float32")
    assert float32.dtype == "float32" and float32.float32_top1_agreement is None


@pytest.mark.parametrize("native", [True, False])
def test_auto_dtype_is_bfloat16_only_where_the_hardware_runs_it(setup: dict, monkeypatch, native: bool) -> None:
    import swinzoo.loading

    monkeypatch.setattr(swinzoo.loading, "bfloat16_is_native", lambda device=None: native)
    result = evaluate(
        str(setup["folder"]), setup["data"], limit=4, workers=0, write=False, progress=False, dtype="auto"
    )
    assert result.dtype == ("bfloat16" if native else "float32")


def test_bfloat16_detection_follows_the_cpu_flags() -> None:
    from swinzoo.loading import bfloat16_is_native

    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    if "AMX" in torch.backends.cpu.get_cpu_capability().upper():
        pytest.skip("torch reports AMX itself")
    assert bfloat16_is_native("cpu") == ("amx_bf16" in flags or "avx512_bf16" in flags)
