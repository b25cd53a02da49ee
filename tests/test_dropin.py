"""swinzoo's models as a drop-in for transformers' Swin / Swinv2 classes: what transformers code relies on.

Each check compares with transformers holding the same weights, or with what transformers itself writes and
reads (its own config.json and model.safetensors), or with arithmetic stated in the test.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import TOL, max_diff, random_model, tiny_config, transformers_twin

import swinzoo
from swinzoo.errors import SwinzooError
from swinzoo.modeling import SwinBackbone, SwinForImageClassification, SwinForMaskedImageModeling, SwinModel

pytestmark = pytest.mark.usefixtures("small_model_threads")


def images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------- silently wrong
def test_backbone_stage_norms_survive_save_and_load(tmp_path):
    config = tiny_config(1, out_features=["stage2", "stage4"])
    model = random_model(SwinBackbone, config, seed=1)
    with torch.no_grad():
        model.stage_norms["stage2"].weight.mul_(3.0).add_(0.5)
    model.save_pretrained(tmp_path / "bb")
    loaded = SwinBackbone.from_pretrained(tmp_path / "bb")
    for name in ("stage2", "stage4"):
        for key, value in model.stage_norms[name].state_dict().items():
            assert torch.equal(loaded.stage_norms[name].state_dict()[key], value), f"{name}.{key}"
    x = images(2, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x).feature_maps, loaded(x).feature_maps, strict=True):
            assert torch.equal(a, b)


def test_backbone_loaded_with_another_stage_keeps_the_saved_norms_and_adds_a_fresh_one(tmp_path):
    model = random_model(SwinBackbone, tiny_config(1, out_features=["stage2"]), seed=2)
    model.save_pretrained(tmp_path / "bb")
    loaded = SwinBackbone.from_pretrained(tmp_path / "bb", out_features=["stage2", "stage3"])
    assert torch.equal(loaded.stage_norms["stage2"].weight, model.stage_norms["stage2"].weight)
    assert torch.equal(loaded.stage_norms["stage3"].weight, torch.ones(128))


@pytest.mark.parametrize(
    ("problem_type", "labels"),
    [
        ("regression", torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])),
        ("single_label_classification", torch.tensor([2, 0])),
        ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
        (None, torch.tensor([2, 0])),  # inferred: integer labels -> cross-entropy
        (None, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),  # inferred: float labels -> BCE
    ],
)
def test_loss_follows_problem_type_as_transformers(problem_type, labels):
    config = tiny_config(1, image_size=128, num_labels=3, problem_type=problem_type)
    model = random_model(SwinForImageClassification, config, seed=3)
    hf = transformers_twin(model)
    hf.config.problem_type = problem_type
    x = images(2, 128, 128)
    with torch.no_grad():
        mine, theirs = model(x, labels=labels), hf(x, labels=labels)
    assert abs(mine.loss.item() - theirs.loss.item()) <= TOL
    assert model.config.problem_type == hf.config.problem_type  # inferred and recorded alike


def test_regression_loss_is_mse_of_the_logits():
    """Arithmetic: a 3-output regression head trains on MSE, not on BCE (the silent default before)."""
    model = random_model(SwinForImageClassification, tiny_config(1, num_labels=3, problem_type="regression"), seed=4)
    labels = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    with torch.no_grad():
        out = model(images(2, 64, 64), labels=labels)
    assert abs(out.loss.item() - F.mse_loss(out.logits, labels).item()) <= 1e-6


def test_problem_type_is_read_from_a_transformers_config_json(tmp_path):
    import transformers

    hf_config = transformers.SwinConfig(
        image_size=64, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4, num_labels=3
    )
    hf_config.problem_type = "regression"
    hf = transformers.SwinForImageClassification(hf_config).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["problem_type"] == "regression"
    model = swinzoo.from_pretrained(tmp_path / "hf")
    assert model.config.problem_type == "regression"
    x, labels = images(2, 64, 64), torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    with torch.no_grad():
        assert abs(model(x, labels=labels).loss.item() - hf(x, labels=labels).loss.item()) <= TOL


@pytest.mark.parametrize("version", [1, 2])
def test_hidden_states_are_on_the_gradient_path(version):
    """As transformers': ``retain_grad`` on a hidden state fills its .grad, and a loss on it trains the model."""
    model = random_model(SwinForImageClassification, tiny_config(version), seed=5).train()
    out = model(images(2, 64, 64), output_hidden_states=True, output_attentions=True)
    for h in out.hidden_states:
        h.retain_grad()
    out.attentions[0].retain_grad()
    out.logits.sum().backward()
    for i, h in enumerate(out.hidden_states):
        assert h.grad is not None and h.grad.abs().sum() > 0, f"hidden state {i}"
    assert out.attentions[0].grad is not None
    model.zero_grad()
    probe = model(images(2, 64, 64), output_hidden_states=True).hidden_states[1]
    probe.pow(2).mean().backward()  # feature distillation on a stage's tokens
    assert model.swin.patch_embed.proj.weight.grad.abs().sum() > 0


def test_config_output_flags_are_honoured_and_accepted_by_the_constructor():
    config = tiny_config(2, output_hidden_states=True, output_attentions=True)
    model = random_model(SwinForImageClassification, config, seed=6)
    with torch.no_grad():
        out = model(images(1, 64, 64))
        assert len(out.hidden_states) == 5 and len(out.attentions) == 4
        plain = model(images(1, 64, 64), output_hidden_states=False, output_attentions=False)
    assert plain.hidden_states is None and plain.attentions is None
    assert SwinForImageClassification(tiny_config(1, return_dict=False))(images(1, 64, 64)).__class__ is tuple


# --------------------------------------------------------------------------------------------- what transformers writes
def test_a_non_square_image_size_loads_and_the_processor_says_why_it_is_absent(tmp_path):
    model = random_model(SwinForImageClassification, tiny_config(1, image_size=[64, 96]), seed=7)
    model.save_pretrained(tmp_path / "m")
    loaded = swinzoo.from_pretrained(tmp_path / "m")
    assert loaded.config.image_size == [64, 96]
    assert loaded.image_processor is None and "not square" in loaded.image_processor_error
    x = images(1, 64, 96)
    with torch.no_grad():
        assert max_diff(loaded(x).logits, model(x).logits) <= 1e-6


def test_transformers_swinv2_with_three_stages_loads(tmp_path):
    import transformers

    hf_config = transformers.Swinv2Config(
        image_size=32, embed_dim=16, depths=[1, 2, 1], num_heads=[1, 2, 4], window_size=4, num_labels=3
    )
    hf = transformers.Swinv2ForImageClassification(hf_config).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert len(json.loads((tmp_path / "hf" / "config.json").read_text())["pretrained_window_sizes"]) == 4
    model = swinzoo.from_pretrained(tmp_path / "hf")
    x = images(2, 32, 32)
    with torch.no_grad():
        assert max_diff(model(x).logits, hf(x).logits) <= TOL


def test_transformers_swin_v1_with_absolute_positions_loads_as_transformers_writes_it(tmp_path):
    """transformers 5 stores (1, N, C) positions (4.x: (1, 1 + N, C)); either loads, the row dropped only where
    there is one."""
    import transformers

    hf_config = transformers.SwinConfig(
        image_size=64, embed_dim=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8], window_size=2, num_labels=3,
        use_absolute_embeddings=True,
    )  # fmt: skip
    hf = transformers.SwinForImageClassification(hf_config).eval()
    torch.nn.init.normal_(hf.swin.embeddings.position_embeddings, generator=torch.Generator().manual_seed(0))
    hf.save_pretrained(tmp_path / "hf")
    model = swinzoo.from_pretrained(tmp_path / "hf")
    x = images(2, 64, 64)
    with torch.no_grad():
        assert max_diff(model(x).logits, hf(x).logits) <= TOL


# --------------------------------------------------------------------------------------------- outputs
def test_return_dict_false_gives_the_tuple_transformers_gives():
    model = random_model(SwinForImageClassification, tiny_config(2), seed=8)
    hf = transformers_twin(model)
    x, labels = images(2, 64, 64), torch.tensor([1, 2])
    with torch.no_grad():
        mine = model(x, labels=labels, output_hidden_states=True, return_dict=False)
        theirs = hf(x, labels=labels, output_hidden_states=True, return_dict=False)
    assert type(mine) is tuple and len(mine) == len(theirs) == 4  # loss, logits, hidden states, reshaped
    assert max_diff(mine[0], theirs[0]) <= TOL and max_diff(mine[1], theirs[1]) <= TOL
    for a, b in zip(mine[3], theirs[3], strict=True):
        assert max_diff(a, b) <= TOL


def test_outputs_index_by_position_and_name_and_have_a_length():
    model = random_model(SwinForImageClassification, tiny_config(1), seed=9)
    with torch.no_grad():
        out = model(images(1, 64, 64), labels=torch.tensor([3]))
    assert len(out) == 2 and list(out.keys()) == ["loss", "logits"]
    assert out[0] is out.loss and out["logits"] is out.logits and out[1] is out.logits and out[-1] is out.logits
    assert out.to_tuple() == (out.loss, out.logits)
    with pytest.raises(KeyError):
        out["attentions"]


@pytest.mark.parametrize("cls", [SwinForImageClassification, SwinModel, SwinBackbone, SwinForMaskedImageModeling])
def test_torch_export_and_jit_trace_work_on_the_model_itself(cls):
    model = random_model(cls, tiny_config(2), seed=10)
    x = images(2, 64, 64)
    with torch.no_grad():
        eager = model(x).to_tuple()
        exported = torch.export.export(model, (x,)).module()(x)
        traced = torch.jit.trace(model, x, check_trace=False)(x)
    assert type(exported) is type(model(x))
    for a, b, c in zip(eager, exported.to_tuple(), traced, strict=True):
        a, b, c = (t[0] if isinstance(t, tuple) else t for t in (a, b, c))
        assert max_diff(a, b) <= 1e-5 and max_diff(a, c) <= 1e-5


def test_attentions_are_one_per_stage_by_default_and_per_block_as_an_option():
    model = random_model(SwinModel, tiny_config(1, depths=[2, 2, 4, 2]), seed=11)
    with torch.no_grad():
        per_stage = model(images(1, 64, 64), output_attentions=True).attentions
        model.config.output_block_attentions = True
        per_block = model(images(1, 64, 64), output_attentions=True).attentions
    assert len(per_stage) == 4 and len(per_block) == 10
    for stage_attention, last_block in zip(per_stage, (1, 3, 7, 9), strict=True):
        assert torch.equal(stage_attention, per_block[last_block])


# --------------------------------------------------------------------------------------------- backbone
def test_backbone_surface_follows_transformers_backbone_mixin():
    import transformers

    from swinzoo.converters.transformers_layout import transformers_config

    config = tiny_config(1, image_size=128, out_indices=[1, -1])
    model = SwinBackbone(config)
    hf_config = transformers_config(config)
    hf_config.out_indices = [1, -1]
    hf = transformers.SwinBackbone(hf_config)
    assert model.stage_names == hf.stage_names
    assert model.out_features == hf.out_features == ["stage1", "stage4"]
    assert model.channels == hf.channels and model.num_features == hf.num_features
    assert model.out_feature_channels == dict(hf.out_feature_channels)
    model.out_indices = [2]  # the model's and the config's stay in step, as transformers'
    assert model.config.out_features == ["stage2"] and model.out_features == ["stage2"] and model.channels == [64]
    model.config.out_features = ["stage3"]
    assert model.out_indices == [3]
    model.out_features = None  # transformers' default: the last stage
    assert model.out_features == ["stage4"] and model.config.out_indices == [4]
    with torch.no_grad():
        assert model(images(1, 128, 128)).feature_maps[0].shape == (1, 256, 4, 4)


# --------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("use_reentrant", [True, False])
@pytest.mark.parametrize("version", [1, 2])
def test_gradient_checkpointing_gives_the_same_gradients(version, use_reentrant):
    model = random_model(SwinForImageClassification, tiny_config(version), seed=12).train()
    x, labels = images(2, 64, 64), torch.tensor([1, 5])

    def grads():
        model.zero_grad()
        model(x, labels=labels).loss.backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    plain = grads()
    model.gradient_checkpointing_enable({"use_reentrant": use_reentrant})
    assert model.is_gradient_checkpointing
    checkpointed = grads()
    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing
    for k, g in plain.items():  # the same maths recomputed: equal up to float summation order
        assert torch.allclose(g, checkpointed[k], rtol=1e-5, atol=1e-5), k


# --------------------------------------------------------------------------------------------- from_pretrained
def test_a_bad_dtype_is_a_swinzoo_error_naming_the_value(tmp_path):
    random_model(SwinForImageClassification, tiny_config(1), seed=13).save_pretrained(tmp_path / "m")
    with pytest.raises(SwinzooError, match="'foo'"):
        swinzoo.from_pretrained(tmp_path / "m", dtype="foo")


def test_hub_keywords_reach_the_download(tmp_path, monkeypatch):
    """token, force_download, local_files_only and subfolder go to huggingface_hub as transformers passes them."""
    import huggingface_hub

    folder = tmp_path / "m"
    random_model(SwinForImageClassification, tiny_config(1), seed=14).save_pretrained(folder)
    calls = []

    def download(repo_id, filename, **kwargs):
        calls.append(kwargs)
        if filename not in ("config.json", "model.safetensors"):
            raise huggingface_hub.errors.EntryNotFoundError("absent")
        return str(folder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    swinzoo.from_pretrained("org/name", token="hf_x", force_download=True, local_files_only=True, subfolder="s")
    assert calls and all(
        c["token"] == "hf_x" and c["force_download"] and c["local_files_only"] and c["subfolder"] == "s" for c in calls
    )


def test_accepted_transformers_keywords_load_and_the_rest_are_refused_with_a_reason(tmp_path):
    folder = tmp_path / "m"
    saved = random_model(SwinForImageClassification, tiny_config(1), seed=15)
    saved.save_pretrained(folder)
    model, info = swinzoo.from_pretrained(
        folder, low_cpu_mem_usage=True, use_safetensors=True, weights_only=True, trust_remote_code=False,
        attn_implementation="eager", device_map={"": "cpu"}, output_loading_info=True,
    )  # fmt: skip
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert torch.equal(model.head.weight, saved.head.weight)
    for keyword, value in [("from_tf", True), ("quantization_config", {}), ("variant", "fp16")]:
        with pytest.raises(SwinzooError, match=f"{keyword}.*not supported \\("):
            swinzoo.from_pretrained(folder, **{keyword: value})


# ---------------------------------------------------------------------------- numerics, official code silent
def test_windows_of_grids_odd_before_a_merge_are_sized_from_the_padded_grid():
    """Image 60, window 5: stage grids 15, 8, 4, 2 as the padding makes them (rounded up, as timm and the
    official-layout buffers swinzoo converts are sized); transformers' Swinv2 sizes them from 15, 7, 3, 1 and
    so differs here (docs/geometry.md says why swinzoo does not follow it)."""
    import transformers

    config = tiny_config(2, image_size=60, window_size=5)
    assert [config.stage_window(i) for i in range(4)] == [(5, True), (5, True), (4, False), (2, False)]
    hf = transformers_twin(random_model(SwinForImageClassification, config, seed=20))
    assert isinstance(hf, transformers.Swinv2ForImageClassification)
    assert [layer.blocks[0].window_size for layer in hf.swinv2.encoder.layers] == [5, 5, 3, 1]


@pytest.mark.parametrize("size", [(20, 20), (12, 28), (8, 8)])
def test_v2_inputs_smaller_than_a_window_keep_the_configured_shift_as_transformers(size):
    model = random_model(SwinForImageClassification, tiny_config(2, image_size=128, window_size=8), seed=21)
    hf = transformers_twin(model)
    x = images(2, *size)
    with torch.no_grad():
        assert max_diff(model(x).logits, hf(x).logits) <= TOL


@pytest.mark.parametrize("version", [1, 2])
def test_layer_norm_eps_applies_where_transformers_applies_it(version):
    """eps 0.1 (a large value makes the difference visible): block norms and the final norm read it; the
    embedding and merging norms keep LayerNorm's default, as in transformers."""
    model = random_model(SwinForImageClassification, tiny_config(version, image_size=128, layer_norm_eps=0.1), 22)
    hf = transformers_twin(model)
    x = images(2, 128, 128)
    with torch.no_grad():
        mine, theirs = model(x, output_hidden_states=True), hf(x, output_hidden_states=True)
    assert max_diff(mine.logits, theirs.logits) <= TOL
    for a, b in zip(mine.hidden_states, theirs.hidden_states, strict=True):
        assert max_diff(a, b) <= TOL
