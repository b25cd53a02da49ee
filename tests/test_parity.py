"""swinzoo's Swin / Swin V2 equal timm's and transformers' models holding the same (random) weights.

Each case builds timm's model with distinct random values in every tensor, maps it into swinzoo with the timm
rules and from swinzoo into transformers with the transformers rules, and compares at batch 2, float32, eval:
logits, pooled output, every hidden state (transformers' hidden_states and reshaped_hidden_states; timm's
per-stage outputs from forward_intermediates against swinzoo's states before downsampling), max |diff| <= 1e-4.
Random weights matter: with initial values (ones/zeros) many tensors are interchangeable and a wrong mapping
would still match. The swap tests show that moving any one tensor to the wrong place breaks parity.
"""

from __future__ import annotations

import gc
import itertools
import random
import re
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from conftest import TOL, max_diff, randomized, tiny_config, transformers_twin

from swinzoo import fast_inference
from swinzoo.config import SwinConfig
from swinzoo.converters.engine import convert_state_dict, shapes_of
from swinzoo.converters.timm_layout import create_timm_model, timm_rules
from swinzoo.converters.transformers_layout import transformers_config
from swinzoo.modeling import (
    SwinForImageClassification,
    SwinForMaskedImageModeling,
    normalized_pixel_targets,
)

pytestmark = pytest.mark.usefixtures("small_model_threads")


@dataclass(frozen=True)
class Case:
    name: str
    config: dict
    transformers: bool = True  # False where transformers cannot build the architecture (stated per case)


def config_of(case: Case) -> SwinConfig:
    return SwinConfig(drop_path_rate=0.0, num_labels=11, **case.config)


TINY = dict(embed_dim=32, num_heads=[1, 2, 4, 8])
SMALL_CASES = [
    # grid 32, 16, 8, 4: the last stage is no larger than the window, so it runs unshifted (official clamp).
    Case("v1-w4-128", dict(version=1, depths=[2, 2, 2, 2], window_size=4, image_size=128, **TINY)),
    Case("v1-w7-224", dict(version=1, depths=[1, 2, 2, 1], window_size=7, image_size=224, **TINY)),
    Case(
        "v1-w4-128-no-qkv-bias",
        dict(version=1, depths=[2, 2, 2, 2], window_size=4, image_size=128, qkv_bias=False, **TINY),
    ),
    # grid 16, 8, 4, 2 with window 8: windows 8 (shifted), 8, 4, 2 (clamped, unshifted). transformers' Swin v1
    # builds one window size for all stages, so this geometry has no transformers layout.
    Case(
        "v1-w8-64-per-stage-windows",
        dict(version=1, depths=[2, 2, 2, 2], window_size=8, image_size=64, **TINY),
        transformers=False,
    ),
    # v2, grid 32, 16, 8, 4 with window 8: windows 8, 8, 8 (unshifted), 4 (clamped).
    Case("v2-w8-128", dict(version=2, depths=[2, 2, 2, 2], window_size=8, image_size=128, **TINY)),
    Case(
        "v2-w8-128-pretrained-windows",
        dict(
            version=2,
            depths=[1, 2, 2, 1],
            window_size=8,
            image_size=128,
            pretrained_window_sizes=[4, 4, 6, 2],
            **TINY,
        ),
    ),
    Case(
        "v2-w4-64-no-qkv-bias",
        dict(version=2, depths=[2, 2, 2, 2], window_size=4, image_size=64, qkv_bias=False, **TINY),
    ),
]

PW = [12, 12, 12, 6]
SIZES = {
    "T": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
    "S": dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
    "B": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
    "L": dict(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48]),
}
# Each real preset once per version, and each official geometry (window, resolution, pretrained windows) once: what
# differs between sizes is width, depth and heads; between geometries, the windows, shifts and clamps. A size at
# every geometry would repeat both (18 large models instead of 8). The largest sizes take the cheapest geometries.
V1_GEOMETRIES = {"w7-224": dict(window_size=7, image_size=224), "w12-384": dict(window_size=12, image_size=384)}
V2_GEOMETRIES = {
    "w8-256": dict(window_size=8, image_size=256),
    "w16-256": dict(window_size=16, image_size=256),
    "w12to16-256": dict(window_size=16, image_size=256, pretrained_window_sizes=PW),
    "w12to24-384": dict(window_size=24, image_size=384, pretrained_window_sizes=PW),
}
REAL_CASES = [
    Case(f"swin-{s}-{g}", dict(version=1, **V1_GEOMETRIES[g], **SIZES[s]))
    for s, g in (("T", "w12-384"), ("S", "w7-224"), ("B", "w7-224"), ("L", "w7-224"))
] + [
    Case(f"swinv2-{s}-{g}", dict(version=2, **V2_GEOMETRIES[g], **SIZES[s]))
    for s, g in (("T", "w12to24-384"), ("S", "w16-256"), ("B", "w12to16-256"), ("L", "w8-256"))
]


def build(case: Case, seed: int = 0, inference_path: str = "fast"):
    """timm's model with random weights, and swinzoo's (and transformers') model holding the same weights."""
    config = config_of(case)
    timm_model = create_timm_model(config).eval()
    timm_model.load_state_dict(randomized(timm_model.state_dict(), seed))
    ours = SwinForImageClassification(config).eval()
    state, _ = convert_state_dict(timm_model.state_dict(), timm_rules(), shapes_of(ours), to_swinzoo=True)
    ours.load_state_dict(state, strict=True)
    ours.set_inference_path(inference_path)
    hf = transformers_twin(ours) if case.transformers else None
    return config, timm_model, ours, hf


def image_batch(config: SwinConfig, size: tuple[int, int] | None = None, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, config.num_channels, *(size or config.image_hw), generator=g)


def compare_everything(case: Case, inference_path: str = "fast") -> dict[str, float]:
    """Every output swinzoo shares with timm and transformers, as name -> max |diff|."""
    config, timm_model, ours, hf = build(case, inference_path=inference_path)
    x = image_batch(config)
    diffs: dict[str, float] = {}
    with torch.no_grad():
        mine = ours(x, output_hidden_states=True)
        # one forward each (the real presets are large): the base model's pooled output and last hidden state do
        # not depend on which hidden states it returns, and timm's forward is forward_head(forward_features(x))
        base = before = ours.swin(x, output_hidden_states=True, output_hidden_states_before_downsampling=True)
        features = timm_model.forward_features(x)
        diffs["timm logits"] = max_diff(mine.logits, timm_model.forward_head(features))
        diffs["timm pooled"] = max_diff(base.pooler_output, timm_model.forward_head(features, pre_logits=True))
        diffs["timm last hidden state"] = max_diff(base.last_hidden_state, features.flatten(1, 2))
        diffs["timm patch embedding"] = max_diff(
            before.reshaped_hidden_states[0], timm_model.patch_embed(x).permute(0, 3, 1, 2)
        )
        stage_outputs = timm_model.forward_intermediates(x, intermediates_only=True)
        assert len(stage_outputs) == config.num_layers == len(before.reshaped_hidden_states) - 1
        for i, ref in enumerate(stage_outputs):
            diffs[f"timm stage {i + 1} (before downsampling)"] = max_diff(before.reshaped_hidden_states[i + 1], ref)
            diffs[f"timm stage {i + 1} flat"] = max_diff(before.hidden_states[i + 1], ref.flatten(2).transpose(1, 2))

        if hf is not None:
            theirs = hf(x, output_hidden_states=True)
            hf_base = getattr(hf, "swin" if config.version == 1 else "swinv2")(x)
            diffs["transformers logits"] = max_diff(mine.logits, theirs.logits)
            diffs["transformers pooled"] = max_diff(base.pooler_output, hf_base.pooler_output)
            diffs["transformers last hidden state"] = max_diff(base.last_hidden_state, hf_base.last_hidden_state)
            assert len(theirs.hidden_states) == len(mine.hidden_states) == config.num_layers + 1
            assert len(theirs.reshaped_hidden_states) == len(mine.reshaped_hidden_states) == config.num_layers + 1
            for i, (a, b) in enumerate(zip(mine.hidden_states, theirs.hidden_states, strict=True)):
                diffs[f"transformers hidden_states[{i}]"] = max_diff(a, b)
            for i, (a, b) in enumerate(zip(mine.reshaped_hidden_states, theirs.reshaped_hidden_states, strict=True)):
                diffs[f"transformers reshaped_hidden_states[{i}]"] = max_diff(a, b)
    del timm_model, ours, hf
    gc.collect()
    return diffs


def assert_close(diffs: dict[str, float], tol: float = TOL) -> None:
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    assert not bad, f"max |diff| above {tol}: {bad}"


@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda c: c.name)
def test_small_presets_equal_timm_and_transformers(case):
    diffs = compare_everything(case)
    assert any(k.startswith("transformers") for k in diffs) == case.transformers
    assert_close(diffs)


@pytest.mark.parametrize("name", ["v1-w4-128", "v2-w8-128-pretrained-windows"])
def test_reference_path_alone_equals_timm_and_transformers(name, monkeypatch):
    """model.set_inference_path("readable"): the readable roll -> partition -> attend -> reverse block of
    swinzoo.modeling, with the CPU fast path made to fail if anything still reached it. Both cases have shifted
    stages (v1: grids 32, 16, 8 with window 4; v2: grids 32, 16 with window 8)."""

    def unreachable(block, x):
        raise AssertionError("swinzoo.fast_inference.swin_block ran with the reference path selected")

    monkeypatch.setattr(fast_inference, "swin_block", unreachable)
    diffs = compare_everything(next(c for c in SMALL_CASES if c.name == name), inference_path="readable")
    assert any(k.startswith("transformers hidden_states") for k in diffs)
    assert any(k.startswith("timm stage") for k in diffs)
    assert_close(diffs)


@pytest.mark.slow
@pytest.mark.parametrize("case", REAL_CASES, ids=lambda c: c.name)
def test_real_presets_equal_timm_and_transformers(case):
    assert_close(compare_everything(case))


def test_per_stage_window_geometry_has_no_transformers_swin_v1_layout():
    """The timm-only case is timm-only for a stated reason: stage windows 8, 8, 4, 2 differ."""
    config = config_of(next(c for c in SMALL_CASES if not c.transformers))
    assert [config.stage_window(i)[0] for i in range(4)] == [8, 8, 4, 2]
    with pytest.raises(ValueError, match="per-stage windows"):
        transformers_config(config)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("v2-w8-128-pretrained-windows", (250, 230)),
        ("v2-w8-128-pretrained-windows", (100, 132)),
        # transformers' Swin v1 re-decides window and shift from the *input* (and remembers it); swinzoo, the
        # official code and transformers' Swinv2 decide them from the configured size. The v1 sizes keep both
        # decisions equal: stages 1-3 larger than the window, stage 4 exactly the window (4).
        ("v1-w4-128", (100, 132)),
        ("v1-w4-128", (126, 98)),
    ],
)
def test_input_size_not_a_multiple_of_32_equals_transformers(name, size):
    """Padding to patch and window multiples and odd-sized merging, as transformers does it."""
    case = next(c for c in SMALL_CASES if c.name == name)
    config, _, ours, hf = build(case)
    x = image_batch(config, size)
    with torch.no_grad():
        mine, theirs = ours(x, output_hidden_states=True), hf(x, output_hidden_states=True)
    diffs = {"logits": max_diff(mine.logits, theirs.logits)}
    for i, (a, b) in enumerate(zip(mine.reshaped_hidden_states, theirs.reshaped_hidden_states, strict=True)):
        diffs[f"reshaped_hidden_states[{i}]"] = max_diff(a, b)
    grid = (-(-size[0] // 4), -(-size[1] // 4))
    for i in range(1, 4):
        grid = (-(-grid[0] // 2), -(-grid[1] // 2))
        assert mine.reshaped_hidden_states[i].shape[-2:] == grid
    assert_close(diffs)


def test_v2_logit_scale_above_the_clamp_equals_timm_and_transformers():
    """Swin V2 caps the attention temperature at exp(log 100) = 100; random weights rarely reach it, so some
    heads are pushed above it here (the cap is what the three implementations must share)."""
    case = next(c for c in SMALL_CASES if c.name == "v2-w8-128")
    config, timm_model, ours, hf = build(case)
    with torch.no_grad():
        for layer in timm_model.layers:
            for block in layer.blocks:
                block.attn.logit_scale[0].fill_(6.0)  # well above log(100) ~ 4.61
        state, _ = convert_state_dict(timm_model.state_dict(), timm_rules(), shapes_of(ours), to_swinzoo=True)
        ours.load_state_dict(state)
        hf = transformers_twin(ours)
        x = image_batch(config)
        mine = ours(x).logits
        diffs = {"timm": max_diff(mine, timm_model(x)), "transformers": max_diff(mine, hf(x).logits)}
    assert_close(diffs)


# --------------------------------------------------------------------------------------------- SimMIM
@pytest.mark.parametrize("version", [1, 2])
def test_simmim_reconstruction_and_loss_equal_transformers(version):
    config = tiny_config(version, image_size=128, window_size=4)
    ours = SwinForMaskedImageModeling(config).eval()
    ours.load_state_dict(randomized(ours.state_dict(), seed=3))
    hf = transformers_twin(ours, "masked-image-modeling")
    x = image_batch(config)
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(2, config.num_patches, generator=g) < 0.6
    with torch.no_grad():
        mine, theirs = ours(x, bool_masked_pos=mask), hf(x, bool_masked_pos=mask)
        unmasked = ours(x).reconstruction
    assert mine.reconstruction.shape == x.shape
    assert_close({"reconstruction": max_diff(mine.reconstruction, theirs.reconstruction)})
    assert abs(mine.loss.item() - theirs.loss.item()) <= TOL * max(1.0, abs(theirs.loss.item()))
    # The mask token is really used: masking changes the reconstruction.
    assert max_diff(mine.reconstruction, unmasked) > 1e-3


def naive_normalized_targets(pixels: torch.Tensor, patch: int) -> torch.Tensor:
    """Per pixel: (x - mean) / sqrt(var + 1e-6) over the in-image patch x patch neighbourhood, var unbiased."""
    out = torch.empty_like(pixels, dtype=torch.float64)
    r = patch // 2
    h, w = pixels.shape[-2:]
    p = pixels.double()
    for i in range(h):
        for j in range(w):
            window = p[..., max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1].flatten(-2)
            mean = window.mean(-1)
            var = window.var(-1, unbiased=True)
            out[..., i, j] = (p[..., i, j] - mean) / torch.sqrt(var + 1e-6)
    return out


@pytest.mark.parametrize(("shape", "patch"), [((2, 3, 13, 11), 5), ((1, 2, 9, 16), 3), ((1, 1, 52, 49), 47)])
def test_normalized_pixel_targets_match_a_per_pixel_computation(shape, patch):
    g = torch.Generator().manual_seed(7)
    pixels = torch.rand(shape, generator=g, dtype=torch.float64) * 4 - 1
    got = normalized_pixel_targets(pixels, patch)
    assert max_diff(got, naive_normalized_targets(pixels, patch)) <= 1e-6


@pytest.mark.parametrize("version", [1, 2])
def test_simmim_loss_with_normalized_targets_is_masked_l1_against_them(version):
    config = tiny_config(version, image_size=32, window_size=4, depths=[1, 1, 1, 1], encoder_stride=32)
    config = config.copy(mim_norm_target=True, mim_norm_target_patch_size=5)
    ours = SwinForMaskedImageModeling(config).eval()
    ours.load_state_dict(randomized(ours.state_dict(), seed=4))
    x = image_batch(config)
    mask = torch.rand(2, config.num_patches, generator=torch.Generator().manual_seed(2)) < 0.5
    with torch.no_grad():
        out = ours(x, bool_masked_pos=mask)
    target = naive_normalized_targets(x, 5).float()
    pixel_mask = mask.view(2, 8, 8).repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None].float()
    per_pixel = (out.reconstruction - target).abs() * pixel_mask
    expected = per_pixel.sum() / (pixel_mask.sum() + 1e-5) / config.num_channels
    assert abs(out.loss.item() - expected.item()) <= 1e-5
    plain = F.l1_loss(out.reconstruction, x, reduction="none") * pixel_mask
    assert abs(out.loss.item() - (plain.sum() / (pixel_mask.sum() + 1e-5) / 3).item()) > 1e-3


# --------------------------------------------------------------------------------------------- misplaced tensors
SWAP_CONFIG = dict(embed_dim=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=4, image_size=64)


def kind(key: str) -> str:
    """The tensor's role without its stage/block indices, e.g. 'swin.stages.*.blocks.*.attn.qkv.weight'."""
    return re.sub(r"\b(stages|blocks)\.\d+", r"\1.*", key)


def same_shape_pairs(state: dict[str, torch.Tensor], exhaustive: bool, seed: int = 0) -> list[tuple[str, str]]:
    """Every pair of equally shaped tensors, or (default) each tensor swapped with at least one random partner."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for key, tensor in state.items():
        groups.setdefault(tuple(tensor.shape), []).append(key)
    pairs: set[tuple[str, str]] = set()
    rng = random.Random(seed)
    for keys in groups.values():
        if len(keys) < 2:
            continue
        if exhaustive:
            pairs.update(itertools.combinations(keys, 2))
            continue
        for key in keys:
            partner = rng.choice([k for k in keys if k != key])
            pairs.add(tuple(sorted((key, partner))))
    return sorted(pairs)


def swap_setup(version: int):
    case = Case(f"swap-v{version}", dict(version=version, **SWAP_CONFIG), transformers=False)
    config, timm_model, ours, _ = build(case, seed=11)
    x = image_batch(config)
    with torch.no_grad():
        reference = timm_model(x)
    return ours, x, reference


def logits_diff(model: SwinForImageClassification, state: dict[str, torch.Tensor], x, reference) -> float:
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        return max_diff(model(x).logits, reference)


def check_swaps(version: int, exhaustive: bool) -> None:
    ours, x, reference = swap_setup(version)
    correct = {k: v.clone() for k, v in ours.state_dict().items()}
    assert logits_diff(ours, correct, x, reference) <= TOL
    pairs = same_shape_pairs(correct, exhaustive)
    # Every kind of tensor that has a same-shaped partner is swapped at least once.
    swappable_kinds = {kind(k) for k in itertools.chain.from_iterable(pairs)}
    for expected in ("norm1.weight", "norm2.bias", "attn.qkv.weight", "attn.proj.weight", "mlp.fc1.bias"):
        assert any(k.endswith(expected) for k in swappable_kinds), expected
    if version == 1:
        assert any(k.endswith("relative_position_bias_table") for k in swappable_kinds)
    else:
        assert any(k.endswith("logit_scale") for k in swappable_kinds)
        assert any(k.endswith("cpb_mlp.0.weight") for k in swappable_kinds)
        assert any(k.endswith("cpb_mlp.2.weight") for k in swappable_kinds)
        assert any(k.endswith("attn.q_bias") for k in swappable_kinds)
    assert any("merge.norm" in k for k in swappable_kinds)
    undetected = []
    for a, b in pairs:
        state = dict(correct)
        state[a], state[b] = correct[b], correct[a]
        if logits_diff(ours, state, x, reference) <= TOL:
            undetected.append((a, b))
    assert not undetected, f"{len(undetected)} of {len(pairs)} swaps leave the output unchanged: {undetected[:10]}"


@pytest.mark.parametrize("version", [1, 2])
def test_swapping_any_two_same_shaped_tensors_breaks_parity_with_timm(version):
    check_swaps(version, exhaustive=False)


@pytest.mark.slow
@pytest.mark.parametrize("version", [1, 2])
def test_swapping_every_pair_of_same_shaped_tensors_breaks_parity_with_timm(version):
    check_swaps(version, exhaustive=True)


def chunk_swapped(tensor: torch.Tensor, chunks: int, i: int, j: int, dim: int = 0) -> torch.Tensor:
    parts = list(torch.chunk(tensor, chunks, dim=dim))
    parts[i], parts[j] = parts[j], parts[i]
    return torch.cat(parts, dim=dim)


@pytest.mark.parametrize("version", [1, 2])
def test_reordered_chunks_inside_a_tensor_break_parity_with_timm(version):
    """Misplacements that keep every key: q/k swapped in qkv, merge input quadrants, head rows."""
    ours, x, reference = swap_setup(version)
    correct = {k: v.clone() for k, v in ours.state_dict().items()}
    edits = {
        "q/k in qkv.weight": ("swin.stages.1.blocks.1.attn.qkv.weight", dict(chunks=3, i=0, j=1)),
        "k/v in qkv.weight": ("swin.stages.0.blocks.0.attn.qkv.weight", dict(chunks=3, i=1, j=2)),
        "merge quadrants (1,0)/(0,1)": ("swin.stages.0.merge.reduction.weight", dict(chunks=4, i=1, j=2, dim=1)),
        "merge quadrants (0,0)/(1,1)": ("swin.stages.2.merge.reduction.weight", dict(chunks=4, i=0, j=3, dim=1)),
        "head rows": ("head.weight", dict(chunks=config_rows(correct["head.weight"]), i=0, j=1)),
        "patch embedding filters": ("swin.patch_embed.proj.weight", dict(chunks=16, i=3, j=9)),
    }
    if version == 1:
        edits["q/k in qkv.bias"] = ("swin.stages.2.blocks.0.attn.qkv.bias", dict(chunks=3, i=0, j=1))
    undetected = []
    for what, (key, how) in edits.items():
        state = dict(correct)
        state[key] = chunk_swapped(correct[key], **how)
        if logits_diff(ours, state, x, reference) <= TOL:
            undetected.append(what)
    assert not undetected


def config_rows(weight: torch.Tensor) -> int:
    return weight.shape[0]
