"""``swinzoo predict``: class names and probabilities for images, from a zoo name, a folder or a Hub repo.

The eval preprocessing is the checkpoint's own, found by :class:`swinzoo.ImageProcessor` (``preprocessor_config
.json``, else ``conversion.json``'s record, else the manifest entry the weights came from, else the Swin recipe at
the config's image size), and applied by it in batches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .config import SwinConfig
from .errors import SwinzooError
from .images import ImageError, Preprocessing
from .loading import CONFIG_NAME, _resolve_files, compute_dtype, from_pretrained
from .manifest import ManifestError, get_entry, load_manifests
from .modeling import SwinForImageClassification
from .processing import DEFAULT_CROP_PCT, ImageProcessor, ProcessorError

if TYPE_CHECKING:
    from .modeling import SwinForImageClassification

__all__ = ["DEFAULT_CROP_PCT", "LoadedClassifier", "PredictError", "classify", "predict", "preprocessing_for"]
CONVERTED_DIR = Path("converted")
_BATCH = 16


class PredictError(SwinzooError, ValueError):
    """The model or the inputs cannot be used for prediction; the message says which and why."""


@dataclass(frozen=True)
class Prediction:
    """One class of one image's top-k: head index, label and softmax probability."""

    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class ImagePredictions:
    image: str
    predictions: list[Prediction]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "predictions": [
                {"index": p.index, "label": p.label, "probability": p.probability} for p in self.predictions
            ],
        }


@dataclass
class LoadedClassifier:
    """A classification model with the image processor its checkpoint was evaluated with."""

    model: SwinForImageClassification
    processor: ImageProcessor
    source: str  # what was loaded: the folder, or repo@revision

    @property
    def preprocessing(self) -> Preprocessing:
        return self.processor.preprocessing

    @property
    def preprocessing_from(self) -> str:
        """Where the preprocessing came from (a file, a zoo entry or the config's recipe)."""
        return self.processor.origin


# --------------------------------------------------------------------------------------------- preprocessing
def preprocessing_for(
    weights: str | os.PathLike, config: SwinConfig, conversion: str | os.PathLike | None = None
) -> Preprocessing:
    """The eval preprocessing of a checkpoint: :meth:`ImageProcessor.for_model` on its files."""
    try:
        return ImageProcessor.for_model(config, conversion=conversion, weights=weights).preprocessing
    except ProcessorError as exc:
        raise PredictError(str(exc)) from exc


# --------------------------------------------------------------------------------------------- loading
def resolve_model(spec: str, revision: str | None = None) -> tuple[Path, str]:
    """The local folder holding ``spec``'s files (Hub repos: the cache snapshot) and a description of it.

    ``spec`` is a folder, a zoo entry name (its ``converted/NAME`` folder) or a Hub id ``ORG/NAME``.
    """
    path = Path(spec)
    if path.is_dir():
        if revision is not None:
            raise PredictError(f"{spec} is a local folder: --revision only applies to Hub repos")
        return path, str(path)
    if spec in load_manifests():
        folder = CONVERTED_DIR / spec
        if not folder.is_dir():
            raise PredictError(
                f"zoo entry {spec!r} has not been converted: no folder {folder}. "
                f"Run `swinzoo convert {spec}` first (or pass --model DIR or a Hub id ORG/NAME)"
            )
        return folder, str(folder)
    if spec.count("/") != 1 or path.exists():
        hint = ""
        try:
            get_entry(spec)
        except ManifestError as exc:
            hint = str(exc).split(";", 1)[-1].strip()
        raise PredictError(
            f"--model {spec!r} is not a folder, a zoo entry name or a Hub id ORG/NAME" + (f" ({hint})" if hint else "")
        )
    config_file, _ = _resolve_files(spec, revision, None)  # the optional records come into the same snapshot
    snapshot = config_file.parent
    return snapshot, f"{spec}@{revision or 'main'} (commit {snapshot.name})"


def load_classifier(spec: str, revision: str | None = None, dtype: str | torch.dtype | None = None) -> LoadedClassifier:
    """Load ``spec`` (folder, zoo name or Hub id) for prediction, with its eval preprocessing.

    ``dtype``: float32, bfloat16, or "auto" (bfloat16 where the CPU or GPU runs it natively); None keeps the
    stored dtype."""
    folder, source = resolve_model(spec, revision)
    try:
        wanted = compute_dtype(dtype) if dtype is not None else None
    except ValueError as exc:
        raise PredictError(f"--dtype {dtype!r}: {exc}") from exc
    model = from_pretrained(folder, dtype=wanted)
    if not isinstance(model, SwinForImageClassification):
        raise PredictError(
            f"{source} is a {type(model).__name__} ({(folder / CONFIG_NAME).name} task "
            "is not image-classification): predict needs a classifier, a SimMIM pretrain checkpoint has none"
        )
    try:
        processor = ImageProcessor.from_pretrained(folder)
    except ProcessorError as exc:
        raise PredictError(str(exc)) from exc
    return LoadedClassifier(model.eval(), processor, source)


# --------------------------------------------------------------------------------------------- predicting
def classify(loaded: LoadedClassifier, images: Sequence[str | os.PathLike], top_k: int = 5) -> list[ImagePredictions]:
    """Top-``top_k`` classes (softmax over the logits) of every image, in the order given."""
    if top_k < 1:
        raise PredictError(f"--top-k must be at least 1, got {top_k}")
    if not images:
        raise PredictError("no images given")
    model, processor = loaded.model, loaded.processor
    labels = model.config.id2label
    k = min(top_k, model.config.num_labels)
    dtype = next(model.parameters()).dtype
    results: list[ImagePredictions] = []
    for start in range(0, len(images), _BATCH):
        chunk = list(images[start : start + _BATCH])
        batch = processor(images=chunk)["pixel_values"].to(dtype)
        with torch.inference_mode():
            probabilities = model(batch).logits.float().softmax(dim=-1)
        values, indices = probabilities.topk(k, dim=-1)
        for path, vals, idxs in zip(chunk, values.tolist(), indices.tolist(), strict=True):
            results.append(
                ImagePredictions(
                    str(path),
                    [Prediction(i, labels.get(i, f"LABEL_{i}"), v) for v, i in zip(vals, idxs, strict=True)],
                )
            )
    return results


def check_images_exist(images: Sequence[str | os.PathLike]) -> None:
    """Name a missing image before anything is loaded (a model takes seconds to load, and warns)."""
    for image in images:
        path = Path(image)
        if not path.exists() and not path.is_symlink():
            raise ImageError(f"image file {path} does not exist")


def predict(
    images: Sequence[str | os.PathLike],
    model: str,
    *,
    top_k: int = 5,
    revision: str | None = None,
    dtype: str | torch.dtype | None = None,
) -> list[ImagePredictions]:
    """Load ``model`` (zoo NAME, folder or Hub ORG/NAME) and classify ``images`` (``dtype``: see load_classifier)."""
    check_images_exist(images)
    return classify(load_classifier(model, revision, dtype), images, top_k)
