"""Shared helpers for the model tests: random weights, small configs and the reference models with mapped weights.

Kept small on purpose: building a timm or transformers model that holds exactly the weights of a swinzoo model
is what several test files need; everything else lives in the test that uses it.
"""

from __future__ import annotations

import os

import pytest
import torch

# Under pytest-xdist every worker would start as many torch threads as there are cores: share them out instead.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

from swinzoo.config import SwinConfig
from swinzoo.converters.engine import Fused, Rename, convert_state_dict, shapes_of
from swinzoo.converters.timm_layout import create_timm_model, timm_rules
from swinzoo.converters.transformers_layout import (
    create_transformers_model,
    detect_style,
    foreign_shapes,
    load_transformers_state,
    transformers_rules,
)
from swinzoo.modeling import SwinPreTrainedModel
from swinzoo.synthetic import randomize_state

TOL = 1e-4  # max |difference| allowed between swinzoo and a reference implementation, float32


def randomized(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Every floating tensor of ``state`` replaced by distinct random values of a sensible scale.

    LayerNorm weights ~ 1 + 0.1 N, biases 0.05 N, logit scales log(10) + 0.3 N, matrices N / sqrt(fan_in),
    relative position tables 0.5 N. Distinct values per tensor are what makes a misplaced tensor visible:
    with initial weights (ones, zeros) many tensors are interchangeable and a wrong mapping still "matches".
    """
    return randomize_state(state, seed)


def tiny_config(version: int = 1, **changes) -> SwinConfig:
    """A Swin of the real shape but tiny width, quick on a 2-core machine (no stochastic depth)."""
    base = dict(
        version=version,
        embed_dim=32,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=4,
        image_size=64,
        num_labels=7,
        drop_path_rate=0.0,
    )
    base.update(changes)
    return SwinConfig(**base)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| after checking the shapes agree (a shape mismatch is a failure, not a broadcast)."""
    assert tuple(a.shape) == tuple(b.shape), f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a.detach().double() - b.detach().double()).abs().max().item()


def random_model(cls: type[SwinPreTrainedModel], config: SwinConfig, seed: int = 0) -> SwinPreTrainedModel:
    """A swinzoo model in eval mode whose every tensor holds distinct random values."""
    model = cls(config).eval()
    model.load_state_dict(randomized(model.state_dict(), seed))
    return model


def timm_twin(model: SwinPreTrainedModel) -> torch.nn.Module:
    """timm's model of the same architecture holding exactly ``model``'s weights (classification only)."""
    reference = create_timm_model(model.config).eval()
    state, _ = convert_state_dict(model.state_dict(), timm_rules(), shapes_of(reference), to_swinzoo=False)
    reference.load_state_dict(state, strict=True)
    return reference


def transformers_twin(model: SwinPreTrainedModel, task: str = "image-classification") -> torch.nn.Module:
    """transformers' model of the same architecture holding exactly ``model``'s weights."""
    reference = create_transformers_model(model.config, task).eval()
    target = foreign_shapes(reference)  # transformers 4.x keeps computed buffers in its state dict
    rules = transformers_rules(model.config, task, style=detect_style(target))
    state, _ = convert_state_dict(model.state_dict(), rules, target, to_swinzoo=False)
    load_transformers_state(reference, state)
    return reference


# Why a test of transformers' Swin v1 forward with absolute positions cannot run under transformers 4.x.
NO_ABSOLUTE_POSITIONS_FORWARD = (
    "transformers 4.x's Swin v1 holds absolute positions as (1, 1 + N, C) with a class-token row and its "
    "SwinEmbeddings.forward adds them to the N patch tokens, which raises (5.x dropped the row)"
)


def transformers_positions_have_class_row() -> bool:
    """Whether the installed transformers' Swin v1 keeps a class-token row in its absolute positions (4.x),
    read off its own model (built on the meta device), not off its version number."""
    config = tiny_config(1, image_size=128, use_absolute_embeddings=True)
    with torch.device("meta"):
        model = create_transformers_model(config, "base")
    return model.embeddings.position_embeddings.shape[1] == (128 // 4) ** 2 + 1


def transformers_backbone_twin(model: SwinPreTrainedModel) -> torch.nn.Module:
    """transformers' SwinBackbone / Swinv2Backbone holding ``model``'s (a swinzoo SwinBackbone) weights.

    transformers_layout has no backbone task, so the rules are assembled here: the base-model rules under
    the ``swin.`` prefix (v1 in transformers 5) or at the top level (v2, and v1 in 4.x), and ``stage_norms`` <->
    ``hidden_states_norms`` (v1 only: transformers' Swinv2Backbone has no norms). The final LayerNorm is mapped
    where the installed model has one (5.x's SwinBackbone; not 4.x's, nor Swinv2Backbone).
    """
    import transformers

    from swinzoo.converters.transformers_layout import transformers_config

    config = model.config
    hf_config = transformers_config(config)
    hf_config.out_features = list(config.out_features)
    cls = transformers.SwinBackbone if config.version == 1 else transformers.Swinv2Backbone
    reference = cls(hf_config).eval()
    target = foreign_shapes(reference)
    rules = transformers_rules(config, "base", style=detect_style(target))
    source = {k.removeprefix("swin."): v for k, v in model.state_dict().items() if k.startswith("swin.")}
    if any(k.startswith("swin.") for k in target):
        rules = [_under_swin_prefix(r) for r in rules]
    if config.version == 1:
        rules += [Rename("stage_norms.{rest}", "hidden_states_norms.{rest}")]
        source.update({k: v for k, v in model.state_dict().items() if k.startswith("stage_norms.")})
    if not any(k.removeprefix("swin.").startswith("layernorm.") for k in target):
        source = {k: v for k, v in source.items() if not k.startswith("norm.")}
    state, _ = convert_state_dict(source, rules, target, to_swinzoo=False)
    load_transformers_state(reference, state)
    return reference


def _under_swin_prefix(rule):
    """A base-layout rule whose transformers side moves under the ``swin.`` prefix (as in SwinBackbone)."""
    if isinstance(rule, Rename):
        return Rename(rule.swinzoo, "swin." + rule.foreign, rule.transform)
    if isinstance(rule, Fused):
        return Fused(rule.swinzoo, tuple("swin." + f for f in rule.foreign), rule.dim)
    return rule


@pytest.fixture
def small_model_threads(request):
    """Tiny models are dominated by per-op overhead: one thread is faster, and far faster on a busy machine
    (thread hand-offs stall when other processes hold the cores). Real-size (slow) tests keep all threads."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
