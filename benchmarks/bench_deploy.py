"""Deployment speed and agreement: torch float32 / bfloat16 (swinzoo and timm), onnxruntime float32 / int8
(dynamic and static), OpenVINO float32 / int8, for Swin-T 224 and SwinV2-T 256, in one run.

Every runtime gets the same random weights (distinct values in every tensor); the ONNX and OpenVINO files are
made by ``swinzoo.export``'s own exporter and quantizers, so what is timed is what ``swinzoo export`` writes.
Beside each speed: top-1 agreement with torch float32 (swinzoo) and max |dlogit| on ``--images`` generated
images (``swinzoo.export.generated_images``). The machine's float32 and bfloat16 matmul peaks are measured in
the same run, so "bf16 is N x float32" can be read against what the hardware offers.

Timing: warm-up, then ``--rounds`` rounds; each round runs every variant in turn (a slow phase of a shared
machine hits all alike); the figure is the median over rounds. Throughput at batch ``--batch-size`` (8), latency
at batch 1.

    python benchmarks/bench_deploy.py                      # CPU, 2 threads, both models
    python benchmarks/bench_deploy.py --models swin-t --rounds 5 --json results.json
    python benchmarks/bench_deploy.py --device cuda        # + torch on CUDA, onnxruntime CUDA / TensorRT EPs

Targets (read them, nothing asserts them): swinzoo >= 1.3x timm at the same dtype on the CPU; onnxruntime and
OpenVINO float32 within 10 % of swinzoo float32 or ahead; bfloat16 >= 2x float32 on AMX CPUs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swinzoo import export as ex
from swinzoo.config import SwinConfig
from swinzoo.converters.engine import convert_state_dict, shapes_of
from swinzoo.converters.timm_layout import create_timm_model, timm_rules
from swinzoo.modeling import SwinForImageClassification
from swinzoo.processing import ImageProcessor
from swinzoo.synthetic import randomize_state

MODELS: dict[str, dict[str, Any]] = {
    "swin-t": dict(version=1, image_size=224, window_size=7),
    "swinv2-t": dict(version=2, image_size=256, window_size=8),
}
TINY = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), num_labels=1000, drop_path_rate=0.0)
Runner = Callable[[np.ndarray], np.ndarray]


def matmul_peak(dtype: torch.dtype, device: str, n: int = 2048, seconds: float = 1.5) -> float:
    """GFLOP/s of an n x n matmul in ``dtype``: what the hardware gives this process now."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        done += 1
        if device == "cuda":
            torch.cuda.synchronize()
    return 2 * n**3 * done / (time.perf_counter() - start) / 1e9


def models(name: str) -> tuple[SwinForImageClassification, torch.nn.Module]:
    config = SwinConfig(**MODELS[name], **TINY)
    model = SwinForImageClassification(config).eval()
    model.load_state_dict(randomize_state(model.state_dict(), seed=0))
    timm_model = create_timm_model(config).eval()
    state, _ = convert_state_dict(model.state_dict(), timm_rules(), shapes_of(timm_model), to_swinzoo=False)
    timm_model.load_state_dict(state, strict=True)
    return model, timm_model


def torch_runner(model: torch.nn.Module, dtype: torch.dtype, device: str, logits: bool) -> Runner:
    model = model.to(device=device, dtype=dtype)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(torch.from_numpy(x).to(device=device, dtype=dtype))
            out = out.logits if logits else out
            return out.float().cpu().numpy()

    return run


def ort_runner(path: Path, threads: int, provider: str = "CPUExecutionProvider") -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Spinning worker threads would keep a core busy after each run and slow whatever variant is timed next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=[provider])
    return lambda x: session.run(["logits"], {"pixel_values": x})[0]


def openvino_runner(path: Path, threads: int) -> Runner:
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    )
    return lambda x: np.array(compiled(x)[compiled.output("logits")])


def quantize_static(src: Path, dst: Path, calibration: np.ndarray) -> None:
    """Static QDQ int8 (activations calibrated on ``calibration``): the alternative export --int8 rejected."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as quantize

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"pixel_values": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with ex.warnings_quiet():
        quantize(
            str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
        )  # fmt: skip


def build_variants(name: str, model, timm_model, workdir: Path, threads: int, device: str, calib: np.ndarray):
    """{variant: runner}; files exported with swinzoo.export's own functions."""
    size = MODELS[name]["image_size"]
    variants: dict[str, Runner] = {}
    for dtype, label in ((torch.float32, "float32"), (torch.bfloat16, "bfloat16")):
        variants[f"torch swinzoo {label}"] = torch_runner(_copy(model), dtype, device, True)
        variants[f"torch timm {label}"] = torch_runner(_copy(timm_model), dtype, device, False)
    fp32 = workdir / f"{name}.onnx"
    ex._export_onnx(ex._Graph(_copy(model), "image-classification"), size, None, ["logits"], fp32)
    variants["onnxruntime float32"] = ort_runner(fp32, threads)
    dynamic = workdir / f"{name}-int8-dynamic.onnx"
    ex._quantize_onnx(fp32, dynamic)
    variants["onnxruntime int8 (dynamic, what --int8 writes)"] = ort_runner(dynamic, threads)
    static = workdir / f"{name}-int8-static.onnx"
    quantize_static(fp32, static, calib)
    variants["onnxruntime int8 (static QDQ, sample-calibrated)"] = ort_runner(static, threads)
    try:
        import openvino as ov

        ov_model = ov.convert_model(str(fp32))
        ov.save_model(ov_model, str(workdir / f"{name}.xml"), compress_to_fp16=False)
        variants["openvino float32"] = openvino_runner(workdir / f"{name}.xml", threads)
        compressed, _ = ex._compress_openvino(ov.convert_model(str(fp32)))
        ov.save_model(compressed, str(workdir / f"{name}-int8.xml"), compress_to_fp16=False)
        variants["openvino int8 (NNCF weights)"] = openvino_runner(workdir / f"{name}-int8.xml", threads)
    except ImportError as exc:
        print(f"openvino skipped: {exc}", file=sys.stderr)
    if device == "cuda":
        import onnxruntime as ort

        for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            if provider in ort.get_available_providers():
                variants[f"onnxruntime float32 {provider}"] = ort_runner(fp32, threads, provider)
    return variants


def _copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module)


def agreement(run: Runner, reference: np.ndarray, images: np.ndarray, batch: int) -> tuple[float, float]:
    got = np.concatenate([run(images[i : i + batch]) for i in range(0, len(images), batch)])
    top1 = float((got.argmax(-1) == reference.argmax(-1)).mean())
    return top1, float(np.abs(got.astype(np.float64) - reference).max())


def timed(run: Runner, x: np.ndarray, iters: int) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        run(x)
    return (time.perf_counter() - start) / iters


def bench_model(name: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    size = MODELS[name]["image_size"]
    model, timm_model = models(name)
    processor = ImageProcessor(input_size=size)
    images = processor(images=ex.generated_images(args.images, size=size), return_tensors="np")["pixel_values"]
    calib = processor(images=[str(p) for p in ex.sample_images()], return_tensors="np")["pixel_values"]
    variants = build_variants(name, model, timm_model, workdir, args.threads, args.device, calib)
    reference_run = variants["torch swinzoo float32"]
    reference = np.concatenate(
        [reference_run(images[i : i + args.batch_size]) for i in range(0, len(images), args.batch_size)]
    ).astype(np.float64)
    batch, one = images[: args.batch_size], images[:1]
    rows = {v: {"model": name, "variant": v, "throughput": [], "latency_ms": []} for v in variants}
    for v, run in variants.items():
        rows[v]["top1_agreement"], rows[v]["max_abs_dlogit"] = agreement(run, reference, images, args.batch_size)
        for _ in range(args.warmup):
            run(batch)
            run(one)
    order = list(variants)
    for r in range(args.rounds):
        # Each round starts at another variant, so no one always follows the same neighbour (whose threads may
        # still be winding down) and none is always first after the warm-up.
        for v in order[r % len(order) :] + order[: r % len(order)]:
            run = variants[v]
            rows[v]["throughput"].append(args.batch_size / timed(run, batch, args.iters))
            rows[v]["latency_ms"].append(1000 * timed(run, one, args.iters))
            if args.verbose:
                print(f"round {r} {name} {v}: {rows[v]['throughput'][-1]:.1f} img/s", file=sys.stderr)
    out = []
    for row in rows.values():
        row["img_per_s"] = statistics.median(row.pop("throughput"))
        row["latency_ms_batch1"] = statistics.median(row.pop("latency_ms"))
        out.append(row)
    return out


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    """The target ratios, each from figures of this run."""
    pairs = [
        ("torch swinzoo float32", "torch timm float32", ">= 1.3x"),
        ("torch swinzoo bfloat16", "torch timm bfloat16", ">= 1.3x"),
        ("torch swinzoo bfloat16", "torch swinzoo float32", ">= 2x on AMX"),
        ("onnxruntime float32", "torch swinzoo float32", ">= 0.9x"),
        ("openvino float32", "torch swinzoo float32", ">= 0.9x"),
    ]
    lines = []
    for name in sorted({r["model"] for r in rows}):
        speed = {r["variant"]: r["img_per_s"] for r in rows if r["model"] == name}
        for a, b, target in pairs:
            if a in speed and b in speed:
                lines.append(f"{name}: {a} / {b} = {speed[a] / speed[b]:.2f}x (target {target})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=64, help="generated images for the agreement figures")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    peaks = {
        "float32_gflops": matmul_peak(torch.float32, args.device),
        "bfloat16_gflops": matmul_peak(torch.bfloat16, args.device),
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        for name in args.models:
            rows += bench_model(name, args, Path(tmp))
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} threads, cpu capability "
        f"{torch.backends.cpu.get_cpu_capability()}; matmul peak float32 {peaks['float32_gflops']:.0f} GFLOP/s, "
        f"bfloat16 {peaks['bfloat16_gflops']:.0f} GFLOP/s ({peaks['bfloat16_gflops'] / peaks['float32_gflops']:.2f}x)"
    )
    width = max(len(r["variant"]) for r in rows)
    header = f"{'img/s b' + str(args.batch_size):>9} {'ms b1':>8} {'top-1 vs fp32':>13} {'max|dlogit|':>11}"
    print(f"{'model':9} {'variant':{width}} {header}")
    for r in rows:
        print(
            f"{r['model']:9} {r['variant']:{width}} {r['img_per_s']:9.1f} {r['latency_ms_batch1']:8.1f} "
            f"{100 * r['top1_agreement']:12.1f}% {r['max_abs_dlogit']:11.3g}"
        )
    for line in ratios(rows):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"peaks": peaks, "rows": rows, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
