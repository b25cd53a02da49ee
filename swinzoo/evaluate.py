"""``swinzoo evaluate``: top-1 / top-5 of a converted model on ImageNet-1k validation images, re-measured.

Numerical parity with timm and transformers proves the conversion; it cannot catch a mislabelled file, a wrong
label order, a 22k->1k mix-up or a wrong eval transform, because every implementation is fed the same file and
the same pixels. Accuracy on real labelled images catches all four.

Data layouts:

* one folder per WordNet id (``n01440764/``, ...), read as torchvision's ``ImageFolder`` reads it (files
  found recursively, sorted; the suffixes torchvision accepts). The class index is the model's head index of
  that WordNet id: its position in timm's ImageNet-1k synset list, the standard 1k order (sorted ids);
* a flat folder plus a ground-truth file, one ``FILE INDEX`` pair a line (whitespace or a comma between them,
  ``#`` comments, an optional header line); INDEX is the 1k class index or a WordNet id.

Heads: a 1000-class head is used as it is (its labels, when named, must be ImageNet-1k's in the 1k order); a
21841-class ImageNet-22k head is read through the official 22k->1k class map (the 22k row of each 1k class).

Under ``torchrun`` (``WORLD_SIZE`` set: ``env://`` rendezvous, gloo on CPU, nccl on GPU) rank ``r`` of ``N``
takes images ``r, r + N, ...``: every image is counted exactly once, with no padding duplicates as a plain
``DistributedSampler`` would add. Counts are summed with ``all_reduce``; per-image predictions are gathered on
rank 0, which alone reports and writes ``evaluation.json``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from . import images as _images
from .card import write_card
from .errors import SwinzooError, printable
from .fetch import sha256_file
from .folder import CARD_NAME, ConvertedFolder, atomic_write_text, committing, interrupts_kept
from .images import ImageError, Preprocessing
from .loading import read_config
from .manifest import label_names, load_manifests
from .predict import PredictError, load_classifier, resolve_model
from .retarget import map22kto1k

__all__ = ["EvalData", "EvaluateError", "Evaluation", "evaluate", "imagenet_synsets", "scan_data"]

NUM_CLASSES_1K = 1000
NUM_CLASSES_22K = 21841
FULL_VAL_IMAGES = 50_000  # ImageNet-1k validation: 50 images per class
TOP_K = 5
# torchvision.datasets.folder.IMG_EXTENSIONS: what ImageFolder reads (compared in lower case).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MAX_GROUND_TRUTH_BYTES = 64 * 1024 * 1024  # 50,000 lines are about 2 MB
_WNID_RE = re.compile(r"^n\d{8}$")
_SHOWN = 5  # files named in one error message


class EvaluateError(SwinzooError, ValueError):
    """The model or the data cannot be evaluated; the message names the file, folder or value at fault."""


# --------------------------------------------------------------------------------------------- data
def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids in head order, from timm's package data (read without importing timm)."""
    spec = importlib.util.find_spec("timm")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise EvaluateError(
            "evaluate needs timm's ImageNet-1k class list (timm/data/_info/imagenet_synsets.txt): "
            "pip install timm (or swinzoo's 'verify' extra)"
        )
    path = Path(locations[0]) / "data" / "_info" / "imagenet_synsets.txt"
    try:
        synsets = path.read_text(encoding="utf-8").split()
    except OSError as exc:
        raise EvaluateError(f"cannot read timm's ImageNet-1k class list {path}: {exc.strerror or exc}") from exc
    if len(synsets) != NUM_CLASSES_1K or len(set(synsets)) != NUM_CLASSES_1K:
        raise EvaluateError(f"{path}: {len(synsets)} WordNet ids, expected {NUM_CLASSES_1K} distinct ones")
    return synsets


@dataclass(frozen=True)
class EvalData:
    """Labelled images: (path, 1k class index) in the order they are evaluated."""

    root: Path
    layout: str  # "image-folder" or "ground-truth"
    samples: tuple[tuple[Path, int], ...]
    ground_truth: Path | None = None

    @property
    def classes(self) -> int:
        return len({target for _, target in self.samples})

    def describe(self, evaluated: int | None = None) -> dict[str, Any]:
        """What the record says of the data; ``full_validation_set`` only when all 50,000 images of the 1000
        classes were asked for (``evaluated``: how many were, after ``--limit``)."""
        found = len(self.samples)
        full = found == FULL_VAL_IMAGES and self.classes == NUM_CLASSES_1K and evaluated in (None, found)
        return {
            "name": "ImageNet-1k validation" if full else "ImageNet-1k classes (a subset or another image set)",
            "path": str(self.root.resolve()),
            "layout": self.layout,
            "ground_truth": str(self.ground_truth.resolve()) if self.ground_truth else None,
            "images_found": found,
            "classes": self.classes,
            "full_validation_set": full,
        }


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS) and not name.startswith(".")


def _list_dir(folder: Path, what: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise EvaluateError(f"{what} {folder}: cannot read it ({exc.strerror or exc})") from exc


def _walk_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, in torchvision's order (os.walk sorted, then file names sorted).

    Links are followed as torchvision does, but each real folder is entered once (a link loop would otherwise
    list the same images again at every depth until the path is too long).
    """

    def failed(exc: OSError) -> None:
        raise EvaluateError(f"class folder {exc.filename or folder}: cannot read it ({exc.strerror or exc})")

    walked: list[tuple[str, list[str]]] = []
    entered: set[str] = set()
    for root, dirs, files in os.walk(folder, onerror=failed, followlinks=True):
        entered.add(os.path.realpath(root))
        dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(root, d)) not in entered]
        entered.update(os.path.realpath(os.path.join(root, d)) for d in dirs)
        walked.append((root, files))
    found: list[Path] = []
    for root, files in sorted(walked):
        found.extend(Path(root) / name for name in sorted(files) if _is_image(name))
    return found


def _once_each(root: Path, samples: list[tuple[Path, int]]) -> list[tuple[Path, int]]:
    """Each real file once (links to one image count it once); one file under two classes is an error."""
    seen: dict[str, tuple[Path, int]] = {}
    out: list[tuple[Path, int]] = []
    for path, target in samples:
        real = os.path.realpath(path)
        if real in seen:
            first, first_target = seen[real]
            if first_target != target:
                raise EvaluateError(
                    f"--data {root}: {first} and {path} are the same file ({real}) under two classes "
                    f"({first_target} and {target})"
                )
            continue
        seen[real] = (path, target)
        out.append((path, target))
    return out


def _scan_image_folder(root: Path, entries: list[os.DirEntry]) -> list[tuple[Path, int]]:
    class_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    index = {wnid: i for i, wnid in enumerate(imagenet_synsets())}
    unknown = [e.name for e in class_dirs if e.name not in index]
    if unknown:
        shown = ", ".join(unknown[:_SHOWN]) + (f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else "")
        raise EvaluateError(
            f"--data {root}: class folder(s) {shown} are not ImageNet-1k WordNet ids (like n01440764); "
            "each class folder must be named by the WordNet id of one of the 1000 classes"
        )
    samples: list[tuple[Path, int]] = []
    for entry in class_dirs:
        files = _walk_images(Path(entry.path))
        if not files:
            raise EvaluateError(
                f"--data {root}: class folder {entry.name} holds no images (looked for {', '.join(IMG_EXTENSIONS)})"
            )
        samples.extend((path, index[entry.name]) for path in files)
    return _once_each(root, samples)


def _parse_label(value: str, synsets: Callable[[], list[str]]) -> int | None:
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if _WNID_RE.match(value):
        try:
            return synsets().index(value)
        except ValueError:
            raise EvaluateError(f"{value} is not one of the 1000 ImageNet-1k WordNet ids") from None
    return None


def _read_text(ground_truth: Path) -> str:
    try:
        size = ground_truth.stat().st_size
        if not ground_truth.is_file():
            raise EvaluateError(f"--ground-truth {ground_truth}: is not a file")
        if size > MAX_GROUND_TRUTH_BYTES:
            raise EvaluateError(
                f"--ground-truth {ground_truth}: {size} bytes, more than the {MAX_GROUND_TRUTH_BYTES} a "
                "ground-truth file of ImageNet's size needs"
            )
        return ground_truth.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not text
    except OSError as exc:
        raise EvaluateError(f"--ground-truth {ground_truth}: cannot read it ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise EvaluateError(
            f"--ground-truth {ground_truth}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc


def _is_header(name: str, value: str) -> bool:
    """A header names its columns (``file,label``): words, not an image file and a mistyped class."""
    return not _is_image(name) and re.fullmatch(r"[A-Za-z_ ]+", value) is not None and len(value) <= 40


def _read_ground_truth(root: Path, ground_truth: Path) -> list[tuple[Path, int]]:
    text = _read_text(ground_truth)
    cached: list[list[str]] = []

    def synsets() -> list[str]:
        if not cached:
            cached.append(imagenet_synsets())
        return cached[0]

    samples: list[tuple[Path, int]] = []
    seen: dict[str, tuple[int, str]] = {}
    first = True
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")] if "," in line else line.split()
        where = f"--ground-truth {ground_truth}, line {lineno}"
        if len(parts) != 2 or not all(parts):
            raise EvaluateError(f"{where}: expected two columns 'FILE INDEX', got {line[:200]!r}")
        name, value = parts
        try:
            target = _parse_label(value, synsets)
        except EvaluateError as exc:
            raise EvaluateError(f"{where}: {exc}") from None
        if target is None:
            if first and _is_header(name, value):  # a header line ("file,label")
                first = False
                continue
            raise EvaluateError(f"{where}: class {value[:100]!r} is neither a class index nor a WordNet id")
        first = False
        if not 0 <= target < NUM_CLASSES_1K:
            raise EvaluateError(f"{where}: class index {target} is outside 0..{NUM_CLASSES_1K - 1}")
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise EvaluateError(f"{where}: {name!r} must be a file name inside --data {root}")
        key = os.path.normpath(relative)  # a.jpg, ./a.jpg and x/../a.jpg name one image
        if key in seen:
            first_line, first_name = seen[key]
            raise EvaluateError(f"{where}: {name} is the image of line {first_line} ({first_name}), listed twice")
        seen[key] = (lineno, name)
        path = root / key
        if not path.is_file():
            raise EvaluateError(f"{where}: image {path} does not exist")
        samples.append((path, target))
    if not samples:
        raise EvaluateError(f"--ground-truth {ground_truth}: lists no images")
    return samples


def scan_data(data: str | os.PathLike, ground_truth: str | os.PathLike | None = None) -> EvalData:
    """The labelled images of ``data`` (see the module docstring for the layouts); bad input raises
    :class:`EvaluateError` naming the folder, file or line."""
    root = Path(data)
    if not root.is_dir():
        reason = "is not a folder" if root.exists() else "does not exist"
        raise EvaluateError(f"--data {root}: {reason}")
    entries = _list_dir(root, "--data")
    if ground_truth is not None:
        return EvalData(root, "ground-truth", tuple(_read_ground_truth(root, Path(ground_truth))), Path(ground_truth))
    if any(e.is_dir() and not e.name.startswith(".") for e in entries):
        return EvalData(root, "image-folder", tuple(_scan_image_folder(root, entries)))
    loose = [e for e in entries if e.is_file() and _is_image(e.name)]
    if loose:
        raise EvaluateError(
            f"--data {root}: holds {len(loose)} image(s) but no class folders; give their labels with "
            "--ground-truth FILE (lines 'FILE INDEX'), or put them in one folder per WordNet id"
        )
    raise EvaluateError(f"--data {root}: holds no class folders and no images (the folder is empty)")


def spread(samples: Sequence[Any], limit: int | None) -> list[Any]:
    """At most ``limit`` items spread evenly over ``samples`` (every class represented when limit >= classes)."""
    if limit is None or limit >= len(samples):
        return list(samples)
    if limit < 1:
        raise EvaluateError(f"--limit must be at least 1, got {limit}")
    return [samples[i * len(samples) // limit] for i in range(limit)]


# --------------------------------------------------------------------------------------------- model
@dataclass
class _Model:
    model: torch.nn.Module
    preprocessing: Preprocessing
    preprocessing_from: str
    source: str
    folder: Path
    local: bool
    head: str
    class_map: list[int] | None
    float32: torch.nn.Module | None = None  # the float32 model, when the run is in another dtype (agreement)


def _official_22k_to_1k() -> list[int]:
    """The official 22k->1k map (the 22k head row of each ImageNet-1k class), from swinzoo.retarget."""
    return list(map22kto1k()[0])


def _check_class_map(class_map: Sequence[int], num_labels: int) -> list[int]:
    values = list(class_map)
    if len(values) != NUM_CLASSES_1K:
        raise EvaluateError(f"class_map: {len(values)} entries, expected one head row per 1k class ({NUM_CLASSES_1K})")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < num_labels:
            raise EvaluateError(f"class_map[{i}] is {v!r}: not a row of the {num_labels}-class head")
    if len(set(values)) != len(values):
        raise EvaluateError("class_map: two 1k classes map to the same 22k row")
    return values


def _check_1k_labels(id2label: dict[int, str], source: str) -> None:
    """Named labels must be ImageNet-1k's, in the 1k order: a shuffled or foreign head would score ~0."""
    labels = [id2label.get(i, f"LABEL_{i}") for i in range(NUM_CLASSES_1K)]
    if all(label == f"LABEL_{i}" for i, label in enumerate(labels)):
        return  # no names recorded (converted without timm): nothing to compare
    expected = label_names("imagenet-1k")
    if expected[0] == "LABEL_0":
        return  # timm not installed: no reference names
    for i, (got, want) in enumerate(zip(labels, expected, strict=True)):
        if got != want:
            moved = " (a 1k label, in another place: a wrong label order)" if got in expected else ""
            raise EvaluateError(
                f"{source}: config.json id2label[{i}] is {got[:80]!r}, ImageNet-1k class {i} is {want[:80]!r}"
                f"{moved}; the head's labels do not fit ImageNet-1k data"
            )


def _head(config: Any, source: str, class_map: Sequence[int] | None) -> tuple[str, list[int] | None]:
    n = config.num_labels
    if n == NUM_CLASSES_1K:
        if class_map is not None:
            raise EvaluateError(f"class_map is for 21841-class heads; {source} has a 1000-class head")
        _check_1k_labels(config.id2label, source)
        return "imagenet-1k", None
    if n == NUM_CLASSES_22K:
        values = _check_class_map(class_map if class_map is not None else _official_22k_to_1k(), n)
        return "imagenet-22k through the 22k->1k class map", values
    raise EvaluateError(
        f"{source}: the head has {n} classes; ImageNet-1k data need a {NUM_CLASSES_1K}-class head (or a "
        f"{NUM_CLASSES_22K}-class ImageNet-22k head, read through the 22k->1k map)"
    )


_SIMMIM_REASON = (
    "a SimMIM pretrain checkpoint has no classifier head (it was trained to reconstruct masked pixels), so there "
    "is no top-1 to measure; evaluate its fine-tuned entry (kind simmim-finetune) instead"
)


def _load(spec: str, class_map: Sequence[int] | None, dtype: str | torch.dtype | None = None) -> _Model:
    entry = load_manifests().get(spec)
    if entry is not None and entry.kind == "simmim-pretrain":
        raise EvaluateError(f"{spec}: {_SIMMIM_REASON}")
    folder, source = resolve_model(spec)
    local = source == str(folder)
    config_file = ConvertedFolder(folder).config_file
    if not config_file.is_file():
        raise EvaluateError(f"{source}: no config.json in {folder}")
    _, task, _ = read_config(config_file)
    if task == "masked-image-modeling":
        raise EvaluateError(f"{source}: {_SIMMIM_REASON}")
    if task != "image-classification":
        raise EvaluateError(f"{source}: config.json task is {task!r}: evaluate needs an image-classification model")
    try:
        loaded = load_classifier(str(folder), dtype=dtype)
    except PredictError as exc:
        raise EvaluateError(str(exc)) from exc
    head, values = _head(loaded.model.config, source, class_map)
    reference = None
    if next(loaded.model.parameters()).dtype != torch.float32:
        reference = load_classifier(str(folder), dtype=torch.float32).model
    return _Model(
        loaded.model, loaded.preprocessing, loaded.preprocessing_from, source, folder, local, head, values, reference
    )


# --------------------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class _World:
    rank: int
    size: int
    device: torch.device
    owned: bool  # this call started the process group (and ends it)

    @property
    def distributed(self) -> bool:
        return self.size > 1 or self.owned


# How long rank 0 waits for the others to join (torch's default is 30 minutes of silence).
RENDEZVOUS_TIMEOUT_ENV = "SWINZOO_RENDEZVOUS_TIMEOUT"
DEFAULT_RENDEZVOUS_TIMEOUT_S = 300


def _env_int(name: str, default: int, minimum: int) -> int:
    """An integer environment variable (torchrun's WORLD_SIZE, RANK, LOCAL_RANK), refused by name when garbage."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise EvaluateError(f"torchrun: {name}={printable(raw[:40])!r} is not an integer of at least {minimum}")
    return value


def _join_world() -> _World:
    """The process group torchrun describes (``WORLD_SIZE`` set), or a single process."""
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    if "WORLD_SIZE" not in os.environ and not (dist.is_available() and dist.is_initialized()):
        return _World(0, 1, torch.device("cuda" if cuda else "cpu"), False)
    if not dist.is_available():
        raise EvaluateError("WORLD_SIZE is set but this torch build has no torch.distributed")
    owned = not dist.is_initialized()
    size = _env_int("WORLD_SIZE", 1, 1) if owned else dist.get_world_size()
    rank = _env_int("RANK", 0, 0) if owned else dist.get_rank()
    local_rank = _env_int("LOCAL_RANK", 0, 0)
    if owned and rank >= size:
        raise EvaluateError(f"torchrun: RANK={rank} is not below WORLD_SIZE={size}")
    if cuda and local_rank >= torch.cuda.device_count():
        raise EvaluateError(
            f"torchrun: LOCAL_RANK={local_rank}, but this machine has {torch.cuda.device_count()} GPU(s)"
        )
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if owned:
        import datetime
        import sys

        timeout = _env_int(RENDEZVOUS_TIMEOUT_ENV, DEFAULT_RENDEZVOUS_TIMEOUT_S, 1)
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        if size > 1:
            print(
                f"evaluate: rank {rank} waiting for all {size} processes of WORLD_SIZE={size} at {where} (up to "
                f"{timeout}s, {RENDEZVOUS_TIMEOUT_ENV} sets it; Ctrl-C stops)",
                file=sys.stderr,
            )
        try:
            dist.init_process_group(
                backend="nccl" if cuda else "gloo",
                init_method="env://",
                timeout=datetime.timedelta(seconds=timeout),
            )
        except (ValueError, RuntimeError) as exc:
            raise EvaluateError(
                f"cannot join the torchrun process group of WORLD_SIZE={size} at {where} within {timeout}s (a stale "
                f"WORLD_SIZE, or a rank that did not start?): {str(exc).splitlines()[0] if str(exc) else exc!r}"
            ) from exc
    return _World(dist.get_rank(), dist.get_world_size(), device, owned)


def _leave_world(world: _World) -> None:
    import torch.distributed as dist

    if world.owned and dist.is_initialized():
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------- running
class _Images(torch.utils.data.Dataset):
    """(global index, target, pixels or None, error) per image; a corrupt file is reported, not raised, so the
    ranks agree on when to stop (see :func:`_run`)."""

    def __init__(self, items: list[tuple[int, Path, int]], pp: Preprocessing) -> None:
        self.items = items
        self.pp = pp

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, int, torch.Tensor | None, str]:
        index, path, target = self.items[i]
        try:
            return index, target, _images.preprocess(_images.load_image(path), self.pp), ""
        except ImageError as exc:
            return index, target, None, str(exc)


def _collate(
    batch: list[tuple[int, int, torch.Tensor | None, str]],
) -> tuple[list[int], list[int], torch.Tensor | None, list[tuple[int, str]]]:
    good = [(index, target, x) for index, target, x, _ in batch if x is not None]
    bad = [(index, message) for index, _, x, message in batch if x is None]
    if not good:
        return [], [], None, bad
    return [g[0] for g in good], [g[1] for g in good], torch.stack([g[2] for g in good]), bad


@dataclass(frozen=True)
class ImagePrediction:
    """One image's label and the model's top-5 1k classes (best first)."""

    path: str
    target: int
    top5: tuple[int, ...]

    @property
    def top1_correct(self) -> bool:
        return self.top5[0] == self.target

    @property
    def top5_correct(self) -> bool:
        return self.target in self.top5


@dataclass
class Evaluation:
    """Accuracy of a model on labelled images; ``predictions`` and ``written`` are set on rank 0 only."""

    model: str
    head: str
    images: int
    top1_correct: int
    top5_correct: int
    skipped: list[str]
    dataset: dict[str, Any]
    transform: dict[str, Any]
    transform_from: str
    world_size: int
    batch_size: int
    workers: int
    device: str
    seconds: float
    rank: int = 0
    limit: int | None = None
    predictions: list[ImagePrediction] = field(default_factory=list)
    weights_sha256: str | None = None
    written: Path | None = None
    dtype: str = "float32"
    float32_top1_agreement: float | None = None  # runs in another dtype: same top-1 as float32, per image

    @property
    def top1(self) -> float:
        return self.top1_correct / self.images

    @property
    def top5(self) -> float:
        return self.top5_correct / self.images

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``--json`` and ``evaluation.json``): fractions in [0, 1], counts, provenance."""
        return {
            "swinzoo_version": __version__,
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "head": self.head,
            "images": self.images,
            "top1": self.top1,
            "top5": self.top5,
            "top1_correct": self.top1_correct,
            "top5_correct": self.top5_correct,
            "skipped": len(self.skipped),
            "skipped_files": self.skipped,
            "limit": self.limit,
            "dataset": self.dataset,
            "transform": {**self.transform, "from": self.transform_from},
            "versions": _versions(),
            "world_size": self.world_size,
            "device": self.device,
            "batch_size": self.batch_size,
            "workers": self.workers,
            "wall_seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 3),
            "dtype": self.dtype,
            "float32_top1_agreement": self.float32_top1_agreement,
        }


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {
        "swinzoo": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    for name in ("pillow", "timm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _corrupt_message(bad: list[tuple[Path, str]]) -> str:
    shown = "; ".join(reason for _, reason in bad[:_SHOWN])
    more = f" (and {len(bad) - _SHOWN} more)" if len(bad) > _SHOWN else ""
    return (
        f"{len(bad)} corrupt image(s): {shown}{more}; fix or remove them, or pass --skip-corrupt to count them "
        "as skipped"
    )


def _run(
    loaded: _Model,
    samples: list[tuple[Path, int]],
    world: _World,
    *,
    batch_size: int,
    workers: int,
    skip_corrupt: bool,
    progress: bool,
) -> tuple[list[tuple[int, int, list[int]]], list[int], int]:
    """This rank's (index, target, top-5), skipped indices and how many images have float32's top-1 (when the
    model runs in another dtype; else 0). Every rank takes the same number of steps (one
    small ``all_reduce`` each), so a corrupt image on any rank stops all of them at the same step."""
    import torch.distributed as dist
    from tqdm.auto import tqdm

    mine = [(i, samples[i][0], samples[i][1]) for i in range(world.rank, len(samples), world.size)]
    loader = torch.utils.data.DataLoader(
        _Images(mine, loaded.preprocessing),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=world.device.type == "cuda",
    )
    largest_shard = -(-len(samples) // world.size)
    steps = -(-largest_shard // batch_size)
    model = loaded.model.to(world.device)
    dtype = next(model.parameters()).dtype
    reference = loaded.float32.to(world.device) if loaded.float32 is not None else None
    agree = 0
    index_map = torch.tensor(loaded.class_map, device=world.device) if loaded.class_map is not None else None
    k = min(TOP_K, NUM_CLASSES_1K)
    results: list[tuple[int, int, list[int]]] = []
    skipped: list[int] = []
    batches = iter(loader)
    bar = tqdm(
        total=len(mine), unit="img", desc="evaluate" + (f" (rank 0 of {world.size})" if world.size > 1 else ""),
        disable=not progress or world.rank != 0, dynamic_ncols=True,
    )  # fmt: skip
    with bar, torch.inference_mode():
        for _ in range(steps):
            indices, targets, pixels, bad = next(batches, ([], [], None, []))
            failed = bool(bad) and not skip_corrupt
            if world.distributed:
                flag = torch.tensor([int(failed)], device=world.device)
                dist.all_reduce(flag)
                failed = bool(flag.item())
            if failed:
                bad_all = [(samples[i][0], why) for i, why in bad]
                if world.distributed:
                    gathered: list[Any] = [None] * world.size
                    dist.all_gather_object(gathered, bad_all)
                    bad_all = [item for part in gathered for item in part]
                raise EvaluateError(_corrupt_message(sorted(bad_all, key=lambda b: str(b[0]))))
            skipped.extend(i for i, _ in bad)
            if pixels is not None:
                pixels = pixels.to(world.device, non_blocking=True)
                logits = model(pixels.to(dtype)).logits.float()
                if index_map is not None:
                    logits = logits.index_select(1, index_map)
                top = logits.topk(k, dim=-1).indices.cpu().tolist()
                if reference is not None:
                    exact = reference(pixels.float()).logits
                    if index_map is not None:
                        exact = exact.index_select(1, index_map)
                    agree += int((exact.argmax(-1) == logits.argmax(-1)).sum().item())
                results.extend(zip(indices, targets, top, strict=True))
            bar.update(len(indices) + len(bad))
    return results, skipped, agree


def default_workers() -> int:
    """4 DataLoader workers, but no more than the CPUs this process may run on (torch warns past that)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus))


def evaluate(
    model: str,
    data: str | os.PathLike,
    *,
    ground_truth: str | os.PathLike | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    limit: int | None = None,
    skip_corrupt: bool = False,
    class_map: Sequence[int] | None = None,
    write: bool = True,
    progress: bool = True,
    dtype: str | torch.dtype | None = None,
) -> Evaluation:
    """Top-1 / top-5 of ``model`` (zoo NAME, folder or Hub ORG/NAME) on the labelled images of ``data``.

    Under torchrun every rank calls this; all return the global counts, rank 0 also the per-image predictions
    and, for a local folder (``write=True``), the path of the ``evaluation.json`` it wrote there.
    ``class_map`` (1000 rows of a 21841-class head) replaces the official 22k->1k map. ``dtype``: float32,
    bfloat16 or "auto" (bfloat16 where the hardware runs it natively); in any dtype but float32 the float32 model
    runs beside it and ``float32_top1_agreement`` says on how many images their top-1 agree.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EvaluateError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise EvaluateError(f"--workers must be 0 or more, got {workers!r}")
    dataset = scan_data(data, ground_truth)
    samples = spread(dataset.samples, limit)
    loaded = _load(model, class_map, dtype)
    target = ConvertedFolder(loaded.folder).evaluation_file if write and loaded.local else None
    if target is not None and not os.access(loaded.folder, os.W_OK | os.X_OK):
        raise EvaluateError(f"{loaded.folder}: not writable, so evaluation.json cannot be written there")

    world = _join_world()
    try:
        started = time.perf_counter()
        with interrupts_kept():  # the DataLoader's workers shut down in a __del__, which swallows a Ctrl-C
            results, skipped, agree = _run(
                loaded, samples, world, batch_size=batch_size, workers=workers, skip_corrupt=skip_corrupt,
                progress=progress,
            )  # fmt: skip
        counts = torch.tensor(
            [
                len(results),
                sum(t == top[0] for _, t, top in results),
                sum(t in top for _, t, top in results),
                agree,
            ],
            dtype=torch.int64,
            device=world.device,
        )
        gathered: list[Any] = [(results, skipped)]
        if world.distributed:
            import torch.distributed as dist

            dist.all_reduce(counts)
            gathered = [None] * world.size
            dist.all_gather_object(gathered, (results, skipped))
        seconds = time.perf_counter() - started
    finally:
        _leave_world(world)

    images, top1, top5, agreeing = (int(c) for c in counts.tolist())
    all_results = sorted((r for part, _ in gathered for r in part), key=lambda r: r[0])
    all_skipped = sorted(i for _, part in gathered for i in part)
    counted = [r[0] for r in all_results] + all_skipped
    if sorted(counted) != list(range(len(samples))) or images != len(all_results):  # each image exactly once
        raise EvaluateError(f"internal: {len(counted)} image results for {len(samples)} images (a bug in swinzoo)")
    if images == 0:
        raise EvaluateError(f"--data {dataset.root}: all {len(samples)} image(s) were corrupt and skipped")
    evaluation = Evaluation(
        model=loaded.source,
        head=loaded.head,
        images=images,
        top1_correct=top1,
        top5_correct=top5,
        skipped=[str(samples[i][0]) for i in all_skipped],
        dataset=dataset.describe(len(samples)),
        transform=dataclasses.asdict(loaded.preprocessing),
        transform_from=loaded.preprocessing_from,
        world_size=world.size,
        batch_size=batch_size,
        workers=workers,
        device=str(world.device.type),
        seconds=seconds,
        rank=world.rank,
        limit=limit,
        dtype=str(next(loaded.model.parameters()).dtype).removeprefix("torch."),
        float32_top1_agreement=agreeing / images if loaded.float32 is not None else None,
    )
    if world.rank == 0:
        evaluation.predictions = [ImagePrediction(str(samples[i][0]), t, tuple(top)) for i, t, top in all_results]
        weights = ConvertedFolder(loaded.folder).weights
        if weights.is_file():
            evaluation.weights_sha256 = sha256_file(weights)
        if target is not None:
            text = json.dumps(evaluation.to_dict(), indent=2, allow_nan=False) + "\n"
            card = ConvertedFolder(target.parent).conversion_file.is_file()  # a converted folder: its card shows it
            with committing(target, *([target.parent / CARD_NAME] if card else [])):
                atomic_write_text(target, text)
                if card:
                    write_card(target.parent)
            evaluation.written = target
    return evaluation
