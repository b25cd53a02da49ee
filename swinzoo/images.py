"""Sample images and the evaluation preprocessing each zoo entry declares.

The preprocessing reproduces timm's eval transform (``timm.data.create_transform(..., is_training=False)``,
which runs torchvision on PIL images) with Pillow, numpy and torch only, so the core install needs no
torchvision. The steps and their rounding are the reference's, bit for bit:

1. resize (Pillow does the resampling), by ``crop_mode``:
   ``"center"``: the shorter side to ``floor(input_size / crop_pct)``, the longer side to
   ``int(size * long / short)`` (truncated, as torchvision does); ``"squash"``: both sides to
   ``floor(input_size / crop_pct)``, the aspect ratio is not kept (with crop_pct 1.0 this is the official
   ``Resize((IMG_SIZE, IMG_SIZE))`` of ``TEST.CROP: False`` configs: the whole image, no crop);
2. centre-crop ``input_size``: offsets ``int(round((resized - input_size) / 2))``, Python's round
   (half to even), as torchvision does;
3. uint8 -> float32 / 255, then ``(x - mean) / std`` per channel in float32.
"""

from __future__ import annotations

import math
import os
import stat
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import ConfigError
from .errors import SwinzooError

if TYPE_CHECKING:  # torch loads when an image is turned into a tensor, not when the CLI starts
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The names timm accepts for ``interpolation`` (timm.data.transforms.str_to_interp_mode), as Pillow filters.
INTERPOLATIONS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}

# timm's ``crop_mode`` names for the two eval resizes the official configs use (timm's "border" pads, which no
# official config does, so it is not offered).
CROP_MODES = ("center", "squash")

# Files a sample directory may hold that count as images; anything else (ATTRIBUTION.md, ...) is ignored.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# The only decoders Pillow may use, whatever a file's name says: raster formats decoded in-process. EPS (which
# runs Ghostscript on the file's PostScript), PDF, SVG-like and plugin formats are never tried, so an image
# named photo.jpg cannot run a program.
PILLOW_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM")

# Bounds on what one image may claim: decoded pixels (a tiny compressed file can declare gigapixels), and the
# aspect ratio, since the eval resize scales the long side with the short one (a 1x4000 PNG would become
# 256 x 1,024,000 pixels before the crop).
MAX_IMAGE_PIXELS = 64 * 1024 * 1024
MAX_ASPECT_RATIO = 64
# Bounds on what a preprocessing record may ask for (records come with downloaded repos): the model input side,
# and crop_pct, whose inverse scales the resize (crop_pct 1e-9 would resize to a billion pixels a side).
MAX_INPUT_SIZE = 4096
MIN_CROP_PCT = 0.25
# Each factor within its bound can still multiply into a huge resize (input_size 4096 at crop_pct 0.25 on a 64:1
# image is 16384 x 1,048,576 pixels): the product, the resized image before the crop, is bounded too.
MAX_RESIZED_PIXELS = 64 * 1024 * 1024
_PATH_KEY = "swinzoo.path"


class ImageError(SwinzooError, ValueError):
    """An image file or image directory cannot be used; the message names the path and the reason."""


@dataclass(frozen=True)
class Preprocessing:
    """Eval transform: resize (``crop_mode``, see the module docstring), centre-crop input_size, normalise.

    ``crop_mode="center"`` (timm's default) keeps the aspect ratio and crops; ``"squash"`` resizes both
    sides, which is what the official ``TEST.CROP: False`` configs (the 384 fine-tunes) do. Values are checked on
    construction (an invalid one raises :class:`ConfigError` naming the field); ``mean``/``std`` given as lists
    (e.g. from TOML) are stored as tuples so the object stays hashable.
    """

    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or self.input_size < 1:
            raise ConfigError(f"Preprocessing.input_size must be a positive int, got {self.input_size!r}")
        if self.input_size > MAX_INPUT_SIZE:
            raise ConfigError(
                f"Preprocessing.input_size {self.input_size} is above the {MAX_INPUT_SIZE} swinzoo allows"
            )
        if isinstance(self.crop_pct, bool) or not isinstance(self.crop_pct, (int, float)):
            raise ConfigError(f"Preprocessing.crop_pct must be a number, got {self.crop_pct!r}")
        crop_pct = float(self.crop_pct)
        # crop_pct > 1 would make the resized image smaller than the crop; timm then pads with zeros,
        # which no official checkpoint uses, so it is refused rather than reproduced.
        if not 0.0 < crop_pct <= 1.0:
            raise ConfigError(f"Preprocessing.crop_pct must be in (0, 1], got {self.crop_pct!r}")
        if crop_pct < MIN_CROP_PCT:
            raise ConfigError(
                f"Preprocessing.crop_pct {self.crop_pct!r} is below {MIN_CROP_PCT}: no eval crop is so small"
            )
        object.__setattr__(self, "crop_pct", crop_pct)
        if not isinstance(self.interpolation, str) or self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"Preprocessing.interpolation must be one of {sorted(INTERPOLATIONS)}, got {self.interpolation!r}"
            )
        if not isinstance(self.crop_mode, str) or self.crop_mode not in CROP_MODES:
            raise ConfigError(f"Preprocessing.crop_mode must be one of {list(CROP_MODES)}, got {self.crop_mode!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3:
                raise ConfigError(f"Preprocessing.{name} must be 3 numbers (one per RGB channel), got {value!r}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise ConfigError(f"Preprocessing.{name} must be 3 numbers (one per RGB channel), got {value!r}")
            numbers = tuple(float(v) for v in value)
            if not all(math.isfinite(v) for v in numbers):
                raise ConfigError(f"Preprocessing.{name} must be finite, got {value!r}")
            object.__setattr__(self, name, numbers)
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"Preprocessing.std must be positive, got {self.std!r}")

    @property
    def resize_size(self) -> int:
        """Short side (both sides when squashing) before the crop: ``floor(input_size / crop_pct)``, as timm."""
        return math.floor(self.input_size / self.crop_pct)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of a ``width`` x ``height`` image after the resize step, before the centre crop."""
        target = self.resize_size
        if self.crop_mode == "squash":
            return target, target
        if width <= height:
            return target, int(target * height / width)
        return int(target * width / height), target


def sample_image_paths(images_dir: Path | str | None = None) -> list[Path]:
    """Image files in ``images_dir`` (default: the photographs shipped in ``swinzoo/assets/images``), by name.

    Only files with an image suffix count, so the attribution file beside the photographs is skipped.
    A missing directory, or one without images, raises :class:`ImageError` naming it: a verification run
    over zero images would pass without checking anything.
    """
    if images_dir is None:
        root = resources.files("swinzoo.assets") / "images"
        directory = root if isinstance(root, Path) else Path(str(root))
    else:
        directory = Path(images_dir)
    if not directory.is_dir():
        reason = "is not a directory" if directory.exists() else "does not exist"
        raise ImageError(f"image directory {directory} {reason}")
    paths = sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise ImageError(
            f"image directory {directory} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return paths


def load_image(path: Path | str | os.PathLike[str]) -> Image.Image:
    """Decode ``path`` fully into an RGB image, with its EXIF orientation applied.

    Decoding happens here, not lazily, so a truncated or corrupt file fails with :class:`ImageError`
    naming it instead of surfacing later inside a transform. EXIF rotation is applied so phone photos
    are upright (timm's dataset reader does not do this; the shipped samples carry no rotation).
    Other modes (greyscale, palette, RGBA) are converted with ``Image.convert("RGB")`` as timm does,
    which drops alpha.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError as err:
        raise ImageError(f"image file {path} does not exist") from err
    except OSError as err:
        raise ImageError(f"image file {path} cannot be read: {err.strerror or err}") from err
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, socket or device)"
        raise ImageError(f"image file {path} is {kind}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PILLOW_FORMATS) as opened:
                _check_geometry(path, *opened.size)
                opened.load()
                rgb = to_rgb(ImageOps.exif_transpose(opened))
                rgb.info[_PATH_KEY] = str(path)  # so a later step's error can name the file
                return rgb
    except FileNotFoundError as err:
        raise ImageError(f"image file {path} does not exist") from err
    except UnidentifiedImageError as err:
        raise ImageError(
            f"image file {path}: Pillow cannot identify it as an image in a format swinzoo reads "
            f"({', '.join(PILLOW_FORMATS)}): corrupt, or another format under an image's name"
        ) from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"image file {path} is too large to decode safely: {err}") from err
    except MemoryError as err:
        raise ImageError(f"image file {path} needs more memory to decode than is available") from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        # Pillow reports truncated data as OSError("image file is truncated ...") and some broken
        # headers as SyntaxError; both mean the file cannot be used.
        raise ImageError(f"image file {path} cannot be decoded: {err}") from err


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, as timm's ``convert("RGB")`` where that is right, and correctly where it is not.

    Pillow's ``convert("RGB")`` clips 16- and 32-bit greyscale (modes I;16*, I) to 255, turning a 16-bit PNG
    white: those are scaled to 8 bits (value / 257, the 16-bit to 8-bit map PNG decoders use). A palette image
    with transparency goes through RGBA first (the alpha is dropped as for any RGBA image), as Pillow's own
    warning asks.
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.asarray(image, dtype=np.float64)
        if image.mode == "I" and wide.max(initial=0) > 65535:  # 32-bit data: scale its own range
            wide = wide * (255.0 / wide.max())
        else:
            wide = wide / 257.0
        grey = np.clip(np.rint(wide), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


def _check_geometry(where: object, width: int, height: int) -> None:
    """Refuse sizes the eval transform would blow up (see :data:`MAX_IMAGE_PIXELS`, :data:`MAX_ASPECT_RATIO`)."""
    if width < 1 or height < 1:
        raise ImageError(f"image {where} has no pixels ({width}x{height})")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"image {where} is {width}x{height} = {width * height} pixels, above the {MAX_IMAGE_PIXELS} swinzoo "
            "decodes; downscale it first"
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(
            f"image {where} is {width}x{height}: an aspect ratio above {MAX_ASPECT_RATIO}:1, which the "
            "shorter-side resize would turn into a huge image; crop it first"
        )


def preprocess(image: Image.Image, pp: Preprocessing) -> torch.Tensor:
    """The eval transform of ``pp`` applied to one PIL image: a float32 tensor of shape (3, size, size).

    Equal (max abs difference 0) to ``timm.data.create_transform(input_size=pp.input_size,
    crop_pct=pp.crop_pct, crop_mode=pp.crop_mode, interpolation=pp.interpolation, mean=pp.mean, std=pp.std,
    is_training=False)`` on the same RGB image, because each step makes the same Pillow call and the same
    float32 operations. For batches and numpy/tensor inputs use :class:`swinzoo.ImageProcessor`.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"preprocess expects a PIL.Image.Image, got {type(image).__name__}")
    import torch

    where = image.info.get(_PATH_KEY, "(in memory)")
    image = to_rgb(image)
    width, height = image.size
    _check_geometry(where, width, height)
    new_width, new_height = pp.resized_size(width, height)
    if new_width * new_height > MAX_RESIZED_PIXELS:
        raise ImageError(
            f"image {where} is {width}x{height}: the eval resize (input_size {pp.input_size}, crop_pct "
            f"{pp.crop_pct:g}) would make it {new_width}x{new_height} = {new_width * new_height} pixels, above the "
            f"{MAX_RESIZED_PIXELS} swinzoo resizes to; crop the image closer to square first"
        )
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), resample=INTERPOLATIONS[pp.interpolation])

    crop = pp.input_size
    top = int(round((new_height - crop) / 2.0))
    left = int(round((new_width - crop) / 2.0))
    image = image.crop((left, top, left + crop, top + crop))

    pixels = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))  # (H, W, 3)
    tensor = pixels.permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    mean = torch.tensor(pp.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(pp.std, dtype=torch.float32).view(3, 1, 1)
    return tensor.sub(mean).div(std)


def load_samples(pp: Preprocessing, images_dir: Path | str | None = None) -> tuple[torch.Tensor, list[str]]:
    """Every sample image, preprocessed and stacked: a (N, 3, size, size) batch and the N file names.

    Defaults to the shipped photographs; the names (in the batch's order) let reports say which image
    a prediction belongs to.
    """
    import torch

    paths = sample_image_paths(images_dir)
    batch = torch.stack([preprocess(load_image(p), pp) for p in paths])
    return batch, [p.name for p in paths]


def denormalize(tensor: torch.Tensor, pp: Preprocessing, clamp: bool = True) -> torch.Tensor:
    """Undo ``pp``'s normalisation for display: ``x * std + mean``, clamped to [0, 1] unless ``clamp=False``.

    Accepts (3, H, W) or (N, 3, H, W); reconstructions (SimMIM) can leave the valid range, hence the clamp.
    """
    import torch

    if tensor.ndim not in (3, 4) or tensor.shape[-3] != 3:
        raise ValueError(f"denormalize expects (3, H, W) or (N, 3, H, W), got shape {tuple(tensor.shape)}")
    mean = torch.tensor(pp.mean, dtype=tensor.dtype, device=tensor.device).view(3, 1, 1)
    std = torch.tensor(pp.std, dtype=tensor.dtype, device=tensor.device).view(3, 1, 1)
    out = tensor * std + mean
    return out.clamp(0.0, 1.0) if clamp else out
