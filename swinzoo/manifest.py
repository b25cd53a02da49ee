"""The model zoo as data: one TOML ``[[entry]]`` per official checkpoint, loaded into frozen dataclasses.

The manifests live in ``manifests/*.toml`` (installed as the ``swinzoo.manifests`` package). Each entry says
where the official file is, which converter reads it (``layout``), its architecture, head, eval
preprocessing and the metrics its authors reported. Loading validates every entry; an error names the file,
the entry and the field so a wrong edit is found before any download starts.

Label names (ImageNet-1K / -22K) come from timm's bundled class-name data when timm is installed; the core
install does not need timm and then falls back to generic ``LABEL_i`` names.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import importlib.resources
import importlib.util
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .config import ConfigError, SwinConfig
from .errors import SwinzooError
from .images import Preprocessing

FAMILIES = ("swin", "swinv2")
KINDS = ("classification", "simmim-pretrain", "simmim-finetune")
LAYOUTS = {
    ("swin", "classification"): "official-swin",
    ("swinv2", "classification"): "official-swinv2",
    ("swin", "simmim-pretrain"): "simmim-swin-pretrain",
    ("swin", "simmim-finetune"): "simmim-swin-finetune",
    ("swinv2", "simmim-pretrain"): "simmim-swinv2-pretrain",
    ("swinv2", "simmim-finetune"): "simmim-swinv2-finetune",
}
# Head size of each label set. imagenet-22k is the 21841-class "fall11" set in sorted-synset order, the head
# of Microsoft's 22K checkpoints (timm maps their 21841-class heads to the same set).
LABEL_SETS = {"imagenet-1k": 1000, "imagenet-22k": 21841, "none": 0}
CPB_HIDDEN = 512  # Swin V2 continuous position bias MLP width (official code, timm, transformers)

_NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# "...-window12to16-192to256-..." / "...-window7-224" : window (pretrained->fine-tuned), then image size.
_WINDOW_SIZE_RE = re.compile(r"(?:^|-)window(\d+)(?:to(\d+))?-(\d+)(?:to(\d+))?(?:-|$)")
_HEX_RE = {64: re.compile(r"^[0-9a-f]{64}$"), 96: re.compile(r"^[0-9a-f]{96}$")}


class ManifestError(SwinzooError, ValueError):
    """A manifest file or entry is invalid; the message names the file, the entry and the field."""


class UnknownEntryError(ManifestError, LookupError):
    """No zoo entry has the requested name; the message lists the closest names."""


# --------------------------------------------------------------------------------------------- types
#: How an official file was saved, and so what it holds beside ``model`` (``source.saved_by``):
#: ``weights-only``: ``{"model": state}`` (the released classification files: swin-tiny's published size is its
#: weights alone); ``swin-save-checkpoint``: Swin-Transformer's utils.py / utils_simmim.py ``save_checkpoint``
#: (model, optimizer, lr_scheduler, max_accuracy, scaler, epoch, config); ``simmim-save-checkpoint``: the SimMIM
#: repository's utils.py ``save_checkpoint`` (no scaler; apex ``amp`` state, its default --amp-opt-level O1).
SAVED_BY = ("weights-only", "swin-save-checkpoint", "simmim-save-checkpoint")
#: SwinV2's continuous position bias MLP: ``cpb_mlp`` in today's code, ``rpe_mlp`` in the released SimMIM V2 files
#: (the official loaders rename it "only for loading provided models"; microsoft/Swin-Transformer#271, #273).
CPB_MLP_NAMES = ("cpb_mlp", "rpe_mlp")


@dataclass(frozen=True)
class Source:
    """Where the official file is and how to check it.

    ``urls`` may be empty only when ``manual_download`` says how to get the file (Google-Drive-only releases).
    ``sha256`` is pinned only from a digest published for that exact file (``pinned = true``).
    """

    filename: str
    urls: tuple[str, ...] = ()
    sha256: str = ""
    pinned: bool = False
    size_bytes: int | None = None
    sha384: str = ""
    drive_id: str = ""
    manual_download: str = ""
    saved_by: str = "weights-only"  # what the file holds beside ``model`` (SAVED_BY); synthetic files copy it
    cpb_mlp_name: str = "cpb_mlp"  # SwinV2's position-bias MLP as the file names it (CPB_MLP_NAMES)


@dataclass(frozen=True)
class Architecture:
    """The Swin / Swin V2 hyper-parameters of the checkpoint (patch 4, mlp_ratio 4, qkv bias everywhere).

    ``derive_from_checkpoint`` names fields whose values here are provisional (architectures outside the
    official code): a converter must read them from the checkpoint's keys and shapes.
    """

    version: int
    image_size: int
    patch_size: int
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    pretrained_window_sizes: tuple[int, ...] = (0, 0, 0, 0)
    derive_from_checkpoint: tuple[str, ...] = ()

    @property
    def num_features(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)


@dataclass(frozen=True)
class SimMIM:
    """Masked-image-modelling settings of a SimMIM pretrain checkpoint (decoder stride and target)."""

    encoder_stride: int = 32
    mask_patch_size: int = 32
    mask_ratio: float = 0.6
    norm_target: bool = False
    norm_target_patch_size: int = 47


@dataclass(frozen=True)
class Metrics:
    """Numbers the original authors reported; swinzoo does not re-measure them here."""

    reported_by: str
    top1: float | None = None
    imagenet_v2_top1: float | None = None
    simmim_val_loss: float | None = None


@dataclass(frozen=True)
class Upstream:
    """The same weights elsewhere: a transformers Hub id and a timm ``model.tag`` (timm >= 0.9)."""

    transformers: str | None = None
    transformers_inferred: bool = False
    timm: str | None = None


@dataclass(frozen=True)
class ZooEntry:
    """One official checkpoint: source, architecture, head, preprocessing, reported metrics."""

    name: str
    family: str
    kind: str
    layout: str
    num_classes: int
    label_set: str
    source: Source
    architecture: Architecture
    preprocessing: Preprocessing
    metrics: Metrics | None = None
    upstream: Upstream = field(default_factory=Upstream)
    simmim: SimMIM | None = None
    pretrained_from: str | None = None
    notes: tuple[str, ...] = ()
    origin: str = field(default="<memory>", compare=False)

    def config(self, **overrides: Any) -> SwinConfig:
        """The SwinConfig of this checkpoint; ``overrides`` replace any SwinConfig field.

        Classification heads get ``id2label`` from the entry's label set (real class names when timm is
        installed). SimMIM pretrain entries have no classifier; SwinConfig needs at least one label, so they
        get ``num_labels=1``, plus their encoder stride / normalised-target settings.
        """
        a = self.architecture
        kwargs: dict[str, Any] = {
            "version": a.version,
            "image_size": a.image_size,
            "patch_size": a.patch_size,
            "embed_dim": a.embed_dim,
            "depths": list(a.depths),
            "num_heads": list(a.num_heads),
            "window_size": a.window_size,
            "pretrained_window_sizes": list(a.pretrained_window_sizes),
        }
        if self.simmim is not None:
            kwargs.update(
                encoder_stride=self.simmim.encoder_stride,
                mim_norm_target=self.simmim.norm_target,
                mim_norm_target_patch_size=self.simmim.norm_target_patch_size,
            )
        if "num_labels" not in overrides and "id2label" not in overrides:
            if self.num_classes:
                kwargs["id2label"] = dict(enumerate(label_names(self.label_set)))
            else:
                kwargs["num_labels"] = 1
        kwargs.update(overrides)
        return SwinConfig(**kwargs)

    @property
    def num_params(self) -> int:
        """Parameter count of the checkpoint's model (backbone + classifier, or + SimMIM decoder)."""
        a = self.architecture
        return count_parameters(
            version=a.version,
            image_size=a.image_size,
            patch_size=a.patch_size,
            embed_dim=a.embed_dim,
            depths=a.depths,
            num_heads=a.num_heads,
            window_size=a.window_size,
            num_classes=self.num_classes,
            simmim_encoder_stride=self.simmim.encoder_stride if self.simmim else None,
        )

    @property
    def pinned(self) -> bool:
        return self.source.pinned

    def to_dict(self) -> dict[str, Any]:
        """Every manifest field as plain JSON-able data (tuples become lists); ``origin`` left out."""
        data = dataclasses.asdict(self)
        data.pop("origin")
        return _jsonable(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------- counting
def count_parameters(
    *,
    version: int,
    image_size: int,
    embed_dim: int,
    depths: Iterable[int],
    num_heads: Iterable[int],
    window_size: int,
    patch_size: int = 4,
    in_chans: int = 3,
    mlp_ratio: float = 4.0,
    num_classes: int = 0,
    simmim_encoder_stride: int | None = None,
) -> int:
    """Parameters of a Swin (v1) / Swin V2 with its head, counted from the architecture's formulas.

    Lets ``swinzoo list`` show sizes and lets a converter check a state dict's size without building a model.
    Per block of width d with h heads and hidden m = d * mlp_ratio: two LayerNorms (4d), qkv (3d^2 + 3d; in v2
    the k bias is fixed at zero, so q_bias + v_bias = 2d, plus a per-head logit scale h and the position-bias
    MLP 2->512->h: 3*512 + 512h), proj (d^2 + d) and the MLP (2dm + m + d). v1 instead learns a bias table of
    (2w - 1)^2 * h, with w the window after the official clamp (a stage no larger than the window uses its
    own size). Patch merging maps 4d -> 2d without bias, with LayerNorm(4d) before (v1) or LayerNorm(2d) after
    (v2). Plus the patch embedding conv and its LayerNorm, the final LayerNorm, the classifier, and for SimMIM
    pretraining the mask token and the 1x1-conv decoder to stride^2 * 3 channels.
    """
    depths, num_heads = list(depths), list(num_heads)
    n = embed_dim * in_chans * patch_size * patch_size + embed_dim + 2 * embed_dim  # patch embed + its norm
    res = image_size // patch_size
    for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
        dim = embed_dim * 2**i
        if i > 0:
            prev = dim // 2
            n += 4 * prev * dim + (2 * 4 * prev if version == 1 else 2 * dim)
            res = (res + 1) // 2
        hidden = int(dim * mlp_ratio)
        block = 4 * dim + 3 * dim * dim + dim * dim + dim + 2 * dim * hidden + hidden + dim
        if version == 1:
            win = min(window_size, res)
            block += 3 * dim + (2 * win - 1) ** 2 * heads
        else:
            block += 2 * dim + heads + 3 * CPB_HIDDEN + CPB_HIDDEN * heads
        n += depth * block
    num_features = embed_dim * 2 ** (len(depths) - 1)
    n += 2 * num_features  # final norm
    if num_classes:
        n += num_features * num_classes + num_classes
    if simmim_encoder_stride:
        out = simmim_encoder_stride**2 * in_chans
        n += embed_dim + num_features * out + out  # mask token + decoder conv
    return n


# --------------------------------------------------------------------------------------------- labels
def _timm_info_file(name: str) -> Path | None:
    """One of timm's bundled ImageNet class-name files, found without importing timm; None without timm.

    Importing timm loads torchvision and every timm model (~200 MB resident): ``convert`` needs only the names.
    """
    try:
        spec = importlib.util.find_spec("timm")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / "_info" / name
        if path.is_file():
            return path
    raise ManifestError(f"timm is installed but has no data/_info/{name} (its ImageNet class names)")


def _read_timm_lines(name: str) -> list[str] | None:
    path = _timm_info_file(name)
    return None if path is None else path.read_text(encoding="utf-8").splitlines()


@cache
def _label_names(label_set: str) -> tuple[str, ...]:
    if label_set not in LABEL_SETS:
        raise ManifestError(f"label_set: unknown {label_set!r}; choose from {sorted(LABEL_SETS)}")
    size = LABEL_SETS[label_set]
    if size == 0:
        return ()
    lemma_lines = _read_timm_lines("imagenet_synset_to_lemma.txt")
    if lemma_lines is None:
        return tuple(f"LABEL_{i}" for i in range(size))
    lemmas = dict(row[:2] for row in csv.reader(lemma_lines, delimiter="\t") if len(row) >= 2)
    synsets = official_22k_synsets() if label_set == "imagenet-22k" else _read_timm_lines("imagenet_synsets.txt")
    if synsets is None or len(synsets) != size:
        got = "no" if synsets is None else len(synsets)
        raise ManifestError(f"label_set {label_set!r}: timm's class list has {got} names, expected {size}")
    missing = [s for s in synsets if s not in lemmas]
    if missing:
        raise ManifestError(f"label_set {label_set!r}: timm's lemma list has no name for {missing[0]}")
    names = [lemmas[s] for s in synsets]
    # Lemmas repeat (ImageNet-1K has two "crane" and two "maillot"); config labels must be unique, so each
    # repeated lemma carries its WordNet synset.
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return tuple(f"{n} ({s})" if counts[n] > 1 else n for n, s in zip(names, synsets, strict=True))


@cache
def official_22k_synsets() -> list[str]:
    """The WordNet ids of the official 21841-class heads, in head order.

    Microsoft's ImageNet-22K labels are Google's ids (21843 sorted wnids, timm's ``imagenet21k_goog_synsets.txt``)
    with the two classes that have no images given away: "map 21841->9205; 21842->15027" (the official
    ``data/imagenet22k_dataset.py``). So row k is Google's wnid k, except rows 9205 and 15027, which hold Google's
    last two. This is not timm's sorted fall11 list (``imagenet22k_synsets.txt``), which drops the two imageless
    wnids and so runs one row behind from 9205 on: the official 22k->1k map (``swinzoo/assets``) only agrees with
    this order.
    """
    text = _read_timm_lines("imagenet21k_goog_synsets.txt")
    if text is None:
        raise ManifestError("the official 22k class order comes from timm's imagenet21k_goog_synsets.txt: install timm")
    google = " ".join(text).split()
    if len(google) != 21843:
        raise ManifestError(f"timm's imagenet21k_goog_synsets.txt has {len(google)} wnids, expected 21843")
    rows = google[:21841]
    rows[9205], rows[15027] = google[21841], google[21842]
    return rows


def label_names(label_set: str) -> list[str]:
    """Class names of a label set, in head order: WordNet lemmas from timm, or ``LABEL_i`` without timm.

    Names are unique (a repeated lemma gets its synset appended) because ``SwinConfig`` inverts id2label.
    ``none`` (SimMIM pretraining) has no classes.
    """
    return list(_label_names(label_set))


# --------------------------------------------------------------------------------------------- parsing
_MISSING = object()


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check a TOML value against a dataclass field type (int, float, bool, str, tuple[...], X | None)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        arms = [t for t in typing.get_args(tp) if t is not type(None)]
        return _convert(value, arms[0], where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ManifestError(f"{where}: expected a list, got {value!r}")
        (item, *_) = typing.get_args(tp)
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - only the types above are used in the dataclasses
        raise TypeError(f"unsupported field type {tp!r}")
    if not ok:
        raise ManifestError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def _build(cls: type, table: Any, where: str, nested: Mapping[str, type] | None = None) -> Any:
    """Build a dataclass from a TOML table, rejecting unknown keys and naming missing ones."""
    if not isinstance(table, dict):
        raise ManifestError(f"{where}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "origin"}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        value = table.get(name, _MISSING)
        if value is _MISSING:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ManifestError(f"{where}.{name}: missing (required)")
            continue
        if nested and name in nested:
            kwargs[name] = _build(nested[name], value, f"{where}.{name}")
        else:
            kwargs[name] = _convert(value, hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (ConfigError, TypeError, ValueError) as exc:  # a type's own checks (e.g. Preprocessing's)
        raise ManifestError(f"{where}: {exc}") from exc


def parse_entries(data: Mapping[str, Any], origin: str) -> list[ZooEntry]:
    """Entries of one parsed manifest file (``{"entry": [...]}``), type-checked; not yet validated."""
    unknown = sorted(set(data) - {"entry"})
    if unknown:
        raise ManifestError(f"{origin}: unknown top-level key(s) {unknown}; a manifest holds [[entry]] tables")
    tables = data.get("entry", [])
    if not isinstance(tables, list):
        raise ManifestError(f"{origin}: `entry` must be an array of tables ([[entry]])")
    entries = []
    for i, table in enumerate(tables):
        label = table.get("name") if isinstance(table, dict) else None
        where = f"{origin}: entry {label!r}" if isinstance(label, str) else f"{origin}: entry #{i + 1}"
        entry = _build(
            ZooEntry,
            table,
            where,
            nested={
                "source": Source,
                "architecture": Architecture,
                "preprocessing": Preprocessing,
                "metrics": Metrics,
                "upstream": Upstream,
                "simmim": SimMIM,
            },
        )
        entries.append(dataclasses.replace(entry, origin=origin))
    return entries


# --------------------------------------------------------------------------------------------- validation
def _fail(entry: ZooEntry, fld: str, message: str) -> None:
    raise ManifestError(f"{entry.origin}: entry {entry.name!r}: {fld}: {message}")


def validate_entry(entry: ZooEntry) -> None:
    """Check one entry's internal consistency; raise ManifestError naming file, entry and field."""
    _validate_identity(entry)
    _validate_architecture(entry)
    _validate_head(entry)
    _validate_source(entry)
    _validate_preprocessing(entry)
    _validate_metrics(entry)


def _validate_identity(entry: ZooEntry) -> None:
    """Name, family, kind and the layout they imply."""
    if not _NAME_RE.match(entry.name):
        _fail(entry, "name", "must be lower-case letters, digits and single dashes")
    if entry.family not in FAMILIES:
        _fail(entry, "family", f"{entry.family!r} is not one of {FAMILIES}")
    if entry.kind not in KINDS:
        _fail(entry, "kind", f"{entry.kind!r} is not one of {KINDS}")
    expected_layout = LAYOUTS[(entry.family, entry.kind)]
    if entry.layout != expected_layout:
        _fail(
            entry,
            "layout",
            f"{entry.layout!r}, but a {entry.family} {entry.kind} entry is {expected_layout!r}",
        )


def _validate_architecture(entry: ZooEntry) -> None:
    """Architecture fields against each other, the name and SwinConfig's own checks."""
    a = entry.architecture
    want_version = 1 if entry.family == "swin" else 2
    if a.version != want_version:
        _fail(
            entry,
            "architecture.version",
            f"{a.version}, but family {entry.family!r} is version {want_version}",
        )
    if len(a.num_heads) != len(a.depths):
        _fail(entry, "architecture.num_heads", f"{len(a.num_heads)} stages but depths has {len(a.depths)}")
    if len(a.pretrained_window_sizes) != len(a.depths):
        _fail(entry, "architecture.pretrained_window_sizes", f"needs one value per stage ({len(a.depths)})")
    for i, heads in enumerate(a.num_heads):
        if heads < 1 or (a.embed_dim * 2**i) % heads:
            _fail(
                entry,
                "architecture.num_heads",
                f"stage {i + 1} width {a.embed_dim * 2**i} is not divisible by {heads}",
            )
    if a.version == 1 and any(a.pretrained_window_sizes):
        _fail(entry, "architecture.pretrained_window_sizes", "Swin v1 has no pretrained windows (must be all 0)")
    arch_fields = {f.name for f in dataclasses.fields(Architecture)} - {"derive_from_checkpoint"}
    for name in a.derive_from_checkpoint:
        if name not in arch_fields:
            _fail(entry, "architecture.derive_from_checkpoint", f"{name!r} is not an architecture field")
    match = _WINDOW_SIZE_RE.search(entry.name)
    if match:
        win_from, win_to, img_from, img_to = match.groups()
        win = int(win_to or win_from)
        img = int(img_to or img_from)
        if a.window_size != win:
            _fail(entry, "architecture.window_size", f"{a.window_size}, but the name says window {win}")
        if a.image_size != img:
            _fail(entry, "architecture.image_size", f"{a.image_size}, but the name says {img}")
        if win_to:
            # The fine-tune keeps the windows the pretrain used, after the official clamp at its resolution.
            base = int(img_from) if img_to else a.image_size
            pretrain = SwinConfig(
                version=a.version, image_size=base, patch_size=a.patch_size, embed_dim=a.embed_dim,
                depths=list(a.depths), num_heads=list(a.num_heads), window_size=int(win_from),
            )  # fmt: skip
            expected = [pretrain.stage_window(i)[0] for i in range(len(a.depths))]
            if list(a.pretrained_window_sizes) != expected:
                _fail(
                    entry,
                    "architecture.pretrained_window_sizes",
                    f"{list(a.pretrained_window_sizes)}, but window{win_from}to{win_to} at {base} means {expected}",
                )
    try:
        entry.config() if entry.num_classes == 0 else entry.config(num_labels=entry.num_classes)
    except ConfigError as exc:
        _fail(entry, "architecture", str(exc))


def _validate_head(entry: ZooEntry) -> None:
    """Label set, class count and the SimMIM settings a pretrain needs."""
    a = entry.architecture
    if entry.label_set not in LABEL_SETS:
        _fail(entry, "label_set", f"{entry.label_set!r} is not one of {sorted(LABEL_SETS)}")
    if entry.num_classes != LABEL_SETS[entry.label_set]:
        _fail(
            entry,
            "num_classes",
            f"{entry.num_classes}, but label_set {entry.label_set!r} has {LABEL_SETS[entry.label_set]} classes",
        )
    if (entry.kind == "simmim-pretrain") != (entry.num_classes == 0):
        _fail(entry, "num_classes", "must be 0 exactly for SimMIM pretrain entries (they have no classifier)")
    if (entry.kind == "simmim-pretrain") != (entry.simmim is not None):
        _fail(entry, "simmim", "a [entry.simmim] table is required for, and only for, SimMIM pretrain entries")
    if entry.simmim is not None:
        if not 0.0 < entry.simmim.mask_ratio < 1.0:
            _fail(entry, "simmim.mask_ratio", f"{entry.simmim.mask_ratio} is not in (0, 1)")
        if entry.simmim.mask_patch_size % a.patch_size:
            _fail(entry, "simmim.mask_patch_size", f"must be a multiple of patch_size {a.patch_size}")


def _validate_source(entry: ZooEntry) -> None:
    """Download fields: bare file name, https URLs, hashes and pins."""
    s = entry.source
    if not s.filename or "/" in s.filename or "\\" in s.filename:
        _fail(entry, "source.filename", f"{s.filename!r} must be a bare file name")
    for url in s.urls:
        if not url.startswith("https://"):
            _fail(entry, "source.urls", f"{url!r} is not an https URL")
        if url.rsplit("/", 1)[-1] != s.filename:
            _fail(entry, "source.urls", f"{url!r} does not end in filename {s.filename!r}")
    if not s.urls and not s.manual_download.strip():
        _fail(entry, "source", "no urls: a manual_download text must say where to get the file")
    if s.sha256:
        if not _HEX_RE[64].match(s.sha256):
            _fail(entry, "source.sha256", f"{s.sha256!r} is not 64 lower-case hex characters")
    elif s.pinned:
        _fail(entry, "source.pinned", "true, but sha256 is empty (pin only with a known digest)")
    if s.sha256 and not s.pinned:
        _fail(entry, "source.pinned", "false, but a sha256 is given; set pinned = true or drop the digest")
    if s.sha384 and not _HEX_RE[96].match(s.sha384):
        _fail(entry, "source.sha384", f"{s.sha384!r} is not 96 lower-case hex characters")
    if s.size_bytes is not None and s.size_bytes <= 0:
        _fail(entry, "source.size_bytes", f"{s.size_bytes} must be positive")
    if s.saved_by not in SAVED_BY:
        _fail(entry, "source.saved_by", f"{s.saved_by!r} is not one of {', '.join(SAVED_BY)}")
    if s.cpb_mlp_name not in CPB_MLP_NAMES:
        _fail(entry, "source.cpb_mlp_name", f"{s.cpb_mlp_name!r} is not one of {', '.join(CPB_MLP_NAMES)}")
    if s.cpb_mlp_name != "cpb_mlp" and entry.architecture.version != 2:
        _fail(entry, "source.cpb_mlp_name", "only a Swin V2 file has a continuous position bias MLP")


def _validate_preprocessing(entry: ZooEntry) -> None:
    """The eval transform: the official ones only (data/build.py)."""
    a, p = entry.architecture, entry.preprocessing
    if p.input_size != a.image_size:
        _fail(
            entry,
            "preprocessing.input_size",
            f"{p.input_size}, but architecture.image_size is {a.image_size}",
        )
    # The official eval transforms (data/build.py) are TEST.CROP True: short side to int(256 / 224 * size), centre
    # crop (crop_mode "center", crop_pct < 1); or TEST.CROP False: Resize((size, size)) (crop_mode "squash",
    # crop_pct 1.0). Any other pair is no official transform; "center" at 1.0 was a misreading of the second.
    if p.crop_mode == "squash" and p.crop_pct != 1.0:
        _fail(entry, "preprocessing.crop_pct", f"{p.crop_pct} with crop_mode 'squash'; TEST.CROP False squashes to 1.0")
    if p.crop_mode == "center" and p.crop_pct == 1.0:
        _fail(
            entry,
            "preprocessing.crop_mode",
            "'center' with crop_pct 1.0 is no official eval transform; TEST.CROP False is crop_mode = \"squash\"",
        )
    # crop_pct, crop_mode, interpolation, mean and std are checked by Preprocessing itself when it is parsed.


def _validate_metrics(entry: ZooEntry) -> None:
    """Reported figures are percentages, and only where a classifier exists."""
    m = entry.metrics
    if m is not None:
        for name in ("top1", "imagenet_v2_top1"):
            value = getattr(m, name)
            if value is not None and not 0.0 < value <= 100.0:
                _fail(entry, f"metrics.{name}", f"{value} is not a percentage")
        if m.top1 is not None and entry.kind == "simmim-pretrain":
            _fail(entry, "metrics.top1", "a SimMIM pretrain checkpoint has no classifier to score")


def validate_all(entries: Iterable[ZooEntry]) -> dict[str, ZooEntry]:
    """Validate entries together (unique names, existing ``pretrained_from``); return them by name."""
    by_name: dict[str, ZooEntry] = {}
    for entry in entries:
        validate_entry(entry)
        if entry.name in by_name:
            first = by_name[entry.name]
            _fail(entry, "name", f"duplicate; already defined in {first.origin}")
        by_name[entry.name] = entry
    for entry in by_name.values():
        if entry.pretrained_from is not None and entry.pretrained_from not in by_name:
            _fail(entry, "pretrained_from", f"{entry.pretrained_from!r} is not a zoo entry")
    return by_name


# --------------------------------------------------------------------------------------------- loading
def _file_order(name: str) -> tuple[bool, str]:
    # Supervised families first, then SimMIM: the order `swinzoo list` shows.
    return name.startswith("simmim"), name


def _load(files: list[tuple[str, Any]]) -> dict[str, ZooEntry]:
    entries: list[ZooEntry] = []
    for label, f in sorted(files, key=lambda item: _file_order(item[1].name)):
        try:
            data = tomllib.loads(f.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(f"{label}: not valid TOML ({exc})") from exc
        entries += parse_entries(data, label)
    return validate_all(entries)


@cache
def _load_package() -> dict[str, ZooEntry]:
    root = importlib.resources.files("swinzoo.manifests")
    return _load([(f"manifests/{f.name}", f) for f in root.iterdir() if f.name.endswith(".toml")])


def load_manifests(directory: str | Path | None = None) -> dict[str, ZooEntry]:
    """All zoo entries by name, validated.

    ``directory=None`` reads the manifests shipped in the package (``swinzoo.manifests``, read once per
    process); a directory of ``*.toml`` files (read on every call) checks manifests before they are added.
    """
    if directory is None:
        return dict(_load_package())
    return _load([(str(f), f) for f in Path(directory).glob("*.toml")])


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; an unknown name raises UnknownEntryError listing close matches."""
    entries = load_manifests()
    try:
        return entries[name]
    except KeyError:
        pass
    starting = [n for n in entries if n.startswith(name)] if name else []  # a prefix: `swin-tiny`
    close = starting[:5] or difflib.get_close_matches(name, list(entries), n=5, cutoff=0.6)
    more = f" (and {len(starting) - 5} more: `swinzoo list --filter {name}`)" if len(starting) > 5 else ""
    hint = f"; did you mean: {', '.join(close)}{more}?" if close else "; `swinzoo list` shows every entry"
    raise UnknownEntryError(f"no zoo entry named {name!r}{hint}") from None
