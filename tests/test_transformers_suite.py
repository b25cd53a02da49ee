"""transformers' own Swin / Swinv2 / backbone test suites, their behavioural checks re-written against swinzoo.

Ported from ``tests/models/swin/test_modeling_swin.py``, ``tests/models/swinv2/test_modeling_swinv2.py``,
``tests/test_backbone_common.py`` and the parts of ``tests/test_modeling_common.py`` those classes inherit
(transformers 5.x). The checks are written here, not copied; they reach swinzoo's classes through
:class:`Adapter`, which maps transformers' names onto swinzoo's and does nothing else. After them, numerics
against transformers holding the same weights (``conftest.transformers_twin``).

Checks of those files that do not apply, and why (each is a test of transformers' machinery, not of Swin):
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from conftest import TOL, max_diff, random_model, tiny_config, transformers_backbone_twin, transformers_twin

from swinzoo.config import SwinConfig
from swinzoo.modeling import SwinBackbone, SwinForImageClassification, SwinForMaskedImageModeling, SwinModel

NOT_APPLICABLE = {
    "test_inputs_embeds": "Swin takes pixel_values only (transformers skips it for Swin too)",
    "test_feed_forward_chunking": "Swin has no feed-forward chunking (skipped by transformers for Swin too)",
    "test_resize_embeddings / test_resize_tokens_embeddings": "no token embeddings in a vision model",
    "test_tie_model_weights / test_tied_weights_keys": "no tied embeddings (get_output_embeddings is None)",
    "test_multi_gpu_data_parallel_forward": "skipped by transformers for Swin (CUDA misaligned address)",
    "test_sdpa_* / test_flash_attn_* / test_eager_matches_sdpa_*": "attention-backend dispatch of transformers' "
    "attention interface; swinzoo always runs SDPA and the eager maths when probabilities are asked for",
    "TF / Flax equivalence tests": "swinzoo is PyTorch only",
    "test_model_from_pretrained / integration tests": "download microsoft/* from the Hub (no network in CI); "
    "the converted checkpoints are checked by swinzoo verify instead",
    "test_pipeline_*": "transformers' pipelines dispatch on transformers' classes; swinzoo publishes a "
    "transformers-format folder for them (tests/test_ecosystem.py)",
    "test_torch_compile_* / test_generate_*": "generation and compile-time caches of text models",
    "test_headmasking": "transformers 5 removed head_mask from Swin; swinzoo keeps it (tests/test_model_behaviour.py)",
    "test_can_load_with_device_context_manager / _with_meta_device / test_model_parallelism": "accelerate "
    "big-model machinery; a swinzoo model lives on one device",
    "test_save_load_fast_init_*": "transformers' _fast_init loading; swinzoo builds on the meta device always",
    "ConfigTester's embed_dim=37": "swinzoo's config refuses a stage width its heads do not divide (37 / 3) when "
    "it is made, where transformers fails later, building the model; the same checks run with embed_dim=36",
    "numerics: v1 at inputs whose grid fits one window where the configured one does not (and v1 backbone "
    "stages the configured size clamps)": "transformers' Swin v1 decides shifts from the input (its backbone "
    "never clamps); swinzoo fixes them at construction for v1 and v2 alike (docs/geometry.md)",
}
__doc__ += "".join(f"\n* {k}: {v}" for k, v in NOT_APPLICABLE.items())


class Adapter:
    """transformers' names for swinzoo's classes, config and output fields: names only, no behaviour."""

    CLASSES = {
        "SwinModel": SwinModel,
        "SwinForImageClassification": SwinForImageClassification,
        "SwinForMaskedImageModeling": SwinForMaskedImageModeling,
        "SwinBackbone": SwinBackbone,
    }
    FIELDS = {"SwinForMaskedImageModeling": {"logits": "reconstruction"}}  # transformers' deprecated alias

    def __init__(self, version: int) -> None:
        self.version = version
        self.prefix = "Swin" if version == 1 else "Swinv2"

    def config(self, **fields: Any) -> SwinConfig:
        """``transformers.SwinConfig(...)`` / ``Swinv2Config(...)``."""
        return SwinConfig(version=self.version, **fields)

    def classes(self) -> list[tuple[str, type]]:
        return [(name.replace("Swin", self.prefix, 1), cls) for name, cls in self.CLASSES.items()]

    @staticmethod
    def field(out: Any, model: Any, name: str) -> Any:
        return getattr(out, Adapter.FIELDS.get(type(model).__name__, {}).get(name, name))


class Tester:
    """transformers' SwinModelTester / Swinv2ModelTester settings."""

    batch_size = 13
    image_size = 32
    patch_size = 2
    num_channels = 3
    embed_dim = 16
    depths = [1, 2, 1]
    num_heads = [2, 2, 4]
    window_size = 2
    type_sequence_label_size = 10

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter

    def config(self, **changes: Any) -> SwinConfig:
        fields = dict(
            image_size=self.image_size, patch_size=self.patch_size, num_channels=self.num_channels,
            embed_dim=self.embed_dim, depths=self.depths, num_heads=self.num_heads, window_size=self.window_size,
            mlp_ratio=2.0, qkv_bias=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
            drop_path_rate=0.1, hidden_act="gelu", use_absolute_embeddings=False, layer_norm_eps=1e-5,
            initializer_range=0.02, encoder_stride=8, out_features=["stage1", "stage2"], out_indices=[1, 2],
        )  # fmt: skip
        fields.update(changes)
        return self.adapter.config(**fields)

    def pixels(self, channels: int = 3, size: int | None = None, seed: int = 0) -> torch.Tensor:
        size = size or self.image_size
        g = torch.Generator().manual_seed(seed)
        return torch.rand(self.batch_size, channels, size, size, generator=g)

    def labels(self, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, self.type_sequence_label_size, (self.batch_size,), generator=g)


@pytest.fixture(params=[1, 2], ids=["swin", "swinv2"])
def tester(request) -> Tester:
    return Tester(Adapter(request.param))


pytestmark = pytest.mark.usefixtures("small_model_threads")


def inputs_for(model: Any, tester: Tester, **extra: Any) -> dict[str, Any]:
    """transformers' _prepare_for_class: pixel_values, plus labels for the classifier when asked."""
    return {"pixel_values": tester.pixels(tester.num_channels), **extra}


# --------------------------------------------------------------------------------------------- test_modeling_swin(v2)
def test_model(tester):
    config = tester.config()
    model = SwinModel(config).eval()
    with torch.no_grad():
        result = model(tester.pixels())
    seq = ((config.image_size // config.patch_size) ** 2) // (4 ** (len(config.depths) - 1))
    dim = int(config.embed_dim * 2 ** (len(config.depths) - 1))
    assert result.last_hidden_state.shape == (tester.batch_size, seq, dim)


def test_backbone(tester):
    config = tester.config()
    model = SwinBackbone(config).eval()
    with torch.no_grad():
        result = model(tester.pixels())
    assert len(result.feature_maps) == len(config.out_features)
    assert list(result.feature_maps[0].shape) == [tester.batch_size, model.channels[0], 16, 16]
    assert len(model.channels) == len(config.out_features)
    config.out_features = None
    model = SwinBackbone(config).eval()
    with torch.no_grad():
        result = model(tester.pixels())
    assert len(result.feature_maps) == 1 and len(model.channels) == 1
    assert list(result.feature_maps[0].shape) == [tester.batch_size, model.channels[-1], 4, 4]


def test_for_masked_image_modeling(tester):
    model = SwinForMaskedImageModeling(tester.config()).eval()
    with torch.no_grad():
        out = model(tester.pixels())
    assert Adapter.field(out, model, "logits").shape == (tester.batch_size, 3, tester.image_size, tester.image_size)
    model = SwinForMaskedImageModeling(tester.config(num_channels=1)).eval()  # greyscale
    with torch.no_grad():
        out = model(tester.pixels(1))
    assert Adapter.field(out, model, "logits").shape == (tester.batch_size, 1, tester.image_size, tester.image_size)


def test_for_image_classification(tester):
    config = tester.config()
    config.num_labels = tester.type_sequence_label_size
    model = SwinForImageClassification(config).eval()
    with torch.no_grad():
        result = model(tester.pixels(), labels=tester.labels())
    assert result.logits.shape == (tester.batch_size, tester.type_sequence_label_size)
    config = tester.config(num_channels=1, num_labels=tester.type_sequence_label_size)  # greyscale
    with torch.no_grad():
        result = SwinForImageClassification(config).eval()(tester.pixels(1))
    assert result.logits.shape == (tester.batch_size, tester.type_sequence_label_size)


def test_model_get_set_embeddings(tester):
    for _, cls in tester.adapter.classes():
        model = cls(tester.config())
        assert isinstance(model.get_input_embeddings(), torch.nn.Module)
        out = model.get_output_embeddings()
        assert out is None or isinstance(out, torch.nn.Linear)


def test_attention_outputs(tester):
    for name, cls in tester.adapter.classes():
        config = tester.config()
        model = cls(config).eval()
        with torch.no_grad():
            out = model(**inputs_for(model, tester, output_attentions=True, output_hidden_states=False))
        assert len(out.attentions) == len(tester.depths), name
        config.output_attentions = True  # through the config
        model = cls(config).eval()
        with torch.no_grad():
            out = model(**inputs_for(model, tester))
        assert len(out.attentions) == len(tester.depths)
        window_sq = config.window_size**2
        assert list(out.attentions[0].shape[-3:]) == [tester.num_heads[0], window_sq, window_sq]
        out_len = len(out)
        with torch.no_grad():
            out = cls(config).eval()(**inputs_for(model, tester, output_attentions=True, output_hidden_states=True))
        added = 1 if name.endswith("Backbone") else 2  # hidden states (+ reshaped ones)
        assert out_len + added == len(out), name
        assert list(out.attentions[0].shape[-3:]) == [tester.num_heads[0], window_sq, window_sq]


def check_hidden_states(tester, config, cls, image_hw, **inputs):
    model = cls(config).eval()
    with torch.no_grad():
        out = model(**inputs_for(model, tester, **inputs))
    assert len(out.hidden_states) == len(tester.depths) + 1
    num_patches = (image_hw[1] // config.patch_size) * (image_hw[0] // config.patch_size)
    assert list(out.hidden_states[0].shape[-2:]) == [num_patches, tester.embed_dim]
    if not cls.__name__.endswith("Backbone"):
        assert len(out.reshaped_hidden_states) == len(tester.depths) + 1
        b, c, h, w = out.reshaped_hidden_states[0].shape
        assert list(out.reshaped_hidden_states[0].view(b, c, h * w).permute(0, 2, 1).shape[-2:]) == [
            num_patches,
            tester.embed_dim,
        ]


def test_hidden_states_output(tester):
    for _, cls in tester.adapter.classes():
        config = tester.config()
        check_hidden_states(tester, config, cls, (32, 32), output_hidden_states=True)
        config.output_hidden_states = True
        check_hidden_states(tester, config, cls, (32, 32))


def test_hidden_states_output_with_padding(tester):
    for _, cls in tester.adapter.classes():
        config = tester.config(patch_size=3)
        padded = 32 + 3 - 32 % 3
        check_hidden_states(tester, config, cls, (padded, padded), output_hidden_states=True)
        config.output_hidden_states = True
        check_hidden_states(tester, config, cls, (padded, padded))


def test_inference_interpolate_pos_encoding(tester):
    """transformers' integration test at 481 pixels, on a random model with absolute positions (no download):
    the keyword is accepted and the positions follow the input (swinzoo always interpolates)."""
    model = SwinModel(tester.config(use_absolute_embeddings=True)).eval()
    with torch.no_grad():
        out = model(tester.pixels(size=50)[:1], interpolate_pos_encoding=True)
    assert out.last_hidden_state.shape == (1, 7 * 7, 64)  # 50 / 2 = 25, then 13, 7


# --------------------------------------------------------------------------------------------- ConfigTester
def test_config_common_properties_and_round_trips(tester, tmp_path):
    config = tester.adapter.config(embed_dim=36)  # 37 in transformers: see NOT_APPLICABLE
    for prop in ("image_size", "patch_size", "num_channels"):
        assert hasattr(config, prop)
    config.num_channels = 1  # settable, as transformers' common properties
    assert config.num_channels == 1
    assert SwinConfig.from_json_file(_written(config, tmp_path / "c.json")) == config
    config.save_pretrained(tmp_path / "saved")
    assert SwinConfig.from_pretrained(tmp_path / "saved") == config
    with_labels = tester.adapter.config(num_labels=5)
    assert len(with_labels.id2label) == 5 and len(with_labels.label2id) == 5
    with_labels.num_labels = 3
    assert len(with_labels.id2label) == 3 and len(with_labels.label2id) == 3
    assert tester.adapter.config().embed_dim == 96  # init without parameters
    common = dict(output_hidden_states=True, output_attentions=True, return_dict=False, problem_type="regression")
    config = tester.adapter.config(**common)
    assert all(getattr(config, k) == v for k, v in common.items())


def _written(config: SwinConfig, path):
    config.to_json_file(path)
    return path


# --------------------------------------------------------------------------------------------- ModelTesterMixin
def test_save_load(tester, tmp_path):
    for name, cls in tester.adapter.classes():
        model = cls(tester.config()).eval()
        x = tester.pixels()
        with torch.no_grad():
            before = model(x).to_tuple()[0]
        model.save_pretrained(tmp_path / name)
        loaded = cls.from_pretrained(tmp_path / name)
        with torch.no_grad():
            after = loaded(x).to_tuple()[0]
        before, after = (t[0] if isinstance(t, tuple) else t for t in (before, after))
        assert max_diff(before, after) <= 1e-5, name


def test_determinism(tester):
    for name, cls in tester.adapter.classes():
        model = cls(tester.config()).eval()
        with torch.no_grad():
            a, b = model(tester.pixels()).to_tuple()[0], model(tester.pixels()).to_tuple()[0]
        a, b = (t[0] if isinstance(t, tuple) else t for t in (a, b))
        assert torch.equal(a, b), name


def test_forward_signature(tester):
    for name, cls in tester.adapter.classes():
        assert list(inspect.signature(cls.forward).parameters)[1] == "pixel_values", name
        assert cls.main_input_name == "pixel_values"


def test_training(tester):
    config = tester.config(num_labels=tester.type_sequence_label_size)
    for cls in (SwinForImageClassification, SwinForMaskedImageModeling):
        model = cls(config).train()
        if cls is SwinForImageClassification:
            loss = model(tester.pixels(), labels=tester.labels()).loss
        else:
            mask = torch.rand(tester.batch_size, 256, generator=torch.Generator().manual_seed(2)) < 0.5
            loss = model(tester.pixels(), bool_masked_pos=mask).loss
        loss.backward()


def test_training_gradient_checkpointing(tester):
    config = tester.config(num_labels=tester.type_sequence_label_size, drop_path_rate=0.0)
    model = SwinForImageClassification(config).train()
    assert model.supports_gradient_checkpointing
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert model.is_gradient_checkpointing
    model(tester.pixels(), labels=tester.labels()).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name


def test_retain_grad_hidden_states_attentions(tester):
    config = tester.config(output_hidden_states=True, output_attentions=True, drop_path_rate=0.0)
    model = SwinModel(config).train()
    out = model(tester.pixels())
    hidden, attention = out.hidden_states[0], out.attentions[0]
    hidden.retain_grad()
    attention.retain_grad()
    out.last_hidden_state.flatten()[0].backward(retain_graph=True)
    assert hidden.grad is not None and attention.grad is not None


def test_model_outputs_equivalence(tester):
    """return_dict=False tuples equal the dict outputs, whatever is asked for."""
    for name, cls in tester.adapter.classes():
        model = cls(tester.config()).eval()
        for extra in ({}, {"output_hidden_states": True}, {"output_attentions": True}):
            with torch.no_grad():
                as_tuple = model(tester.pixels(), return_dict=False, **extra)
                as_dict = model(tester.pixels(), return_dict=True, **extra).to_tuple()
            assert type(as_tuple) is tuple and len(as_tuple) == len(as_dict), (name, extra)
            for a, b in zip(_flat(as_tuple), _flat(as_dict), strict=True):
                assert torch.equal(a, b), (name, extra)


def _flat(values) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for v in values:
        out += _flat(v) if isinstance(v, tuple) else [v]
    return out


@pytest.mark.parametrize(
    ("problem_type", "num_labels", "dtype"),
    [
        ("multi_label_classification", 2, torch.float),
        ("single_label_classification", 1, torch.long),
        ("regression", 1, torch.float),
    ],
)
def test_problem_types(tester, problem_type, num_labels, dtype):
    config = tester.config(problem_type=problem_type, num_labels=num_labels)
    model = SwinForImageClassification(config).train()
    labels = tester.labels().to(dtype) if dtype == torch.long else torch.rand(tester.batch_size, num_labels)
    if problem_type == "single_label_classification":
        labels = torch.zeros(tester.batch_size, dtype=torch.long)  # one class: index 0
    if problem_type == "regression":
        labels = labels.squeeze(-1)
    model(tester.pixels(), labels=labels).loss.backward()


def test_batching_equivalence(tester):
    """One image alone gives what it gives inside the batch (eval)."""
    for name, cls in tester.adapter.classes():
        model = cls(tester.config()).eval()
        x = tester.pixels()
        with torch.no_grad():
            batched, single = _flat(model(x).to_tuple()), _flat(model(x[:1]).to_tuple())
        for a, b in zip(batched, single, strict=True):
            assert max_diff(a[:1], b) <= 1e-5, name


def test_initialization(tester):
    """transformers' _config_zero_init check: with initializer_range ~0, every parameter initialises to a mean
    of 0 or 1 (LayerNorm weights), so nothing is left uninitialised."""
    config = tester.config(initializer_range=1e-10)
    for name, cls in tester.adapter.classes():
        model = cls(config)
        for key, p in model.named_parameters():
            if key.endswith("logit_scale") or "cpb_mlp" in key:  # v2: log(10) by design; the MLP is torch's init
                continue
            mean = ((p.data.mean() * 1e9).round() / 1e9).item()
            assert mean in (0.0, 1.0), (name, key, mean)


def test_load_with_mismatched_shapes(tester, tmp_path):
    import swinzoo
    from swinzoo.loading import LoadError

    SwinForImageClassification(tester.config(num_labels=10)).save_pretrained(tmp_path / "m")
    with pytest.raises(LoadError, match="ignore_mismatched_sizes"):
        swinzoo.from_pretrained(tmp_path / "m", num_labels=42)
    model = swinzoo.from_pretrained(tmp_path / "m", num_labels=42, ignore_mismatched_sizes=True)
    with torch.no_grad():
        assert model(tester.pixels()).logits.shape == (tester.batch_size, 42)


# --------------------------------------------------------------------------------------------- BackboneTesterMixin
def test_backbone_common_attributes(tester):
    model = SwinBackbone(tester.config())
    assert hasattr(model, "stage_names") and hasattr(model, "num_features") and hasattr(model, "out_indices")
    assert hasattr(model, "out_features") and hasattr(model, "config") and hasattr(model, "channels")
    assert len(model.stage_names) == len(model.num_features)
    assert len(model.channels) <= len(model.num_features)
    assert len(model.out_indices) == len(model.out_features)
    assert [model.stage_names[i] for i in model.out_indices] == model.out_features


def test_backbone_config_out_features_and_indices(tester):
    config = tester.config(out_features=None, out_indices=None)
    assert config.out_features == [config.stage_names[-1]] and config.out_indices == [len(config.stage_names) - 1]
    config = tester.config(out_features=None, out_indices=[-2, -1])
    assert config.out_features == ["stage2", "stage3"] and config.out_indices == [2, 3]


def test_backbone_outputs(tester):
    model = SwinBackbone(tester.config()).eval()
    with torch.no_grad():
        out = model(tester.pixels(), output_hidden_states=True, output_attentions=True)
    assert len(out.feature_maps) == len(model.channels) == len(model.out_features)
    for fmap, c in zip(out.feature_maps, model.channels, strict=True):
        assert fmap.shape[:2] == (tester.batch_size, c)
    assert len(out.hidden_states) == len(model.stage_names)
    assert len(out.attentions) == len(tester.depths)


def test_backbone_stage_selection(tester):
    config = tester.config(out_features=None, out_indices=[-2, -1])
    model = SwinBackbone(config).eval()
    with torch.no_grad():
        out = model(tester.pixels())
    assert model.out_features == config.out_features == ["stage2", "stage3"]
    assert len(out.feature_maps) == 2
    assert [f.shape[1] for f in out.feature_maps] == model.channels == [32, 64]


def test_create_from_modified_config(tester):
    for out_indices in ([-1], [0, 1]):
        config = tester.config(out_features=None, out_indices=out_indices)
        model = SwinBackbone(config).eval()
        with torch.no_grad():
            out = model(tester.pixels())
        assert len(out.feature_maps) == len(model.channels) == len(out_indices)


def test_forward_signature_backbone(tester):
    assert list(inspect.signature(SwinBackbone.forward).parameters)[1] == "pixel_values"


# --------------------------------------------------------------------------------------------- numerics vs transformers
GEOMETRIES = {  # (configured size, window, input h, input w)
    "official-like": (128, 4, 128, 128),  # stage grids 32, 16, 8, 4 (the last one window): 224/7's proportions
    "odd": (128, 4, 116, 116),  # grids 29, 15, 8, 4: odd before two merges
    "non-square": (128, 4, 144, 128),  # grids 36x32, 18x16, 9x8, 5x4
    "small": (128, 4, 24, 20),  # grids 6x5 and below: smaller than a window after stage 1
}


def _cases():
    for version in (1, 2):
        for name, geometry in GEOMETRIES.items():
            if version == 1 and name == "small":
                continue  # transformers' v1 re-decides the shift from the input (docs/geometry.md)
            yield pytest.param(version, geometry, id=f"v{version}-{name}")


@pytest.mark.parametrize(("version", "geometry"), list(_cases()))
def test_classification_outputs_equal_transformers(version, geometry):
    size, window, h, w = geometry
    model = random_model(SwinForImageClassification, tiny_config(version, image_size=size, window_size=window), 30)
    hf = transformers_twin(model)
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([1, 6])
    kwargs = dict(labels=labels, output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        mine, theirs = model(x, **kwargs), hf(x, **kwargs)
    assert max_diff(mine.logits, theirs.logits) <= TOL
    assert abs(mine.loss.item() - theirs.loss.item()) <= TOL
    for part in ("hidden_states", "reshaped_hidden_states", "attentions"):
        ours, ref = getattr(mine, part), getattr(theirs, part)
        assert len(ours) == len(ref), part
        for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
            assert max_diff(a, b) <= TOL, f"{part}[{i}]"


@pytest.mark.parametrize("version", [1, 2])
def test_reconstruction_and_loss_equal_transformers(version):
    model = random_model(SwinForMaskedImageModeling, tiny_config(version, image_size=128), seed=31)
    hf = transformers_twin(model, "masked-image-modeling")
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    mask = torch.rand(2, 32 * 32, generator=torch.Generator().manual_seed(5)) < 0.6
    with torch.no_grad():
        mine, theirs = model(x, bool_masked_pos=mask), hf(x, bool_masked_pos=mask)
    assert max_diff(mine.reconstruction, theirs.reconstruction) <= TOL
    assert abs(mine.loss.item() - theirs.loss.item()) <= TOL


@pytest.mark.parametrize("size", [(160, 160), (148, 132)])
@pytest.mark.parametrize("version", [1, 2])
def test_feature_maps_equal_transformers_backbone(version, size):
    """Configured at 160 (grids 40, 20, 10, 5: every stage shifted), run at 160 and at an odd non-square size."""
    config = tiny_config(version, image_size=160, out_features=["stage1", "stage2", "stage3", "stage4"])
    model = random_model(SwinBackbone, config, seed=32)
    hf = transformers_backbone_twin(model)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        mine, theirs = model(x), hf(x)
    for i, (a, b) in enumerate(zip(mine.feature_maps, theirs.feature_maps, strict=True)):
        if version == 2:  # transformers' Swinv2Backbone has no stage norms: swinzoo's are applied to its maps
            norm = model.stage_norms[model.out_features[i]]
            b = norm(b.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert max_diff(a, b) <= TOL, f"feature map {i}"
