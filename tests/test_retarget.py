"""Retargeting (swinzoo.retarget) does what the official fine-tuning loaders do, proven three ways.

* Against timm and transformers at the new geometry: a random swinzoo model is retargeted; timm's and
  transformers' models built from the test's own statement of the target config are given the source weights
  retargeted by swinzoo.verify.reference_retarget (Keys cubic convolution / FITPACK-style B-spline collocation in
  float64, written independently); logits and every stage must agree.
* Against stated arithmetic: a constant table stays constant; bicubic equals Keys' cubic convolution; the
  geometric method reproduces a bicubic polynomial sampled at the progression's offsets exactly (so each source
  value sits where the progression puts it) and equals scipy's FITPACK spline (what interp2d called); the 22k->1k
  map picks exactly the rows it names.
* The exact round trip: the source's own geometry and head give back the very same tensors and config.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import (
    NO_ABSOLUTE_POSITIONS_FORWARD,
    TOL,
    max_diff,
    random_model,
    timm_twin,
    tiny_config,
    transformers_positions_have_class_row,
    transformers_twin,
)

from swinzoo.config import SwinConfig
from swinzoo.errors import SwinzooError
from swinzoo.modeling import (
    TASK_CLASSES,
    SwinBackbone,
    SwinForImageClassification,
    SwinForMaskedImageModeling,
    SwinModel,
)
from swinzoo.retarget import (
    RetargetError,
    geometric_offsets,
    geometric_resize,
    map22kto1k,
    retarget,
    target_config,
)
from swinzoo.verify import reference_retarget as ref

pytestmark = pytest.mark.usefixtures("small_model_threads")
TABLE = "swin.stages.{}.blocks.0.attn.relative_position_bias_table"


def image_batch(config: SwinConfig, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, config.num_channels, *config.image_hw, generator=torch.Generator().manual_seed(seed))


def windows_of(config: SwinConfig) -> list[int]:
    """The official clamp, from the reference module (not from SwinConfig.stage_window)."""
    return ref.official_stage_windows(config.image_hw, config.patch_size, config.window_size, config.num_layers)


def reference_state(state, source: SwinConfig, expected: SwinConfig, method: str):
    """The source state moved by the reference module, from the test's statement of both geometries."""
    return ref.reference_retarget(
        state,
        patch_size=source.patch_size,
        source_image=source.image_hw,
        source_window=source.window_size,
        target_image=expected.image_hw,
        target_window=expected.window_size,
        num_labels=expected.num_labels,
        method=method,
    )


def compare(ours, container, transformers: bool, timm: bool = True) -> dict[str, float]:
    """max |diff| of logits, pooled output and every stage between ours and timm / transformers holding
    the reference-retargeted weights (``container`` only carries them through the layout rules)."""
    x = image_batch(ours.config)
    diffs = {}
    with torch.no_grad():
        mine = ours(x, output_hidden_states=True)
        if timm:
            timm_model = timm_twin(container)
            before = ours.swin(x, output_hidden_states=True, output_hidden_states_before_downsampling=True)
            diffs["timm logits"] = max_diff(mine.logits, timm_model(x))
            features = timm_model.forward_features(x)
            pooled = timm_model.forward_head(features, pre_logits=True)
            diffs["timm pooled"] = max_diff(ours.swin(x).pooler_output, pooled)
            stages = timm_model.forward_intermediates(x, intermediates_only=True)
            assert len(stages) == ours.config.num_layers
            for i, stage in enumerate(stages):
                diffs[f"timm stage {i + 1}"] = max_diff(before.reshaped_hidden_states[i + 1], stage)
        if transformers:
            hf = transformers_twin(container)
            theirs = hf(x, output_hidden_states=True)
            diffs["transformers logits"] = max_diff(mine.logits, theirs.logits)
            for i, (a, b) in enumerate(zip(mine.reshaped_hidden_states, theirs.reshaped_hidden_states, strict=True)):
                diffs[f"transformers stage {i}"] = max_diff(a, b)
    return diffs


def load(cls, config: SwinConfig, state) -> torch.nn.Module:
    model = cls(config).eval()
    model.load_state_dict(state, strict=True)
    return model


CASES = [
    # name, source config, retarget arguments, the target config as the official model has it, method, transformers
    (
        "v1-128w4-to-192w6-bicubic",
        dict(version=1, image_size=128, window_size=4),
        dict(image_size=192, window_size=6),
        dict(image_size=192, window_size=6),
        True,
    ),
    # grid 32, 16, 8, 4 with window 8: windows 8, 8, 8 (unshifted), 4 (clamped): timm only (per-stage windows).
    (
        "v1-128w4-to-128w8-clamped",
        dict(version=1, image_size=128, window_size=4),
        dict(window_size=8),
        dict(image_size=128, window_size=8),
        False,
    ),
    # The 12to16 recipe in small: the source's effective windows at 96/w6 are 6, 6, 6, 3.
    (
        "v2-96w6-to-128w8-cpb",
        dict(version=2, image_size=96, window_size=6),
        dict(image_size=128, window_size=8),
        dict(image_size=128, window_size=8, pretrained_window_sizes=[6, 6, 6, 3]),
        True,
    ),
    (
        "v2-pretrained-windows-kept",
        dict(version=2, image_size=128, window_size=8, pretrained_window_sizes=[4, 4, 4, 2]),
        dict(image_size=192, window_size=12),
        dict(image_size=192, window_size=12, pretrained_window_sizes=[4, 4, 4, 2]),
        False,
    ),
]


@pytest.mark.parametrize(("name", "source", "args", "target", "transformers"), CASES, ids=[c[0] for c in CASES])
def test_supervised_retarget_equals_timm_and_transformers_at_the_new_geometry(name, source, args, target, transformers):
    config = tiny_config(**source)
    model = random_model(SwinForImageClassification, config, seed=2)
    state = model.state_dict()
    new_state, new_config, record = retarget(state, config, "image-classification", **args)
    expected = tiny_config(**{"version": source["version"], **target})
    assert new_config == expected
    assert record.target["stage_windows"] == windows_of(expected)
    ours = load(SwinForImageClassification, new_config, new_state)
    container = load(SwinForImageClassification, expected, reference_state(state, config, expected, "bicubic"))
    diffs = compare(ours, container, transformers)
    assert any(k.startswith("transformers") for k in diffs) == transformers
    assert max(diffs.values()) <= TOL, diffs
    if source["version"] == 1:
        assert record.methods["relative_position_bias_table"].startswith("bicubic")
        assert all(v.endswith("(bicubic)") for v in record.resized.values()) and record.resized
    else:
        assert record.methods["relative_position_bias"].startswith("cpb") and not record.resized
    json.dumps(record.to_dict())


@pytest.mark.parametrize("version", [1, 2])
def test_simmim_pretrain_becomes_a_zero_head_classifier_equal_to_timm_and_transformers(version):
    config = tiny_config(version, image_size=128, window_size=4, num_labels=1)
    model = random_model(SwinForMaskedImageModeling, config, seed=4)
    state = model.state_dict()
    new_state, new_config, record = retarget(state, config, "masked-image-modeling", image_size=192, window_size=6)
    pretrained = [4, 4, 4, 4] if version == 2 else None
    expected = tiny_config(version, image_size=192, window_size=6, num_labels=1000, pretrained_window_sizes=pretrained)
    assert new_config == expected and record.target_task == "image-classification"
    assert set(record.dropped) == {"decoder.conv.weight", "decoder.conv.bias", "swin.patch_embed.mask_token"}
    assert torch.count_nonzero(new_state["head.weight"]) == 0 and torch.count_nonzero(new_state["head.bias"]) == 0
    assert record.methods["head"].startswith("zero")
    if version == 1:
        assert record.methods["relative_position_bias_table"].startswith("geometric")
    ours = load(SwinForImageClassification, new_config, new_state)
    container = load(SwinForImageClassification, expected, reference_state(state, config, expected, "geometric"))
    diffs = compare(ours, container, transformers=True)
    assert max(diffs.values()) <= TOL, diffs


def test_absolute_position_embeddings_retarget_equals_transformers():
    """timm has no absolute position embeddings; transformers' Swin holds them (with its class-token row)."""
    if transformers_positions_have_class_row():
        pytest.skip(NO_ABSOLUTE_POSITIONS_FORWARD)
    config = tiny_config(1, image_size=128, window_size=4, use_absolute_embeddings=True)
    state = random_model(SwinForImageClassification, config, seed=9).state_dict()
    new_state, new_config, record = retarget(state, config, "image-classification", image_size=192, window_size=6)
    expected = tiny_config(1, image_size=192, window_size=6, use_absolute_embeddings=True)
    assert new_config == expected and "swin.patch_embed.position_embeddings" in record.resized
    ours = load(SwinForImageClassification, new_config, new_state)
    container = load(SwinForImageClassification, expected, reference_state(state, config, expected, "bicubic"))
    diffs = compare(ours, container, transformers=True, timm=False)
    assert diffs and max(diffs.values()) <= TOL, diffs


# --------------------------------------------------------------------------------------------- stated arithmetic
def test_constant_tables_stay_constant_under_bicubic_and_geometric():
    config = tiny_config(1, image_size=128, window_size=4)
    state = random_model(SwinForImageClassification, config).state_dict()
    for i in range(4):
        key = TABLE.format(i)
        state[key] = torch.full_like(state[key], 0.25) + torch.arange(state[key].shape[1])  # a constant per head
    for task, method in (("image-classification", "bicubic"), ("image-classification", "geometric")):
        out, _, record = retarget(state, config, task, image_size=192, window_size=6, table_method=method)
        for i in range(4):
            table = out[TABLE.format(i)]
            assert table.shape == (121, state[TABLE.format(i)].shape[1])
            expected = (0.25 + torch.arange(table.shape[1], dtype=torch.float32)).expand_as(table)
            assert max_diff(table, expected) <= 4e-6, (method, i)  # float32 rounding of weights summing to 1
        assert method in record.methods["relative_position_bias_table"]


@pytest.mark.parametrize(("src", "dst"), [(4, 6), (6, 4), (7, 12), (3, 8)])
def test_bicubic_table_equals_keys_cubic_convolution(src, dst):
    """Up and down, through retarget: each head's table equals Keys (a = -0.75), half-pixel centres, float64."""
    config = tiny_config(1, image_size=32 * src, window_size=src)
    state = random_model(SwinForImageClassification, config, seed=7).state_dict()
    out, _, _ = retarget(state, config, "image-classification", image_size=32 * dst, window_size=dst)
    for i in range(4):
        got, table = out[TABLE.format(i)], state[TABLE.format(i)].double().numpy()
        side = 2 * dst - 1
        assert max_diff(got, torch.from_numpy(ref.bicubic_table(table, side))) <= 1e-5


def test_absolute_position_embeddings_resized_by_keys_cubic_convolution():
    config = tiny_config(1, image_size=64, window_size=4, use_absolute_embeddings=True)
    state = random_model(SwinForImageClassification, config, seed=8).state_dict()
    out, new_config, record = retarget(state, config, "image-classification", image_size=[96, 80])
    key = "swin.patch_embed.position_embeddings"
    assert out[key].shape == (1, 24 * 20, 32) and new_config.image_size == [96, 80]
    assert max_diff(out[key], ref.reference_positions(state[key], (16, 16), (24, 20))) <= 1e-5
    assert record.methods["position_embeddings"].startswith("bicubic")


@pytest.mark.parametrize(("src", "dst"), [(11, 13), (13, 23), (23, 47), (13, 11)])
def test_geometric_offsets_follow_the_progression(src, dst):
    """Offsets 0, +-1, +-(1+q), +-(1+q+q^2), ...; the outermost reaches dst // 2 (q in [1.01, 1.5])."""
    q, offsets = geometric_offsets(src, dst)
    n = src // 2
    assert len(offsets) == src and offsets[n] == 0
    for k in range(1, n + 1):
        assert offsets[n + k] == pytest.approx(sum(q**i for i in range(k)), abs=1e-12)
        assert offsets[n - k] == -offsets[n + k]
    if dst > src:
        assert abs(offsets[-1] - dst // 2) < 1e-3
    else:  # shrinking needs q < 1; the official search stops at its lower end
        assert q == pytest.approx(1.01, abs=1e-5)


def _cubic(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return 0.3 + 0.2 * u - 0.05 * u**2 + 0.004 * u**3 - 0.1 * v + 0.03 * v**2 - 0.002 * v**3 + 0.01 * u * v


@pytest.mark.parametrize(("src", "dst"), [(11, 13), (13, 23), (7, 11)])
def test_geometric_resize_reproduces_a_cubic_sampled_at_the_progression_offsets(src, dst):
    """A bicubic polynomial sampled at the geometric offsets (the stated progression) is reproduced exactly at
    the integer target offsets (clamped to the outermost node, as FITPACK evaluates): every source value sits
    where the progression says and the spline is the not-a-knot cubic interp2d fitted."""
    nodes = ref.progression_offsets(src, dst)
    grid_u, grid_v = np.meshgrid(nodes, nodes, indexing="ij")
    table = np.stack([_cubic(grid_u, grid_v), 2 * _cubic(grid_v, grid_u)], axis=-1).reshape(-1, 2)
    t = dst // 2
    target = np.clip(np.arange(-t, t + 1.0), nodes[0], nodes[-1])
    tu, tv = np.meshgrid(target, target, indexing="ij")
    expected = np.stack([_cubic(tu, tv), 2 * _cubic(tv, tu)], axis=-1).reshape(-1, 2)
    got = geometric_resize(torch.from_numpy(table), dst).numpy()
    assert np.abs(got - expected).max() < 1e-10


@pytest.mark.parametrize(("src", "dst"), [(11, 13), (5, 7), (13, 11), (23, 47)])
def test_geometric_resize_equals_fitpack_and_the_reference(src, dst):
    """scipy's RectBivariateSpline(s=0) is FITPACK's regrid, what interp2d(kind='cubic') fitted on a grid."""
    scipy_interpolate = pytest.importorskip("scipy.interpolate")
    g = torch.Generator().manual_seed(src * 100 + dst)
    table = torch.randn(src * src, 3, generator=g, dtype=torch.float64)
    got = geometric_resize(table, dst).numpy()
    nodes = ref.progression_offsets(src, dst)
    t = dst // 2
    points = np.clip(np.arange(-t, t + 1.0), nodes[0], nodes[-1])
    fitpack = np.stack(
        [
            scipy_interpolate.RectBivariateSpline(nodes, nodes, table[:, h].numpy().reshape(src, src), s=0)(
                points, points
            ).reshape(-1)
            for h in range(3)
        ],
        axis=1,
    )
    assert np.abs(got - fitpack).max() < 1e-10
    assert np.abs(got - ref.geometric_table(table.numpy(), dst)).max() < 1e-10


def test_22k_head_to_1k_picks_exactly_the_rows_the_map_names():
    pytest.importorskip("timm")
    from swinzoo.manifest import label_names

    config = tiny_config(1, image_size=64, window_size=4, num_labels=21841)
    state = random_model(SwinModel, config.copy(num_labels=1)).state_dict()
    state = {f"swin.{k}": v for k, v in state.items()}
    rows = torch.arange(21841, dtype=torch.float32)
    state["head.weight"] = rows[:, None] + torch.linspace(0, 0.5, config.num_features)[None]
    state["head.bias"] = rows + 0.25
    out, new_config, record = retarget(state, config, "image-classification", num_labels=1000)
    official = [row for row, _ in ref.derive_map22kto1k()]  # from timm's package data, independently
    assert map22kto1k()[0] == official
    assert out["head.weight"][:, 0].tolist() == official and out["head.bias"].tolist() == [r + 0.25 for r in official]
    assert all(torch.equal(out["head.weight"][i], state["head.weight"][row]) for i, row in enumerate(official))
    assert [new_config.id2label[i] for i in range(1000)] == label_names("imagenet-1k")
    assert record.methods["head"].startswith("map22kto1k")
    # The official map's stated landmarks: tench is 22k row 359; teddy bear (absent from 22k) row 5564.
    assert official[0] == 359 and official[850] == 5564 and len(set(official)) == 1000


def test_other_class_counts_get_a_zero_head_with_generic_labels():
    config = tiny_config(1, image_size=64, window_size=4, num_labels=7)
    state = random_model(SwinForImageClassification, config).state_dict()
    out, new_config, record = retarget(state, config, "image-classification", num_labels=5)
    assert out["head.weight"].shape == (5, 256) and not out["head.weight"].any() and not out["head.bias"].any()
    assert new_config.id2label == {i: f"LABEL_{i}" for i in range(5)}
    assert record.methods["head"].startswith("zero") and set(record.replaced) == {"head.weight", "head.bias"}
    assert all(out[k] is state[k] for k in state if not k.startswith("head."))


# --------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize(
    ("image_size", "window", "windows", "shifted"),
    [
        (64, 64, [16, 8, 4, 2], [False] * 4),
        (128, 8, [8, 8, 8, 4], [True, True, False, False]),
        (96, 5, [5, 5, 5, 3], [True, True, True, False]),
    ],
)
def test_window_clamp_and_shift_follow_the_new_image_size(image_size, window, windows, shifted):
    """A stage no larger than the window runs unshifted with window = its resolution; a window larger than
    every stage is clamped, not refused."""
    config = tiny_config(1, image_size=64, window_size=4)
    state = random_model(SwinForImageClassification, config).state_dict()
    out, new_config, _ = retarget(state, config, "image-classification", image_size=image_size, window_size=window)
    assert windows_of(new_config) == windows
    model = load(SwinForImageClassification, new_config, out)
    for i, stage in enumerate(model.swin.stages):
        assert [b.window for b in stage.blocks] == [windows[i]] * 2
        assert (stage.blocks[1].shift == windows[i] // 2) == shifted[i] and stage.blocks[0].shift == 0
        assert out[TABLE.format(i)].shape[0] == (2 * windows[i] - 1) ** 2


@pytest.mark.parametrize(
    ("task", "size", "window"),
    [("image-classification", 256, 16), ("image-classification", 384, 24), ("masked-image-modeling", 224, 14)],
)
def test_swinv2_fine_tunes_from_192_get_the_pretrains_effective_windows(task, size, window):
    """The official 12to16 / 12to24 configs and the SimMIM V2 fine-tune config (224, window 14) all say
    PRETRAINED_WINDOW_SIZES [12, 12, 12, 6]: the 192 / window-12 pretrain's effective stage windows."""
    base = SwinConfig(version=2, image_size=192, window_size=12, embed_dim=128, depths=[2, 2, 18, 2],
                      num_heads=[4, 8, 16, 32], num_labels=21841 if task == "image-classification" else 1)  # fmt: skip
    moved, out_task = target_config(base, task, image_size=size, window_size=window, num_labels=1000)
    assert moved.pretrained_window_sizes == [12, 12, 12, 6] and out_task == "image-classification"
    assert (moved.image_size, moved.window_size, moved.num_labels) == (size, window, 1000)


@pytest.mark.parametrize("task", ["base", "backbone"])
def test_headless_models_retarget_their_encoder_like_the_classifier(task):
    config = tiny_config(1, image_size=64, window_size=4)
    state = random_model(SwinForImageClassification, config, seed=6).state_dict()
    encoder = {k: v for k, v in state.items() if k.startswith("swin.")}
    if task == "base":
        encoder = {k.removeprefix("swin."): v for k, v in encoder.items()}
    else:
        encoder.update({f"stage_norms.{k}": v for k, v in SwinBackbone(config).stage_norms.state_dict().items()})
    want, _, _ = retarget(state, config, "image-classification", image_size=96, window_size=6)
    got, new_config, record = retarget(encoder, config, task, image_size=96, window_size=6)
    assert record.target_task == task and record.methods["head"].startswith("none")
    prefix = "" if task == "base" else "swin."
    for key, value in want.items():
        if key.startswith("swin."):
            assert torch.equal(got[prefix + key.removeprefix("swin.")], value), key
    load(TASK_CLASSES[task], new_config, got)


# --------------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize(
    "changes",
    [
        dict(version=1),
        dict(version=2, pretrained_window_sizes=[3, 3, 3, 2]),
        dict(version=1, use_absolute_embeddings=True),
    ],
)
def test_retarget_to_the_source_geometry_and_head_changes_nothing(changes):
    config = tiny_config(**changes)
    state = random_model(SwinForImageClassification, config, seed=5).state_dict()
    before = {k: v.clone() for k, v in state.items()}
    for args in ({}, dict(image_size=64, window_size=4, num_labels=7)):
        out, new_config, record = retarget(state, config, "image-classification", **args)
        assert new_config == config and list(out) == list(state)
        assert all(out[k] is state[k] for k in state)  # not even a copy
        assert all(torch.equal(state[k], before[k]) for k in state)  # the input is untouched
        assert not record.changed and record.methods["head"].startswith("kept")


# --------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def source():
    config = tiny_config(1, image_size=64, window_size=4)
    return random_model(SwinForImageClassification, config).state_dict(), config


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (dict(window_size=0), "window_size: must be positive (got 0)"),
        (dict(window_size=-3), "window_size: must be positive (got -3)"),
        (dict(window_size=4.5), "window_size: expected a positive integer"),
        (dict(image_size=0), "image_size: must be positive (got 0)"),
        (dict(image_size=[64, -8]), "image_size: must be positive (got -8)"),
        (dict(image_size=66), "image_size: 66 is not a multiple of the patch size 4"),
        (dict(image_size=True), "image_size: expected a positive integer"),
        (dict(image_size=[64, 64, 64]), "image_size: expected one size or [height, width]"),
        (dict(image_size=100_000), "image_size: 100000 is above the supported maximum"),
        (dict(num_labels=0), "num_labels: must be positive (got 0)"),
        (dict(table_method="nearest"), "table_method: 'nearest' is not one of bicubic, geometric"),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(source, args, named):
    state, config = source
    with pytest.raises(RetargetError) as info:
        retarget(state, config, "image-classification", **args)
    assert named in str(info.value) and isinstance(info.value, SwinzooError) and "\n" not in str(info.value)


def test_states_that_cannot_be_retargeted_name_the_part(source):
    state, config = source
    cases = [
        ({k: v for k, v in state.items() if k != "head.bias"}, "image-classification", "missing: head.bias"),
        ({**state, TABLE.format(1): torch.zeros(10, 2)}, "image-classification", TABLE.format(1) + " (10, 2)"),
        ({**state, "extra.weight": torch.zeros(1)}, "image-classification", "not part of the model: extra.weight"),
        (state, "masked-image-modeling", "missing: swin.patch_embed.mask_token"),
        (state, "segmentation", "task: 'segmentation' is not one of"),
    ]
    for bad, task, named in cases:
        with pytest.raises(RetargetError, match=None) as info:
            retarget(bad, config, task, window_size=8)
        assert named in str(info.value), str(info.value)
    base = {k.removeprefix("swin."): v for k, v in state.items() if k.startswith("swin.")}
    with pytest.raises(RetargetError, match="a base model has no classifier head"):
        retarget(base, config, "base", num_labels=10)
    # Stage 4 runs window 2 here (3 offsets): the geometric spline needs 4, so it says which table and why.
    with pytest.raises(RetargetError, match=r"stages\.3\.blocks\.0.*needs at least 4 offsets.*window 2"):
        retarget(state, config, "image-classification", image_size=96, window_size=6, table_method="geometric")


# --------------------------------------------------------------------------------------------- rpe_mlp alias
def test_official_swinv2_rpe_mlp_keys_are_the_older_name_of_cpb_mlp():
    from swinzoo.convert import build_model
    from swinzoo.converters.engine import MappingError, convert_state_dict
    from swinzoo.converters.official import alias_notes, official_rules
    from swinzoo.synthetic import official_state_dict

    config = tiny_config(2, image_size=64, window_size=4)
    for layout, prefix in (("official-swinv2", ""), ("simmim-swinv2-pretrain", "encoder.")):
        cfg = config.copy(num_labels=1) if prefix else config
        canonical = official_state_dict(cfg, layout, seed=3)
        older = {k.replace(".cpb_mlp.", ".rpe_mlp."): v for k, v in canonical.items()}
        assert sum(".rpe_mlp." in k for k in older) == 3 * sum(cfg.depths)
        want, _ = build_model(canonical, cfg, layout)
        got, report = build_model(older, cfg, layout)
        assert all(
            torch.equal(a, b) for a, b in zip(want.state_dict().values(), got.state_dict().values(), strict=True)
        )
        key = f"{prefix}layers.0.blocks.0.attn.rpe_mlp.0.weight"
        assert report.renamed[key] == "swin.stages.0.blocks.0.attn.cpb_mlp.0.weight"
        assert alias_notes(report.renamed) == [
            f"{3 * sum(cfg.depths)} rpe_mlp.* keys mapped as cpb_mlp.* (the older official name, renamed as "
            "utils_simmim.py does)"
        ]
        both = {**canonical, key: older[key]}
        with pytest.raises(MappingError, match="produced twice"):
            build_model(both, cfg, layout)
    # swinzoo -> official writes the canonical name only.
    model = random_model(SwinForImageClassification, config)
    layout = official_state_dict(config, "official-swinv2")
    target = {k: v.shape for k, v in layout.items() if not k.endswith(("_index", "attn_mask", "coords_table"))}
    official, _ = convert_state_dict(model.state_dict(), official_rules(), target, to_swinzoo=False)
    assert any(".cpb_mlp." in k for k in official) and not any(".rpe_mlp." in k for k in official)


# --------------------------------------------------------------------------------------------- convert / load
def test_convert_cli_retargets_and_records_it_and_equals_timm_at_the_new_geometry(tmp_path):
    """`swinzoo convert --source F --image-size --window-size --num-labels`: the folder holds the retargeted model,
    conversion.json says from which geometry to which and how, and timm at the new geometry (given weights moved
    by the reference module) computes the same logits."""
    from click.testing import CliRunner

    import swinzoo
    from swinzoo.cli import main
    from swinzoo.synthetic import write_official_checkpoint

    source = tiny_config(1, window_size=4, image_size=64, num_labels=7)
    ckpt = write_official_checkpoint(tmp_path / "src.pth", source, "official-swin", seed=3)
    out = tmp_path / "moved"
    args = ["--image-size", "96", "--window-size", "6", "--num-labels", "5"]
    result = CliRunner().invoke(main, ["convert", "--source", str(ckpt), "--out", str(out), "--quiet", *args])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "conversion.json").read_text())["retarget"]
    assert record["from"]["image_size"] in (64, [64, 64]) and record["to"]["window_size"] == 6
    assert record["methods"]["relative_position_bias_table"].startswith("bicubic")
    assert record["methods"]["head"].startswith("zero") and record["to"]["num_labels"] == 5
    moved = swinzoo.from_pretrained(out)
    assert (moved.config.image_hw, moved.config.window_size, moved.config.num_labels) == ((96, 96), 6, 5)
    assert not moved.head.weight.any()

    original = swinzoo.convert.convert(source=ckpt, write=False, progress=False).model
    expected_config = moved.config
    theirs = load(SwinForImageClassification, expected_config,
                  reference_state(original.state_dict(), original.config, expected_config, "bicubic"))  # fmt: skip
    diffs = compare(moved, theirs, transformers=False)
    assert max(diffs.values()) < TOL, diffs


def test_convert_refuses_bad_retarget_values_naming_them(tmp_path):
    from click.testing import CliRunner

    from swinzoo.cli import main
    from swinzoo.synthetic import write_official_checkpoint

    ckpt = write_official_checkpoint(
        tmp_path / "src.pth", tiny_config(1, window_size=4, image_size=64), "official-swin"
    )
    for args, named in ((["--image-size", "66"], "multiple of the patch size"), (["--window-size", "0"], "window")):
        result = CliRunner().invoke(main, ["convert", "--source", str(ckpt), "--out", str(tmp_path / "o"), *args])
        assert result.exit_code != 0 and named in result.output and "Traceback" not in result.output
        assert not (tmp_path / "o").exists()


def test_from_pretrained_retargets_at_load_time_like_convert(tmp_path):
    import swinzoo
    from swinzoo.loading import save_pretrained

    source = random_model(SwinForImageClassification, tiny_config(2, window_size=4, image_size=64, num_labels=7))
    folder = save_pretrained(source, tmp_path / "src")
    moved = swinzoo.from_pretrained(folder, image_size=96, window_size=6, num_labels=3, ignore_mismatched_sizes=True)
    state, config, record = retarget(source.state_dict(), source.config, "image-classification",
                                     image_size=96, window_size=6, num_labels=3)  # fmt: skip
    assert moved.config == config and moved.retarget_record.to_dict() == record.to_dict()
    assert all(torch.equal(moved.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(swinzoo.LoadError, match="ignore_mismatched_sizes"):
        swinzoo.from_pretrained(folder, image_size=96, num_labels=3)


def test_the_card_of_a_retargeted_folder_says_from_what_to_what_and_how(tmp_path):
    from click.testing import CliRunner

    from swinzoo.cli import main
    from swinzoo.synthetic import write_official_checkpoint

    ckpt = write_official_checkpoint(
        tmp_path / "src.pth", tiny_config(1, window_size=4, image_size=64), "official-swin"
    )
    out = tmp_path / "moved"
    args = ["convert", "--source", str(ckpt), "--out", str(out), "--quiet", "--image-size", "96", "--window-size", "6"]
    assert CliRunner().invoke(main, args).exit_code == 0
    card = (out / "README.md").read_text()
    assert "**retargeted**" in card and "image 64, window 4" in card and "image 96, window 6" in card
    assert "relative_position_bias_table: bicubic" in card
