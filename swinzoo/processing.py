"""``swinzoo.ImageProcessor``: the checkpoint's official eval transform, called as transformers' processors are.

``processor(images=[...], return_tensors="pt")["pixel_values"]`` is a float32 (B, 3, H, W) batch, equal bit for
bit to the official ``data/build.py`` eval transform (torchvision on PIL) for both of its forms: centre crop
(``TEST.CROP: True``) and squash (``TEST.CROP: False``, the 384 fine-tunes). The pixels are made by
:func:`swinzoo.images.preprocess`; this module turns inputs of every kind into the 8-bit RGB images that
transform reads, finds the preprocessing a folder or repo declares, and writes it in transformers' and timm's
terms.

Where a folder's preprocessing comes from, first found wins: ``preprocessor_config.json`` (written by
:meth:`ImageProcessor.save_pretrained`, or a transformers export's), ``conversion.json`` ``preprocessing``
(recorded at convert time), the manifest entry named in ``conversion.json`` or the weights' metadata, a timm
``config.json`` ``pretrained_cfg``, and last the Swin recipe at ``config.json``'s image size (short side to
size / 0.875, bicubic, centre crop, ImageNet mean/std).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .config import ConfigError, SwinConfig
from .errors import SwinzooError
from .folder import CONFIG_NAME, CONVERSION_NAME, WEIGHTS_NAME, atomic_write_text, read_safetensors_metadata
from .images import INTERPOLATIONS, ImageError, Preprocessing, _check_geometry, load_image, preprocess
from .manifest import ManifestError, get_entry
from .records import ConversionRecord, RecordError, read_json

if TYPE_CHECKING:
    import torch

PROCESSOR_NAME = "preprocessor_config.json"
DEFAULT_CROP_PCT = 0.875
_SWINZOO_KEY = "swinzoo_preprocessing"  # the exact fields, beside transformers' own, in files swinzoo writes
# Pillow's filter numbers, which transformers' ``resample`` uses (PILImageResampling has the same values).
_RESAMPLE = {name: int(f) for name, f in INTERPOLATIONS.items()}
_FLOAT_DTYPES = ("float16", "float32", "float64", "bfloat16")


class ProcessorError(SwinzooError, ValueError):
    """A preprocessing record cannot be used; the message names the file and the field."""


class ProcessorOutput(dict):
    """``{"pixel_values": batch}``, also readable as ``.pixel_values`` (as transformers' BatchFeature)."""

    @property
    def pixel_values(self) -> torch.Tensor:
        return self["pixel_values"]

    def to(self, *args: Any, **kwargs: Any) -> ProcessorOutput:
        """Move/cast the batch (``.to("cuda")``, ``.to(torch.bfloat16)``), as BatchFeature.to does."""
        return ProcessorOutput({k: v.to(*args, **kwargs) for k, v in self.items()})


class ImageProcessor:
    """The eval preprocessing of one checkpoint, applied to batches of PIL images, arrays, tensors or paths.

    Inputs (one, or a list mixing kinds): PIL images (any mode; converted to RGB as the official loader does),
    image file paths, numpy arrays (H, W, 3), (H, W, 1) or (H, W), and torch tensors (3, H, W), (1, H, W) or
    batches (B, 3, H, W). uint8 arrays are 0..255; float arrays and tensors are in [0, 1] and are rounded to
    the nearest 8-bit level first, because the official transform resizes 8-bit images: a tensor made by
    ``ToTensor()`` from a photo gives exactly that photo's pixels.
    """

    model_input_names = ["pixel_values"]

    def __init__(self, preprocessing: Preprocessing | None = None, **fields: Any) -> None:
        """``ImageProcessor()`` is the Swin 224 recipe; ``fields`` (input_size, crop_pct, crop_mode, ...) override."""
        base = preprocessing if preprocessing is not None else Preprocessing()
        try:
            self.preprocessing = dataclasses.replace(base, **fields) if fields else base
        except (ConfigError, TypeError) as exc:
            raise ProcessorError(f"ImageProcessor: {exc}") from exc
        self.origin = "given"  # where the preprocessing came from, for messages and `swinzoo predict`

    def __repr__(self) -> str:
        return f"ImageProcessor({self.preprocessing!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageProcessor) and other.preprocessing == self.preprocessing

    __hash__ = None  # type: ignore[assignment]

    # ----------------------------------------------------------------------------------------- calling
    def __call__(self, images: Any = None, return_tensors: str | None = "pt", **kwargs: Any) -> ProcessorOutput:
        return self.preprocess(images, return_tensors=return_tensors, **kwargs)

    def preprocess(self, images: Any = None, return_tensors: str | None = "pt", **kwargs: Any) -> ProcessorOutput:
        """``{"pixel_values": (B, 3, H, W) float32}``: a torch tensor (``"pt"``) or a numpy array (``"np"``)."""
        import torch

        if kwargs:
            raise ImageError(
                f"ImageProcessor does not take {', '.join(sorted(kwargs))}: the transform is fixed by the "
                "checkpoint (make another with ImageProcessor(input_size=..., crop_pct=..., crop_mode=...))"
            )
        if return_tensors not in ("pt", "np"):
            raise ImageError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
        pils = list(_images_of(images))
        batch = torch.stack([preprocess(image, self.preprocessing) for image in pils])
        return ProcessorOutput(pixel_values=batch.numpy() if return_tensors == "np" else batch)

    # ----------------------------------------------------------------------------------------- records
    def to_dict(self) -> dict[str, Any]:
        """The preprocessing fields (JSON-ready): what ``conversion.json`` records and ``ImageProcessor(**d)`` takes."""
        data = dataclasses.asdict(self.preprocessing)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "preprocessing") -> ImageProcessor:
        """From a :meth:`to_dict` record (``conversion.json`` ``preprocessing``); errors name ``where``.

        A record without ``crop_mode`` is from a swinzoo that wrote ``TEST.CROP: False`` as crop_pct 1.0 with
        no mode; it only ever did so for those entries, so crop_pct 1.0 there means the squash.
        """
        if not isinstance(data, Mapping):
            raise ProcessorError(f"{where}: expected an object of preprocessing fields, got {type(data).__name__}")
        fields = dict(data)
        if "crop_mode" not in fields and fields.get("crop_pct") == 1.0:
            fields["crop_mode"] = "squash"
        try:
            return cls(Preprocessing(**fields))
        except (ConfigError, TypeError) as exc:
            raise ProcessorError(f"{where}: {exc}") from exc

    def to_transformers(self) -> dict[str, Any]:
        """transformers' ``preprocessor_config.json`` whose transform is this one.

        Centre crop: ``BitImageProcessor`` (short side to floor(size / crop_pct), centre crop); squash at
        crop_pct 1.0: ``ViTImageProcessor`` (resize to (size, size), no crop; the class transformers maps Swin
        to). Pixels are equal with transformers' PIL backend (``AutoImageProcessor.from_pretrained(REPO,
        backend="pil")``) except where a centre crop's margin is 3 modulo 4 pixels (transformers floors the
        offset, torchvision rounds half to even: at 192, 219 - 192 = 27, every image). transformers 5 picks
        its torchvision backend by default, which resizes tensors and is up to 2 levels of 255 off.
        """
        pp = self.preprocessing
        common = {
            "do_convert_rgb": True,
            "do_resize": True,
            "resample": _RESAMPLE[pp.interpolation],
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": list(pp.mean),
            "image_std": list(pp.std),
        }
        crop = {"do_center_crop": True, "crop_size": {"height": pp.input_size, "width": pp.input_size}}
        if pp.crop_mode == "squash":
            if pp.resize_size == pp.input_size:
                size = {"height": pp.input_size, "width": pp.input_size}
                return {"image_processor_type": "ViTImageProcessor", **common, "size": size}
            size = {"height": pp.resize_size, "width": pp.resize_size}
            return {"image_processor_type": "BitImageProcessor", **common, "size": size, **crop}
        return {
            "image_processor_type": "BitImageProcessor",
            **common,
            "size": {"shortest_edge": pp.resize_size},
            **crop,
        }

    def to_timm_pretrained_cfg(self) -> dict[str, Any]:
        """timm's ``pretrained_cfg`` fields for this transform (``create_transform(**resolve_data_config(...))``)."""
        pp = self.preprocessing
        return {
            "input_size": (3, pp.input_size, pp.input_size),
            "crop_pct": pp.crop_pct,
            "crop_mode": pp.crop_mode,
            "interpolation": pp.interpolation,
            "mean": tuple(pp.mean),
            "std": tuple(pp.std),
        }

    def save_pretrained(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``preprocessor_config.json`` (transformers' form plus swinzoo's exact fields) into ``directory``.

        The file appears in one rename; one swinzoo did not write is replaced only with ``overwrite=True``.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / PROCESSOR_NAME
        if target.exists() and not overwrite:
            existing = _read_json(target, required=False) if target.is_file() else None
            if not (isinstance(existing, dict) and _SWINZOO_KEY in existing):
                raise ProcessorError(
                    f"{target} exists and was not written by swinzoo: pass overwrite=True to replace it"
                )
        payload = {**self.to_transformers(), _SWINZOO_KEY: self.to_dict()}
        return atomic_write_text(target, json.dumps(payload, indent=2) + "\n")

    # ----------------------------------------------------------------------------------------- finding
    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, *, revision: str | None = None, cache_dir: str | None = None
    ) -> ImageProcessor:
        """The preprocessing of a folder or Hub repo ``ORG/NAME`` (see the module docstring for the order)."""
        path = Path(name_or_path)
        if path.is_dir():
            if revision is not None:
                raise ProcessorError(f"{path} is a local folder: revision={revision!r} only applies to Hub repos")
            return _from_folder(path)
        if path.exists() or str(name_or_path).count("/") != 1:
            raise ProcessorError(f"{name_or_path}: not a folder nor a Hub id ORG/NAME")
        return _from_folder(
            _hub_snapshot(str(name_or_path), revision, cache_dir), f"{name_or_path}@{revision or 'main'}"
        )

    @classmethod
    def for_model(
        cls,
        model_or_config: Any,
        *,
        folder: str | os.PathLike | None = None,
        conversion: str | os.PathLike | Mapping[str, Any] | None = None,
        weights: str | os.PathLike | None = None,
    ) -> ImageProcessor:
        """The processor of a loaded model (or its SwinConfig): what ``from_pretrained`` attaches.

        ``folder`` is where the model was loaded from (its ``preprocessor_config.json``, ``conversion.json`` and
        ``model.safetensors`` are read, as :meth:`from_pretrained` does); or give ``conversion`` (path or parsed
        record) and ``weights`` (whose metadata names the zoo entry) directly. Without any, or when they
        record nothing, the Swin recipe at the config's image size.
        """
        config = getattr(model_or_config, "config", model_or_config)
        if not isinstance(config, SwinConfig):
            raise ProcessorError(
                f"for_model expects a swinzoo model or SwinConfig, got {type(model_or_config).__name__}"
            )
        if folder is not None:
            folder = Path(folder)
            data = _read_json(folder / PROCESSOR_NAME, required=False)
            if data is not None:
                where = str(folder / PROCESSOR_NAME)
                return _with_origin(_from_transformers_dict(data, where), where)
            conversion = conversion if conversion is not None else folder / CONVERSION_NAME
            weights = weights if weights is not None else folder / WEIGHTS_NAME
        where = "conversion" if conversion is None or isinstance(conversion, Mapping) else str(conversion)
        record = _conversion_record(conversion, where)
        found = _from_records(record, where, Path(weights) if weights else None)
        return found or _recipe(config.image_hw, "config (Swin eval recipe)")


# --------------------------------------------------------------------------------------------- inputs
def _images_of(images: Any) -> list[Image.Image]:
    """Every input as a PIL image, each error naming ``images[i]``; a list may mix kinds."""
    import torch

    if images is None:
        raise ImageError("no images given (pass images=[...])")
    if isinstance(images, (Image.Image, np.ndarray, str, os.PathLike)):
        items: Sequence[Any] = [images]
    elif isinstance(images, torch.Tensor):
        items = [images] if images.ndim != 4 else list(images)
        if images.ndim == 4 and not items:
            raise ImageError(f"images is an empty batch: shape {tuple(images.shape)}")
    elif isinstance(images, (list, tuple)):
        items = images
    else:
        raise ImageError(f"images has type {type(images).__name__}; expected an image or a list of images")
    if not items:
        raise ImageError("images is an empty list: nothing to preprocess")
    out: list[Image.Image] = []
    for i, item in enumerate(items):
        where = f"images[{i}]"
        if isinstance(item, torch.Tensor) and item.ndim == 4:
            if item.shape[0] == 0:
                raise ImageError(f"{where} is an empty batch: shape {tuple(item.shape)}")
            out.extend(_to_pil(sub, f"{where}[{b}]") for b, sub in enumerate(item))
        else:
            out.append(_to_pil(item, where))
    return out


def _to_pil(item: Any, where: str) -> Image.Image:
    import torch

    if isinstance(item, Image.Image):
        _check_geometry(where, *item.size)
        return item
    if isinstance(item, (str, os.PathLike)):
        return load_image(item)
    if isinstance(item, torch.Tensor):
        if item.ndim != 3 or item.shape[0] not in (1, 3):
            hint = " (a (H, W, 3) tensor? use .permute(2, 0, 1))" if item.ndim == 3 and item.shape[-1] == 3 else ""
            raise ImageError(
                f"{where}: a tensor image is (3, H, W) or (1, H, W), or a (B, 3, H, W) batch; got shape "
                f"{tuple(item.shape)}{hint}"
            )
        dtype = str(item.dtype).removeprefix("torch.")
        if item.is_floating_point():
            item = item.detach().to("cpu", torch.float32)
        elif item.dtype == torch.uint8:
            item = item.detach().cpu()
        else:
            raise ImageError(f"{where}: dtype {dtype} is not an image dtype; use uint8 (0..255) or float in [0, 1]")
        return _array_to_pil(item.permute(1, 2, 0).numpy(), where, dtype)
    if isinstance(item, np.ndarray):
        if item.ndim == 2:
            item = item[:, :, None]
        if item.ndim != 3 or item.shape[-1] not in (1, 3):
            hint = " (a (3, H, W) array? use .transpose(1, 2, 0))" if item.ndim == 3 and item.shape[0] == 3 else ""
            raise ImageError(f"{where}: a numpy image is (H, W, 3), (H, W, 1) or (H, W); got shape {item.shape}{hint}")
        return _array_to_pil(item, where, str(item.dtype))
    raise ImageError(
        f"{where} is a {type(item).__name__}; expected a PIL image, a numpy array, a torch tensor or an image path"
    )


def _array_to_pil(array: np.ndarray, where: str, dtype: str) -> Image.Image:
    """(H, W, C) uint8 or float in [0, 1] -> an RGB PIL image (floats to the nearest of the 256 levels)."""
    height, width, channels = array.shape
    _check_geometry(where, width, height)
    if dtype in _FLOAT_DTYPES:
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise ImageError(f"{where}: float image holds NaN or Inf")
        low, high = float(values.min()), float(values.max())
        if low < 0.0 or high > 1.0:
            raise ImageError(
                f"{where}: float image values run {low:.4g}..{high:.4g}; expected [0, 1] (already normalised? "
                "pass the unnormalised image)"
            )
        array = np.rint(values * 255.0).astype(np.uint8)
    elif dtype != "uint8":
        raise ImageError(f"{where}: dtype {dtype} is not an image dtype; use uint8 (0..255) or float in [0, 1]")
    array = np.ascontiguousarray(array)
    if channels == 1:
        return Image.fromarray(array[:, :, 0], mode="L").convert("RGB")
    return Image.fromarray(array, mode="RGB")


# --------------------------------------------------------------------------------------------- records
def _read_json(path: Path, *, required: bool = True) -> dict[str, Any] | None:
    """A JSON file through the records' reader (one reader for every record: size cap, UTF-8, depth, type)."""
    try:
        return read_json(path, required=required)
    except RecordError as exc:
        raise ProcessorError(str(exc)) from exc


def _conversion_record(conversion: Mapping[str, Any] | str | os.PathLike | None, where: str) -> ConversionRecord | None:
    """conversion.json as its typed record, from a parsed mapping or a path (None: there is none)."""
    try:
        if isinstance(conversion, Mapping):
            return ConversionRecord.from_dict(conversion, where)
        return ConversionRecord.read(Path(conversion)) if conversion is not None else None
    except RecordError as exc:
        raise ProcessorError(str(exc)) from exc


def _recipe(image_hw: Sequence[int], origin: str) -> ImageProcessor:
    height, width = image_hw
    if height != width:
        raise ProcessorError(f"image_size {[height, width]} is not square and no preprocessing is recorded")
    processor = ImageProcessor(Preprocessing(input_size=int(height), crop_pct=DEFAULT_CROP_PCT))
    processor.origin = origin
    return processor


def _with_origin(processor: ImageProcessor, origin: str) -> ImageProcessor:
    processor.origin = origin
    return processor


def _from_records(record: ConversionRecord | None, where: str, weights: Path | None) -> ImageProcessor | None:
    """conversion.json's ``preprocessing``, else the zoo entry it (or the weights' metadata) names."""
    stored = record.preprocessing if record is not None else None
    if stored is not None:
        return _with_origin(ImageProcessor.from_dict(stored, f"{where}: 'preprocessing'"), f"{where} (preprocessing)")
    entry_name = record.entry if record is not None else None
    if not entry_name and weights is not None and weights.is_file():
        try:
            entry_name = read_safetensors_metadata(weights).get("entry")
        except Exception:  # an unreadable header is for the loader to report, not the preprocessing
            entry_name = None
    if entry_name:
        try:
            return _with_origin(ImageProcessor(get_entry(entry_name).preprocessing), f"zoo entry {entry_name}")
        except ManifestError:
            pass  # converted with a manifest this install does not have
    return None


def _from_transformers_dict(data: Mapping[str, Any], where: str) -> ImageProcessor:
    """Read back a transformers ``preprocessor_config.json`` of the two forms :meth:`to_transformers` writes."""
    exact = data.get(_SWINZOO_KEY)
    if exact is not None:
        return ImageProcessor.from_dict(exact, f"{where}: {_SWINZOO_KEY!r}")
    kind = str(data.get("image_processor_type", "")).removesuffix("Fast").removesuffix("Pil")
    if kind not in ("BitImageProcessor", "ViTImageProcessor"):
        raise ProcessorError(
            f"{where}: image_processor_type {data.get('image_processor_type')!r} is not one swinzoo reads "
            "(BitImageProcessor or ViTImageProcessor)"
        )
    for key, want in (("do_resize", True), ("do_rescale", True), ("do_normalize", True)):
        if data.get(key, True) is not want:
            raise ProcessorError(f"{where}: {key} is {data.get(key)!r}; swinzoo's transform needs {want}")
    rescale = data.get("rescale_factor", 1 / 255)
    if isinstance(rescale, bool) or not isinstance(rescale, (int, float)) or not math.isclose(rescale, 1 / 255):
        raise ProcessorError(f"{where}: rescale_factor {data.get('rescale_factor')!r} is not 1/255")
    names = {v: k for k, v in _RESAMPLE.items()}
    resample = data.get("resample", 2)
    if isinstance(resample, bool) or not isinstance(resample, int) or resample not in names:
        raise ProcessorError(f"{where}: resample {resample!r} is not a Pillow filter number {sorted(names)}")
    size = data.get("size") or {}
    crop = data.get("crop_size") or {}
    do_crop = bool(data.get("do_center_crop", kind == "BitImageProcessor"))
    if not isinstance(size, Mapping) or not isinstance(crop, Mapping):
        raise ProcessorError(f"{where}: size and crop_size must be objects, got {size!r} and {crop!r}")
    if do_crop and crop.get("height") != crop.get("width"):
        raise ProcessorError(f"{where}: crop_size {dict(crop)} is not square")
    if "shortest_edge" in size and do_crop:
        mode, resized, final = "center", size["shortest_edge"], crop.get("height")
    elif "height" in size and size.get("height") == size.get("width"):
        mode, resized = "squash", size["height"]
        final = crop.get("height") if do_crop else resized
    else:
        raise ProcessorError(f"{where}: size {dict(size)} with do_center_crop {do_crop} is no Swin eval transform")
    if not (isinstance(resized, int) and isinstance(final, int)) or not 0 < final <= resized:
        raise ProcessorError(f"{where}: sizes {resized} (resize) and {final} (crop) are not a crop of a resize")
    fields = {
        "input_size": final,
        "crop_pct": _crop_pct(final, resized),
        "crop_mode": mode,
        "interpolation": names[resample],
        "mean": data.get("image_mean", (0.485, 0.456, 0.406)),
        "std": data.get("image_std", (0.229, 0.224, 0.225)),
    }
    return ImageProcessor.from_dict(fields, where)


def _crop_pct(final: int, resized: int) -> float:
    """A crop_pct for which floor(final / crop_pct) is exactly ``resized`` (final / resized can floor below)."""
    pct = final / resized
    while math.floor(final / pct) < resized:
        pct = math.nextafter(pct, 0.0)
    return pct


def _from_timm_config(config: Mapping[str, Any], where: str) -> ImageProcessor | None:
    cfg = config.get("pretrained_cfg")
    if not isinstance(cfg, Mapping) or "input_size" not in cfg:
        return None
    size = cfg["input_size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 3 and size[1] == size[2]):
        raise ProcessorError(f"{where}: pretrained_cfg.input_size {size!r} is not (3, S, S)")
    fields = {"input_size": size[1], "crop_mode": cfg.get("crop_mode") or "center"}
    for key in ("crop_pct", "interpolation", "mean", "std"):
        if cfg.get(key) is not None:
            fields[key] = cfg[key]
    return ImageProcessor.from_dict(fields, f"{where}: pretrained_cfg")


def _from_folder(folder: Path, label: str | None = None) -> ImageProcessor:
    label = label or str(folder)
    processor_file = folder / PROCESSOR_NAME
    data = _read_json(processor_file, required=False)
    if data is not None:
        return _with_origin(_from_transformers_dict(data, f"{label}/{PROCESSOR_NAME}"), f"{label}/{PROCESSOR_NAME}")
    record = _conversion_record(folder / CONVERSION_NAME, f"{label}/{CONVERSION_NAME}")
    found = _from_records(record, f"{label}/{CONVERSION_NAME}", folder / WEIGHTS_NAME)
    if found is not None:
        return found
    config = _read_json(folder / CONFIG_NAME, required=False)
    if config is None:
        raise ProcessorError(
            f"{label}: no {PROCESSOR_NAME}, {CONVERSION_NAME} or {CONFIG_NAME} to take preprocessing from"
        )
    timm_found = _from_timm_config(config, f"{label}/{CONFIG_NAME}")
    if timm_found is not None:
        return _with_origin(timm_found, f"{label}/{CONFIG_NAME} (pretrained_cfg)")
    size = config.get("image_size", 224)
    hw = size if isinstance(size, (list, tuple)) and len(size) == 2 else (size, size)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw):
        raise ProcessorError(f"{label}/{CONFIG_NAME}: image_size {size!r} is not a positive int or [height, width]")
    return _recipe(hw, f"{label}/{CONFIG_NAME} (Swin eval recipe)")


def _hub_snapshot(repo_id: str, revision: str | None, cache_dir: str | None) -> Path:
    """The cache snapshot holding the repo's small files (config.json required; the others when present)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    at = f"{repo_id}@{revision or 'main'}"
    try:
        config = Path(hf_hub_download(repo_id, CONFIG_NAME, revision=revision, cache_dir=cache_dir))
    except LocalEntryNotFoundError as exc:
        raise ProcessorError(f"{at}: {CONFIG_NAME} is not cached and the Hub cannot be reached") from exc
    except (EntryNotFoundError, HfHubHTTPError) as exc:
        raise ProcessorError(f"{at}: cannot fetch {CONFIG_NAME} ({type(exc).__name__})") from exc
    commit = config.parent.name
    for name in (PROCESSOR_NAME, CONVERSION_NAME):
        try:
            hf_hub_download(repo_id, name, revision=commit, cache_dir=cache_dir)
        except (EntryNotFoundError, HfHubHTTPError, OSError):
            pass  # optional files
    return config.parent  # holds model.safetensors too when the weights were downloaded before
