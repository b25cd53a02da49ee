"""Move a swinzoo state dict to a new image size, window and head, as the official fine-tuning loaders do.

microsoft/Swin-Transformer fine-tunes at another geometry through two loaders, followed here:

* ``utils.load_pretrained`` (supervised sources): v1 ``relative_position_bias_table`` resized per head with
  ``F.interpolate(mode="bicubic", align_corners=False)`` over its (2w-1) x (2w-1) offset grid, absolute position
  embeddings the same way over the patch grid; a 21841-class head restricted to ImageNet-1k through the official
  22k->1k class map; any other change of class count starts a zero head;
* ``utils_simmim.load_pretrained`` (SimMIM pretrains): decoder and mask token dropped, v1 tables resized by its
  geometric-progression resampling (:func:`geometric_resize`), which called scipy's ``interp2d`` (gone from
  current scipy); here it is written from its definition.

Swin V2 needs no resampling: ``cpb_mlp`` maps continuous offsets, and the new config's
``pretrained_window_sizes`` keep the normalisation the MLP was trained with. The buffers that depend on the
geometry (relative_position_index, relative_coords_table, shift masks) are not persistent in swinzoo: the model
built from the returned config recomputes them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .config import SwinConfig
from .errors import SwinzooError
from .modeling import GEOMETRY_BUFFERS, TASK_CLASSES

__all__ = [
    "RetargetError",
    "RetargetRecord",
    "retarget",
    "target_config",
    "bicubic_resize",
    "geometric_offsets",
    "geometric_resize",
    "map22kto1k",
]

TASKS = ("image-classification", "masked-image-modeling", "base", "backbone")
METHODS = ("bicubic", "geometric")
MAP_22K_TO_1K = "imagenet22k_to_1k.txt"
SIMMIM_DEFAULT_LABELS = 1000  # MODEL.NUM_CLASSES of the official config, the SimMIM fine-tunes' head
_TABLE = re.compile(r"(?:^|\.)stages\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table\Z")


class RetargetError(SwinzooError, ValueError):
    """A retargeting request or a state dict that cannot be retargeted; the message names the value or key."""


@dataclass
class RetargetRecord:
    """What retargeting did, for conversion.json and the card: geometry and head before and after, the method per
    tensor family, and every tensor resized, replaced or dropped."""

    source_task: str
    target_task: str
    source: dict[str, Any]
    target: dict[str, Any]
    methods: dict[str, str] = field(default_factory=dict)
    resized: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.resized or self.replaced or self.dropped) or self.source != self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_task": self.source_task,
            "target_task": self.target_task,
            "from": dict(self.source),
            "to": dict(self.target),
            "methods": dict(self.methods),
            "resized": dict(self.resized),
            "replaced": dict(self.replaced),
            "dropped": dict(self.dropped),
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------- interpolation
def bicubic_resize(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) -> (C, *size): the official loaders' ``F.interpolate(mode="bicubic")`` (corners not aligned),
    in float32 as they run it (half-precision inputs are upcast, the result cast back)."""
    out = F.interpolate(grid[None].float(), size=size, mode="bicubic", align_corners=False)[0]
    return out.to(grid.dtype)


def geometric_offsets(src_side: int, dst_side: int) -> tuple[float, np.ndarray]:
    """utils_simmim.py's source offsets: ratio q by bisection in [1.01, 1.5] so that 1 + q + ... + q^(n-1),
    n = src_side // 2, reaches dst_side // 2; offsets 0, +-1, +-(1 + q), +-(1 + q + q^2), ... (float64).

    The arithmetic repeats the official loop step for step (q is the last midpoint tried)."""
    n, half = src_side // 2, dst_side // 2
    left, right, q = 1.01, 1.5, 1.01
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if (1.0 - q**n) / (1.0 - q) > half:
            right = q
        else:
            left = q
    dis, cur = [], 1.0
    for i in range(n):
        dis.append(cur)
        cur += q ** (i + 1)
    return q, np.array([-d for d in reversed(dis)] + [0.0] + dis, dtype=np.float64)


def _not_a_knot_weights(nodes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(len(points), len(nodes)) matrix W with W @ f = the not-a-knot cubic spline through (nodes, f) at points.

    This is the interpolating bicubic spline interp2d(kind="cubic") fitted on a rectangular grid (FITPACK regrid,
    s=0: interior knots at nodes[2:-2]), one axis at a time; like FITPACK, points outside the nodes are clamped to
    the end nodes. Second-derivative (moment) form: continuity of s'' is built in, the rows below impose continuity
    of s' at interior nodes and of s''' at nodes[1] and nodes[-2].
    """
    m = len(nodes)
    h = np.diff(nodes)
    a = np.zeros((m, m))
    b = np.zeros((m, m))  # right-hand side as a linear map of the values f
    for i in range(1, m - 1):
        a[i, i - 1], a[i, i], a[i, i + 1] = h[i - 1], 2 * (h[i - 1] + h[i]), h[i]
        b[i, i - 1], b[i, i], b[i, i + 1] = 6 / h[i - 1], -6 / h[i - 1] - 6 / h[i], 6 / h[i]
    # s''' equal on both sides of nodes[1] and nodes[-2]: (M1 - M0)/h0 = (M2 - M1)/h1, likewise at the other end.
    a[0, 0], a[0, 1], a[0, 2] = h[1], -(h[0] + h[1]), h[0]
    a[-1, -3], a[-1, -2], a[-1, -1] = h[-1], -(h[-2] + h[-1]), h[-2]
    moments = np.linalg.solve(a, b)  # (m, m): M = moments @ f
    x = np.clip(points, nodes[0], nodes[-1])
    seg = np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, m - 2)
    x0, hs = nodes[seg], h[seg]
    t1, t0 = (x - x0) / hs, (nodes[seg + 1] - x) / hs
    w = np.zeros((len(points), m))
    rows = np.arange(len(points))
    w[rows, seg] += t0
    w[rows, seg + 1] += t1
    w += ((t0**3 - t0) * hs**2 / 6)[:, None] * moments[seg] + ((t1**3 - t1) * hs**2 / 6)[:, None] * moments[seg + 1]
    return w


def geometric_resize(table: torch.Tensor, dst_side: int) -> torch.Tensor:
    """(S1*S1, heads) -> (S2*S2, heads), S2 = dst_side: each head's S1 x S1 grid placed at the geometric offsets of
    :func:`geometric_offsets` and the bicubic interpolating spline evaluated at the integer offsets -(S2//2) ..
    S2//2 (float64, result in the table's dtype)."""
    src_side = math.isqrt(table.shape[0])
    _, nodes = geometric_offsets(src_side, dst_side)
    t = dst_side // 2
    w = _not_a_knot_weights(nodes, np.arange(-t, t + 0.1, 1.0))
    z = table.detach().cpu().double().numpy().T.reshape(-1, src_side, src_side)  # (heads, S1, S1)
    out = np.einsum("ij,hjk,lk->hil", w, z, w)  # the tensor-product spline: W Z W^T per head
    return torch.from_numpy(out.reshape(out.shape[0], -1).T.copy()).to(table.dtype)


# --------------------------------------------------------------------------------------------- 22k -> 1k
@cache
def _map_rows() -> tuple[tuple[int, str, str], ...]:
    text = resources.files("swinzoo.assets").joinpath(MAP_22K_TO_1K).read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        index, wnid, label = line.split("\t")
        rows.append((int(index), wnid, label))
    if len(rows) != 1000:
        raise RetargetError(f"swinzoo/assets/{MAP_22K_TO_1K}: {len(rows)} rows, expected 1000 (a broken install?)")
    return tuple(rows)


def map22kto1k() -> tuple[list[int], dict[int, str]]:
    """The official 22k->1k class map (the 22k head row of each ImageNet-1k class, in 1k order) and the
    ImageNet-1k labels afterwards (see swinzoo/assets/IMAGENET22K_TO_1K.md for how it is derived)."""
    rows = _map_rows()
    return [r[0] for r in rows], {i: r[2] for i, r in enumerate(rows)}


# --------------------------------------------------------------------------------------------- config
def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise RetargetError(f"{name}: expected a positive integer (got {value!r})")
    if value < 1:
        raise RetargetError(f"{name}: must be positive (got {value})")
    return int(value)


def _geometry(config: SwinConfig) -> dict[str, Any]:
    return {
        "image_size": config.image_size,
        "window_size": config.window_size,
        "stage_windows": [config.stage_window(i)[0] for i in range(config.num_layers)],
        "pretrained_window_sizes": list(config.pretrained_window_sizes),
    }


def target_config(
    config: SwinConfig,
    task: str,
    *,
    image_size: int | tuple[int, int] | list[int] | None = None,
    window_size: int | None = None,
    num_labels: int | None = None,
) -> tuple[SwinConfig, str]:
    """The config (and task) a ``task`` model of ``config`` becomes at the new geometry and head.

    Window clamp and shift follow from the image size exactly as in the official model (SwinConfig.stage_window).
    Swin V2: when the geometry changes, ``pretrained_window_sizes`` become the source's own where set, else the
    source's effective per-stage windows (how the official 12to16 / 12to24 configs get [12, 12, 12, 6] from the
    192 pretrain); the same geometry keeps them as they are.
    """
    if task not in TASKS:
        raise RetargetError(f"task: {task!r} is not one of {', '.join(TASKS)}")
    if image_size is not None:
        sizes = list(image_size) if isinstance(image_size, (list, tuple)) else [image_size]
        if len(sizes) not in (1, 2):
            raise RetargetError(f"image_size: expected one size or [height, width] (got {image_size!r})")
        sizes = [_positive("image_size", s) for s in sizes]
        bad = [s for s in sizes if s % config.patch_size]
        if bad:
            raise RetargetError(
                f"image_size: {bad[0]} is not a multiple of the patch size {config.patch_size} "
                "(the patch grid, and every table sized by it, would not be whole)"
            )
        image_size = sizes[0] if len(sizes) == 1 else sizes
    if window_size is not None:
        window_size = _positive("window_size", window_size)
    if num_labels is not None:
        num_labels = _positive("num_labels", num_labels)
    if num_labels is not None and task in ("base", "backbone"):
        raise RetargetError(f"num_labels: a {task} model has no classifier head to resize")
    changes: dict[str, Any] = {}
    if image_size is not None:
        changes["image_size"] = image_size
    if window_size is not None:
        changes["window_size"] = window_size
    out_task = "image-classification" if task == "masked-image-modeling" else task
    try:
        moved = config.copy(**changes)
        moved_geometry = (moved.image_hw, moved.window_size) != (config.image_hw, config.window_size)
        if config.version == 2 and moved_geometry:
            windows = _geometry(config)["stage_windows"]
            pretrained = [p if p > 0 else w for p, w in zip(config.pretrained_window_sizes, windows, strict=True)]
            moved = moved.copy(pretrained_window_sizes=pretrained)
        if task == "masked-image-modeling":
            moved = moved.copy(num_labels=num_labels or SIMMIM_DEFAULT_LABELS)
        elif task == "image-classification" and num_labels is not None and num_labels != config.num_labels:
            if config.num_labels == 21841 and num_labels == 1000:
                moved = moved.copy(num_labels=1000, id2label=map22kto1k()[1])
            else:
                moved = moved.copy(num_labels=num_labels)
    except SwinzooError as exc:  # ConfigError: a size above the supported maxima, named by its field
        raise RetargetError(str(exc)) from exc
    return moved, out_task


# --------------------------------------------------------------------------------------------- state
def _check_fits(state: dict[str, torch.Tensor], config: SwinConfig, task: str, what: str) -> None:
    """``state`` holds exactly the tensors a ``task`` model of ``config`` has, with their shapes (buffers aside)."""
    with torch.device("meta"):
        expected = {k: v.shape for k, v in TASK_CLASSES[task](config).state_dict().items()}
    keys = [k for k in state if not k.endswith(GEOMETRY_BUFFERS)]
    problems = []
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k])})"
        for k in keys
        if k in expected and state[k].shape != expected[k]
    ]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in keys if k not in expected]
    if wrong:
        problems.append("shapes that do not fit: " + ", ".join(wrong[:5]))
    if missing:
        problems.append("missing: " + ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" * (len(missing) > 5)))
    if unexpected:
        extra = f" and {len(unexpected) - 5} more" * (len(unexpected) > 5)
        problems.append("not part of the model: " + ", ".join(unexpected[:5]) + extra)
    if problems:
        raise RetargetError(f"{what} is not a swinzoo {task} state of its config: " + "; ".join(problems))
    nonfloat = [k for k in keys if not state[k].is_floating_point()]
    if nonfloat:
        raise RetargetError(f"{what}: {nonfloat[0]} is {state[nonfloat[0]].dtype}, expected floating-point weights")


def retarget(
    state: dict[str, torch.Tensor],
    config: SwinConfig,
    task: str,
    *,
    image_size: int | tuple[int, int] | list[int] | None = None,
    window_size: int | None = None,
    num_labels: int | None = None,
    table_method: str | None = None,
) -> tuple[dict[str, torch.Tensor], SwinConfig, RetargetRecord]:
    """``state`` (a swinzoo ``task`` state dict of ``config``) moved to the new geometry and head.

    Returns the new state dict, its config and the record. A SimMIM pretrain (``masked-image-modeling``) becomes a
    classifier (``num_labels`` classes, 1000 by default) with a zero head. v1 tables are resized bicubically, or
    geometrically for SimMIM pretrains (``table_method`` overrides: ``"bicubic"`` or ``"geometric"``). Tensors that
    do not change are the input's own (not copied), so the source's own geometry and head give back ``state``
    bit for bit.
    """
    if table_method is not None and table_method not in METHODS:
        raise RetargetError(f"table_method: {table_method!r} is not one of {', '.join(METHODS)}")
    new_config, out_task = target_config(
        config, task, image_size=image_size, window_size=window_size, num_labels=num_labels
    )
    _check_fits(state, config, task, "the source state dict")
    method = table_method or ("geometric" if task == "masked-image-modeling" else "bicubic")
    src_geo, dst_geo = _geometry(config), _geometry(new_config)
    record = RetargetRecord(
        task, out_task, {**src_geo, "num_labels": config.num_labels}, {**dst_geo, "num_labels": new_config.num_labels}
    )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(GEOMETRY_BUFFERS):
            record.dropped[key] = "geometry buffer: the model recomputes it for the new geometry"
        elif task == "masked-image-modeling" and (key.startswith("decoder.") or key.endswith("mask_token")):
            record.dropped[key] = "SimMIM pretraining only (decoder / mask token): a classifier has none"
        else:
            out[key] = value
    if config.version == 1:
        _resize_tables(out, src_geo["stage_windows"], dst_geo["stage_windows"], method, record)
    else:
        record.methods["relative_position_bias"] = (
            f"cpb: cpb_mlp kept, coordinates normalised by pretrained windows {new_config.pretrained_window_sizes}"
            " (0: the stage's own window)"
        )
    _resize_positions(out, config, new_config, record)
    _retarget_head(out, state, config, new_config, task, record)
    _check_fits(out, new_config, out_task, "the retargeted state dict")
    return out, new_config, record


def _resize_tables(
    out: dict[str, torch.Tensor], src: list[int], dst: list[int], method: str, record: RetargetRecord
) -> None:
    used = False
    for key in list(out):
        m = _TABLE.search(key)
        if m is None:
            continue
        stage = int(m.group(1))
        s1, s2 = 2 * src[stage] - 1, 2 * dst[stage] - 1
        if s1 == s2:
            continue
        table = out[key]
        if method == "geometric":
            if s1 < 4:
                raise RetargetError(
                    f"{key}: the geometric (cubic spline) resampling needs at least 4 offsets per side, stage "
                    f"{stage + 1} has window {src[stage]} ({s1} offsets); use table_method='bicubic'"
                )
            new = geometric_resize(table, s2)
        else:
            heads = table.shape[1]
            new = bicubic_resize(table.T.reshape(heads, s1, s1), (s2, s2)).reshape(heads, s2 * s2).T.contiguous()
        out[key] = new
        used = True
        record.resized[key] = f"{tuple(table.shape)} -> {tuple(new.shape)} ({method})"
    if used:
        record.methods["relative_position_bias_table"] = (
            "bicubic: per head F.interpolate(mode='bicubic', align_corners=False) over the (2w-1)^2 offsets"
            if method == "bicubic"
            else "geometric: utils_simmim.py's geometric-progression offsets, not-a-knot bicubic spline (interp2d)"
        )
    else:
        record.methods["relative_position_bias_table"] = "kept: every stage keeps its window"


def _resize_positions(
    out: dict[str, torch.Tensor], config: SwinConfig, new_config: SwinConfig, record: RetargetRecord
) -> None:
    key = next((k for k in out if k.endswith("patch_embed.position_embeddings")), None)
    if key is None or config.patches_resolution == new_config.patches_resolution:
        return
    value = out[key]
    (h1, w1), (h2, w2) = config.patches_resolution, new_config.patches_resolution
    grid = value[0].T.reshape(-1, h1, w1)
    out[key] = bicubic_resize(grid, (h2, w2)).reshape(-1, h2 * w2).T[None].contiguous()
    record.resized[key] = f"{tuple(value.shape)} -> {tuple(out[key].shape)} (bicubic)"
    record.methods["position_embeddings"] = "bicubic: F.interpolate(mode='bicubic', align_corners=False), patch grid"


def _retarget_head(
    out: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor],
    config: SwinConfig,
    new_config: SwinConfig,
    task: str,
    record: RetargetRecord,
) -> None:
    if task in ("base", "backbone"):
        record.methods["head"] = "none: the model has no classifier"
        return
    n1, n2 = (config.num_labels if task == "image-classification" else 0), new_config.num_labels
    if task == "image-classification" and n1 == n2:
        record.methods["head"] = f"kept: {n1} classes"
        return
    if n1 == 21841 and n2 == 1000:
        rows = torch.tensor(map22kto1k()[0])
        for name in ("head.weight", "head.bias"):
            out[name] = state[name].index_select(0, rows)
            record.replaced[name] = f"rows of the 22k head picked by the official 22k->1k class map ({MAP_22K_TO_1K})"
        record.methods["head"] = "map22kto1k: 21841 -> 1000 classes by the official class map, ImageNet-1k labels"
        return
    reference = out.get("head.weight", out["swin.norm.weight"])
    out["head.weight"] = torch.zeros(n2, config.num_features, dtype=reference.dtype)
    out["head.bias"] = torch.zeros(n2, dtype=reference.dtype)
    for name in ("head.weight", "head.bias"):
        record.replaced[name] = f"new head initialised to zero ({n1 or 'no'} -> {n2} classes), labels LABEL_i"
    record.methods["head"] = f"zero: new {n2}-class head, weight and bias zero, generic labels"
    if task == "masked-image-modeling":
        record.notes.append(
            "the official SimMIM fine-tuning keeps the model's trunc-normal initial head; swinzoo starts it at zero "
            "(deterministic, as utils.load_pretrained does for a new class count)"
        )
