"""Model behaviour beyond the logits: outputs, attentions, head masks, any input size, the backbone,
absolute position embeddings, losses, the eval-mode position-bias cache, training and bfloat16.

References are timm, transformers (same weights through the mapping rules) or arithmetic stated in the test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    TOL,
    max_diff,
    random_model,
    randomized,
    timm_twin,
    tiny_config,
    transformers_backbone_twin,
    transformers_positions_have_class_row,
    transformers_twin,
)

from swinzoo import fast_inference
from swinzoo.modeling import (
    SwinBackbone,
    SwinForImageClassification,
    SwinForMaskedImageModeling,
    SwinModel,
    WindowAttention,
    window_partition,
)

pytestmark = pytest.mark.usefixtures("small_model_threads")


def images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def ceil_grids(h: int, w: int, stages: int = 4, patch: int = 4) -> list[tuple[int, int]]:
    """Token grid of each stage: ceil(H/patch), then halved (rounding up) by each merging."""
    grids = [(-(-h // patch), -(-w // patch))]
    for _ in range(stages - 1):
        grids.append((-(-grids[-1][0] // 2), -(-grids[-1][1] // 2)))
    return grids


# --------------------------------------------------------------------------------------------- hidden states
@pytest.mark.parametrize("version", [1, 2])
def test_hidden_states_are_embeddings_plus_one_per_stage(version):
    config = tiny_config(version)  # image 64: grids 16, 8, 4, 2; widths 32, 64, 128, 256
    model = random_model(SwinForImageClassification, config)
    x = images(2, 64, 64)
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
        before = model.swin(x, output_hidden_states=True, output_hidden_states_before_downsampling=True)
        plain = model(x)
    after_shapes = [(32, 16), (64, 8), (128, 4), (256, 2), (256, 2)]  # embeddings, then after each merging
    assert len(out.hidden_states) == len(out.reshaped_hidden_states) == 5
    for (c, s), flat, grid in zip(after_shapes, out.hidden_states, out.reshaped_hidden_states, strict=True):
        assert flat.shape == (2, s * s, c) and grid.shape == (2, c, s, s)
        assert torch.equal(flat, grid.flatten(2).transpose(1, 2))
    before_shapes = [(32, 16), (32, 16), (64, 8), (128, 4), (256, 2)]  # embeddings, then each stage unmerged
    assert [tuple(t.shape) for t in before.reshaped_hidden_states] == [(2, c, s, s) for c, s in before_shapes]
    assert plain.hidden_states is None and plain.reshaped_hidden_states is None and plain.attentions is None
    # The last stage has no merging: its state is the same either way, and the final norm comes after it.
    assert torch.equal(before.hidden_states[-1], out.hidden_states[-1])
    assert max_diff(model.swin.norm(out.hidden_states[-1]), before.last_hidden_state) == 0.0


@pytest.mark.parametrize("version", [1, 2])
def test_every_blocks_attention_equals_transformers(version):
    """``output_block_attentions=True``: one entry per block; by default one per stage, as transformers."""
    config = tiny_config(version, image_size=128, depths=[2, 2, 2, 2], output_block_attentions=True)
    model = random_model(SwinForImageClassification, config, seed=5)
    hf = transformers_twin(model)
    captured = []
    hooks = [
        block.attention.register_forward_hook(lambda _m, _i, out: captured.append(out[1]))
        for layer in getattr(hf, "swin" if version == 1 else "swinv2").encoder.layers
        for block in layer.blocks
    ]
    x = images(2, 128, 128)
    with torch.no_grad():
        mine = model(x, output_attentions=True)
        theirs = hf(x, output_attentions=True)
    for h in hooks:
        h.remove()
    assert len(mine.attentions) == sum(config.depths) == len(captured)
    for i, (a, b) in enumerate(zip(mine.attentions, captured, strict=True)):
        assert max_diff(a, b) <= TOL, f"block {i}"
        assert max_diff(a.sum(-1), torch.ones_like(a.sum(-1))) <= 1e-5  # rows are probabilities
    # transformers returns one entry per stage (the stage's last block); they are among swinzoo's.
    last_of_stage = [sum(config.depths[: i + 1]) - 1 for i in range(config.num_layers)]
    assert len(theirs.attentions) == config.num_layers
    for i, ref in zip(last_of_stage, theirs.attentions, strict=True):
        assert max_diff(mine.attentions[i], ref) <= TOL
    model.config.output_block_attentions = False
    with torch.no_grad():
        per_stage = model(x, output_attentions=True).attentions
    assert len(per_stage) == config.num_layers
    for a, ref in zip(per_stage, theirs.attentions, strict=True):
        assert max_diff(a, ref) <= TOL
    # Windows of stage 1: (2 images * 8 * 8 windows, 1 head, 16 tokens, 16 tokens).
    assert mine.attentions[0].shape == (128, 1, 16, 16)
    # The attention path gives the same logits as the fused (scaled_dot_product_attention) path.
    with torch.no_grad():
        assert max_diff(mine.logits, model(x).logits) <= TOL


# --------------------------------------------------------------------------------------------- head mask
@pytest.mark.parametrize("version", [1, 2])
def test_head_mask_equals_scaling_the_heads_input_to_the_projection(version):
    """Masking head h multiplies its attention output by m before the output projection, which is the same as
    multiplying the projection's input columns of head h by m in every block of that stage."""
    config = tiny_config(version)
    model = random_model(SwinForImageClassification, config, seed=6)
    x = images(2, 64, 64)
    head_mask = [None, torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.5, 1.0, 1.0]), None]
    manual = random_model(SwinForImageClassification, config, seed=6)
    with torch.no_grad():
        for stage_index, mask in enumerate(head_mask):
            if mask is None:
                continue
            for block in manual.swin.stages[stage_index].blocks:
                d = block.attn.head_dim
                for h, m in enumerate(mask.tolist()):
                    block.attn.proj.weight[:, h * d : (h + 1) * d] *= m
        masked = model(x, head_mask=head_mask).logits
        unmasked = model(x).logits
        expected = manual(x).logits
    assert max_diff(masked, unmasked) > 1e-3
    assert max_diff(masked, expected) <= TOL
    with pytest.raises(ValueError, match="one entry per stage"):
        model(x, head_mask=[None, None])


# --------------------------------------------------------------------------------------------- any input size
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("size", [(37, 53), (17, 9), (5, 5), (3, 2), (70, 31)])
def test_any_input_size_runs_with_the_expected_token_grids(version, size):
    """Odd sizes, sizes smaller than a window (4 tokens) and than a patch (4 pixels): padded, never rejected."""
    model = random_model(SwinForImageClassification, tiny_config(version), seed=7)
    with torch.no_grad():
        out = model(images(2, *size), output_hidden_states=True)
    grids = ceil_grids(*size)
    assert [tuple(t.shape[-2:]) for t in out.reshaped_hidden_states] == [grids[0], *grids[1:], grids[-1]]
    assert out.logits.shape == (2, 7)
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("size", [(40, 40), (44, 36), (250, 230)])
def test_v2_inputs_of_other_sizes_equal_transformers(size):
    """Windows and shifts come from the configured size (64: windows 4, 4, 4 unshifted, 2), as in transformers'
    Swinv2; other inputs are padded to window multiples in both."""
    model = random_model(SwinForImageClassification, tiny_config(2), seed=8)
    hf = transformers_twin(model)
    x = images(2, *size)
    with torch.no_grad():
        assert max_diff(model(x).logits, hf(x).logits) <= TOL


@pytest.mark.parametrize("version", [1, 2])
def test_shifts_are_fixed_by_the_configured_size_even_where_the_input_fits_one_window(version):
    """Configured at 160 (stage grids 40, 20, 10, 5: all shifted), run at 128 (32, 16, 8, 4): the last stage is
    one 4x4 window and keeps its construction-time shift (masked), as transformers' Swinv2 does. One rule for v1
    and v2 (docs/geometry.md); transformers' Swin v1 re-decides from the input instead, so v1 differs from it
    exactly there, and equals the same computation with the shift removed by hand."""
    model = random_model(SwinForImageClassification, tiny_config(version, image_size=160), seed=25)
    assert model.swin.stages[3].blocks[1].shift == 2
    x = images(2, 128, 128)
    hf = transformers_twin(model)
    with torch.no_grad():
        mine = model(x).logits
        if version == 2:
            assert max_diff(mine, hf(x).logits) <= TOL
        else:
            assert max_diff(mine, hf(x).logits) > 1e-3
            model.swin.stages[3].blocks[1].shift = 0
            assert max_diff(model(x).logits, hf(x).logits) <= TOL


# --------------------------------------------------------------------------------------------- backbone
ALL_STAGES = ["stem", "stage1", "stage2", "stage3", "stage4"]


@pytest.mark.parametrize("version", [1, 2])
def test_backbone_feature_maps_are_nchw_with_the_stage_widths(version):
    config = tiny_config(version, out_features=ALL_STAGES)  # image 64
    model = random_model(SwinBackbone, config, seed=9)
    with torch.no_grad():
        out = model(images(2, 64, 64))
    assert model.channels == [32, 32, 64, 128, 256]
    expected = [(2, 32, 16, 16), (2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2)]
    assert [tuple(f.shape) for f in out.feature_maps] == expected
    some = random_model(SwinBackbone, tiny_config(version, out_features=["stem", "stage3"]), seed=9)
    assert some.channels == [32, 128]
    with torch.no_grad():
        assert [tuple(f.shape) for f in some(images(1, 64, 48)).feature_maps] == [(1, 32, 16, 12), (1, 128, 4, 3)]


# image 160: grids 40, 20, 10, 5, every stage larger than the window (4), so no stage is clamped.
BACKBONE_GEOMETRY = dict(image_size=160, out_features=["stem", "stage1", "stage3", "stage4"])


def test_backbone_v1_equals_transformers_swin_backbone():
    model = random_model(SwinBackbone, tiny_config(1, **BACKBONE_GEOMETRY), seed=10)
    hf = transformers_backbone_twin(model)
    x = images(2, 160, 160)
    with torch.no_grad():
        mine, theirs = model(x).feature_maps, hf(x).feature_maps
    assert len(mine) == len(theirs) == 4
    for name, a, b in zip(BACKBONE_GEOMETRY["out_features"], mine, theirs, strict=True):
        assert max_diff(a, b) <= TOL, name


def test_backbone_v2_equals_transformers_swinv2_backbone_then_stage_norm():
    """transformers' Swinv2Backbone returns the raw stage outputs; swinzoo LayerNorms each one (stage_norms),
    as transformers' Swin v1 backbone does. So swinzoo's map = layer_norm(transformers' map)."""
    model = random_model(SwinBackbone, tiny_config(2, **BACKBONE_GEOMETRY), seed=11)
    hf = transformers_backbone_twin(model)
    x = images(2, 160, 160)
    with torch.no_grad():
        mine, theirs = model(x).feature_maps, hf(x).feature_maps
    for name, a, b in zip(BACKBONE_GEOMETRY["out_features"], mine, theirs, strict=True):
        norm = model.stage_norms[name]
        expected = F.layer_norm(b.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        assert max_diff(a, expected.permute(0, 3, 1, 2)) <= TOL, name


@pytest.mark.xfail(
    strict=True,
    reason="transformers' SwinBackbone always partitions (window 4, shift 2 on a 4x4 stage) like the official "
    "detection code; swinzoo's backbone applies the classification clamp (no shift when stage <= window)",
)
def test_backbone_v1_equals_transformers_when_a_stage_is_clamped():
    model = random_model(SwinBackbone, tiny_config(1, image_size=128, out_features=["stage4"]), seed=12)
    hf = transformers_backbone_twin(model)
    x = images(2, 128, 128)
    with torch.no_grad():
        assert max_diff(model(x).feature_maps[0], hf(x).feature_maps[0]) <= TOL


# --------------------------------------------------------------------------------------------- absolute positions
def bicubic_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) weights of PyTorch's bicubic resampling, align_corners=False: source coordinate
    (i + 0.5) * in / out - 0.5, Keys' cubic kernel with a = -0.75, indices clamped at the border."""
    a = -0.75

    def kernel(d: float) -> float:
        d = abs(d)
        if d <= 1:
            return (a + 2) * d**3 - (a + 3) * d**2 + 1
        if d < 2:
            return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
        return 0.0

    m = torch.zeros(size_out, size_in, dtype=torch.float64)
    for i in range(size_out):
        src = (i + 0.5) * size_in / size_out - 0.5
        base = math.floor(src)
        for k in range(base - 1, base + 3):
            m[i, min(max(k, 0), size_in - 1)] += kernel(src - k)
    return m


def ape_model(seed: int = 13) -> SwinForImageClassification:
    # image 128: grids 32, 16, 8, 4 with window 4 (one window size, so transformers' Swin v1 can hold it).
    model = random_model(SwinForImageClassification, tiny_config(1, image_size=128, use_absolute_embeddings=True))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.swin.patch_embed.position_embeddings.copy_(0.5 * torch.randn(1, 32 * 32, 32, generator=g))
    return model


def manual_embedding(model, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """LayerNorm(conv(x)) + positions, in (B, H, W, C); x already a multiple of the patch size."""
    pe = model.swin.patch_embed
    tokens = F.conv2d(x, pe.proj.weight, pe.proj.bias, stride=4).permute(0, 2, 3, 1)
    return F.layer_norm(tokens, (32,), pe.norm.weight, pe.norm.bias, pe.norm.eps) + positions


def test_absolute_positions_at_the_trained_size_are_added_unchanged():
    model = ape_model()
    x = images(2, 128, 128)
    positions = model.swin.patch_embed.position_embeddings.view(1, 32, 32, 32)
    with torch.no_grad():
        assert max_diff(model.swin.patch_embed(x), manual_embedding(model, x, positions)) <= 1e-5


@pytest.mark.parametrize("size", [(96, 80), (160, 136), (40, 48)])
def test_absolute_positions_at_another_size_are_bicubically_interpolated(size):
    model = ape_model()
    x = images(2, *size)
    gh, gw = size[0] // 4, size[1] // 4
    table = model.swin.patch_embed.position_embeddings.detach().double().view(32, 32, 32)  # (H, W, C)
    resized = torch.einsum("ih,hwc,jw->ijc", bicubic_matrix(32, gh), table, bicubic_matrix(32, gw))
    with torch.no_grad():
        got = model.swin.patch_embed(x)
        expected = manual_embedding(model, x, resized.float()[None])
    assert got.shape == (2, gh, gw, 32)
    assert max_diff(got, expected) <= 1e-5


@pytest.mark.parametrize("size", [(128, 128), (112, 100), (120, 120)])
def test_absolute_positions_equal_transformers_interpolate_pos_encoding(size):
    """transformers' Swin (interpolate_pos_encoding=True) resizes the same table with the same bicubic rule.
    Sizes keep the last stage at exactly the window (4): transformers' Swin v1 re-clamps from the input."""
    model = ape_model()
    hf = transformers_twin(model)
    x = images(2, *size)
    if transformers_positions_have_class_row():
        # NO_ABSOLUTE_POSITIONS_FORWARD: transformers 4.x's interpolate_pos_encoding is compared on its own (given
        # N' + 1 tokens, it resizes the N patch rows and puts the class row back in front).
        gh, gw = size[0] // 4, size[1] // 4
        with torch.no_grad():
            theirs = hf.swin.embeddings.interpolate_pos_encoding(torch.zeros(1, gh * gw + 1, 32), *size)
            mine = model.swin.patch_embed._positions(gh, gw).reshape(1, gh * gw, 32)
        assert theirs.shape == (1, gh * gw + 1, 32)
        assert max_diff(mine, theirs[:, 1:]) <= 1e-5
        return
    with torch.no_grad():
        assert max_diff(model(x).logits, hf(x, interpolate_pos_encoding=True).logits) <= TOL


# --------------------------------------------------------------------------------------------- losses
def test_classification_loss_with_integer_labels_is_cross_entropy_as_transformers():
    model = random_model(SwinForImageClassification, tiny_config(1, image_size=128), seed=14)
    hf = transformers_twin(model)
    x, labels = images(3, 128, 128), torch.tensor([0, 6, 3])
    with torch.no_grad():
        out = model(x, labels=labels)
        reference = hf(x, labels=labels).loss
    assert abs(out.loss.item() - F.cross_entropy(out.logits, labels).item()) <= 1e-6
    assert abs(out.loss.item() - reference.item()) <= TOL


def test_classification_loss_with_float_labels_is_multi_label_bce_as_transformers():
    model = random_model(SwinForImageClassification, tiny_config(2), seed=15)
    hf = transformers_twin(model)
    x = images(2, 64, 64)
    labels = (torch.rand(2, 7, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    with torch.no_grad():
        out = model(x, labels=labels)
        reference = hf(x, labels=labels).loss
    assert abs(out.loss.item() - F.binary_cross_entropy_with_logits(out.logits, labels).item()) <= 1e-6
    assert abs(out.loss.item() - reference.item()) <= TOL


def test_classification_loss_with_one_output_is_mse():
    model = random_model(SwinForImageClassification, tiny_config(1, num_labels=1), seed=16)
    x, target = images(2, 64, 64), torch.tensor([0.5, -1.0])
    with torch.no_grad():
        out = model(x, labels=target)
    assert abs(out.loss.item() - ((out.logits[:, 0] - target) ** 2).mean().item()) <= 1e-6


# --------------------------------------------------------------------------------------------- bias cache
@pytest.fixture
def bias_calls(monkeypatch):
    """Counts WindowAttention.position_bias calls (the computation the eval cache saves)."""
    calls = []
    original = WindowAttention.position_bias

    def counting(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(WindowAttention, "position_bias", counting)
    return calls


@pytest.mark.parametrize("version", [1, 2])
def test_eval_no_grad_computes_each_position_bias_once(version, bias_calls):
    model = random_model(SwinForImageClassification, tiny_config(version), seed=17)
    x = images(2, 64, 64)
    with torch.no_grad():
        first = model(x).logits
        assert len(bias_calls) == sum(model.config.depths)
        second = model(x).logits
        third = model(images(2, 64, 64, seed=1)).logits
    assert len(bias_calls) == sum(model.config.depths), "the cached bias was recomputed"
    assert torch.equal(first, second) and not torch.equal(first, third)


@pytest.mark.parametrize("version", [1, 2])
def test_training_mode_and_grad_mode_do_not_cache(version, bias_calls):
    model = random_model(SwinForImageClassification, tiny_config(version), seed=18)
    blocks = sum(model.config.depths)
    x = images(2, 64, 64)
    model.train()
    with torch.no_grad():
        model(x), model(x)
    assert len(bias_calls) == 2 * blocks
    model.eval()
    model(x), model(x)  # gradients enabled: the bias must stay in the autograd graph
    assert len(bias_calls) == 4 * blocks


@pytest.mark.parametrize("version", [1, 2])
def test_cache_follows_new_weights_from_load_state_dict(version):
    model = random_model(SwinForImageClassification, tiny_config(version, image_size=128), seed=19)
    x = images(2, 128, 128)
    with torch.no_grad():
        old = model(x).logits
        model.load_state_dict(randomized(model.state_dict(), seed=20))
        new = model(x).logits
        reference = timm_twin(model)(x)
    assert max_diff(old, new) > 1e-2
    assert max_diff(new, reference) <= TOL


@pytest.mark.parametrize("version", [1, 2])
def test_cache_follows_in_place_edits_of_the_bias_parameters(version):
    model = random_model(SwinForImageClassification, tiny_config(version, image_size=128), seed=21)
    x = images(2, 128, 128)
    attn = model.swin.stages[1].blocks[1].attn
    with torch.no_grad():
        before = model(x).logits
        if version == 1:
            # A random edit: a constant added to a head's whole table would cancel in the softmax.
            attn.relative_position_bias_table.add_(torch.randn(attn.relative_position_bias_table.shape))
        else:
            attn.cpb_mlp[2].weight.mul_(1.5)
        after = model(x).logits
        reference = timm_twin(model)(x)
    assert max_diff(before, after) > 1e-3
    assert max_diff(after, reference) <= TOL


def _edit_through_data_in_place(model, param):
    param.data.add_(torch.randn(param.shape, generator=torch.Generator().manual_seed(3)))


def _edit_by_assigning_data(model, param):
    param.data = param.data + torch.randn(param.shape, generator=torch.Generator().manual_seed(3))


def _edit_with_vector_to_parameters(model, param):
    vector = torch.nn.utils.parameters_to_vector(model.parameters())
    torch.nn.utils.vector_to_parameters(vector * 1.1, model.parameters())


@pytest.mark.parametrize(
    "edit", [_edit_through_data_in_place, _edit_by_assigning_data, _edit_with_vector_to_parameters]
)
@pytest.mark.parametrize("version", [1, 2])
def test_cache_follows_edits_made_through_param_data(version, edit):
    """Common weight-surgery idioms (EMA updates via .data, torch.nn.utils.vector_to_parameters) change a
    parameter without bumping its autograd version counter; the eval output must still follow the weights."""
    model = random_model(SwinForImageClassification, tiny_config(version, image_size=128), seed=24)
    x = images(2, 128, 128)
    attn = model.swin.stages[0].blocks[1].attn
    param = attn.relative_position_bias_table if version == 1 else attn.cpb_mlp[2].weight
    with torch.no_grad():
        model(x)  # fills the cache
        edit(model, param)
        after = model(x).logits
        reference = timm_twin(model)(x)
    assert max_diff(after, reference) <= TOL


# --------------------------------------------------------------------------------------------- training, dtypes
@pytest.mark.parametrize("version", [1, 2])
def test_training_mode_gradients_reach_every_parameter_and_match_timm(version):
    model = random_model(SwinForImageClassification, tiny_config(version), seed=22)
    reference = timm_twin(model)
    model.train(), reference.train()
    x = images(2, 64, 64)
    labels = torch.tensor([1, 4])
    model(x, labels=labels).loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient: {dead}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    F.cross_entropy(reference(x), labels).backward()
    ref_grads = dict(reference.named_parameters())
    for ours_key, timm_key in [
        ("swin.patch_embed.proj.weight", "patch_embed.proj.weight"),
        ("swin.stages.0.blocks.1.attn.qkv.weight", "layers.0.blocks.1.attn.qkv.weight"),
        ("swin.stages.2.merge.reduction.weight", "layers.3.downsample.reduction.weight"),
        ("head.weight", "head.fc.weight"),
    ]:
        ours_grad = dict(model.named_parameters())[ours_key].grad
        assert max_diff(ours_grad, ref_grads[timm_key].grad) <= TOL * max(1.0, ours_grad.abs().max().item()), ours_key


@pytest.mark.parametrize("version", [1, 2])
def test_bfloat16_forward_runs_and_stays_close_to_float32(version):
    model = random_model(SwinForImageClassification, tiny_config(version), seed=23)
    x = images(2, 64, 64)
    with torch.no_grad():
        full = model(x).logits
        half = model.to(torch.bfloat16)(x.to(torch.bfloat16), output_hidden_states=True)
    assert half.logits.dtype == torch.bfloat16
    assert all(h.dtype == torch.bfloat16 for h in half.hidden_states)
    assert torch.isfinite(half.logits.float()).all()
    assert max_diff(half.logits.float(), full) <= 0.1 * max(1.0, full.abs().max().item())


def test_base_model_has_no_pooler_when_asked():
    model = SwinModel(tiny_config(1), add_pooling_layer=False).eval()
    with torch.no_grad():
        assert model(images(1, 64, 64)).pooler_output is None


@pytest.mark.parametrize("version", [1, 2])
def test_cpu_inference_in_several_image_groups_equals_timm(version, monkeypatch):
    """Eval on CPU runs each block over groups of images; with one image per group the result must not change."""
    model = random_model(SwinForImageClassification, tiny_config(version), seed=21)
    reference = timm_twin(model)
    x = images(3, 64, 64)
    with torch.no_grad():
        whole = model(x).logits
        monkeypatch.setattr(fast_inference, "GROUP_TOKENS", 1)
        grouped = model(x).logits
        expected = reference(x)
    assert max_diff(grouped, expected) <= TOL
    assert max_diff(grouped, whole) <= 1e-5


# --------------------------------------------------------------------------------------------- inference paths
@pytest.fixture
def fast_block_calls(monkeypatch):
    """Counts the blocks that ran swinzoo.fast_inference.swin_block (the switch's effect)."""
    calls = []
    original = fast_inference.swin_block

    def counting(block, x):
        calls.append(block)
        return original(block, x)

    monkeypatch.setattr(fast_inference, "swin_block", counting)
    return calls


def both_paths(model, *args, **kwargs):
    """The model's output on the fast path (the default) and on the reference path, in that order."""
    with torch.no_grad():
        fast = model(*args, **kwargs)
        model.set_inference_path("readable")
        try:
            reference = model(*args, **kwargs)
        finally:
            model.set_inference_path("fast")
    return fast, reference


@pytest.mark.parametrize("groups", ["whole-batch", "one-image-per-group"])
@pytest.mark.parametrize("size", [(64, 64), (37, 53), (70, 31)])
@pytest.mark.parametrize("version", [1, 2])
def test_fast_and_reference_inference_paths_agree(version, size, groups, fast_block_calls, monkeypatch):
    """Random weights, shifted stages (64: grids 16 and 8 shifted with window 4), odd sizes (padding to window
    multiples, odd merging), one or several image groups: logits and every hidden state within 1e-5."""
    if groups == "one-image-per-group":
        monkeypatch.setattr(fast_inference, "GROUP_TOKENS", 1)
    model = random_model(SwinForImageClassification, tiny_config(version), seed=26)
    assert model.inference_path == "fast"
    assert any(block.shift for block in blocks_and_grids(model, size)[0])
    fast, reference = both_paths(model, images(3, *size, seed=2), output_hidden_states=True)
    assert len(fast_block_calls) == sum(model.config.depths)  # the fast path ran once per block, then never
    assert max_diff(fast.logits, reference.logits) <= 1e-5
    for i, (a, b) in enumerate(zip(fast.reshaped_hidden_states, reference.reshaped_hidden_states, strict=True)):
        assert max_diff(a, b) <= 1e-5, f"hidden state {i}"


def blocks_and_grids(model, size: tuple[int, int]) -> tuple[list, list[tuple[int, int]]]:
    """Every block of the model and the token grid it runs on at input ``size``."""
    blocks, grids = [], []
    for stage, grid in zip(model.swin.stages, ceil_grids(*size), strict=True):
        blocks += list(stage.blocks)
        grids += [grid] * len(stage.blocks)
    return blocks, grids


@pytest.mark.parametrize("version", [1, 2])
def test_fast_and_reference_paths_agree_with_masked_patches(version, fast_block_calls):
    """SimMIM's mask token at an odd size: reconstruction and loss the same on both paths."""
    config = tiny_config(version, image_size=64)
    model = random_model(SwinForMaskedImageModeling, config, seed=27)
    x = images(2, 60, 52, seed=3)
    mask = torch.rand(2, 15 * 13, generator=torch.Generator().manual_seed(4)) < 0.6
    fast, reference = both_paths(model, x, bool_masked_pos=mask)
    assert len(fast_block_calls) == sum(config.depths)
    assert max_diff(fast.reconstruction, reference.reconstruction) <= 1e-5
    assert abs(fast.loss.item() - reference.loss.item()) <= 1e-5


@pytest.mark.parametrize("version", [1, 2])
def test_head_mask_and_attentions_take_the_reference_path_on_either_setting(version, fast_block_calls):
    """What the fast path skips (probabilities, head masks) sends every block to the reference path."""
    model = random_model(SwinForImageClassification, tiny_config(version), seed=28)
    head_mask = [None, torch.tensor([1.0, 0.0]), None, torch.tensor([0.5, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])]
    fast, reference = both_paths(model, images(2, 37, 53, seed=4), head_mask=head_mask, output_attentions=True)
    assert fast_block_calls == []
    assert torch.equal(fast.logits, reference.logits)
    for a, b in zip(fast.attentions, reference.attentions, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("height", "width", "window", "shift"), [(8, 12, 4, 2), (14, 21, 7, 3), (8, 8, 4, 0)])
def test_window_gather_indices_equal_roll_then_partition(height, width, window, shift):
    """fast_inference.window_order states roll + partition as index arithmetic; the reference path computes it
    with torch.roll and window_partition. ``back`` undoes it and crops the padding."""
    grid = torch.arange(height * width).view(1, height, width, 1)
    rolled = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
    order, back = fast_inference.window_order(height, width, window, shift, (height - 1, width - 2))
    assert torch.equal(order, window_partition(rolled, window).flatten())
    assert torch.equal(order[back], grid[0, : height - 1, : width - 2, 0].flatten())


def test_unknown_inference_path_is_rejected_by_name():
    model = SwinModel(tiny_config(1))
    with pytest.raises(ValueError, match="inference path 'turbo'.*fast, readable"):
        model.set_inference_path("turbo")
    assert model.set_inference_path("readable").inference_path == "readable"


def test_training_after_an_inference_mode_forward_works():
    """The cached index / coordinate / mask tensors must not be inference tensors: predict or an export check
    runs under torch.inference_mode() first, and training through the same cache entries follows."""
    from swinzoo.modeling import log_spaced_coords, relative_position_index, shifted_window_mask

    for fn in (relative_position_index, log_spaced_coords):
        fn.cache_clear()
    config = tiny_config(2, window_size=5, image_size=40)  # sizes no other test builds: fresh cache entries
    with torch.inference_mode():
        model = SwinForImageClassification(config).eval()
        model(torch.randn(1, 3, 40, 40))
        mask = shifted_window_mask(10, 10, 5, 2, torch.device("cpu"))
    assert not mask.is_inference() and not relative_position_index(5).is_inference()
    model = SwinForImageClassification(config).train()
    loss = model(torch.randn(2, 3, 40, 40), labels=torch.tensor([0, 1])).loss
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("version", [1, 2])
def test_fast_path_in_bfloat16_computes_the_readable_paths_attention_with_batched_matmuls(version, monkeypatch):
    """In bfloat16 the fast path swaps SDPA for matmul + softmax (faster there): it must stay as close to the
    float32 model as the readable bfloat16 path is, with shifted, padded stages (size 37x53)."""
    model = random_model(SwinForImageClassification, tiny_config(version), seed=27)
    x = torch.randn(3, 3, 37, 53, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        exact = model(x).logits.double()
    model = model.to(torch.bfloat16)
    fused = []
    original = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: fused.append(1) or original(*a, **k))
    fast, readable = both_paths(model, x.to(torch.bfloat16))
    n_blocks = sum(tiny_config(version).depths)
    assert len(fused) == n_blocks  # only the readable pass used the fused kernel
    fast_err, readable_err = (max_diff(out.logits.double(), exact) for out in (fast, readable))
    assert readable_err > 0  # bfloat16 really ran
    assert fast_err <= 2 * readable_err + 1e-2, (fast_err, readable_err)
    assert max_diff(fast.logits.float(), readable.logits.float()) <= 2 * readable_err + 1e-2
