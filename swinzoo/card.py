"""Model card (README.md) of a converted folder or a published repo, built with huggingface_hub's ModelCard.

The metadata (license, library, pipeline tag, datasets, base model, model-index) goes through
``ModelCardData``/``EvalResult`` so the Hub parses it; the body says where the weights came from (URL and
sha256), how they were converted, how they were verified (``verification.json``, or a plain NOT VERIFIED
line) and how to load them. Accuracy numbers are the ones the original authors reported (manifest
``metrics``), labelled as such: swinzoo does not re-measure them.

Pipeline tag of SimMIM pretrain checkpoints: the Hub has no masked-image-modelling task, and ``fill-mask``
is a text task (its widget sends a sentence with a [MASK] token). A SimMIM pretrain checkpoint is used as
an image encoder to extract features or fine-tune, which is ``image-feature-extraction``, the tag the Hub
gives timm's masked-image-modelling pretrains (e.g. ``timm/eva02_base_patch14_224.mim_in22k``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .export_records import card_lines
from .folder import CARD_NAME, CONFIG_NAME, VERIFICATION_NAME, WEIGHTS_NAME, ConvertedFolder, atomic_write_text
from .gate import as_verification, read_verification, sha256_of, verification_passed, verification_problems
from .images import Preprocessing
from .manifest import ManifestError, get_entry
from .processing import ImageProcessor
from .records import ConversionRecord, RecordError, VerificationRecord, read_json

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCard

    from .manifest import ZooEntry

FORMATS = ("swinzoo", "transformers", "timm")

PAPERS = {
    "swin": ("Swin Transformer", "https://arxiv.org/abs/2103.14030"),
    "swinv2": ("Swin Transformer V2", "https://arxiv.org/abs/2111.09883"),
    "simmim": ("SimMIM", "https://arxiv.org/abs/2111.09886"),
    "simmim-data-scaling": ("On Data Scaling in Masked Image Modeling", "https://arxiv.org/abs/2206.04664"),
}
# Where the authors published the numbers a manifest's ``metrics.reported_by`` names.
_REPORT_SOURCES = {
    "MODELHUB.md": "https://github.com/microsoft/Swin-Transformer/blob/main/MODELHUB.md",
    "SimMIM README.md": "https://github.com/microsoft/SimMIM/blob/main/README.md",
}
CITATIONS = {
    "swin": """@inproceedings{liu2021Swin,
  title     = {Swin Transformer: Hierarchical Vision Transformer using Shifted Windows},
  author    = {Liu, Ze and Lin, Yutong and Cao, Yue and Hu, Han and Wei, Yixuan and Zhang, Zheng and
               Lin, Stephen and Guo, Baining},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2021}
}""",
    "swinv2": """@inproceedings{liu2021swinv2,
  title     = {Swin Transformer V2: Scaling Up Capacity and Resolution},
  author    = {Liu, Ze and Hu, Han and Lin, Yutong and Yao, Zhuliang and Xie, Zhenda and Wei, Yixuan and
               Ning, Jia and Cao, Yue and Zhang, Zheng and Dong, Li and Wei, Furu and Guo, Baining},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2022}
}""",
    "simmim": """@inproceedings{xie2021simmim,
  title     = {SimMIM: A Simple Framework for Masked Image Modeling},
  author    = {Xie, Zhenda and Zhang, Zheng and Cao, Yue and Lin, Yutong and Bao, Jianmin and Yao, Zhuliang and
               Dai, Qi and Hu, Han},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2022}
}""",
    "simmim-data-scaling": """@article{xie2022data,
  title   = {On Data Scaling in Masked Image Modeling},
  author  = {Xie, Zhenda and Zhang, Zheng and Cao, Yue and Lin, Yutong and Wei, Yixuan and Dai, Qi and Hu, Han},
  journal = {arXiv preprint arXiv:2206.04664},
  year    = {2022}
}""",
}
_PIPELINE_TAGS = {
    "image-classification": "image-classification",
    "masked-image-modeling": "image-feature-extraction",
    "base": "image-feature-extraction",
    "backbone": "image-feature-extraction",
}


#: A card is rendered from the folder's records: its errors are theirs (one type, the file named in the message).
CardError = RecordError

# --------------------------------------------------------------------------------------------- reading
_OPTIONAL_STR = (str, type(None))
# config.json's fields the card (and the publish gate) read, with the JSON types they must have (None: absent);
# config.json as a whole is SwinConfig's, which the loaders check.
CONFIG_FIELDS: dict[str, tuple[type, ...]] = {
    "task": _OPTIONAL_STR,
    "version": (int, type(None)),
    "image_size": (int, list, type(None)),
    "id2label": (dict, type(None)),
}


SYNTHETIC_TITLE = "RANDOM WEIGHTS (synthetic, for testing the pipeline only)"


def read_conversion(folder: str | os.PathLike) -> ConversionRecord | None:
    """``conversion.json`` of ``folder`` with its fields type-checked, or None if absent."""
    return ConvertedFolder(Path(folder)).conversion()


def is_synthetic(folder: str | os.PathLike) -> bool:
    """Does ``folder``'s conversion.json say its weights are random (``convert --synthetic``)? A missing or
    unreadable record says nothing, so False: the caller reporting on weights reads the record for itself."""
    try:
        return (read_conversion(folder) or ConversionRecord()).synthetic is True
    except CardError:
        return False


def simmim_loss_text(config: Mapping[str, Any], fmt: str) -> str:
    """What the SimMIM loss of these weights is trained on, and (for the transformers layout, and any user who
    reaches for it) what transformers' masked-image-modelling loss computes instead."""
    if config.get("mim_norm_target") is True:
        k = config.get("mim_norm_target_patch_size", 47)
        text = (
            f"The reconstruction loss uses normalised targets: each pixel of the target minus the mean, divided by "
            f"the standard deviation, of the {k}x{k} window around it (`mim_norm_target=True`, "
            f"`mim_norm_target_patch_size={k}`), as every official SimMIM V2 config trains, averaged as an L1 over "
            "the masked pixels. transformers' masked-image-modelling loss (`Swinv2ForMaskedImageModeling`, "
            "`SwinForMaskedImageModeling`) computes a plain L1 on the raw pixels instead, so its `loss` is not the "
            "official one for these weights (the reconstruction itself is the same)."
        )
    else:
        text = (
            "The reconstruction loss is an L1 on the raw (normalised-image) pixels of the masked patches, as the "
            "official config of this checkpoint trains; transformers' masked-image-modelling loss computes the same."
        )
    if fmt == "transformers" and config.get("mim_norm_target") is True:
        text += " To train with the official loss, compute it from `outputs.reconstruction` with normalised targets."
    return text


def entry_of(name: str | None) -> ZooEntry | None:
    """The manifest entry a folder was converted from (None for --source files or unknown names)."""
    if not name:
        return None
    try:
        return get_entry(name)
    except ManifestError:
        return None


# --------------------------------------------------------------------------------------------- metadata
def _family(config: Mapping[str, Any], entry: ZooEntry | None) -> str:
    if entry is not None:
        return entry.family
    return "swin" if int(config.get("version", 1)) == 1 else "swinv2"


def _is_simmim(entry: ZooEntry | None, conversion: ConversionRecord) -> bool:
    if entry is not None:
        return entry.kind.startswith("simmim")
    return (conversion.converter or "").startswith("simmim")


def _datasets(entry: ZooEntry | None, task: str) -> list[str]:
    """Hub dataset ids of the training data: ImageNet-22K is ``imagenet-21k`` on the Hub."""
    if entry is None:
        return ["imagenet-1k"] if task == "image-classification" else []
    lineage = f"{entry.name} {entry.pretrained_from or ''}"
    datasets = []
    if "22k" in lineage or entry.label_set == "imagenet-22k":
        datasets.append("imagenet-21k")
    if entry.label_set == "imagenet-1k" or (entry.kind == "simmim-pretrain" and "22k" not in entry.name):
        datasets.append("imagenet-1k")
    return datasets


def base_model_of(entry: ZooEntry | None) -> str | None:
    """The same weights on the Hub: transformers' id, else timm's ``timm/<model>.<tag>``."""
    if entry is None:
        return None
    if entry.upstream.transformers:
        return entry.upstream.transformers
    if entry.upstream.timm:
        return f"timm/{entry.upstream.timm}"
    return None


def _report_source(entry: Any) -> tuple[str, str]:  # a ZooEntry with metrics
    reported_by = entry.metrics.reported_by
    for marker, url in _REPORT_SOURCES.items():
        if marker in reported_by:
            return f"Reported by the original authors: {reported_by}", url
    paper = "simmim" if entry.kind.startswith("simmim") else entry.family
    title, url = PAPERS[paper]
    return f"Reported by the original authors: {reported_by} ({title})", url


def eval_results(entry: ZooEntry | None) -> list[EvalResult]:
    """model-index entries: the ImageNet accuracy the original authors reported (not re-measured here)."""
    from huggingface_hub import EvalResult

    if entry is None or entry.metrics is None:
        return []
    source_name, source_url = _report_source(entry)
    results = []
    for value, dataset_type, dataset_name in (
        (entry.metrics.top1, "imagenet-1k", "ImageNet-1K"),
        (entry.metrics.imagenet_v2_top1, "imagenet_v2", "ImageNet-V2"),
    ):
        if value is None:
            continue
        results.append(
            EvalResult(
                task_type="image-classification",
                task_name="Image Classification",
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_split="validation" if dataset_type == "imagenet-1k" else "test",
                metric_type="accuracy",
                metric_name="Top-1 accuracy (%)",
                metric_value=value,
                source_name=source_name,
                source_url=source_url,
            )
        )
    return results


def _geometry_text(geometry: Mapping[str, Any]) -> str:
    size = geometry.get("image_size")
    size = "x".join(map(str, size)) if isinstance(size, list) else size
    text = f"image {size}, window {geometry.get('window_size')}"
    if geometry.get("stage_windows"):
        text += f" (per stage {geometry['stage_windows']})"
    if any(geometry.get("pretrained_window_sizes") or []):
        text += f", pretrained windows {geometry['pretrained_window_sizes']}"
    return text + f", {geometry.get('num_labels')} classes"


def retarget_lines(record: Any) -> list[str]:
    """What a retargeted folder's card says: from which geometry and head to which, and by which method."""
    if not isinstance(record, Mapping):
        return []
    source, target = record.get("from") or {}, record.get("to") or {}
    lines = [
        f"- **retargeted** (as the official fine-tuning loaders do) from {_geometry_text(source)} to "
        f"{_geometry_text(target)}"
        + (
            f"; {record.get('source_task')} -> {record.get('target_task')}"
            if record.get("source_task") != record.get("target_task")
            else ""
        )  # fmt: skip
    ]
    for part, method in (record.get("methods") or {}).items():
        lines.append(f"  - {part}: {method}")
    return lines


def read_evaluation(folder: Path) -> dict[str, Any] | None:
    """``evaluation.json`` when it was measured on exactly this folder's weights (a stale one is not shown)."""
    record = ConvertedFolder(folder).evaluation()
    if not isinstance(record, dict) or not isinstance(record.get("top1"), (int, float)):
        return None
    weights = folder / WEIGHTS_NAME
    if not weights.is_file() or record.get("weights_sha256") != sha256_of(weights):
        return None
    return record


def measured_results(evaluation: Mapping[str, Any] | None) -> list:
    """model-index entries for the accuracy ``swinzoo evaluate`` measured, named apart from the reported ones."""
    from huggingface_hub import EvalResult

    if not evaluation:
        return []
    dataset = evaluation.get("dataset") or {}
    full = dataset.get("full_validation_set") is True
    results = []
    for key, label in (("top1", "Top-1"), ("top5", "Top-5")):
        value = evaluation.get(key)
        if not isinstance(value, (int, float)):
            continue
        results.append(
            EvalResult(
                task_type="image-classification",
                task_name="Image Classification",
                dataset_type="imagenet-1k",
                dataset_name="ImageNet-1K" if full else "ImageNet-1K (subset)",
                dataset_split="validation",
                metric_type="accuracy",
                metric_name=f"{label} accuracy (%), measured by swinzoo evaluate",
                metric_value=round(100 * float(value), 3),
            )
        )
    return results


def _accuracy_lines(
    results: list, measured: list, evaluation: Mapping[str, Any] | None, entry: ZooEntry | None
) -> list[str]:
    lines = ["## Accuracy", ""]
    for r in results:
        lines.append(
            f"- {r.dataset_name} top-1 **{r.metric_value} %**, reported by the original authors "
            f"([source]({r.source_url}))."
        )
    if measured and evaluation:
        dataset = evaluation.get("dataset") or {}
        scope = "the full ImageNet-1K validation set" if dataset.get("full_validation_set") else (
            f"{evaluation.get('images')} images ({dataset.get('name', 'a subset')})"
        )  # fmt: skip
        values = ", ".join(f"{m.metric_name.split(' accuracy')[0].lower()} **{m.metric_value} %**" for m in measured)
        lines.append(
            f"- measured by `swinzoo evaluate` on {scope}: {values} (the official eval transform; "
            f"{evaluation.get('skipped', 0)} image(s) skipped; see `evaluation.json`)."
        )
    elif results:
        lines.append("- not re-measured by swinzoo yet (`swinzoo evaluate FOLDER --data IMAGENET_VAL`).")
    if entry is not None and entry.metrics is not None and entry.metrics.simmim_val_loss is not None:
        lines.append(f"- SimMIM validation loss reported by the authors: {entry.metrics.simmim_val_loss}")
    return [*lines, ""]


# --------------------------------------------------------------------------------------------- body
def _fmt_float(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _fmt_agreement(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{100 * value:.1f} %" if value <= 1 else f"{value:.1f} %"
    return "-"


def reference_rows(verification: VerificationRecord | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The references of a verification.json as table rows (the record has read an older shape as today's)."""
    record = as_verification(verification)
    rows = []
    for ref in (record.references if record is not None else None) or []:  # objects: the record checked
        rows.append(
            {
                "reference": str(ref.get("reference", "?")),
                "version": ref.get("library_version") or "?",
                "logits": ref.get("output_max_abs_diff"),
                "hidden": ref.get("hidden_max_abs_diff"),
                "top5": ref.get("top5_agreement"),
                "status": str(ref.get("status") or "fail"),
                "reason": str(ref.get("reason") or ""),
            }
        )
    return rows


def _fmt_tolerance(value: Any) -> str:
    if isinstance(value, Mapping):
        return " + ".join(
            f"{k} {_fmt_float(value[k])}" + (" x max|reference|" if k == "rtol" else "")
            for k in ("atol", "rtol")
            if k in value
        )
    return _fmt_float(value)


def verification_section(
    verification: VerificationRecord | None, folder_hint: str, problems: list[str] | None = None
) -> str:
    """The verification table, or a NOT VERIFIED / FAILED line a reader cannot miss.

    ``problems``: why a record that says "pass" does not hold for these files (see verification_problems).
    """
    if verification is None:
        return (
            "**NOT VERIFIED**: no `verification.json` was found, so these weights have not been compared "
            "with a reference implementation. Run `swinzoo verify --converted "
            f"{folder_hint}` before relying on them.\n"
        )
    lines = []
    if not verification.verdict:
        lines.append(
            f"**VERIFICATION FAILED** (status `{verification.status or 'fail'}`): these weights did not "
            "match the reference implementations within tolerance, or could not be checked. Do not rely on them."
        )
        lines += [f"- {p}" for p in verification.problems or []]
        lines.append("")
    elif problems:
        lines.append(
            "**NOT VERIFIED**: `verification.json` says pass, but it does not hold for these files, so they "
            "have not been verified:"
        )
        lines += [f"- {p}" for p in problems]
        lines.append("")
    images = verification.images or []
    facts = [
        f"dtype `{verification.dtype or '?'}`",
        f"tolerance {_fmt_tolerance(verification.tolerance)}",
        f"{len(images)} image(s)" + (f": {', '.join(f'`{i}`' for i in images)}" if images else ""),
    ]
    for key in ("swinzoo_version", "verified_at"):
        if getattr(verification, key):
            facts.append(f"{key.replace('_', ' ')} {getattr(verification, key)}")
    lines.append("Outputs compared with reference implementations on the same inputs (" + "; ".join(facts) + ").")
    lines += [
        "",
        "| reference | version | max abs diff (output) | max abs diff (hidden states) | top-5 agreement | result |",
        "|---|---|---|---|---|---|",
    ]
    for row in reference_rows(verification):
        result = row["status"] + (f" ({row['reason']})" if row["reason"] and row["status"] != "pass" else "")
        lines.append(
            f"| {row['reference']} | {row['version']} | {_fmt_float(row['logits'])} | {_fmt_float(row['hidden'])} "
            f"| {_fmt_agreement(row['top5'])} | {result.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def _label_text(n: int, entry: ZooEntry | None, conversion: ConversionRecord | None) -> str:
    """The folder's own label set: the entry's while the head is the entry's, else what the retarget made."""
    names = {"imagenet-1k": "ImageNet-1K", "imagenet-22k": "ImageNet-22K"}
    head = str(((conversion.retarget or {}).get("methods") or {}).get("head", "")) if conversion else ""
    if entry is not None and n == entry.num_classes and not head:
        return f"{names.get(entry.label_set, entry.label_set)} ({n} classes)"
    if head.startswith("map22kto1k") and n == 1000:
        return "ImageNet-1K (1000 classes: the rows of the ImageNet-22K head the official 22k->1k map picks)"
    if head.startswith("zero"):
        return f"{n} classes (a new zero-initialised head: train it before use)"
    return f"{n} classes"


def _describe(
    config: Mapping[str, Any], entry: ZooEntry | None, task: str, conversion: ConversionRecord | None = None
) -> str:
    family = "Swin Transformer" if int(config.get("version", 1)) == 1 else "Swin Transformer V2"
    size = config.get("image_size")
    arch = (
        f"{family} (embed dim {config.get('embed_dim')}, depths {config.get('depths')}, heads "
        f"{config.get('num_heads')}, window {config.get('window_size')}, {size} px input)"
    )
    if task == "masked-image-modeling":
        what = f"{arch} pre-trained with SimMIM (masked image modelling); the encoder plus SimMIM's decoder"
    elif task == "image-classification":
        n = len(config.get("id2label") or {}) or int(config.get("num_labels", 0))
        what = f"{arch} image classifier, {_label_text(n, entry, conversion)}"
    else:
        what = arch
    return what


def _preprocessing_text(
    config: Mapping[str, Any], entry: ZooEntry | None, conversion: ConversionRecord | None = None
) -> str:
    """The folder's eval transform: conversion.json's record (what its processor uses), else the entry's."""
    recorded = conversion.preprocessing if conversion is not None else None
    p: Preprocessing | None = entry.preprocessing if entry is not None else None
    if recorded is not None:
        p = ImageProcessor.from_dict(recorded, "conversion.json: 'preprocessing'").preprocessing
    if p is not None:
        size, crop, interp, mean, std = p.input_size, p.crop_pct, p.interpolation, p.mean, p.std
        squash = p.crop_mode == "squash"
    else:
        size, crop, interp = int(config.get("image_size", 224)), 0.875, "bicubic"
        mean, std, squash = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False
    import math

    short = math.floor(size / crop)
    resize = (
        f"resize to {size}x{size}"
        if squash or short == size
        else f"resize the short side to {short}, centre-crop {size}"
    )
    return f"{resize} ({interp}), scale to [0, 1], normalise with mean {list(mean)} and std {list(std)}"


def _usage(
    fmt: str,
    repo: str,
    task: str,
    config: Mapping[str, Any],
    entry: ZooEntry | None,
    conversion: ConversionRecord | None = None,
) -> str:
    pp = _preprocessing_text(config, entry, conversion)
    if fmt == "transformers":
        cls = "AutoModelForImageClassification"
        if task == "masked-image-modeling":
            cls = "SwinForMaskedImageModeling" if int(config.get("version", 1)) == 1 else "Swinv2ForMaskedImageModeling"
        return (
            "```python\n"
            f"from transformers import {cls}\n\n"
            f'model = {cls}.from_pretrained("{repo}").eval()\n'
            "```\n\n"
            f"Eval preprocessing of the original checkpoint: {pp}.\n"
        )
    if fmt == "timm":
        return (
            "```python\n"
            "import timm\n\n"
            f'model = timm.create_model("hf-hub:{repo}", pretrained=True).eval()\n'
            "config = timm.data.resolve_data_config({}, model=model)\n"
            "transform = timm.data.create_transform(**config)\n"
            "```\n\n"
            f"Eval preprocessing of the original checkpoint (in `pretrained_cfg`): {pp}.\n"
        )
    text = (
        "```python\n"
        "import swinzoo\n\n"
        f'model = swinzoo.from_pretrained("{repo}")  # add revision="..." to pin a tag or commit\n'
        "```\n\n"
    )
    if task == "image-classification":
        text += f"```bash\nswinzoo predict cat.jpg --model {repo} --top-k 5\n```\n\n"
    return text + f"Eval preprocessing: {pp}.\n"


def _citations(entry: ZooEntry | None, config: Mapping[str, Any], simmim: bool) -> list[str]:
    keys = ["swin"] if _family(config, entry) == "swin" else ["swinv2"]
    if simmim:
        keys.append("simmim")
        if entry is not None and entry.family == "swinv2":
            keys.append("simmim-data-scaling")
    return [CITATIONS[k] for k in keys]


# --------------------------------------------------------------------------------------------- card
def _tags(fmt: str, task: str, family: str, *, simmim: bool, synthetic: bool, verified: bool) -> list[str]:
    """Hub tags; random weights are never tagged verified (verify checks the pipeline, not a published model):
    a passing verify of them is ``pipeline-verified``, what the card's passing table shows."""
    tags = ["swinzoo", "image-classification" if task == "image-classification" else "vision"]
    tags += ["swin-transformer" if family == "swin" else "swinv2"]
    tags += ["simmim"] if simmim else []
    tags += [fmt] if fmt != "swinzoo" else []
    tags += ["synthetic-weights"] if synthetic else []
    if synthetic:
        return [*tags, "pipeline-verified" if verified else "not-verified"]
    return [*tags, "verified" if verified else "not-verified"]


def display_path(folder: Path) -> Path:
    """The folder a reader will see: convert writes the card inside ``.NAME.<pid>.<random>.partial`` (see
    folder.atomic_output), renamed to ``NAME`` when complete."""
    import re

    name = folder.name
    current = re.fullmatch(r"\.(.+)\.\d+\.[^.]+\.partial", name)  # folder.atomic_output: .NAME.<pid>.<random>
    if current:
        return folder.with_name(current.group(1))
    return folder


def build_card(
    folder: str | os.PathLike,
    *,
    fmt: str = "swinzoo",
    repo_id: str | None = None,
    verification: VerificationRecord | Mapping[str, Any] | None | bool = True,
) -> ModelCard:
    """The ModelCard of a converted folder, for the ``fmt`` the weights are published in.

    ``repo_id`` is used in the usage snippets (default: the folder path). ``verification`` overrides what is
    read from the folder (True = read ``verification.json``), e.g. for a card rendered before verifying.
    """
    from huggingface_hub import ModelCard, ModelCardData

    if fmt not in FORMATS:
        raise CardError(f"format {fmt!r} is not one of {FORMATS}")
    folder = Path(folder)
    shown = display_path(folder)
    config = read_json(folder / CONFIG_NAME, fields=CONFIG_FIELDS)
    conversion = ConvertedFolder(folder).require_conversion()
    if verification is True:
        verification = read_verification(folder)
    else:
        verification = as_verification(verification, folder / VERIFICATION_NAME)
    entry = entry_of(conversion.entry)
    task = str(config.get("task", "image-classification"))
    simmim = _is_simmim(entry, conversion)
    name = entry.name if entry is not None else (repo_id.split("/")[-1] if repo_id else shown.name)
    synthetic = conversion.synthetic is True
    problems = verification_problems(folder, verification) if verification_passed(verification) else []
    verified = verification_passed(verification) and not problems

    results = [] if synthetic else eval_results(entry)  # the authors' accuracy is not that of random weights
    evaluation = read_evaluation(folder)
    measured = [] if synthetic else measured_results(evaluation)  # random weights have no accuracy to claim
    data = ModelCardData(
        license="mit",
        library_name=fmt,
        pipeline_tag=_PIPELINE_TAGS.get(task, "image-feature-extraction"),
        tags=_tags(fmt, task, _family(config, entry), simmim=simmim, synthetic=synthetic, verified=verified),
        datasets=_datasets(entry, task) or None,
        base_model=None if synthetic else base_model_of(entry),
        metrics=["accuracy"] if results or measured else None,
        model_name=name if results or measured else None,
        eval_results=(results + measured) or None,
    )

    repo = repo_id or str(shown)
    lines = [f"# {name}" + (f": {SYNTHETIC_TITLE}" if synthetic else ""), ""]
    if synthetic:
        lines += [
            "> **SYNTHETIC WEIGHTS**: random tensors in the official checkpoint layout, made to test the "
            "pipeline. This is not the published model and predicts nothing useful; no accuracy applies to it.",
            "",
        ]
    lines += [
        f"{_describe(config, entry, task, conversion)}. Converted by swinzoo from the checkpoint below into "
        f"{fmt}'s layout.",
        "",
        "## Source",
        "",
        f"- file: `{conversion.source or '?'}`",
        f"- sha256: `{conversion.source_sha256 or '?'}`"
        + (" (matches the digest pinned in the zoo manifest)" if conversion.source_pinned is True else ""),
    ]
    if entry is not None and entry.pretrained_from:
        lines.append(f"- fine-tuned from: `{entry.pretrained_from}`")
    if entry is not None and (entry.upstream.transformers or entry.upstream.timm):
        ups = [f"transformers `{entry.upstream.transformers}`"] if entry.upstream.transformers else []
        ups += [f"timm `{entry.upstream.timm}`"] if entry.upstream.timm else []
        lines.append("- the same checkpoint elsewhere: " + ", ".join(ups))
    lines += [
        "",
        "## Conversion",
        "",
        f"- swinzoo {conversion.swinzoo_version or '?'}, converter `{conversion.converter or '?'}`, "
        f"dtype `{conversion.dtype or '?'}`",
        f"- {len(conversion.mapped or {})} tensors mapped, {len(conversion.dropped or {})} "
        f"dropped with a stated reason (see `conversion.json`)"
        if fmt == "swinzoo"
        else f"- {len(conversion.mapped or {})} tensors mapped into swinzoo's layout, then exported to {fmt}'s layout",
    ]
    lines += retarget_lines(conversion.retarget)
    for note in conversion.notes or []:
        lines.append(f"- note: {note}")
    lines += ["", "## Verification", "", verification_section(verification, str(shown), problems)]
    if simmim and task == "masked-image-modeling":
        lines += ["## SimMIM loss", "", simmim_loss_text(config, fmt), ""]
    if results or measured or (not synthetic and entry is not None and entry.metrics is not None):
        lines += _accuracy_lines(results, measured, evaluation, entry)
    lines += card_lines(folder)
    lines += ["## Usage", "", _usage(fmt, repo, task, config, entry, conversion), "## Citation", ""]
    for citation in _citations(entry, config, simmim):
        lines += ["```bibtex", citation, "```", ""]
    lines += ["License: MIT, as the original checkpoints (microsoft/Swin-Transformer).", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def write_card(folder: str | Path) -> Path:
    """Write README.md from the folder's config.json, conversion.json and (if present) verification.json.

    Atomic (temporary file, then rename), so a reader never sees half a card. ``swinzoo verify`` should call
    this again after writing ``verification.json`` so the card shows the result.
    """
    folder = Path(folder)
    card = build_card(folder)
    return atomic_write_text(folder / CARD_NAME, str(card))
