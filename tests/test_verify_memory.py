"""verify's memory discipline: references built on the meta device take the source's tensors as their weights (one
copy), their non-persistent buffers are the ones the library builds on the CPU, and nothing is left unfilled;
synthetic files are built without a second copy and hold what timm's CPU-built model randomised would."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import max_diff, random_model, tiny_config
from safetensors.torch import load_file

from swinzoo.convert import convert
from swinzoo.converters.timm_layout import create_timm_model
from swinzoo.converters.transformers_layout import create_transformers_model
from swinzoo.loading import from_pretrained, save_pretrained
from swinzoo.meta_device import MetaDeviceError, build_on_meta, check_filled, materialize_buffers
from swinzoo.modeling import SwinForImageClassification
from swinzoo.synthetic import official_state_dict, randomize_state, write_official_checkpoint
from swinzoo.verify.official_state import load_official_state
from swinzoo.verify.references.timm import _load_timm
from swinzoo.verify.references.transformers import _load_transformers

CONFIGS = {
    "v1": (tiny_config(1, image_size=128), "official-swin"),  # window 4 in every stage
    "v2": (tiny_config(2, image_size=128, pretrained_window_sizes=[2, 2, 2, 0]), "official-swinv2"),
}


def _ctx(config, path: Path, task: str = "image-classification") -> SimpleNamespace:
    return SimpleNamespace(config=config, task=task, source_path=path, dtype=torch.float32, retarget=None)


def _buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.named_buffers() if v is not None}


def _assert_same_buffers(got: torch.nn.Module, want: torch.nn.Module) -> None:
    mine, theirs = _buffers(got), _buffers(want)
    assert sorted(mine) == sorted(theirs)
    for name, value in theirs.items():
        assert not mine[name].is_meta, name
        assert mine[name].dtype == value.dtype and torch.equal(mine[name], value), name


@pytest.mark.parametrize("version", list(CONFIGS))
def test_timm_reference_takes_the_source_tensors_and_rebuilds_timms_cpu_buffers(version, tmp_path):
    config, layout = CONFIGS[version]
    path = write_official_checkpoint(tmp_path / "ckpt.pth", config, layout, training_state=False)
    official = load_official_state(_ctx(config, path))
    model = _load_timm(_ctx(config, path), official)
    # the weights are the source's tensors themselves (assign), not a copy into a second model
    assert model.patch_embed.proj.weight.data_ptr() == official["patch_embed.proj.weight"].data_ptr()
    assert (
        model.layers[1].blocks[0].mlp.fc1.weight.data_ptr() == official["layers.1.blocks.0.mlp.fc1.weight"].data_ptr()
    )
    _assert_same_buffers(model, create_timm_model(config))  # timm's own eager construction on the CPU
    assert any(n.endswith("attn_mask") for n in _buffers(model))  # the shifted blocks' masks are among them


@pytest.mark.parametrize("version", list(CONFIGS))
def test_transformers_reference_takes_the_mapped_file_and_rebuilds_its_cpu_buffers(version, tmp_path):
    config, layout = CONFIGS[version]
    path = write_official_checkpoint(tmp_path / "ckpt.pth", config, layout, training_state=False)
    model = _load_transformers(_ctx(config, path))
    _assert_same_buffers(model, create_transformers_model(config))
    # weights assigned from the memory-mapped file: the file's values, in the file's pages (no copy of their own)
    base = model.swin if version == "v1" else model.swinv2
    weight = base.embeddings.patch_embeddings.projection.weight
    assert torch.equal(weight, official_state_dict(config, layout)["patch_embed.proj.weight"])
    assert _mapped_from(path, weight.data_ptr())


def _mapped_from(path: Path, address: int) -> bool:
    """Whether ``address`` is in a mapping of ``path`` (/proc/self/maps: ``start-end perms offset dev inode file``)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == str(path.resolve()):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return True
    return False


def test_a_buffer_the_library_does_not_fill_after_a_meta_build_is_an_error():
    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(3))
            self.register_buffer("index", torch.arange(4), persistent=False)
            self.register_buffer("table", torch.zeros(2), persistent=False)

    model = build_on_meta(Holder)
    model.load_state_dict({"weight": torch.ones(3)}, assign=True)
    rebuilt = materialize_buffers(model)
    model.index.copy_(torch.arange(4))  # the "library" fills one of the two
    with pytest.raises(MetaDeviceError, match=r"table not filled"):
        check_filled(model, rebuilt, "test model")
    model.table.zero_()
    check_filled(model, rebuilt, "test model")  # both filled: no error


def test_a_parameter_left_on_meta_is_an_error():
    model = build_on_meta(lambda: torch.nn.Linear(2, 2))
    with pytest.raises(MetaDeviceError, match=r"weight, bias not filled"):
        check_filled(model, [], "linear")


@pytest.mark.parametrize("version", list(CONFIGS))
def test_synthetic_state_is_timms_cpu_model_randomised_in_the_official_layout(version):
    config, layout = CONFIGS[version]
    timm_model = create_timm_model(config)  # the straightforward way: build on the CPU, then randomise a copy
    want = {
        re.sub(r"^head\.fc\.", "head.", re.sub(r"^layers\.(\d+)\.downsample\.", _prev, k)): v
        for k, v in randomize_state(timm_model.state_dict(), seed=5).items()
    }
    want |= {k: v for k, v in timm_model.named_buffers() if k.endswith(("index", "attn_mask", "coords_table"))}
    got = official_state_dict(config, layout, seed=5)
    assert list(got) == list(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


def _prev(m: re.Match) -> str:
    return f"layers.{int(m.group(1)) - 1}.downsample."


@pytest.mark.parametrize("version", [1, 2])
def test_a_converted_folder_loads_in_the_files_own_pages_with_its_buffers_rebuilt(version, tmp_path):
    """verify --converted loads the folder with from_pretrained: the weights stay in the memory-mapped
    model.safetensors (no copy of their own), the non-persistent buffers are rebuilt, the outputs are the saved
    model's."""
    saved = random_model(SwinForImageClassification, tiny_config(version), seed=3)
    folder = save_pretrained(saved, tmp_path / "model")
    loaded = from_pretrained(folder)
    weights = folder / "model.safetensors"
    unmapped = [name for name, p in loaded.named_parameters() if not _mapped_from(weights, p.data_ptr())]
    assert unmapped == []
    _assert_same_buffers(loaded, saved)  # relative position index / coords table / shift masks, on the CPU
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert max_diff(loaded(x).logits, saved(x).logits) <= 1e-5  # last bits only: the mapped weights are
        # 4-byte aligned where the saved model's are 64-byte aligned, and MKL blocks a matmul by alignment


def test_convert_writes_the_mapped_source_tensors_without_copying_them(tmp_path):
    """convert's model holds the memory-mapped checkpoint's tensors (meta build + assign), and what it writes
    is those values: safetensors' own loader reads back the official file's weights."""
    config, layout = CONFIGS["v2"]
    path = write_official_checkpoint(tmp_path / "ckpt.pth", config, layout, training_state=False)
    result = convert(source=path, out_dir=tmp_path / "out", progress=False)
    weight = result.model.swin.patch_embed.proj.weight
    assert _mapped_from(path, weight.data_ptr())
    written = load_file(str(tmp_path / "out" / "model.safetensors"))
    official = official_state_dict(config, layout)
    assert torch.equal(written["swin.patch_embed.proj.weight"], official["patch_embed.proj.weight"])
    assert torch.equal(written["head.weight"], official["head.weight"])


@pytest.mark.parametrize("view", ["contiguous", "transposed", "strided", "row"])
def test_non_finite_values_are_counted_chunk_by_chunk(monkeypatch, view):
    """count_nonfinite checks a weight in chunks (no temporaries the size of the weight): NaN and Inf are
    counted wherever they sit, across chunk boundaries and in non-contiguous views."""
    import swinzoo.safeload as safeload

    monkeypatch.setattr(safeload, "FINITE_CHUNK", 64)  # many chunks for a 300 x 70 weight
    t = torch.randn(300, 70, generator=torch.Generator().manual_seed(0))
    t[::7, ::3] = float("nan")  # 43 rows x 24 columns
    t[299, 69] = float("inf")  # the very last element
    t[5, 4] = float("-inf")
    x = {"contiguous": t, "transposed": t.T, "strided": t[:, ::2], "row": t[294]}[view]
    # NaN rows 0, 7, ..., 294; even columns keep every 6th (12 of them) and the -inf at column 4
    want = {"contiguous": 43 * 24 + 2, "transposed": 43 * 24 + 2, "strided": 43 * 12 + 1, "row": 24}[view]
    assert safeload.count_nonfinite(x) == want
    assert safeload.count_nonfinite(torch.randn(3, 4)) == 0
