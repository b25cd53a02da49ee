"""An independent restatement of the official retargeting, for verify and the tests (shares no code with retarget.py).

Everything here is written from its definition, in float64 numpy, deliberately slow and plain:

* bicubic: Keys' cubic convolution with a = -0.75, half-pixel centres (src = (dst + 0.5) * in / out - 0.5),
  indices clamped at the border, which is what ``F.interpolate(mode="bicubic", align_corners=False)`` computes;
* geometric (utils_simmim.py): source offsets 0, +-1, +-(1 + q), ... with 1 + q + ... + q^(n-1) ~ dst // 2, q found
  in [1.01, 1.5] by the official bisection (its tolerance is part of the method: q moves the offsets), then the
  interpolating tensor-product cubic spline of FITPACK's regrid (s = 0: knots at the end nodes four times, interior
  knots at nodes[2:-2]) as a B-spline collocation (Cox-de Boor recursion), evaluated at the integer offsets
  clamped to the node range as FITPACK does;
* the official window clamp: a stage whose token grid is no larger than the window uses window = its grid side;
* the 22k->1k class map, derived from timm's packaged synset lists.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from ..errors import SwinzooError

# ImageNet-1k's "teddy, teddy bear" (n04399382) is in no ImageNet-22k list; the official map gives it the 22k
# class n03013580 ("chemise, shimmy, shift, slip, teddy"), the synset sharing the lemma "teddy".
TEDDY_BEAR, TEDDY_22K = "n04399382", "n03013580"


# --------------------------------------------------------------------------------------------- Keys bicubic
def keys_kernel(x: np.ndarray, a: float = -0.75) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def keys_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): output sample d = sum_k W[d, k] * input[k]."""
    w = np.zeros((n_out, n_in))
    for d in range(n_out):
        src = (d + 0.5) * n_in / n_out - 0.5
        base = math.floor(src)
        for k in range(base - 1, base + 3):
            w[d, min(max(k, 0), n_in - 1)] += float(keys_kernel(np.array(src - k)))
    return w


def keys_resize(grid: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(C, H, W) -> (C, *out_hw), separable Keys cubic convolution."""
    rows, cols = keys_matrix(grid.shape[1], out_hw[0]), keys_matrix(grid.shape[2], out_hw[1])
    return np.stack([rows @ g @ cols.T for g in grid.astype(np.float64)])


# --------------------------------------------------------------------------------------------- geometric
def progression_ratio(src_side: int, dst_side: int) -> float:
    """q with 1 + q + ... + q^(n-1) ~ dst_side // 2 (n = src_side // 2), as the official search finds it: halve
    [1.01, 1.5] until it is at most 1e-6 wide, keeping the half where the sum crosses; q is the last midpoint."""
    n, target = src_side // 2, dst_side // 2
    interval = [1.01, 1.5]
    q = interval[0]
    while interval[1] - interval[0] > 1e-6:
        q = sum(interval) / 2
        interval[sum(q**k for k in range(n)) > target] = q  # sum too large: q becomes the upper end
    return q


def progression_offsets(src_side: int, dst_side: int) -> np.ndarray:
    q = progression_ratio(src_side, dst_side)
    n = src_side // 2
    positive = [sum(q**k for k in range(i + 1)) for i in range(n)]  # 1, 1 + q, 1 + q + q^2, ...
    return np.array([-p for p in positive[::-1]] + [0.0] + positive)


def _bspline_basis(knots: np.ndarray, degree: int, x: float) -> np.ndarray:
    """All B-splines of the knot vector at x (Cox-de Boor); the last interval is closed on the right."""
    n = len(knots) - degree - 1
    last = np.searchsorted(knots, knots[-1]) - 1
    b = np.array([1.0 if (knots[i] <= x < knots[i + 1]) else 0.0 for i in range(len(knots) - 1)])
    if x >= knots[-1]:
        b[last] = 1.0
    for d in range(1, degree + 1):
        nb = np.zeros(len(knots) - d - 1)
        for i in range(len(nb)):
            left = knots[i + d] - knots[i]
            right = knots[i + d + 1] - knots[i + 1]
            if left > 0:
                nb[i] += (x - knots[i]) / left * b[i]
            if right > 0:
                nb[i] += (knots[i + d + 1] - x) / right * b[i + 1]
        b = nb
    return b[:n]


def spline_matrix(nodes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(len(points), len(nodes)): FITPACK's s=0 cubic spline through the nodes, evaluated at clamped points."""
    knots = np.concatenate([[nodes[0]] * 4, nodes[2:-2], [nodes[-1]] * 4])
    collocation = np.stack([_bspline_basis(knots, 3, x) for x in nodes])  # (m, m)
    evaluation = np.stack([_bspline_basis(knots, 3, x) for x in np.clip(points, nodes[0], nodes[-1])])
    return evaluation @ np.linalg.inv(collocation)


def geometric_table(table: np.ndarray, dst_side: int) -> np.ndarray:
    """(S1^2, heads) -> (S2^2, heads) by utils_simmim.py's geometric resampling."""
    src_side = math.isqrt(table.shape[0])
    t = dst_side // 2
    w = spline_matrix(progression_offsets(src_side, dst_side), np.arange(-t, t + 1, dtype=np.float64))
    heads = table.shape[1]
    out = [w @ table[:, h].reshape(src_side, src_side).astype(np.float64) @ w.T for h in range(heads)]
    return np.stack([o.reshape(-1) for o in out], axis=1)


def bicubic_table(table: np.ndarray, dst_side: int) -> np.ndarray:
    src_side = math.isqrt(table.shape[0])
    grid = table.T.reshape(-1, src_side, src_side)
    return keys_resize(grid, (dst_side, dst_side)).reshape(table.shape[1], -1).T


# --------------------------------------------------------------------------------------------- geometry
def official_stage_windows(image_hw: tuple[int, int], patch: int, window: int, stages: int) -> list[int]:
    h, w = image_hw[0] // patch, image_hw[1] // patch
    out = []
    for _ in range(stages):
        out.append(min(h, w) if min(h, w) <= window else window)
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return out


# --------------------------------------------------------------------------------------------- 22k -> 1k
def derive_map22kto1k() -> list[tuple[int, str]]:
    """(22k head row, 1k wnid) for each ImageNet-1k class in sorted-wnid order, from timm's package data.

    The official 22k label ids are those of Google's sorted 21843-wnid list (timm's imagenet21k_goog_synsets.txt;
    the official data/imagenet22k_dataset.py cites google-research/big_transfer#7), the two imageless classes'
    slots reused for the last two ids. ImageNet-1k's teddy bear is in no 22k list (see TEDDY_BEAR).
    """
    import importlib.resources

    info = importlib.resources.files("timm.data") / "_info"
    goog = (info / "imagenet21k_goog_synsets.txt").read_text().split()
    in1k = (info / "imagenet_synsets.txt").read_text().split()
    row = {wnid: i for i, wnid in enumerate(goog)}
    return [(row[TEDDY_22K if wnid == TEDDY_BEAR else wnid], wnid) for wnid in in1k]


# --------------------------------------------------------------------------------------------- whole state
class ReferenceRetargetError(SwinzooError, ValueError):
    """A state the reference cannot move (a table whose size is not the stated source window's); names the key."""


# Per layout: the name of the stage list, the absolute position embeddings, the final norm. swinzoo's layout has
# a class-free (1, N, C) ``swin.patch_embed.position_embeddings``; the official one the same shape under
# ``absolute_pos_embed``.
LAYOUT_KEYS = {
    "swinzoo": ("stages", "swin.patch_embed.position_embeddings", "swin.norm.weight"),
    "official": ("layers", "absolute_pos_embed", "norm.weight"),
}


def _stage_pattern(layout: str) -> str:
    return rf"(?:^|\.){LAYOUT_KEYS[layout][0]}\.(\d+)\."


_OFFICIAL_BUFFERS = ("relative_position_index", "attn_mask", "relative_coords_table")


def reference_tables(
    state: dict[str, torch.Tensor], src_windows: list[int], dst_windows: list[int], method: str, layout: str = "swinzoo"
) -> dict[str, torch.Tensor]:
    """A copy of ``state`` (``layout``: swinzoo or official names) whose v1 tables are resampled from src to dst
    per-stage windows; a table that is not (2 src - 1)^2 rows is refused, naming its key."""
    pattern = re.compile(_stage_pattern(layout) + r"blocks\.\d+\.attn\.relative_position_bias_table\Z")
    out = dict(state)
    for key, value in state.items():
        found = pattern.search(key)
        if found is None:
            continue
        stage = int(found.group(1))
        s1, s2 = 2 * src_windows[stage] - 1, 2 * dst_windows[stage] - 1
        if value.ndim != 2 or value.shape[0] != s1 * s1:
            raise ReferenceRetargetError(
                f"{key}: shape {tuple(value.shape)}, but stage {stage + 1}'s source window {src_windows[stage]} "
                f"gives {s1 * s1} rows"
            )
        if s1 == s2:
            continue
        if method not in ("bicubic", "geometric"):
            raise ReferenceRetargetError(
                f"{key}: stage {stage + 1}'s window changes ({src_windows[stage]} -> {dst_windows[stage]}), "
                f"but the table method is {method!r}, not bicubic or geometric"
            )
        table = value.double().numpy()
        new = bicubic_table(table, s2) if method == "bicubic" else geometric_table(table, s2)
        out[key] = torch.from_numpy(new).to(value.dtype)
    return out


def reference_positions(value: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> torch.Tensor:
    grid = value[0].double().numpy().T.reshape(-1, *src_grid)
    return torch.from_numpy(keys_resize(grid, dst_grid).reshape(grid.shape[0], -1).T[None].copy()).to(value.dtype)


def official_classifier_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official file's state as the official fine-tuning loader keeps it for a classifier: a SimMIM file's
    ``encoder.`` prefix stripped, its decoder and mask token dropped; ``rpe_mlp`` named ``cpb_mlp``; the stored
    geometry buffers dropped (the model built at the new geometry makes its own)."""
    simmim = any(k.startswith("encoder.") for k in state)
    out = {}
    for key, value in state.items():
        if simmim:
            if not key.startswith("encoder.") or key == "encoder.mask_token":
                continue  # decoder.* and the mask token: SimMIM pretraining only
            key = key.removeprefix("encoder.")
        if key.endswith(_OFFICIAL_BUFFERS):
            continue
        name = key.replace(".rpe_mlp.", ".cpb_mlp.")
        if name in out:
            raise ReferenceRetargetError(f"{name}: held twice, as cpb_mlp and as rpe_mlp (its older name)")
        out[name] = value
    return out


def reference_retarget(
    state: dict[str, torch.Tensor],
    *,
    patch_size: int,
    source_image: tuple[int, int],
    source_window: int,
    target_image: tuple[int, int],
    target_window: int,
    num_labels: int | None,
    method: str,
    layout: str = "swinzoo",
) -> dict[str, torch.Tensor]:
    """A classifier (or SimMIM pretrain) state moved to the target geometry and ``num_labels`` classes by this
    module alone: v1 tables, absolute positions and the head (kept for the same count, 22k->1k rows for
    21841 -> 1000, else zero); v2's cpb_mlp needs nothing.

    ``layout="swinzoo"``: swinzoo's keys (a SimMIM pretrain's decoder and mask token dropped).
    ``layout="official"``: an official or SimMIM file (see :func:`official_classifier_keys`), returned in the
    official classifier layout. ``method``: bicubic or geometric, for the v1 tables.
    """
    if layout not in LAYOUT_KEYS:
        raise ReferenceRetargetError(f"layout: {layout!r} is not one of {', '.join(LAYOUT_KEYS)}")
    _, position_key, norm_key = LAYOUT_KEYS[layout]
    if layout == "official":
        state = official_classifier_keys(state)
    stage_key = re.compile(_stage_pattern(layout))
    stages = 1 + max(int(m.group(1)) for m in map(stage_key.search, state) if m)
    src = official_stage_windows(source_image, patch_size, source_window, stages)
    dst = official_stage_windows(target_image, patch_size, target_window, stages)
    out = reference_tables(state, src, dst, method, layout)
    if layout == "swinzoo":
        out = {k: v for k, v in out.items() if not (k.startswith("decoder.") or k.endswith("mask_token"))}
    grids = [(h // patch_size, w // patch_size) for h, w in (source_image, target_image)]
    if position_key in out and grids[0] != grids[1]:
        out[position_key] = reference_positions(out[position_key], grids[0], grids[1])
    head = state.get("head.weight")
    labels = num_labels or (head.shape[0] if head is not None else 1000)
    if head is not None and head.shape[0] == labels:
        return out
    if head is not None and (head.shape[0], labels) == (21841, 1000):
        rows = [row for row, _ in derive_map22kto1k()]
        out["head.weight"], out["head.bias"] = state["head.weight"][rows], state["head.bias"][rows]
        return out
    width = state[norm_key]
    out["head.weight"] = torch.zeros(labels, width.shape[0], dtype=width.dtype)
    out["head.bias"] = torch.zeros(labels, dtype=width.dtype)
    return out
