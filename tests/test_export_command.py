"""`swinzoo export`: ONNX and OpenVINO files (float32 and int8) and their parity records, end to end.

Expected values come from outside the code under test: each exported file is loaded here by its own runtime
(onnxruntime's InferenceSession, OpenVINO's Core) and compared with timm holding the same weights (conftest's
timm_twin, built by the test) or with swinzoo eager; the file layout is the one transformers.js and optimum read.
Tiny configs (64 px) everywhere: the machine is shared.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import random_model, timm_twin, tiny_config
from hubserver import HubServer, hub_env
from huggingface_hub import ModelCard, hf_hub_download
from test_publish import TOKEN, make_folder, small_config

import swinzoo
from swinzoo import export as export_module
from swinzoo.cli import main
from swinzoo.export import ExportError, export, sample_images
from swinzoo.modeling import SwinForImageClassification, SwinForMaskedImageModeling
from swinzoo.publish import PublishError, publish

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

pytestmark = pytest.mark.usefixtures("small_model_threads")


def cli(*args: str) -> dict:
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def pixels(folder: Path) -> torch.Tensor:
    return swinzoo.ImageProcessor.from_pretrained(folder)(images=[str(p) for p in sample_images()])["pixel_values"]


def entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


@pytest.fixture(scope="module")
def v1(tmp_path_factory) -> tuple[Path, dict]:
    """A verified tiny Swin v1 folder (one transformers can hold too) and its float32 ONNX export (CLI)."""
    torch.set_num_threads(1)
    folder = make_folder(
        tmp_path_factory.mktemp("v1") / "tiny", random_model(SwinForImageClassification, small_config(1), 11)
    )
    return folder, cli("export", str(folder), "--format", "onnx")


@pytest.fixture(scope="module")
def v2_int8(tmp_path_factory) -> tuple[Path, dict]:
    """SwinV2 with pretrained windows smaller than its windows (as the window12to24 fine-tunes), int8 ONNX."""
    torch.set_num_threads(1)
    config = tiny_config(2, image_size=128, window_size=8, pretrained_window_sizes=[4, 4, 4, 2])
    folder = make_folder(tmp_path_factory.mktemp("v2") / "tiny", random_model(SwinForImageClassification, config, 12))
    return folder, cli("export", str(folder), "--format", "onnx", "--int8")


# --------------------------------------------------------------------------------------------- float32 ONNX
def test_onnx_export_is_checker_clean_with_named_io_and_dynamic_batch(v1):
    folder, record = v1
    path = folder / "onnx" / "model.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert graph.input[0].name == "pixel_values" and dims == ["batch", 3, 64, 64]
    assert [o.name for o in graph.output] == ["logits"]
    assert record["opset"] == onnx.load(str(path)).opset_import[0].version and record["batch"] == "dynamic"
    assert record["image_size"] == [64, 64] and "padding" in record["image_size_note"]


def test_onnx_runtime_on_other_batch_sizes_equals_timm(v1):
    folder, _ = v1
    model = swinzoo.from_pretrained(folder).eval()
    reference = timm_twin(model)
    run = session(folder / "onnx" / "model.onnx")
    for n in (1, 5):
        x = torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(n))
        (got,) = run.run(["logits"], {"pixel_values": x.numpy()})
        with torch.inference_mode():
            expected = reference(x)
        assert (torch.from_numpy(got) - expected).abs().max().item() <= 1e-4


def test_record_holds_figures_that_rerunning_the_file_reproduces(v1):
    folder, record = v1
    written = json.loads((folder / "onnx" / "model.onnx.json").read_text())
    assert {k: v for k, v in record.items() if k != "written"} == written
    assert written["runtimes"]["onnxruntime"] == ort.__version__ and written["runtimes"]["onnx"] == onnx.__version__
    x = pixels(folder)
    (got,) = session(folder / "onnx" / "model.onnx").run(["logits"], {"pixel_values": x.numpy()})
    with torch.inference_mode():
        timm_logits = timm_twin(swinzoo.from_pretrained(folder).eval())(x)
    diff = (torch.from_numpy(got).double() - timm_logits.double()).abs().max().item()
    (row,) = [r for r in written["checks"] if r["against"].startswith("timm")]
    assert row["images"] == f"{len(sample_images())} sample images" and row["status"] == "pass"
    assert row["max_abs_diff"] == pytest.approx(diff, rel=0.05, abs=1e-7) and row["top5_agreement"] == 1.0
    assert written["files"]["model.onnx"]["size_bytes"] == (folder / "onnx" / "model.onnx").stat().st_size


def test_an_existing_export_is_kept_without_overwrite(v1):
    folder, _ = v1
    before = (folder / "onnx" / "model.onnx").read_bytes()
    result = CliRunner().invoke(main, ["export", str(folder)])
    assert result.exit_code == 1 and "model.onnx exists; pass --overwrite" in result.output
    assert (folder / "onnx" / "model.onnx").read_bytes() == before


# --------------------------------------------------------------------------------------------- int8
def test_int8_onnx_reports_agreement_with_float32_and_never_equality(v2_int8):
    folder, record = v2_int8
    path = folder / "onnx" / "model_quantized.onnx"
    assert record["precision"] == "int8" and record["equal_to_float32"] is None
    assert record["quantization"]["method"] == "onnxruntime.quantization.quantize_dynamic"
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops  # really int8, not float32 renamed
    generated = [r for r in record["checks"] if "generated" in r["images"]]
    assert len(generated) == 1 and generated[0]["images"].startswith("256 generated images")
    assert 0.5 <= generated[0]["top1_agreement"] <= 1.0 and generated[0]["max_abs_diff"] > 0
    assert all(r["status"].startswith("measured") for r in record["checks"])
    # the recorded sample-image figures are what onnxruntime gives on the file, against timm
    x = pixels(folder)
    (got,) = session(path).run(["logits"], {"pixel_values": x.numpy()})
    with torch.inference_mode():
        timm_logits = timm_twin(swinzoo.from_pretrained(folder).eval())(x)
    (row,) = [r for r in record["checks"] if r["against"].startswith("timm")]
    diff = (torch.from_numpy(got).double() - timm_logits.double()).abs().max().item()
    assert row["max_abs_diff"] == pytest.approx(diff, rel=0.05)
    agree = (torch.from_numpy(got).argmax(-1) == timm_logits.argmax(-1)).double().mean().item()
    assert row["top1_agreement"] == pytest.approx(agree)


# --------------------------------------------------------------------------------------------- other models
def test_backbone_export_gives_feature_maps_of_every_stage(tmp_path):
    model = random_model(SwinForImageClassification, tiny_config(1), 13)
    folder = make_folder(tmp_path / "tiny", model)
    record = cli("export", str(folder), "--task", "backbone", "--out", str(tmp_path / "bb"))
    names = [f"feature_maps.stage{i}" for i in range(1, 5)]
    assert record["outputs"] == names and record["task"] == "backbone"
    x = pixels(folder)
    maps = session(tmp_path / "bb" / "model.onnx").run(names, {"pixel_values": x.numpy()})
    # independent: timm's stage outputs, LayerNorm-ed here with torch's functional layer_norm
    backbone = swinzoo.SwinBackbone.from_pretrained(folder, out_features=["stage1", "stage2", "stage3", "stage4"])
    with torch.inference_mode():
        _, stages = timm_twin(model).forward_intermediates(x, norm=False, output_fmt="NCHW")
        for i, got in enumerate(maps):
            norm = backbone.stage_norms[f"stage{i + 1}"]
            expected = torch.nn.functional.layer_norm(
                stages[i].permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias, norm.eps
            )
            assert (torch.from_numpy(got) - expected.permute(0, 3, 1, 2)).abs().max().item() <= 1e-4


def test_simmim_export_gives_the_reconstruction(tmp_path):
    model = random_model(SwinForMaskedImageModeling, small_config(2, num_labels=1, encoder_stride=16), 14)
    folder = make_folder(tmp_path / "mim", model)
    record = cli("export", str(folder))
    assert record["outputs"] == ["reconstruction"] and record["timm"] == "compared"
    x = pixels(folder)
    (got,) = session(folder / "onnx" / "model.onnx").run(["reconstruction"], {"pixel_values": x.numpy()})
    with torch.inference_mode():
        expected = model(x).reconstruction
    assert got.shape == (6, 3, 64, 64)
    assert (torch.from_numpy(got) - expected).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max().item())


def test_retargeted_folder_exports_at_its_new_size(tmp_path):
    source = make_folder(tmp_path / "src", random_model(SwinForImageClassification, tiny_config(2), 15))
    moved = swinzoo.from_pretrained(source, image_size=96, window_size=6)
    folder = make_folder(tmp_path / "moved", moved)
    record = cli("export", str(folder), "--batch", "2")
    assert record["image_size"] == [96, 96] and record["batch"] == 2
    x = pixels(folder)
    assert x.shape[-1] == 96
    run = session(folder / "onnx" / "model.onnx")
    (got,) = run.run(["logits"], {"pixel_values": x[:2].numpy()})
    with torch.inference_mode():
        expected = timm_twin(swinzoo.from_pretrained(folder).eval())(x[:2])
    assert (torch.from_numpy(got) - expected).abs().max().item() <= 1e-4


# --------------------------------------------------------------------------------------------- OpenVINO
@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_openvino_export_runs_in_openvino_core(tmp_path, int8):
    ov = pytest.importorskip("openvino")
    if int8:
        pytest.importorskip("nncf")
    model = random_model(SwinForImageClassification, tiny_config(2), 16)
    folder = make_folder(tmp_path / "tiny", model)
    record = cli("export", str(folder), "--format", "openvino", *(["--int8"] if int8 else []))
    stem = "openvino_model_int8" if int8 else "openvino_model"
    assert entries(folder / "openvino") == sorted([f"{stem}.bin", f"{stem}.xml", f"{stem}.xml.json"])
    compiled = ov.Core().compile_model(
        str(folder / "openvino" / f"{stem}.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    x = pixels(folder)
    got = torch.from_numpy(np.array(compiled(x.numpy())[compiled.output("logits")]))
    with torch.inference_mode():
        expected = timm_twin(model)(x)
    diff = (got - expected).abs().max().item()
    runtimes = {r["runtime"] for r in record["checks"]}
    if int8:
        assert record["quantization"]["method"].startswith("nncf.compress_weights") and diff > 1e-4
        assert record["equal_to_float32"] is None
    else:
        assert diff <= 1e-4 and "onnxruntime (CPU, float32)" in runtimes
    assert any(r.startswith("openvino") for r in runtimes) and record["runtimes"]["openvino"] == ov.get_version()


# --------------------------------------------------------------------------------------------- bad input
@pytest.fixture
def tiny(tmp_path) -> Path:
    return make_folder(tmp_path / "tiny", random_model(SwinForImageClassification, tiny_config(1), 17))


def refused(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_image_size_the_model_cannot_take_is_refused(tiny, tmp_path):
    assert "not a multiple of" in refused("export", str(tiny), "--image-size", "66")
    assert "patch size 4" in refused("export", str(tiny), "--image-size", "2")
    ape = make_folder(
        tmp_path / "ape", random_model(SwinForImageClassification, tiny_config(1, use_absolute_embeddings=True))
    )
    assert "absolute position embeddings" in refused("export", str(ape), "--image-size", "128")
    assert entries(tiny / "onnx") == [] and entries(ape / "onnx") == []


@pytest.mark.parametrize("how", ["unverified", "tampered"])
def test_folder_failing_the_publish_gate_is_refused(tmp_path, how):
    model = random_model(SwinForImageClassification, tiny_config(1), 18)
    folder = make_folder(tmp_path / "tiny", model, verification=how == "tampered")
    if how == "tampered":
        config = json.loads((folder / "config.json").read_text())
        config["layer_norm_eps"] = 1e-6
        (folder / "config.json").write_text(json.dumps(config))
    line = refused("export", str(folder))
    assert "refusing to export unverified weights" in line
    assert ("verification.json is missing" if how == "unverified" else "config_sha256") in line
    assert entries(folder / "onnx") == []
    if how == "unverified":  # --force exports, and the record says what the gate found
        record = cli("export", str(folder), "--force")
        assert record["gate"].startswith("NOT VERIFIED (--force)") and "verification.json is missing" in record["gate"]


def test_missing_extra_names_the_install_command(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    line = refused("export", str(tiny), "--format", "openvino")
    assert "openvino" in line and "pip install 'swinzoo[export]'" in line


def test_int8_with_a_format_that_cannot_hold_it_is_refused(tiny, monkeypatch):
    monkeypatch.delitem(export_module.INT8_FORMATS, "onnx")
    with pytest.raises(ExportError, match="--int8: the onnx format cannot hold int8"):
        export(tiny, "onnx", int8=True)
    monkeypatch.setitem(sys.modules, "nncf", None)
    assert "nncf" in refused("export", str(tiny), "--format", "openvino", "--int8")
    assert entries(tiny / "onnx") == [] and entries(tiny / "openvino") == []


def test_runtime_disagreeing_with_eager_fails_and_writes_nothing(tiny, monkeypatch):
    real = export_module._ort_runner

    def off_by_a_little(path, names, threads):
        run = real(path, names, threads)
        return lambda x: [y + 1e-2 for y in run(x)]

    monkeypatch.setattr(export_module, "_ort_runner", off_by_a_little)
    line = refused("export", str(tiny))
    assert "onnxruntime (CPU, float32) disagrees with swinzoo eager" in line and "nothing was written" in line
    assert entries(tiny / "onnx") == [] and not [p for p in tiny.iterdir() if p.name.startswith(".onnx")]


# --------------------------------------------------------------------------------------------- publish
@pytest.fixture
def hub(tmp_path: Path):
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token=TOKEN):
        yield server


@pytest.mark.parametrize("fmt", ["transformers", "swinzoo"])
def test_published_onnx_runs_from_the_hub_with_the_recorded_figures(v1, v2_int8, hub, tmp_path, fmt):
    folder, _ = v1 if fmt == "transformers" else v2_int8
    name = "model.onnx" if fmt == "transformers" else "model_quantized.onnx"
    publish(folder, f"alice/tiny-{fmt}", fmt=fmt)
    path = Path(hf_hub_download(f"alice/tiny-{fmt}", f"onnx/{name}"))
    record = json.loads(Path(hf_hub_download(f"alice/tiny-{fmt}", f"onnx/{name}.json")).read_text())
    assert record["files"][name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    snapshot = path.parent.parent
    x = swinzoo.ImageProcessor.from_pretrained(f"alice/tiny-{fmt}")(images=[str(p) for p in sample_images()])[
        "pixel_values"
    ]
    (got,) = session(path).run(["logits"], {"pixel_values": x.numpy()})
    with torch.inference_mode():
        expected = timm_twin(swinzoo.from_pretrained(f"alice/tiny-{fmt}").eval())(x)
    (row,) = [r for r in record["checks"] if r["against"].startswith("timm") and "sample" in r["images"]]
    diff = (torch.from_numpy(got).double() - expected.double()).abs().max().item()
    assert row["max_abs_diff"] == pytest.approx(diff, rel=0.05, abs=1e-7)
    card = ModelCard.load(f"alice/tiny-{fmt}").text
    assert f"`onnx/{name}`" in card and "## Exports" in card and (snapshot / "onnx").is_dir()
    (line,) = [row for row in card.splitlines() if row.startswith(f"| `onnx/{name}`")]
    assert line.replace("\\|", "").count("|") == 7  # six cells: the figures' own bars are escaped


def test_publish_refuses_an_export_changed_since_its_check(v1, hub, tmp_path):
    folder = Path(shutil.copytree(v1[0], tmp_path / "copy"))
    with (folder / "onnx" / "model.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(PublishError, match=r"model.onnx changed since it was exported"):
        publish(folder, "alice/tampered", fmt="transformers")
    assert hub.repos == {}


def test_optimum_loads_the_published_swin_v1_onnx(v1, hub):
    optimum_ort = pytest.importorskip(
        "optimum.onnxruntime",
        reason="optimum's ONNX Runtime classes (optimum-onnx) pin transformers<4.58 and huggingface_hub<1; "
        "this venv runs transformers 5.x (CI's transformers-majors 4.x leg installs it and runs this test)",
    )
    folder, _ = v1
    publish(folder, "alice/tiny-optimum", fmt="transformers")
    model = optimum_ort.ORTModelForImageClassification.from_pretrained("alice/tiny-optimum", subfolder="onnx")
    x = pixels(folder)
    with torch.inference_mode():
        expected = timm_twin(swinzoo.from_pretrained(folder).eval())(x)
    assert (model(pixel_values=x).logits - expected).abs().max().item() <= 1e-4
