"""Hostile and broken checkpoints (issue 11, loading part): each is generated here and given to
``swinzoo convert --source FILE --out DIR``; each must fail cleanly (one line naming the file or key, no
traceback, bounded memory and time, nothing written) or, where the file is legitimate but unusual
(deflate-compressed records, float64 weights), convert to exactly what torch's own reader sees.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from hostile import assert_clean_failure, leftovers, run_cli, tree_digest
from safetensors.torch import load_file
from test_verify import cache, zoo  # noqa: F401 - the tiny zoo and its synthetic cache, for verify

import swinzoo.safeload as safeload
from swinzoo import verify as V
from swinzoo.config import SwinConfig
from swinzoo.converters.official import ArchitectureError, deduce_architecture
from swinzoo.modeling import GEOMETRY_BUFFERS
from swinzoo.synthetic import official_state_dict

CONFIG = SwinConfig(
    version=1, image_size=64, embed_dim=16, depths=[1, 2, 2, 1], num_heads=[1, 2, 2, 4], window_size=4, num_labels=7
)
PLACEHOLDER = "ZZ-swinzoo-placeholder-ZZ"


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    """The ``model`` dict of a small official Swin checkpoint (built from timm's model, not swinzoo's)."""
    return official_state_dict(CONFIG, "official-swin", seed=3)


def save(path: Path, model: dict[str, torch.Tensor], **extras) -> Path:
    torch.save({"model": model, **extras}, path)
    return path


def convert_cli(tmp_path: Path, src: Path, *more: str, memory_mb: int = 1536):
    out = tmp_path / "out"
    return out, run_cli(
        "convert",
        "--source",
        src,
        "--out",
        out,
        "--cache-dir",
        tmp_path / "cache",
        "--quiet",
        *more,
        memory_mb=memory_mb,
    )


def refused(tmp_path: Path, src: Path, *needles: str, memory_mb: int = 1536) -> str:
    """convert must fail naming ``needles`` (and the file), touch nothing and leave nothing behind."""
    before = tree_digest(tmp_path)
    out, result = convert_cli(tmp_path, src, memory_mb=memory_mb)
    message = assert_clean_failure(result, src.name, *needles)
    assert not out.exists()
    after = {k: v for k, v in tree_digest(tmp_path).items() if not k.startswith("cache")}
    assert after == {k: v for k, v in before.items() if not k.startswith("cache")}
    assert leftovers(tmp_path) == []
    return message


def rezip(src: Path, dst: Path, *, compression=zipfile.ZIP_STORED, replace: dict[str, bytes] | None = None,
          zeros: dict[str, int] | None = None) -> Path:  # fmt: skip
    """Copy a torch.save archive record by record (as zip tools do), optionally deflating or replacing records.

    ``zeros`` replaces (or adds) records by name with that many zero bytes, deflated, written 1 MiB at a time."""
    replace, zeros = replace or {}, zeros or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            if info.filename in zeros:
                continue
            data = zin.read(info.filename)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new
            zout.writestr(info.filename, data, compress_type=compression)
        for name, size in zeros.items():
            record = zipfile.ZipInfo(name)
            record.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(record, "w", force_zip64=True) as f:
                chunk = bytes(1 << 20)
                for _ in range(size >> 20):
                    f.write(chunk)
    return dst


def archive_name(path: Path, suffix: str) -> str:
    with zipfile.ZipFile(path) as z:
        (name,) = [n for n in z.namelist() if n.endswith(suffix)]
        return name


def data_pkl(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(archive_name(path, "data.pkl"))


def with_opcodes(tmp_path: Path, state, name: str, opcodes: bytes, *, truncate: bool = False) -> Path:
    """A checkpoint whose pickle runs ``opcodes`` where a placeholder string stood (or ends there)."""
    plain = save(tmp_path / f"{name}.plain", state, extra=PLACEHOLDER)
    pkl = data_pkl(plain)
    encoded = PLACEHOLDER.encode()
    literal = b"X" + len(encoded).to_bytes(4, "little") + encoded
    assert pkl.count(literal) == 1
    head, tail = pkl.split(literal)
    new = head + opcodes + (b"" if truncate else tail)
    out = rezip(plain, tmp_path / f"{name}.pth", replace={"data.pkl": new})
    plain.unlink()
    return out


def _converted_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


# ------------------------------------------------------------------------------------------- 1. compressed zips
def test_deflated_checkpoint_converts_to_the_same_weights_as_the_stored_one(tmp_path, state):
    stored = save(tmp_path / "stored.pth", state)
    deflated = rezip(stored, tmp_path / "deflated.pth", compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(deflated) as z:  # the file really is compressed, and torch's own reader agrees
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    plain = torch.load(deflated, weights_only=True, mmap=False)["model"]
    assert all(torch.equal(plain[k], v) for k, v in state.items())

    out_a, ok_a = convert_cli(tmp_path / "a", stored)
    out_b, ok_b = convert_cli(tmp_path / "b", deflated)
    assert ok_a.exit_code == 0 and ok_b.exit_code == 0, ok_b.output
    a, b = _converted_weights(out_a), _converted_weights(out_b)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    notes = json.loads((out_b / "conversion.json").read_text())["notes"]
    assert any("deflate-compressed" in n for n in notes)


def test_zip_whose_pickle_inflates_to_1_gib_is_refused_before_reading(tmp_path, state):
    plain = save(tmp_path / "plain.pth", state)
    bomb = rezip(plain, tmp_path / "pklbomb.pth", zeros={archive_name(plain, "data.pkl"): 1 << 30})
    assert bomb.stat().st_size < 3 * 1024 * 1024
    refused(tmp_path, bomb, "data.pkl", str(1 << 30), memory_mb=512)


def test_tensor_record_inflating_600_mb_from_600_kb_is_refused(tmp_path, state):
    plain = save(tmp_path / "plain.pth", state)
    record = archive_name(plain, "/data/0")
    bomb = rezip(plain, tmp_path / "recbomb.pth", zeros={record: 600 << 20})
    refused(tmp_path, bomb, record, "decompression bomb", memory_mb=512)


def test_verify_catches_a_loader_whose_mmap_path_returns_wrong_tensors(zoo, cache, monkeypatch):  # noqa: F811
    """The timm reference reads the source without mmap, so a bug in the path convert used cannot hide; the
    transformers reference shares the mmap path (its tensors are the file's pages) and so agrees with swinzoo."""
    real_load = torch.load

    def corrupting_load(*args, **kwargs):
        obj = real_load(*args, **kwargs)
        if kwargs.get("mmap") and isinstance(obj, dict) and "model" in obj:
            obj["model"] = {k: v * 1.01 if k.endswith("weight") else v for k, v in obj["model"].items()}
        return obj

    monkeypatch.setattr(safeload.torch, "load", corrupting_load)
    report = V.verify_entry("tiny-swinv2", synthetic=True, cache_dir=cache)
    assert report.status == "fail", json.dumps(report.to_dict())[:3000]
    assert {r.reference: r.status for r in report.references} == {"timm": "fail", "transformers": "pass"}


# ------------------------------------------------------------------------------------------- 2. dtypes, values
def test_float64_checkpoint_converts_to_float32_and_says_so(tmp_path, state):
    wide = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    src = save(tmp_path / "f64.pth", wide)
    out, result = convert_cli(tmp_path, src)
    assert result.exit_code == 0, result.output
    conversion = json.loads((out / "conversion.json").read_text())
    assert conversion["dtype"] == "float32"
    assert any("float64" in n and "float32" in n for n in conversion["notes"])
    got = _converted_weights(out)
    assert got["head.weight"].dtype == torch.float32
    assert torch.equal(got["head.weight"], wide["head.weight"].float())


def _quantised(t: torch.Tensor) -> torch.Tensor:
    return torch.quantize_per_tensor(t.float(), 0.1, 0, torch.qint8)


BAD_TENSORS = {
    "complex": (lambda t: t.to(torch.complex64), "dtype"),
    "float8": (lambda t: t.to(torch.float8_e4m3fn), "dtype"),
    "int32": (lambda t: t.to(torch.int32), "integer/bool"),
    "bool": (lambda t: t > 0, "integer/bool"),
    "quantised": (_quantised, "quantised"),
    "sparse": (lambda t: t.to_sparse(), "layout"),
    "meta": (lambda t: torch.empty(t.shape, device="meta"), "meta"),
    "stride0": (lambda t: torch.zeros(1).expand(t.shape), "overlapping strides"),
    "nan": (lambda t: t.clone().index_fill_(1, torch.tensor([0, 2, 5]), float("nan")), "21 NaN/infinite values"),
    "inf": (lambda t: t.clone().index_fill_(0, torch.tensor([1]), float("-inf")), "128 NaN/infinite values"),
}


@pytest.mark.parametrize("kind", list(BAD_TENSORS))
def test_unsupported_or_non_finite_weight_is_refused_naming_the_key(tmp_path, state, kind):
    make, why = BAD_TENSORS[kind]
    bad = dict(state)
    bad["head.weight"] = make(state["head.weight"])  # (7, 128): 3 NaN columns are 21 values, an inf row 128
    src = save(tmp_path / f"{kind}.pth", bad)
    refused(tmp_path, src, "'head.weight'", why)


def test_integer_relative_position_index_is_still_accepted(tmp_path, state):
    key = "layers.0.blocks.0.attn.relative_position_index"
    assert not state[key].is_floating_point()
    _, result = convert_cli(tmp_path, save(tmp_path / "ok.pth", state))
    assert result.exit_code == 0, result.output


def test_two_keys_aliasing_the_same_memory_are_refused(tmp_path, state):
    bad = dict(state)
    shared = torch.randn(2 * 128)
    bad["norm.weight"], bad["norm.bias"] = shared[:128], shared[64:192]  # overlapping halves of one storage
    refused(tmp_path, save(tmp_path / "alias.pth", bad), "'norm.weight'", "'norm.bias'", "same memory")


def test_4_kb_of_stride_0_tensors_claiming_900_mb_is_refused_before_writing(tmp_path, state):
    bad = dict(state)
    bad["head.weight"] = torch.zeros(1).expand(7, 32_000_000)
    src = save(tmp_path / "stride0.pth", bad)
    refused(tmp_path, src, "'head.weight'", "stride", memory_mb=512)


# ------------------------------------------------------------------------------------------- 3. memory bombs
class _Reduce:
    """Pickles as ``func(*args)`` without ever calling it here."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


BOMBS = {
    "frozenset_range": (
        _Reduce(frozenset, range(10**12)),
        "refusing to load: the pickle builds a range of 1000000000000 items",
    ),
    "set_range": (_Reduce(set, range(10**9)), "range of 1000000000 items"),
    "bytearray": (_Reduce(bytearray, 3_000_000_000), "bytearray of 3000000000 bytes"),
    "long_list": (list(range(150_000)), "list of 150000 entries"),
    "long_string": ("x" * 2_000_000, "str of 2000000 characters"),
}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_small_file_claiming_unbounded_memory_is_refused(tmp_path, state, kind):
    payload, why = BOMBS[kind]
    src = save(tmp_path / f"{kind}.pth", state, extra=payload)
    assert src.stat().st_size < 4 * 1024 * 1024
    refused(tmp_path, src, why, memory_mb=768)


def test_deeply_nested_lists_are_refused_not_a_recursion_error(tmp_path, state):
    depth = 200_000
    src = with_opcodes(tmp_path, state, "deep", b"]" * depth + b"a" * (depth - 1))
    refused(tmp_path, src, "nested")


HUGE_INDEX = {  # id: (key, what the message must show of it)
    "block-100000": ("layers.0.blocks.100000.norm1.weight", "layers.0.blocks.100000.norm1.weight"),
    "block-1e20": ("layers.0.blocks.1e20.norm1.weight", "layers.0.blocks.1e20.norm1.weight"),
    "stage-100000": ("layers.100000.blocks.0.norm1.weight", "layers.100000.blocks.0.norm1.weight"),
    "5000-digit": ("layers.0.blocks." + "9" * 5000 + ".norm1.weight", "layers.0.blocks.999"),
    "1-mb-tail": ("layers.0.blocks.100000." + "x" * 1_000_000, "layers.0.blocks.100000.xxx"),
}


@pytest.mark.parametrize("kind", list(HUGE_INDEX))
def test_key_with_a_huge_index_is_refused_before_allocating(tmp_path, state, kind):
    key, shown = HUGE_INDEX[kind]
    src = save(tmp_path / "index.pth", {**state, key: torch.ones(16)})
    refused(tmp_path, src, shown, memory_mb=512)


# ------------------------------------------------------------------------------------------- 4. unpickler errors
UNPICKLER_ERRORS = {
    # name: (opcodes replacing the placeholder value, truncate the pickle after them)
    "TypeError": (b"ccollections\nOrderedDict\nK\x01\x85R", False),  # OrderedDict(1)
    "AttributeError": (b"cbuiltins\nslice\nK\x01\x85R}X\x01\x00\x00\x00aK\x01sb", False),  # slice.__dict__
    "KeyError": (b"j\xff\xff\xff\x7f", False),  # memo entry 2**31 - 1 does not exist
    "IndexError": (b"(a", False),  # appends from an empty stack
    "struct.error": (b"J\x01", True),  # a 4-byte int with 1 byte left
    "LookupError": (b"c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00nope\x86R", False),
    "OverflowError": (b"cbuiltins\ncomplex\n\x8a\xff" + b"\xff" * 254 + b"\x7f\x85R", False),  # complex(2**2040)
    "MemoryError": (b"cbuiltins\nbytearray\n\x8a\x08" + (2**62).to_bytes(8, "little") + b"\x85R", False),
}


@pytest.mark.parametrize("kind", list(UNPICKLER_ERRORS))
def test_malformed_pickle_is_a_corrupt_checkpoint_naming_the_file(tmp_path, state, kind):
    opcodes, truncate = UNPICKLER_ERRORS[kind]
    src = with_opcodes(tmp_path, state, kind.replace(".", "_"), opcodes, truncate=truncate)
    with pytest.raises(Exception):  # noqa: B017 - each really makes torch's unpickler raise
        torch.load(src, weights_only=True)
    message = refused(tmp_path, src)
    assert "corrupt" in message or "cannot read" in message or "refusing" in message


# ------------------------------------------------------------------------------------------- 5. inference
TABLE = "layers.0.blocks.0.attn.relative_position_bias_table"
INFERENCE = {
    "no-bias-table": ({"layers.1.blocks.0.attn.relative_position_bias_table": None}, "bias_table' is missing"),
    "0-dim-proj": ({"patch_embed.proj.weight": torch.tensor(1.0)}, "'patch_embed.proj.weight' has shape ()"),
    "1-dim-table": ({TABLE: torch.ones(49)}, f"'{TABLE}' has shape (49,)"),
    "non-square-table": ({TABLE: torch.ones(50, 1)}, "not a square"),
    "0-dim-mask": ({"layers.1.blocks.1.attn_mask": torch.tensor(0.0)}, "'layers.1.blocks.1.attn_mask' has shape ()"),
    "empty-head": ({"head.weight": torch.ones(0, 128)}, "'head.weight' has shape (0, 128)"),
    "non-square-patch": ({"patch_embed.proj.weight": torch.ones(16, 3, 4, 2)}, "square patch"),
}


@pytest.mark.parametrize("kind", list(INFERENCE))
def test_inconsistent_architecture_tensors_are_named_not_a_traceback(tmp_path, state, kind):
    changes, needle = INFERENCE[kind]
    bad = {k: v for k, v in {**state, **changes}.items() if v is not None}
    refused(tmp_path, save(tmp_path / f"{kind}.pth", bad), needle)


def test_huge_window_table_is_an_inference_error_before_any_allocation(state):
    bad = {**state, TABLE: torch.ones(1, 1).expand(1048575**2, 1)}  # the (2w - 1)^2 rows of window 524288
    with pytest.raises(ArchitectureError, match=rf"'{TABLE}' \(shape \(1099509530625, 1\)\) implies window 524288"):
        deduce_architecture(bad)


# ------------------------------------------------------------------------------- files without their buffers
V2_CONFIG = SwinConfig(
    version=2, image_size=64, embed_dim=16, depths=[1, 2, 2, 1], num_heads=[1, 2, 2, 4], window_size=4, num_labels=7
)


@pytest.mark.parametrize("version", [1, 2])
def test_file_without_its_geometry_buffers_converts_to_the_same_weights_given_size_and_window(tmp_path, version):
    """The official ``load_pretrained`` deletes relative_position_index, relative_coords_table and attn_mask
    before fine-tuning, so a file saved from such a state lacks them: given the size (and, for v2, whose bias
    MLP has no window-sized tensor, the window) it converts to exactly what the complete file gives."""
    config = CONFIG if version == 1 else V2_CONFIG
    full = official_state_dict(config, "official-swin" if version == 1 else "official-swinv2", seed=5)
    stripped = {k: v for k, v in full.items() if not k.endswith(GEOMETRY_BUFFERS)}
    dropped = set(full) - set(stripped)
    assert sum(k.endswith("relative_position_index") for k in dropped) == sum(config.depths)
    assert any(k.endswith("attn_mask") for k in dropped)
    assert (version == 2) == any(k.endswith("relative_coords_table") for k in dropped)
    out_full, ok = convert_cli(tmp_path / "full", save(tmp_path / "full.pth", full))
    assert ok.exit_code == 0, ok.output
    src = save(tmp_path / "stripped.pth", stripped)

    needle = "--source-image-size" if version == 1 else "--source-window-size"
    refused(tmp_path / "bare", src, needle)
    given = ["--source-image-size", "64"] + (["--source-window-size", "4"] if version == 2 else [])
    out, result = convert_cli(tmp_path / "given", src, *given)
    assert result.exit_code == 0, result.output
    a, b = _converted_weights(out_full), _converted_weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "config.json").read_text())["window_size"] == 4


def test_source_window_size_contradicting_the_file_is_refused_naming_both(tmp_path):
    src = save(tmp_path / "v2.pth", official_state_dict(V2_CONFIG, "official-swinv2", seed=5))
    out, result = convert_cli(tmp_path, src, "--source-window-size", "8")
    assert_clean_failure(result, "v2.pth", "stores window 4", "--source-window-size says 8", "--window-size")
    assert not out.exists()
