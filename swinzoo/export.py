"""Export a converted model to ONNX or OpenVINO (float32 or int8), checked before it is written.

Why one image size per export: Swin pads the input to whole windows, clamps the window and drops the shift
when a stage's grid is no larger than the window, and (v1 with absolute positions) adds a position table of one
size. All of these are decided by the input height and width when the graph is traced, so a graph traced at one
size computes the wrong thing at another. Only the batch dimension is dynamic (``batch="dynamic"``) or fixed.

Every export is run, before anything is written, by onnxruntime (and OpenVINO's runtime for ``openvino``) on
the shipped sample images with the checkpoint's own eval transform, and compared with swinzoo eager and with
timm holding the same weights (an implementation swinzoo did not write). The figures go into a record beside
the file (``<file>.json``). An int8 export is compared with float32 swinzoo on the sample images and on a
generated set of :data:`GENERATED_IMAGES` images: its figures say how far it is from float32, never that it is
equal. A failed check raises :class:`ExportError` and nothing is written.

The files, in the layout transformers.js and optimum read: ``onnx/model.onnx`` (float32),
``onnx/model_quantized.onnx`` (int8), ``openvino/openvino_model.xml`` + ``.bin`` (and ``openvino_model_int8``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .converters.engine import convert_state_dict, shapes_of
from .converters.timm_layout import create_timm_model, timm_rules
from .export_records import EXPORT_FORMATS, RECORD_SUFFIX, ExportError, export_records
from .fetch import sha256_file
from .folder import ConvertedFolder, _apply_umask, clean_stale_partials, signals_deferred
from .gate import verification_problems
from .images import MAX_INPUT_SIZE
from .loading import LoadError, from_pretrained, task_of
from .modeling import SwinBackbone
from .predict import PredictError, resolve_model
from .processing import ImageProcessor, ProcessorError
from .verify.tolerances import top5_agreement

__all__ = [
    "EXPORT_FORMATS",
    "ExportError",
    "ExportResult",
    "export",
    "export_records",
    "generated_images",
    "sample_images",
]

#: What each format holds besides float32 (``--int8`` with a format not listed here is refused).
INT8_FORMATS = {"onnx": "onnxruntime dynamic quantization", "openvino": "NNCF int8 weight compression"}
FILES = {
    ("onnx", False): ("model.onnx",),
    ("onnx", True): ("model_quantized.onnx",),
    ("openvino", False): ("openvino_model.xml", "openvino_model.bin"),
    ("openvino", True): ("openvino_model_int8.xml", "openvino_model_int8.bin"),
}
SCHEMA = 1
OPSET = 18
#: Float32 runtimes against float32 eager: ``atol + rtol * max |reference|`` (the export tolerance). Measured on
#: real-size synthetic Swin-T / SwinV2-T at 224/256: onnxruntime <= 2e-6 relative, OpenVINO <= 2e-5 (it fuses
#: differently); 50x above the first, 5x above the second, and far below a mis-exported op (>1e-2).
RTOL, ATOL = 1e-4, 1e-5
#: An int8 model below this top-1 agreement with float32 on the generated images is refused (it is broken,
#: not approximate); every figure is recorded whatever it is.
INT8_MIN_TOP1 = 0.5
GENERATED_IMAGES = 256
CHUNK = 8  # images per forward pass in the checks
IMAGE_SIZE_NOTE = (
    "exported for one input size: Swin's padding to whole windows, window clamping, shift and (v1) absolute "
    "positions depend on the height and width, so the graph is only valid at this size; the batch is {batch}"
)
EXTRA_HINT = "install the export extra: pip install 'swinzoo[export]'"


@dataclasses.dataclass
class ExportResult:
    """Where the export went and what its record says (``record`` is the JSON written beside the file)."""

    files: list[Path]
    record_file: Path
    record: dict[str, Any]


# --------------------------------------------------------------------------------------------- extras
def _require(*modules: str) -> None:
    """The export extra's packages, or one line saying which is missing and how to install it."""
    missing = []
    for name in modules:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"swinzoo export needs {', '.join(missing)}, which cannot be imported: {EXTRA_HINT}")


def _versions(fmt: str) -> dict[str, str]:
    import onnx
    import onnxruntime

    versions = {"swinzoo": __version__, "torch": torch.__version__, "onnx": onnx.__version__}
    versions["onnxruntime"] = onnxruntime.__version__
    if fmt == "openvino":
        import openvino

        versions["openvino"] = openvino.get_version()
    with contextlib.suppress(ImportError):
        import timm

        versions["timm"] = timm.__version__
    return versions


# --------------------------------------------------------------------------------------------- inputs
def sample_images() -> list[Path]:
    """The sample photos shipped with swinzoo (swinzoo/assets/images), in name order."""
    folder = Path(__file__).parent / "assets" / "images"
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def generated_images(n: int = GENERATED_IMAGES, size: int = 224, seed: int = 0) -> list[Any]:
    """``n`` deterministic synthetic RGB images (smooth random colour fields plus edges and a gradient), so int8
    agreement is measured on more than a handful of photos without shipping a data set."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    for _ in range(n):
        coarse = rng.integers(0, 256, size=(rng.integers(2, 9), rng.integers(2, 9), 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None] * rng.uniform(-80, 80, size=3)
        stripes = (np.sin(2 * np.pi * rng.uniform(2, 20) * (xx if rng.random() < 0.5 else yy)) > 0)[..., None]
        image = field + ramp + stripes * rng.uniform(-40, 40, size=3)
        out.append(Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)))
    return out


# --------------------------------------------------------------------------------------------- the model
class _Graph(torch.nn.Module):
    """The model as pixels -> tensor(s): exporters want tensors, not output dataclasses."""

    def __init__(self, model: Any, task: str) -> None:
        super().__init__()
        self.model: Any = model.eval()
        self.task = task

    def forward(self, pixel_values: torch.Tensor) -> Any:
        out = self.model(pixel_values)
        if self.task == "image-classification":
            return out.logits
        if self.task == "masked-image-modeling":
            return out.reconstruction
        return tuple(out.feature_maps)


def output_names(model: Any, task: str) -> list[str]:
    if task == "image-classification":
        return ["logits"]
    if task == "masked-image-modeling":
        return ["reconstruction"]
    return [f"feature_maps.{name}" for name in model.config.out_features]


def _load(spec: str, task: str | None, revision: str | None) -> tuple[Any, Path, str, str]:
    """(float32 model in eval mode, its local folder, a description, its task)."""
    try:
        folder, source = resolve_model(spec, revision)
    except PredictError as exc:
        raise ExportError(str(exc).replace("--model ", "")) from exc
    try:
        if task == "backbone":
            probe = from_pretrained(folder, dtype=torch.float32)
            stages = [n for n in probe.config.stage_names if n != "stem"]
            model = from_pretrained(folder, model_class=SwinBackbone, dtype=torch.float32, out_features=stages)
        else:
            model = from_pretrained(folder, dtype=torch.float32)
    except LoadError as exc:
        raise ExportError(str(exc)) from exc
    found = "backbone" if isinstance(model, SwinBackbone) else task_of(model)
    if task not in (None, found):
        raise ExportError(f"{source}: --task {task} asked, but the folder holds a {found} model")
    if found not in ("image-classification", "masked-image-modeling", "backbone"):
        raise ExportError(f"{source}: a {found} model; export takes classifiers, backbones and SimMIM models")
    return model.eval(), folder, source, found


def _gate(folder: Path) -> list[str]:
    """The publish gate, in one place (the verification record must hold for these exact bytes)."""
    return verification_problems(folder)


def _check_size(model: Any, size: int, source: str) -> None:
    """Refuse a size the model cannot take, naming it, before anything is traced."""
    config = model.config
    if isinstance(size, bool) or not isinstance(size, int) or not config.patch_size <= size <= MAX_INPUT_SIZE:
        raise ExportError(
            f"--image-size {size!r}: {source} takes sizes from its patch size {config.patch_size} to {MAX_INPUT_SIZE}"
        )
    if config.use_absolute_embeddings and (size, size) != tuple(config.image_hw):
        raise ExportError(
            f"--image-size {size}: {source} has absolute position embeddings of one size, "
            f"{config.image_hw[0]}x{config.image_hw[1]}; export it at that size"
        )
    if size % config.patch_size:
        raise ExportError(
            f"--image-size {size}: not a multiple of {source}'s patch size {config.patch_size} (the last "
            "patch row and column would be zero-padded, which no eval transform produces)"
        )


def _processor(folder: Path, size: int) -> Any:  # ImageProcessor
    try:
        processor = ImageProcessor.from_pretrained(folder)
    except ProcessorError as exc:
        raise ExportError(str(exc)) from exc
    if processor.preprocessing.input_size != size:
        processor = ImageProcessor(processor.preprocessing, input_size=size)
    return processor


# --------------------------------------------------------------------------------------------- runtimes
def _batches(x: torch.Tensor, batch: int | None) -> list[tuple[torch.Tensor, int]]:
    """Chunks of a fixed batch (the last padded by repeating its first image), or of :data:`CHUNK` images for a
    dynamic batch (a base model at 384 on 256 images at once would need tens of GB)."""
    size = batch or CHUNK
    out = []
    for start in range(0, x.shape[0], size):
        chunk = x[start : start + size]
        n = chunk.shape[0]
        if batch is not None and n < batch:
            chunk = torch.cat([chunk, chunk[:1].expand(batch - n, *chunk.shape[1:])])
        out.append((chunk, n))
    return out


def _ort_runner(path: Path, names: list[str], threads: int) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.from_numpy(np.asarray(y)) for y in session.run(names, {"pixel_values": x.numpy()})]

    return run


def _openvino_runner(path: Path, names: list[str], threads: int) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    )

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        result = compiled(x.numpy())
        return [torch.from_numpy(np.array(result[compiled.output(n)])) for n in names]

    return run


def _run(runner: Callable[[torch.Tensor], list[torch.Tensor]], x: torch.Tensor, batch: int | None) -> list:
    parts = [[y[:n] for y in runner(chunk)] for chunk, n in _batches(x, batch)]
    return [torch.cat([p[i] for p in parts]) for i in range(len(parts[0]))]


def _eager(model: Any, task: str, x: torch.Tensor) -> list[torch.Tensor]:
    graph = _Graph(model, task)
    parts = []
    with torch.inference_mode():
        for chunk, _ in _batches(x, None):
            out = graph(chunk)
            parts.append(list(out) if isinstance(out, tuple) else [out])
    return [torch.cat([p[i] for p in parts]) for i in range(len(parts[0]))]


def _timm_twin(model: Any, size: int) -> tuple[torch.nn.Module | None, str | None]:
    """timm's Swin holding the encoder (and head) weights of ``model`` at input ``size``, or why there is none."""
    try:
        import timm  # noqa: F401
    except ImportError:
        return None, "timm is not installed (pip install 'swinzoo[verify]')"
    config = model.config
    if config.use_absolute_embeddings:
        return None, "timm's Swin has no absolute position embeddings"
    if config.hidden_act != "gelu" or config.layer_norm_eps != 1e-5:
        return None, "timm's Swin uses GELU and LayerNorm eps 1e-5"
    head = config.copy(image_size=size, num_labels=max(config.num_labels, 1))
    reference = create_timm_model(head).eval()
    state = {k: v for k, v in model.state_dict().items() if k.startswith("swin.") and "mask_token" not in k}
    own_head = "head.weight" in model.state_dict()
    for name in ("weight", "bias"):
        state[f"head.{name}"] = (
            model.state_dict()[f"head.{name}"]
            if own_head
            else torch.zeros_like(reference.state_dict()[f"head.fc.{name}"])
        )
    mapped, _ = convert_state_dict(state, timm_rules(), shapes_of(reference), to_swinzoo=False)
    reference.load_state_dict(mapped, strict=True)
    return reference, None


def _timm_outputs(reference: Any, model: Any, task: str, x: torch.Tensor) -> list[torch.Tensor]:
    """timm's encoder computes the heavy part; the heads are the papers' one-liners on swinzoo's head weights."""
    import torch.nn.functional as F

    with torch.inference_mode():
        if task == "image-classification":
            return [reference(x)]
        if task == "masked-image-modeling":
            final = reference.forward_features(x).permute(0, 3, 1, 2)  # normed, NHWC -> NCHW
            conv = model.decoder.conv
            return [F.pixel_shuffle(F.conv2d(final, conv.weight, conv.bias), model.config.encoder_stride)]
        _, stages = reference.forward_intermediates(x, norm=False, output_fmt="NCHW")
        maps = []
        for name in model.config.out_features:
            grid = stages[model.config.stage_names.index(name) - 1].permute(0, 2, 3, 1)
            norm = model.stage_norms[name]
            normed = F.layer_norm(grid, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            maps.append(normed.permute(0, 3, 1, 2))
        return maps


# --------------------------------------------------------------------------------------------- comparisons
def _compare(got: list[torch.Tensor], ref: list[torch.Tensor], task: str, names: list[str]) -> dict[str, Any]:
    """max |diff| (overall and per output), the limit, and for classifiers top-1 / top-5 agreement."""
    figures: dict[str, Any] = {"max_abs_diff": 0.0, "limit": 0.0, "within_limit": True, "outputs": {}}
    for name, a, b in zip(names, got, ref, strict=True):
        if tuple(a.shape) != tuple(b.shape):
            raise ExportError(f"output {name}: shape {tuple(a.shape)}, eager gives {tuple(b.shape)}")
        if not torch.isfinite(a).all():
            raise ExportError(f"output {name}: the runtime produced non-finite values")
        diff = (a.double() - b.double()).abs().max().item()
        limit = ATOL + RTOL * b.abs().max().item()
        figures["outputs"][name] = {"max_abs_diff": diff, "max_abs_reference": b.abs().max().item()}
        figures["max_abs_diff"] = max(figures["max_abs_diff"], diff)
        figures["limit"] = max(figures["limit"], limit)
        figures["within_limit"] = figures["within_limit"] and diff <= limit
    if task == "image-classification":
        a, b = got[0], ref[0]
        figures["top1_agreement"] = (a.argmax(-1) == b.argmax(-1)).double().mean().item()
        agree = top5_agreement(a, b, figures["limit"])
        figures["top5_agreement"] = sum(agree) / len(agree)
    return figures


def _check(
    what: str, runtime: str, got: list, ref: list, task: str, names: list[str], images: str, strict: bool
) -> dict[str, Any]:
    figures = _compare(got, ref, task, names)
    row = {"runtime": runtime, "against": what, "images": images, **figures}
    if strict:
        row["status"] = "pass" if figures["within_limit"] else "fail"
        if not figures["within_limit"]:
            raise ExportError(
                f"{runtime} disagrees with {what} on {images}: max |diff| {figures['max_abs_diff']:.3g} > "
                f"{figures['limit']:.3g}; nothing was written"
            )
    else:
        row["status"] = "measured (int8: approximate, not equal)"
    return row


# --------------------------------------------------------------------------------------------- writing


def _default_out(folder: Path, fmt: str, spec: str) -> Path:
    if (folder / "conversion.json").is_file() and Path(spec).is_dir():
        return folder / fmt
    return Path(f"{spec.replace('/', '--')}-{fmt}")


def _check_out(out: Path, names: Sequence[str], overwrite: bool) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"--out {out}: not a folder (swinzoo never writes through links)")
    for name in names:
        target = out / name
        if target.is_symlink() or target.is_dir():
            raise ExportError(f"--out {out}: {target} is a link or a folder; nothing was written")
        if target.exists() and not overwrite:
            raise ExportError(f"--out {out}: {name} exists; pass --overwrite to replace it, or choose another --out")


def _commit(tmp: Path, out: Path, names: Sequence[str], overwrite: bool) -> list[Path]:
    """Move the checked files into ``out``: one rename of the whole folder when ``out`` is new, else one rename
    per file with the record last (a reader never finds a record without its model)."""
    _apply_umask(tmp)
    _check_out(out, names, overwrite)
    with signals_deferred():
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, out)
        else:
            for name in names:
                os.replace(tmp / name, out / name)
            shutil.rmtree(tmp, ignore_errors=True)
    return [out / n for n in names]


# --------------------------------------------------------------------------------------------- export
def _export_onnx(graph: _Graph, size: int, batch: int | None, names: list[str], path: Path) -> None:
    import onnx

    example = torch.zeros(batch or 2, graph.model.config.num_channels, size, size)
    dynamic = {"pixel_values": {0: torch.export.Dim("batch", min=1, max=4096)}} if batch is None else None
    try:
        with warnings_quiet():
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=["pixel_values"],
                output_names=names,
                dynamic_shapes=dynamic,
                opset_version=OPSET,
                verbose=False,
            )
            if program is None:
                raise ExportError("torch.onnx.export returned no program")
            program.save(str(path))
    except Exception as exc:  # the exporter raises many types; the message names the op at fault
        raise ExportError(f"torch.onnx.export failed at image size {size}: {type(exc).__name__}: {exc}") from exc
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {exc}") from exc


@contextlib.contextmanager
def warnings_quiet() -> Iterator[None]:
    """The exporters' and quantizers' chatter (tables, progress bars, advice) off the user's terminal: swinzoo
    reports what matters in one line and the record."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in ("", "torch.onnx", "nncf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    with open(os.devnull, "w") as null, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _quantize_onnx(src: Path, dst: Path) -> dict[str, Any]:
    """Dynamic int8: weights of MatMul/Gemm per channel, activations quantised at run time per tensor.

    Chosen over static (QDQ calibrated on the sample images) because it needs no calibration set that would
    have to match the user's data, and measured closer to float32 on Swin (benchmarks/README.md)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings_quiet():
        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"]
        )
    return {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weights": "int8 per output channel (MatMul, Gemm)",
        "activations": "uint8 per tensor, scale computed at run time",
        "why": "no calibration data needed; closer to float32 than static QDQ calibrated on the sample images",
    }


def _compress_openvino(model: Any) -> tuple[Any, dict[str, Any]]:
    _require("nncf")
    import nncf

    with warnings_quiet():
        compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    return compressed, {
        "method": "nncf.compress_weights (INT8_ASYM)",
        "nncf": nncf.__version__,
        "weights": "int8 asymmetric per output channel (MatMul, Gemm, Convolution)",
        "activations": "float32 (weights are decompressed at run time)",
    }


def _parse_batch(batch: str | int) -> int | None:
    if batch in ("dynamic", None):
        return None
    try:
        value = int(batch)
    except (TypeError, ValueError):
        value = 0
    if isinstance(batch, bool) or not 1 <= value <= 4096:
        raise ExportError(f"--batch {batch!r}: give 'dynamic' or a batch size from 1 to 4096")
    return value


def export(
    spec: str | os.PathLike,
    fmt: str = "onnx",
    *,
    int8: bool = False,
    image_size: int | None = None,
    batch: str | int = "dynamic",
    out: str | os.PathLike | None = None,
    task: str | None = None,
    revision: str | None = None,
    overwrite: bool = False,
    force: bool = False,
    threads: int | None = None,
    generated: int = GENERATED_IMAGES,
) -> ExportResult:
    """Export ``spec`` (a converted folder, zoo NAME or Hub ORG/NAME) to ``fmt``, check it, then write it.

    ``task="backbone"`` exports a classifier's encoder as NCHW feature maps of every stage. Default ``out``:
    the folder's ``onnx/`` or ``openvino/`` (where ``publish`` picks it up). A folder failing the publish gate
    (no passing ``verification.json`` for these bytes) is refused unless ``force``. Raises :class:`ExportError`.
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    if int8 and fmt not in INT8_FORMATS:
        raise ExportError(
            f"--int8: the {fmt} format cannot hold int8 weights (int8 formats: {', '.join(INT8_FORMATS)})"
        )
    if task not in (None, "image-classification", "masked-image-modeling", "backbone"):
        raise ExportError(f"--task {task!r}: give image-classification, masked-image-modeling or backbone")
    _require("onnx", "onnxscript", "onnxruntime", *(["openvino"] if fmt == "openvino" else []))
    if int8 and fmt == "openvino":
        _require("nncf")
    fixed = _parse_batch(batch)
    model, folder, source, found = _load(str(spec), task, revision)
    fmt_loaded = getattr(model, "loaded_format", "swinzoo")
    problems = _gate(folder) if fmt_loaded == "swinzoo" else []
    if problems and not force:
        raise ExportError(
            f"refusing to export unverified weights ({source}): "
            + "; ".join(problems)
            + ". Pass --force to export anyway (the record then says NOT VERIFIED)"
        )
    if fmt_loaded != "swinzoo":
        gate = f"not applied: a {fmt_loaded}-format folder (the gate binds swinzoo-format bytes; publish gated them)"
    else:
        gate = "NOT VERIFIED (--force): " + "; ".join(problems) if problems else "passed (verification.json holds)"
    size = image_size if image_size is not None else model.config.image_hw[0]
    if image_size is None and model.config.image_hw[0] != model.config.image_hw[1]:
        raise ExportError(f"{source}: non-square image size {model.config.image_hw}: give --image-size")
    _check_size(model, size, source)
    names = FILES[(fmt, int8)]
    target = Path(out) if out is not None else _default_out(folder, fmt, str(spec))
    record_name = names[0] + RECORD_SUFFIX
    _check_out(target, [*names, record_name], overwrite)
    threads = threads or max(1, torch.get_num_threads())
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_partials(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".partial", dir=target.parent))
    try:
        record = _build(model, folder, source, found, fmt, int8, size, fixed, tmp, names, threads, generated)
        record["gate"] = gate
        (tmp / record_name).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        for extra in list(tmp.iterdir()):
            if extra.name not in (*names, record_name):
                extra.unlink() if extra.is_file() else shutil.rmtree(extra)
        files = _commit(tmp, target, [*names, record_name], overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(files[:-1], files[-1], record)


def _build(
    model: Any,
    folder: Path,
    source: str,
    task: str,
    fmt: str,
    int8: bool,
    size: int,
    batch: int | None,
    tmp: Path,
    names: Sequence[str],
    threads: int,
    generated: int,
) -> dict[str, Any]:
    """Export into ``tmp``, run the checks, and return the record (raises ExportError on a failed check)."""
    outputs = output_names(model, task)
    graph = _Graph(model, task)
    onnx_path = tmp / ("model.onnx" if fmt == "onnx" and not int8 else "float32.onnx")
    _export_onnx(graph, size, batch, outputs, onnx_path)
    runners: list[tuple[str, Callable[[torch.Tensor], list[torch.Tensor]]]] = []
    quantization = None
    if fmt == "onnx":
        path = onnx_path
        if int8:
            path = tmp / names[0]
            quantization = _quantize_onnx(onnx_path, path)
        runners.append((f"onnxruntime (CPU, {'int8' if int8 else 'float32'})", _ort_runner(path, outputs, threads)))
    else:
        import openvino as ov

        ov_model = ov.convert_model(str(onnx_path))
        if int8:
            ov_model, quantization = _compress_openvino(ov_model)
        path = tmp / names[0]
        ov.save_model(ov_model, str(path), compress_to_fp16=False)
        runners.append((f"openvino (CPU, {'int8' if int8 else 'float32'})", _openvino_runner(path, outputs, threads)))
        if not int8:  # the ONNX graph it came from, run by onnxruntime too
            runners.append(("onnxruntime (CPU, float32)", _ort_runner(onnx_path, outputs, threads)))

    processor = _processor(folder, size)
    photos = sample_images()
    x = processor(images=[str(p) for p in photos])["pixel_values"]
    eager = _eager(model, task, x)
    reference, why_not = _timm_twin(model, size)
    timm_out = _timm_outputs(reference, model, task, x) if reference is not None else None
    shown = f"{len(photos)} sample images"
    checks = []
    for runtime, runner in runners:
        got = _run(runner, x, batch)
        checks.append(_check("swinzoo eager (float32)", runtime, got, eager, task, outputs, shown, not int8))
        if timm_out is not None:
            checks.append(
                _check("timm, same weights (float32)", runtime, got, timm_out, task, outputs, shown, not int8)
            )
    if int8 and generated:
        synthetic = processor(images=generated_images(generated, size=size))["pixel_values"]
        got = _run(runners[0][1], synthetic, batch)
        row = _check(
            "swinzoo eager (float32)", runners[0][0], got, _eager(model, task, synthetic), task, outputs,
            f"{generated} generated images (swinzoo.export.generated_images, seed 0)", False,
        )  # fmt: skip
        checks.append(row)
        if task == "image-classification" and row["top1_agreement"] < INT8_MIN_TOP1:
            raise ExportError(
                f"the int8 {fmt} model agrees with float32 on top-1 for {row['top1_agreement']:.1%} of "
                f"{generated} generated images (< {INT8_MIN_TOP1:.0%}): refused; nothing was written"
            )
    import onnx

    opset = next(
        (o.version for o in onnx.load(str(onnx_path), load_external_data=False).opset_import if not o.domain), None
    )
    converted = ConvertedFolder(folder)
    conversion = converted.conversion() if converted.conversion_file.is_file() else None
    files = {n: {"size_bytes": (tmp / n).stat().st_size, "sha256": sha256_file(tmp / n)} for n in names}
    return {
        "schema_version": SCHEMA,
        "swinzoo_version": __version__,
        "format": fmt,
        "file": names[0],
        "files": files,
        "precision": "int8" if int8 else "float32",
        "equal_to_float32": None if int8 else True,
        "quantization": quantization,
        "task": task,
        "source": source,
        "entry": conversion.entry if conversion is not None else None,
        "synthetic_weights": conversion.synthetic if conversion is not None else None,
        "weights_sha256": sha256_file(converted.weights) if converted.weights.is_file() else None,
        "config_sha256": sha256_file(converted.config_file) if converted.config_file.is_file() else None,
        "inputs": [{"name": "pixel_values", "shape": [batch or "batch", model.config.num_channels, size, size]}],
        "outputs": outputs,
        "input_dtype": "float32",
        "image_size": [size, size],
        "image_size_note": IMAGE_SIZE_NOTE.format(batch="dynamic" if batch is None else f"fixed at {batch}"),
        "batch": "dynamic" if batch is None else batch,
        "opset": opset,
        "preprocessing": processor.to_dict(),
        "tolerance": {"atol": ATOL, "rtol": RTOL, "applies_to": "float32 exports"},
        "timm": "compared" if timm_out is not None else f"not compared: {why_not}",
        "runtimes": _versions(fmt),
        "checks": checks,
    }
