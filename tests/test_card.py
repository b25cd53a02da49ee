"""Model cards: written with huggingface_hub's ModelCard and read back with ModelCard.load.

Expected metadata are facts stated here (MODELHUB accuracy, the transformers / timm ids of the same weights),
not values read from the code under test; the verification table is checked against a verification.json
written by swinzoo.verify's own writer, so the card and the verifier agree on the file's shape.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import random_model
from huggingface_hub import ModelCard
from test_publish import make_folder, small_config, verification_record

from swinzoo.card import build_card, write_card
from swinzoo.modeling import SwinForImageClassification, SwinForMaskedImageModeling

IN21K = "imagenet-21k"  # ImageNet-22K's id on the Hub


def _converted_from(synthetic: bool) -> dict | None:
    """make_folder records a synthetic source; a card of real weights needs a record of a real download (bound
    by the verdict as verify binds it)."""
    if synthetic:
        return None
    return {"source": "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/x.pth", "synthetic": False}


def classifier_folder(path: Path, entry: str = "", *, synthetic: bool = False, **kwargs) -> Path:
    model = random_model(SwinForImageClassification, small_config())
    return make_folder(path, model, entry=entry, conversion=_converted_from(synthetic), **kwargs)


def mim_folder(path: Path, entry: str, version: int = 1, *, synthetic: bool = False, **kwargs) -> Path:
    model = random_model(SwinForMaskedImageModeling, small_config(version, num_labels=1, encoder_stride=16))
    return make_folder(path, model, entry=entry, conversion=_converted_from(synthetic), **kwargs)


def card_of(folder: Path) -> ModelCard:
    return ModelCard.load(write_card(folder))


def test_metadata_parses_back_with_the_reported_accuracy_and_base_model(tmp_path: Path) -> None:
    card = card_of(classifier_folder(tmp_path / "t", entry="swin-tiny-patch4-window7-224"))
    data = card.data
    assert data.license == "mit" and data.library_name == "swinzoo"
    assert data.pipeline_tag == "image-classification"
    assert data.base_model == "microsoft/swin-tiny-patch4-window7-224"
    assert data.datasets == ["imagenet-1k"]
    assert data.model_name == "swin-tiny-patch4-window7-224"
    (result,) = data.eval_results
    assert result.metric_value == 81.2  # Swin-T ImageNet-1K top-1, MODELHUB.md
    assert (result.task_type, result.dataset_type, result.metric_type) == (
        "image-classification",
        "imagenet-1k",
        "accuracy",
    )
    assert "original authors" in result.source_name
    assert result.source_url == "https://github.com/microsoft/Swin-Transformer/blob/main/MODELHUB.md"
    assert "81.2 %" in card.text and "not re-measured" in card.text


@pytest.mark.parametrize(
    ("entry", "base_model", "datasets"),
    [
        # fine-tuned on 1K after 22K pretraining: both datasets; transformers holds the same weights
        ("swin-base-patch4-window7-224-22kto1k", "microsoft/swin-base-patch4-window7-224", [IN21K, "imagenet-1k"]),
        # ImageNet-22K classifier (21841 classes): the Hub calls that dataset imagenet-21k
        ("swin-tiny-patch4-window7-224-22k", "timm/swin_tiny_patch4_window7_224.ms_in22k", ["imagenet-21k"]),
        # no transformers copy: timm's Hub id
        ("swin-base-patch4-window7-224", "timm/swin_base_patch4_window7_224.ms_in1k", ["imagenet-1k"]),
        # no copy anywhere: no base_model
        ("swin-tiny-c24-patch4-window8-256", None, ["imagenet-1k"]),
    ],
)  # fmt: skip
def test_base_model_and_datasets_follow_the_checkpoint_lineage(
    tmp_path: Path, entry: str, base_model: str | None, datasets: list[str]
) -> None:
    data = card_of(classifier_folder(tmp_path / "t", entry=entry)).data
    assert data.base_model == base_model
    assert data.datasets == datasets


def test_simmim_pretrain_card_is_image_feature_extraction_and_cites_simmim(tmp_path: Path) -> None:
    card = card_of(mim_folder(tmp_path / "m", entry="simmim-swin-base-window6-192-100ep"))
    data = card.data
    assert data.pipeline_tag == "image-feature-extraction"
    assert data.base_model == "microsoft/swin-base-simmim-window6-192"
    assert "simmim" in data.tags and data.eval_results is None  # no classifier, no accuracy
    assert "SimMIM: A Simple Framework for Masked Image Modeling" in card.text
    assert "Hierarchical Vision Transformer using Shifted Windows" in card.text
    assert "Scaling Up Capacity" not in card.text


def test_simmim_swinv2_finetune_cites_v2_and_the_data_scaling_study(tmp_path: Path) -> None:
    card = card_of(classifier_folder(tmp_path / "f", entry="simmim-swinv2-base-22k-125k-ft"))
    assert card.data.datasets == ["imagenet-21k", "imagenet-1k"]
    assert "Swin Transformer V2: Scaling Up Capacity and Resolution" in card.text
    assert "On Data Scaling in Masked Image Modeling" in card.text
    assert card.data.eval_results and "original authors" in card.data.eval_results[0].source_name


def test_verification_table_from_verify_writer(tmp_path: Path) -> None:
    from swinzoo.verify import Comparison, EntryReport, ReferenceResult, write_verification

    folder = classifier_folder(tmp_path / "t", entry="swin-tiny-patch4-window7-224", verification=None)
    report = EntryReport(
        entry="swin-tiny-patch4-window7-224",
        status="pass",
        images=["chelsea.jpg", "rocket.jpg"],
        source_sha256="5" * 64,
        references=[
            ReferenceResult(
                reference="timm",
                status="pass",
                library="timm",
                library_version="1.0.31",
                comparisons=[
                    Comparison("logits", 1.25e-6, 9.0, 1e-3, True),
                    Comparison("stage4", 3.5e-6, 50.0, 5e-3, True),
                ],
                top5_agreement=1.0,
            ),
            ReferenceResult(reference="transformers", status="n/a", reason="no transformers layout"),
        ],
    )
    write_verification(folder, report)
    card = card_of(folder)
    assert "| timm | 1.0.31 | 1.25e-06 | 3.50e-06 | 100.0 % | pass |" in card.text
    assert "| transformers | ? | - | - | - | n/a (no transformers layout) |" in card.text
    assert "`chelsea.jpg`, `rocket.jpg`" in card.text and "atol 1.00e-05 + rtol 1.00e-04" in card.text
    assert "NOT VERIFIED" not in card.text and "FAILED" not in card.text
    assert "verified" in card.data.tags


def test_missing_verification_is_a_clear_not_verified_line(tmp_path: Path) -> None:
    card = card_of(classifier_folder(tmp_path / "t", verification=None))
    assert "**NOT VERIFIED**" in card.text and "swinzoo verify --converted" in card.text
    assert "not-verified" in card.data.tags and "verified" not in card.data.tags


def test_failed_verification_says_failed_and_lists_the_problems(tmp_path: Path) -> None:
    card = card_of(classifier_folder(tmp_path / "t", verification=verification_record(passed=False)))
    assert "**VERIFICATION FAILED**" in card.text
    assert "timm: logits differ by 3.2e-02" in card.text
    assert "| timm | 1.0.31 | 0.032 |" in card.text
    assert "not-verified" in card.data.tags


def test_extra_and_unknown_fields_in_verification_json_are_tolerated(tmp_path: Path) -> None:
    record = verification_record(future_field={"x": 1})
    record["references"][0]["another_new_field"] = [1, 2]
    del record["references"][1]["hidden_max_abs_diff"]
    card = card_of(classifier_folder(tmp_path / "t", verification=record))
    assert "| transformers | 5.23.0 | 2.50e-06 | - | 100.0 % | pass |" in card.text


def test_synthetic_weights_are_flagged(tmp_path: Path) -> None:
    card = card_of(classifier_folder(tmp_path / "t", synthetic=True))  # make_folder records synthetic = true
    assert "SYNTHETIC WEIGHTS" in card.text and "synthetic-weights" in card.data.tags


@pytest.mark.parametrize("fmt", ["swinzoo", "transformers", "timm"])
def test_synthetic_card_claims_no_base_model_accuracy_or_verification_and_says_random_first(
    tmp_path: Path, fmt: str
) -> None:
    # an entry that has a Hub copy (base_model) and reported accuracy, verified (the pipeline passed)
    folder = classifier_folder(tmp_path / "t", entry="swin-tiny-patch4-window7-224", synthetic=True)
    card = ModelCard(str(build_card(folder, fmt=fmt)))
    assert card.data.base_model is None
    assert card.data.eval_results is None and card.data.get("model-index") is None
    assert "verified" not in card.data.tags and "synthetic-weights" in card.data.tags
    assert "81.2" not in card.text  # the authors' Swin-T top-1 belongs to the real weights
    first = card.text.lstrip().splitlines()[0]
    assert first.startswith("# swin-tiny-patch4-window7-224") and "RANDOM WEIGHTS" in first
    assert "synthetic, for testing the pipeline only" in first


def test_real_conversion_of_the_same_entry_keeps_base_model_accuracy_and_verified(tmp_path: Path) -> None:
    """The control of the test above: only the synthetic record removes them."""
    card = card_of(classifier_folder(tmp_path / "t", entry="swin-tiny-patch4-window7-224"))
    assert card.data.base_model and card.data.eval_results and "verified" in card.data.tags
    assert "RANDOM" not in card.text.lstrip().splitlines()[0]


@pytest.mark.parametrize("fmt", ["swinzoo", "transformers"])
def test_simmim_v2_card_states_normalised_targets_and_what_transformers_loss_computes(tmp_path: Path, fmt: str) -> None:
    folder = mim_folder(tmp_path / "m", entry="simmim-swinv2-small-1k-125k", version=2)
    config = json.loads((folder / "config.json").read_text())
    # as `swinzoo convert` writes this entry (manifest norm_target = true, norm_target_patch_size = 47)
    (folder / "config.json").write_text(
        json.dumps({**config, "mim_norm_target": True, "mim_norm_target_patch_size": 47})
    )
    text = build_card(folder, fmt=fmt, verification=None).text
    assert "## SimMIM loss" in text
    assert "normalised targets" in text and "47x47 window" in text and "mim_norm_target=True" in text
    assert "transformers' masked-image-modelling loss" in text and "plain L1 on the raw pixels" in text


def test_simmim_v1_card_says_raw_pixel_targets_agree_with_transformers(tmp_path: Path) -> None:
    text = card_of(mim_folder(tmp_path / "m", entry="simmim-swin-base-window6-192-100ep")).text
    assert "## SimMIM loss" in text and "raw" in text and "normalised targets" not in text


def test_is_synthetic_reads_the_folders_record(tmp_path: Path) -> None:
    from swinzoo.card import is_synthetic

    assert is_synthetic(classifier_folder(tmp_path / "s", synthetic=True)) is True
    assert is_synthetic(classifier_folder(tmp_path / "r")) is False
    assert is_synthetic(tmp_path / "nothing-here") is False


def test_card_without_an_entry_has_no_model_index_and_uses_the_folder_name(tmp_path: Path) -> None:
    card = card_of(classifier_folder(tmp_path / "my-model"))
    assert card.data.eval_results is None and card.data.base_model is None
    assert card.text.lstrip().startswith("# my-model")


def test_usage_names_the_repo_and_the_format_library(tmp_path: Path) -> None:
    folder = classifier_folder(tmp_path / "t", entry="swin-tiny-patch4-window7-224")
    card = build_card(folder, repo_id="alice/swin-t")
    assert 'swinzoo.from_pretrained("alice/swin-t")' in str(card) and "swinzoo predict" in str(card)
    timm_card = build_card(folder, fmt="timm", repo_id="alice/swin-t-timm")
    assert timm_card.data.library_name == "timm"
    assert 'timm.create_model("hf-hub:alice/swin-t-timm", pretrained=True)' in str(timm_card)
    hf_card = build_card(folder, fmt="transformers", repo_id="alice/swin-t-hf")
    assert 'AutoModelForImageClassification.from_pretrained("alice/swin-t-hf")' in str(hf_card)
    assert "resize the short side to 256, centre-crop 224 (bicubic)" in str(hf_card)


def test_write_card_in_converts_partial_folder_names_the_final_folder(tmp_path: Path) -> None:
    partial = classifier_folder(tmp_path / ".swin-x.4844.ab12cd_3.partial")  # folder.atomic_output's name
    path = write_card(partial)
    text = path.read_text()
    assert str(tmp_path / "swin-x") in text and ".partial" not in text
    assert text.splitlines()[0] == "---"
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044  # readable by others, like the other files
    assert sorted(p.name for p in partial.iterdir()) == [
        "README.md",
        "config.json",
        "conversion.json",
        "model.safetensors",
        "verification.json",
    ]


def test_conversion_json_that_is_not_json_is_named(tmp_path: Path) -> None:
    folder = classifier_folder(tmp_path / "t")
    (folder / "conversion.json").write_text("{not json")
    from swinzoo.card import CardError

    with pytest.raises(CardError, match=r"conversion.json: not valid JSON"):
        write_card(folder)
    assert json.loads((folder / "config.json").read_text())["task"] == "image-classification"


@pytest.mark.parametrize(
    ("name", "body", "needle"),
    [
        ("conversion.json", '{"notes": "not a list"}', "field 'notes'"),
        ("conversion.json", '{"mapped": 3}', "field 'mapped'"),
        ("conversion.json", "null", "got null"),
        ("config.json", '{"version": "two"}', "field 'version'"),
        ("config.json", '{"id2label": 7}', "field 'id2label'"),
        ("verification.json", '{"images": 3, "passed": true}', "field 'images'"),
        ("verification.json", '{"references": [1]}', "field 'references'"),
    ],
)
def test_a_record_of_the_wrong_shape_is_a_card_error_naming_file_and_field(
    tmp_path: Path, name: str, body: str, needle: str
) -> None:
    from swinzoo.card import CardError

    folder = classifier_folder(tmp_path / "t")
    path = folder / name
    if body != "null":  # keep the rest of the record: only the one field is wrong
        path.write_text(json.dumps({**json.loads(path.read_text()), **json.loads(body)}))
    else:
        path.write_text(body)
    with pytest.raises(CardError, match=needle) as caught:
        build_card(folder)
    assert str(path) in str(caught.value)


def test_bad_utf8_in_a_record_is_a_card_error(tmp_path: Path) -> None:
    from swinzoo.card import CardError

    folder = classifier_folder(tmp_path / "t")
    (folder / "conversion.json").write_bytes(b'{"source": "\xff"}')
    with pytest.raises(CardError, match="conversion.json: not UTF-8"):
        build_card(folder)


def test_inferred_simmim_v2_file_gets_the_official_normalised_targets_and_says_so(tmp_path: Path) -> None:
    import torch

    import swinzoo
    from swinzoo.config import SwinConfig
    from swinzoo.convert import convert
    from swinzoo.synthetic import write_official_checkpoint
    from swinzoo.verify import masked_l1_loss, simmim_mask

    config = SwinConfig(version=2, image_size=64, embed_dim=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4],
                        window_size=4, num_labels=1, encoder_stride=32)  # fmt: skip
    ckpt = write_official_checkpoint(tmp_path / "c.pth", config, "simmim-swinv2-pretrain")
    out = tmp_path / "out"
    result = convert(source=ckpt, out_dir=out, source_image_size=64, progress=False)  # no entry: architecture inferred
    saved = json.loads((out / "config.json").read_text())
    assert saved["mim_norm_target"] is True and saved["mim_norm_target_patch_size"] == 47
    notes = json.loads((out / "conversion.json").read_text())["notes"]
    assert any("normalised over 47x47 windows" in n and "official SimMIM V2" in n for n in notes)
    assert any("normalised over 47x47" in n for n in result.notes)
    card = (out / "README.md").read_text()
    assert "47x47 window" in card and "plain L1 on the raw pixels" in card
    # the loss it computes is SimMIM V2's, on 47x47-normalised targets (verify's independent implementation)
    model = swinzoo.from_pretrained(out).eval()
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mask = simmim_mask(2, 64, 4, 32, 0.6, seed=0)
    with torch.no_grad():
        output = model(pixels, bool_masked_pos=mask)
    expected = masked_l1_loss(pixels, output.reconstruction, mask, 4, 47)
    raw = masked_l1_loss(pixels, output.reconstruction, mask, 4, None)
    assert torch.allclose(output.loss, expected, atol=1e-6) and not torch.allclose(output.loss, raw, atol=1e-3)


def test_partial_folder_names_with_the_process_id_show_the_final_folder(tmp_path: Path) -> None:
    from swinzoo.card import display_path

    # folder.atomic_output's temporary: .NAME.<pid>.<random>.partial
    assert display_path(tmp_path / ".swin-x.4844.ab12cd_3.partial") == tmp_path / "swin-x"
    assert display_path(tmp_path / ".swin.v2.77.zz.partial") == tmp_path / "swin.v2"
    assert display_path(tmp_path / "plain") == tmp_path / "plain"


def test_measured_accuracy_stands_beside_the_reported_one_and_a_stale_measurement_is_not_shown(
    tmp_path: Path,
) -> None:
    import hashlib

    folder = classifier_folder(tmp_path / "t", entry="swin-tiny-patch4-window7-224")
    weights = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    evaluation = {"images": 50000, "top1": 0.81156, "top5": 0.95512, "skipped": 0, "weights_sha256": weights,
                  "dataset": {"name": "ImageNet-1k validation", "full_validation_set": True}}  # fmt: skip
    (folder / "evaluation.json").write_text(json.dumps(evaluation))
    card = card_of(folder)
    by_name = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert by_name["Top-1 accuracy (%)"] == 81.2  # the authors'
    assert by_name["Top-1 accuracy (%), measured by swinzoo evaluate"] == 81.156
    assert by_name["Top-5 accuracy (%), measured by swinzoo evaluate"] == 95.512
    assert "measured by `swinzoo evaluate` on the full ImageNet-1K validation set" in card.text

    (folder / "evaluation.json").write_text(json.dumps({**evaluation, "weights_sha256": "0" * 64}))
    stale = card_of(folder)
    assert [r.metric_name for r in stale.data.eval_results] == ["Top-1 accuracy (%)"]
    assert "measured by `swinzoo evaluate`" not in stale.text


def test_verification_that_is_neither_true_none_nor_a_mapping_is_a_card_error(tmp_path: Path) -> None:
    from swinzoo.card import CardError

    folder = classifier_folder(tmp_path / "t")
    with pytest.raises(CardError, match="verification=False"):
        build_card(folder, verification=False)


@pytest.mark.parametrize("dtype", [[1], {"F32": 1}, None, 32])
def test_a_safetensors_header_with_a_non_string_dtype_has_no_known_dtype(tmp_path: Path, dtype: object) -> None:
    import struct

    from swinzoo.gate import stored_dtype

    def weights(value: object) -> Path:
        header = json.dumps({"w": {"dtype": value, "shape": [1], "data_offsets": [0, 4]}}).encode()
        path = tmp_path / f"w{len(list(tmp_path.iterdir()))}.safetensors"
        path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
        return path

    assert stored_dtype(weights("F32")) == "float32"  # the same layout with a real dtype is read
    assert stored_dtype(weights(dtype)) is None


def test_the_card_and_the_gate_import_nothing_of_verify_or_publish() -> None:
    """Issue 19: the gate has its own module that publish, card and verify read; the card renders only. Imports
    inside functions count too (they hid the card <-> verify cycle)."""
    import ast

    import swinzoo

    root = Path(swinzoo.__file__).parent
    for module in ("card.py", "gate.py"):
        tree = ast.parse((root / module).read_text())
        imported = {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
        }
        assert not {m for m in imported if m.split(".")[0] in ("verify", "publish")}, (module, imported)
    gate = ast.parse((root / "gate.py").read_text())
    assert not {n.module for n in ast.walk(gate) if isinstance(n, ast.ImportFrom) and n.level == 1} & {"card"}
