"""torch.compile, torch.export, torch.jit.trace and ONNX export of SwinForImageClassification (v1 and v2).

Every compiled or exported model is compared with eager swinzoo (what a user switches from) and with timm
holding the same weights (an independent implementation). Traced graphs do not run the code eager inference
runs: they take the reference path (roll + view, the shift mask computed in the graph) where eager CPU inference
takes swinzoo.fast_inference's (cached window gathers, the eval bias cache, image groups; ``is_tracing()`` there
decides), so agreement is not circular.

Inputs are fixed-size (64x64 for the tiny configs): Swin's padding and shift clamps depend on the input size,
so an export specialises to it; only the batch dimension is exported as dynamic.
"""

from __future__ import annotations

import pytest
import torch
from conftest import TOL, max_diff, random_model, timm_twin, tiny_config

from swinzoo import fast_inference
from swinzoo.modeling import SwinForImageClassification

pytestmark = pytest.mark.usefixtures("small_model_threads")

SIZE = 64  # tiny_config's image size: stage grids 16, 8, 4, 2 with window 4 (shifted blocks in stages 1-2)


class Logits(torch.nn.Module):
    """The classifier as pixels -> logits tensor (exporters want tensors, not output dataclasses)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values).logits


def images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def model_of(version: int, seed: int) -> SwinForImageClassification:
    return random_model(SwinForImageClassification, tiny_config(version), seed=seed)


def assert_equals_eager_and_timm(model: torch.nn.Module, got: torch.Tensor, x: torch.Tensor) -> None:
    with torch.no_grad():
        eager = model(x).logits
        reference = timm_twin(model)(x)
    assert max_diff(got, eager) <= TOL
    assert max_diff(got, reference) <= TOL


def edit_position_bias_(model: SwinForImageClassification) -> None:
    """A random in-place edit of one shifted block's bias parameters (what the eval cache is keyed on)."""
    attn = model.swin.stages[0].blocks[1].attn
    param = attn.relative_position_bias_table if attn.version == 1 else attn.cpb_mlp[2].weight
    with torch.no_grad():
        param.add_(torch.randn(param.shape, generator=torch.Generator().manual_seed(5)))


# --------------------------------------------------------------------------------------------- torch.compile
@pytest.mark.parametrize("version", [1, 2])
def test_compiled_model_equals_eager_and_timm(version):
    # aot_eager traces exactly what inductor traces (dynamo + AOTAutograd, one graph, no breaks) without
    # compiling C++ kernels, which takes about a minute per model here (the inductor test below is slow).
    model = model_of(version, seed=30)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = images(2, seed=1)
    with torch.no_grad():
        got = compiled(x).logits
    assert_equals_eager_and_timm(model, got, x)


@pytest.mark.parametrize("version", [1, 2])
def test_compiled_model_follows_in_place_weight_edits(version):
    """The graph must read the bias parameters, not a tensor cached in Python before (or while) tracing."""
    model = model_of(version, seed=31)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = images(2, seed=2)
    with torch.no_grad():
        model(x)  # fills the eager cache first: compiling must not pick it up
        before = compiled(x).logits
        edit_position_bias_(model)
        after = compiled(x).logits
    assert max_diff(before, after) > 1e-3
    assert_equals_eager_and_timm(model, after, x)


@pytest.mark.slow
@pytest.mark.parametrize("version", [1, 2])
def test_inductor_compiled_model_equals_eager_and_timm(version):
    model = model_of(version, seed=32)
    compiled = torch.compile(model, backend="inductor", fullgraph=True)
    x = images(2, seed=3)
    with torch.no_grad():
        got = compiled(x).logits
    assert_equals_eager_and_timm(model, got, x)


# --------------------------------------------------------------------------------------------- torch.export, jit
@pytest.mark.parametrize("version", [1, 2])
def test_exported_program_with_dynamic_batch_equals_eager_and_timm(version):
    model = model_of(version, seed=33)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(Logits(model), (images(2, seed=4),), dynamic_shapes={"pixel_values": {0: batch}})
    x = images(3, seed=5)  # another batch size than the example the program was traced with
    with torch.no_grad():
        got = program.module()(x)
    assert_equals_eager_and_timm(model, got, x)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("version", [1, 2])
def test_jit_trace_under_no_grad_runs_other_batch_sizes(version, monkeypatch):
    """Traced in inference mode, where eager CPU inference loops over groups of images in Python (here one image
    per group, as at stage 1 of a 224 model): a trace that unrolled that loop would only fit its example batch."""
    monkeypatch.setattr(fast_inference, "GROUP_TOKENS", 1)
    model = model_of(version, seed=34)
    with torch.no_grad():
        traced = torch.jit.trace(Logits(model), (images(2, seed=6),), check_trace=False)
        x = images(5, seed=7)
        got = traced(x)
    assert_equals_eager_and_timm(model, got, x)


# --------------------------------------------------------------------------------------------- ONNX
@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2"])
def onnx_export(request, tmp_path_factory):
    """(model, path of its ONNX file): exported once per version with the dynamo-based exporter, batch 2."""
    pytest.importorskip("onnxscript")
    model = model_of(request.param, seed=40 + request.param)
    path = tmp_path_factory.mktemp("onnx") / f"swin_v{request.param}.onnx"
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: the function-scoped thread fixture does not cover it
    try:
        program = torch.onnx.export(
            Logits(model), (images(2, seed=8),), dynamo=True, input_names=["pixel_values"], output_names=["logits"]
        )
    finally:
        torch.set_num_threads(before)
    program.save(str(path))
    return model, path


def test_onnx_export_passes_the_checker_with_named_fixed_size_io(onnx_export):
    onnx = pytest.importorskip("onnx")
    model, path = onnx_export
    onnx.checker.check_model(str(path), full_check=True)  # full_check: also runs ONNX shape inference
    graph = onnx.load(str(path)).graph

    def dims(value_info):
        return [d.dim_value for d in value_info.type.tensor_type.shape.dim]

    assert [(i.name, dims(i)) for i in graph.input] == [("pixel_values", [2, 3, SIZE, SIZE])]
    assert [(o.name, dims(o)) for o in graph.output] == [("logits", [2, model.config.num_labels])]


def test_onnx_runtime_output_equals_eager_and_timm(onnx_export):
    ort = pytest.importorskip("onnxruntime")
    model, path = onnx_export
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = images(2, seed=9)  # not the example the graph was exported with
    (got,) = session.run(["logits"], {"pixel_values": x.numpy()})
    assert_equals_eager_and_timm(model, torch.from_numpy(got), x)
