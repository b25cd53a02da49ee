"""One configuration type for Swin (v1) and Swin V2, shaped like transformers' SwinConfig/Swinv2Config."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from .errors import SwinzooError
from .folder import CONFIG_NAME
from .records import RecordError, read_json

_ACTIVATIONS = ("gelu", "relu", "silu", "swish", "gelu_new", "gelu_pytorch_tanh", "quick_gelu")
# transformers' loss selection for a classification head (``None``: inferred from num_labels and the labels' dtype).
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


class ConfigError(SwinzooError, ValueError):
    """A config value is invalid; the message names the field."""


# Sane maxima, checked before anything is allocated: a config.json (or a checkpoint's shapes) can claim any
# size, and the largest official model (SwinV2-giant: embed 448, depths [2, 2, 18, 2]; 21841 classes) is far below.
LIMITS = {
    "image_size": 8192,
    "patch_size": 64,
    "num_channels": 16,
    "embed_dim": 4096,
    "depth": 128,
    "stages": 8,
    "num_heads": 512,
    "window_size": 64,  # a block holds (window²)² bias entries: 64 is 16.7M (official windows are at most 24)
    "mlp_ratio": 16.0,
    "num_labels": 100_000,
    "label_chars": 512,
    "encoder_stride": 256,
    "mim_norm_target_patch_size": 255,
    "parameters": 10_000_000_000,
}


def _pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ConfigError(f"image_size: expected one size or [height, width] (got {_show(value)})")
        return _int("image_size", value[0]), _int("image_size", value[1])
    return _int("image_size", value), _int("image_size", value)


def _show(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: repr, cut short (a hostile file can hold megabyte strings)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _int(field: str, value: Any) -> int:
    """An integer field, refusing bools, fractions, non-numbers and non-finite floats with the field named."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
            return int(value)
        raise ConfigError(f"{field}: expected an integer (got {_show(value)})")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf")) or value != int(value)):
        raise ConfigError(f"{field}: expected an integer (got {_show(value)})")
    return int(value)


def _float(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{field}: expected a number (got {_show(value)})")
    try:
        out = float(value)
    except ValueError:
        raise ConfigError(f"{field}: expected a number (got {_show(value)})") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise ConfigError(f"{field}: expected a finite number (got {_show(value)})")
    return out


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise ConfigError(f"{field}: expected true or false (got {_show(value)})")
    return bool(value)


def _ints(field: str, value: Any, max_len: int) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{field}: expected a list of integers (got {_show(value)})")
    if len(value) > max_len:
        raise ConfigError(f"{field}: {len(value)} entries, at most {max_len} are supported")
    return [_int(f"{field}[{i}]", v) for i, v in enumerate(value)]


def _labels(id2label: Any) -> dict[int, str]:
    if not isinstance(id2label, dict):
        raise ConfigError(f"id2label: expected a mapping of class index to name (got {_show(id2label)})")
    if len(id2label) > LIMITS["num_labels"]:
        raise ConfigError(f"id2label: {len(id2label)} classes, at most {LIMITS['num_labels']} are supported")
    out = {}
    for k, v in id2label.items():
        index = _int("id2label key", k)
        if not isinstance(v, str):
            raise ConfigError(f"id2label[{index}]: expected a class name (got {_show(v)})")
        if len(v) > LIMITS["label_chars"]:
            raise ConfigError(f"id2label[{index}]: a {len(v)}-character name, at most {LIMITS['label_chars']}")
        out[index] = v
    return out


class SwinConfig:
    """Architecture and head settings for a Swin (``version=1``) or Swin V2 (``version=2``) model.

    Field names follow transformers so a config reads the same in both libraries. Values are checked
    on construction; an invalid value raises :class:`ConfigError` naming the field.
    """

    model_type = "swinzoo"

    def __init__(
        self,
        version: int = 1,
        image_size: int | tuple[int, int] = 224,
        patch_size: int = 4,
        num_channels: int = 3,
        embed_dim: int = 96,
        depths: list[int] | tuple[int, ...] = (2, 2, 6, 2),
        num_heads: list[int] | tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7,
        pretrained_window_sizes: list[int] | tuple[int, ...] | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        drop_path_rate: float = 0.1,
        hidden_act: str = "gelu",
        use_absolute_embeddings: bool = False,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        encoder_stride: int = 32,
        mim_norm_target: bool = False,
        mim_norm_target_patch_size: int = 47,
        out_features: list[str] | None = None,
        out_indices: list[int] | None = None,
        num_labels: int | None = None,
        id2label: dict[int | str, str] | None = None,
        label2id: dict[str, int] | None = None,
        problem_type: str | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        return_dict: bool = True,
        output_block_attentions: bool = False,
        **extra: Any,
    ) -> None:
        self.version = _int("version", version)
        self.image_size = (
            list(_pair(image_size)) if isinstance(image_size, (list, tuple)) else _int("image_size", image_size)
        )
        self.patch_size = _int("patch_size", patch_size)
        self.num_channels = _int("num_channels", num_channels)
        self.embed_dim = _int("embed_dim", embed_dim)
        self.depths = _ints("depths", depths, int(LIMITS["stages"]))
        self.num_heads = _ints("num_heads", num_heads, int(LIMITS["stages"]))
        self.window_size = _int("window_size", window_size)
        self.pretrained_window_sizes = (
            [0] * len(self.depths)
            if pretrained_window_sizes is None
            else _ints("pretrained_window_sizes", pretrained_window_sizes, int(LIMITS["stages"]))
        )
        self.mlp_ratio = _float("mlp_ratio", mlp_ratio)
        self.qkv_bias = _bool("qkv_bias", qkv_bias)
        self.hidden_dropout_prob = _float("hidden_dropout_prob", hidden_dropout_prob)
        self.attention_probs_dropout_prob = _float("attention_probs_dropout_prob", attention_probs_dropout_prob)
        self.drop_path_rate = _float("drop_path_rate", drop_path_rate)
        if not isinstance(hidden_act, str):
            raise ConfigError(f"hidden_act: expected a name (got {_show(hidden_act)})")
        self.hidden_act = hidden_act
        self.use_absolute_embeddings = _bool("use_absolute_embeddings", use_absolute_embeddings)
        self.layer_norm_eps = _float("layer_norm_eps", layer_norm_eps)
        self.initializer_range = _float("initializer_range", initializer_range)
        self.encoder_stride = _int("encoder_stride", encoder_stride)
        self.mim_norm_target = _bool("mim_norm_target", mim_norm_target)
        self.mim_norm_target_patch_size = _int("mim_norm_target_patch_size", mim_norm_target_patch_size)

        if num_labels is not None:
            num_labels = _int("num_labels", num_labels)
            if not 1 <= num_labels <= LIMITS["num_labels"]:
                raise ConfigError(f"num_labels: must be between 1 and {LIMITS['num_labels']} (got {num_labels})")
        if id2label is not None:
            self.id2label = _labels(id2label)
        else:
            self.id2label = {i: f"LABEL_{i}" for i in range(2 if num_labels is None else num_labels)}
        if num_labels is not None and num_labels != len(self.id2label):
            raise ConfigError(f"num_labels={num_labels} but id2label has {len(self.id2label)} entries")
        if label2id is not None and not isinstance(label2id, dict):
            raise ConfigError(f"label2id: expected a mapping of class name to index (got {_show(label2id)})")
        self.label2id = (
            {str(k): _int(f"label2id[{_show(k, 40)}]", v) for k, v in label2id.items()}
            if label2id is not None
            else {v: k for k, v in self.id2label.items()}
        )
        if problem_type is not None and problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"problem_type: {_show(problem_type)} is not one of {', '.join(PROBLEM_TYPES)}")
        self.problem_type = problem_type
        # What a forward returns when its own keyword is left at None (as transformers' PretrainedConfig).
        self.output_hidden_states = _bool("output_hidden_states", output_hidden_states)
        self.output_attentions = _bool("output_attentions", output_attentions)
        self.return_dict = _bool("return_dict", return_dict)
        self.stage_names = ["stem"] + [f"stage{i + 1}" for i in range(len(self.depths))]
        self._out_features, self._out_indices = self._align_out_features(out_features, out_indices)
        self.output_block_attentions = _bool("output_block_attentions", output_block_attentions)
        # Unknown keys (e.g. transformers bookkeeping in a foreign config.json) are kept, not lost.
        self.extra = dict(extra)
        self.validate()

    # ----------------------------------------------------------------- derived values
    @property
    def out_features(self) -> list[str]:
        """Stages a backbone returns; setting it (None: the last stage) sets ``out_indices`` too."""
        return list(self._out_features)

    @out_features.setter
    def out_features(self, names: list[str] | None) -> None:
        self._out_features, self._out_indices = self._align_out_features(names, None)

    @property
    def out_indices(self) -> list[int]:
        """Indices into ``stage_names`` of ``out_features`` (negative ones count from the end)."""
        return list(self._out_indices)

    @out_indices.setter
    def out_indices(self, indices: list[int] | None) -> None:
        self._out_features, self._out_indices = self._align_out_features(None, indices)

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        """As in transformers: a new class count resets the labels to generic ``LABEL_i`` names."""
        value = _int("num_labels", value)
        if not 1 <= value <= LIMITS["num_labels"]:
            raise ConfigError(f"num_labels: must be between 1 and {LIMITS['num_labels']} (got {value})")
        if value != len(self.id2label):
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def num_layers(self) -> int:
        return len(self.depths)

    @property
    def num_features(self) -> int:
        """Channels after the last stage: embed_dim doubles at every patch merging."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def image_hw(self) -> tuple[int, int]:
        return _pair(self.image_size)

    @property
    def hidden_sizes(self) -> list[int]:
        return [self.embed_dim * 2**i for i in range(len(self.depths))]

    @property
    def patches_resolution(self) -> tuple[int, int]:
        h, w = self.image_hw
        return h // self.patch_size, w // self.patch_size

    @property
    def num_patches(self) -> int:
        h, w = self.patches_resolution
        return h * w

    def stage_resolution(self, stage: int) -> tuple[int, int]:
        """Token grid of a stage at the configured image size: halved per merge, rounding up as the padding
        before a merge does (as timm sizes its stages; transformers' Swinv2 rounds down: docs/geometry.md)."""
        h, w = self.patches_resolution
        for _ in range(stage):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    def stage_window(self, stage: int) -> tuple[int, bool]:
        """The official clamp: a stage no larger than the window runs unshifted, window = its resolution."""
        res = min(self.stage_resolution(stage))
        if res <= self.window_size:
            return res, False
        return self.window_size, True

    # ----------------------------------------------------------------- validation
    def _align_out_features(
        self, out_features: list[str] | None, out_indices: list[int] | None
    ) -> tuple[list[str], list[int]]:
        names = self.stage_names
        if out_features is None and out_indices is None:
            return [names[-1]], [len(names) - 1]
        if out_features is not None:
            for f in out_features:
                if f not in names:
                    raise ConfigError(f"out_features: {f!r} is not a stage name; choose from {names}")
        if out_indices is not None:
            for i in out_indices:
                if not -len(names) <= int(i) < len(names):
                    raise ConfigError(f"out_indices: {i} is out of range for {len(names)} stages (stem included)")
            indices = [int(i) % len(names) for i in out_indices]
            if out_features is not None and [names[i] for i in indices] != list(out_features):
                raise ConfigError(f"out_features {out_features} and out_indices {out_indices} do not agree")
            return [names[i] for i in indices], indices
        assert out_features is not None  # both None returned first, out_indices given returned above
        return list(out_features), [names.index(f) for f in out_features]

    def validate(self) -> None:
        def need(cond: bool, field: str, msg: str) -> None:
            if not cond:
                raise ConfigError(f"{field}: {msg} (got {getattr(self, field)!r})")

        need(self.version in (1, 2), "version", "must be 1 (Swin) or 2 (Swin V2)")
        self._check_maxima()
        need(
            len(self.depths) >= 1 and all(d >= 1 for d in self.depths),
            "depths",
            "must be positive block counts",
        )
        need(
            len(self.num_heads) == len(self.depths),
            "num_heads",
            f"needs one entry per stage ({len(self.depths)} stages in depths)",
        )
        need(all(h >= 1 for h in self.num_heads), "num_heads", "must be positive")
        for i, h in enumerate(self.num_heads):
            dim = self.embed_dim * 2**i
            if dim % h:
                raise ConfigError(f"embed_dim: stage {i + 1} width {dim} is not divisible by num_heads[{i}]={h}")
        need(self.embed_dim >= 1, "embed_dim", "must be positive")
        need(self.patch_size >= 1, "patch_size", "must be >= 1")
        need(self.num_channels >= 1, "num_channels", "must be >= 1")
        need(self.window_size >= 1, "window_size", "must be >= 1")
        need(min(self.image_hw) >= self.patch_size, "image_size", "must be at least patch_size")
        need(
            len(self.pretrained_window_sizes) == len(self.depths),
            "pretrained_window_sizes",
            f"needs one entry per stage ({len(self.depths)})",
        )
        need(all(w >= 0 for w in self.pretrained_window_sizes), "pretrained_window_sizes", "must be >= 0")
        if self.version == 1:
            need(
                not any(self.pretrained_window_sizes),
                "pretrained_window_sizes",
                "only Swin V2 uses pretrained windows",
            )
        need(self.mlp_ratio > 0, "mlp_ratio", "must be positive")
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            need(0.0 <= getattr(self, field) < 1.0, field, "must be in [0, 1)")
        need(self.hidden_act in _ACTIVATIONS, "hidden_act", f"must be one of {_ACTIVATIONS}")
        need(self.layer_norm_eps > 0, "layer_norm_eps", "must be positive")
        need(self.encoder_stride >= 1, "encoder_stride", "must be >= 1")
        need(
            self.mim_norm_target_patch_size % 2 == 1,
            "mim_norm_target_patch_size",
            "must be odd (a centred neighbourhood)",
        )
        need(self.num_labels >= 1, "num_labels", "must be >= 1")
        need(set(self.label2id.values()) == set(self.id2label), "label2id", "must invert id2label")

    def _check_maxima(self) -> None:
        """Refuse sizes no Swin has, before a model of that size is allocated (see :data:`LIMITS`)."""
        checks = [
            ("image_size", max(self.image_hw), LIMITS["image_size"]),
            ("patch_size", self.patch_size, LIMITS["patch_size"]),
            ("num_channels", self.num_channels, LIMITS["num_channels"]),
            ("embed_dim", self.embed_dim, LIMITS["embed_dim"]),
            ("depths", max(self.depths, default=0), LIMITS["depth"]),
            ("num_heads", max(self.num_heads, default=0), LIMITS["num_heads"]),
            ("window_size", self.window_size, LIMITS["window_size"]),
            ("pretrained_window_sizes", max(self.pretrained_window_sizes, default=0), LIMITS["window_size"]),
            ("mlp_ratio", self.mlp_ratio, LIMITS["mlp_ratio"]),
            ("encoder_stride", self.encoder_stride, LIMITS["encoder_stride"]),
            ("mim_norm_target_patch_size", self.mim_norm_target_patch_size, LIMITS["mim_norm_target_patch_size"]),
        ]
        for field, value, limit in checks:
            if value > limit:
                raise ConfigError(f"{field}: {value} is above the supported maximum {limit}")
        if self.estimated_parameters() > LIMITS["parameters"]:
            raise ConfigError(
                f"embed_dim/depths: about {self.estimated_parameters():.3g} parameters, above the supported "
                f"{LIMITS['parameters']:.0e} (the largest official Swin has 3e9)"
            )

    def estimated_parameters(self) -> int:
        """Parameters of the blocks, merges and head, to the leading order: what a model of this config allocates."""
        total = 0
        for i, depth in enumerate(self.depths):
            dim = self.embed_dim * 2**i
            total += depth * int((4 + 2 * self.mlp_ratio) * dim * dim)  # qkv + proj + MLP per block
            if i < len(self.depths) - 1:
                total += 8 * dim * dim  # patch merging: 4C -> 2C
        return total + self.num_features * self.num_labels

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        out = {
            "model_type": self.model_type,
            "version": self.version,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_channels": self.num_channels,
            "embed_dim": self.embed_dim,
            "depths": list(self.depths),
            "num_heads": list(self.num_heads),
            "window_size": self.window_size,
            "pretrained_window_sizes": list(self.pretrained_window_sizes),
            "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias,
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
            "drop_path_rate": self.drop_path_rate,
            "hidden_act": self.hidden_act,
            "use_absolute_embeddings": self.use_absolute_embeddings,
            "layer_norm_eps": self.layer_norm_eps,
            "initializer_range": self.initializer_range,
            "encoder_stride": self.encoder_stride,
            "mim_norm_target": self.mim_norm_target,
            "mim_norm_target_patch_size": self.mim_norm_target_patch_size,
            "out_features": list(self.out_features),
            "out_indices": list(self.out_indices),
            "num_labels": self.num_labels,
            "id2label": {str(k): v for k, v in self.id2label.items()},
            "label2id": dict(self.label2id),
            "problem_type": self.problem_type,
            "output_hidden_states": self.output_hidden_states,
            "output_attentions": self.output_attentions,
            "return_dict": self.return_dict,
            "output_block_attentions": self.output_block_attentions,
        }
        out.update(copy.deepcopy(self.extra))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwinConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object of fields (got {type(data).__name__})")
        data = dict(data)
        data.pop("model_type", None)
        bad = [k for k in data if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise ConfigError(f"config: field names must be identifiers (got {_show(bad[0])})")
        return cls(**data)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def to_json_file(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json_string())

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> SwinConfig:
        try:
            data = read_json(Path(path))  # the one capped JSON reader: size, UTF-8, depth, an object
        except RecordError as exc:
            raise ConfigError(str(exc)) from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        except TypeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        Path(directory).mkdir(parents=True, exist_ok=True)
        path = Path(directory) / CONFIG_NAME
        self.to_json_file(path)
        return path

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, *, revision: str | None = None, cache_dir: str | None = None
    ) -> SwinConfig:
        """The config of a folder or Hub repo (swinzoo, transformers or timm format), as transformers' does."""
        from .loading import load_config

        return load_config(name_or_path, revision=revision, cache_dir=cache_dir)

    def copy(self, **changes: Any) -> SwinConfig:
        """A new config with some fields replaced (validated again)."""
        data = self.to_dict()
        if "num_labels" in changes and "id2label" not in changes:
            data.pop("id2label"), data.pop("label2id")
        if "id2label" in changes and "label2id" not in changes:
            data.pop("label2id")
        if ("out_features" in changes) != ("out_indices" in changes):
            data.pop("out_features"), data.pop("out_indices")
        data.update(changes)
        return SwinConfig.from_dict(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SwinConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SwinConfig {self.to_json_string()}"
