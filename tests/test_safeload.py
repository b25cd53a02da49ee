"""Safe checkpoint loading: official layouts and training checkpoints load; code in a pickle never runs.

Checkpoints are built here with torch.save from known tensors; loaded tensors are compared with those
originals. Malicious pickles carry a payload that would create a sentinel file if it ever ran.
"""

from __future__ import annotations

import argparse
import builtins
import os
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from swinzoo.safeload import (
    CheckpointError,
    CorruptCheckpointError,
    PickledConfig,
    PickledNamespace,
    StateDictError,
    UnsafeCheckpointError,
    extract_state_dict,
    load_checkpoint,
    load_state_dict,
)

LEGACY = {"_use_new_zipfile_serialization": False}


def _tiny_state_dict() -> OrderedDict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    return model.state_dict()


def _assert_same_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


# --------------------------------------------------------------------------------- a fake yacs, for saving


@contextmanager
def fake_yacs() -> Iterator[type]:
    """A stand-in ``yacs.config.CfgNode`` importable only inside the block (the real yacs is not needed).

    It mirrors yacs' layout: a dict subclass whose nested dicts are CfgNodes and whose flags live in the
    instance ``__dict__``, so it pickles exactly like the object in official training checkpoints.
    """

    class CfgNode(dict):
        def __init__(self, init_dict=None, new_allowed=False):
            init_dict = dict(init_dict or {})
            for k, v in init_dict.items():
                if isinstance(v, dict):
                    init_dict[k] = CfgNode(v, new_allowed)
            super().__init__(init_dict)
            self.__dict__["__immutable__"] = False
            self.__dict__["__deprecated_keys__"] = set()
            self.__dict__["__renamed_keys__"] = {}
            self.__dict__["__new_allowed__"] = new_allowed

        def __getattr__(self, name):
            if name in self:
                return self[name]
            raise AttributeError(name)

    CfgNode.__module__ = "yacs.config"
    CfgNode.__qualname__ = "CfgNode"
    package, module = types.ModuleType("yacs"), types.ModuleType("yacs.config")
    module.CfgNode = CfgNode
    package.config = module
    saved = {k: sys.modules.get(k) for k in ("yacs", "yacs.config")}
    sys.modules.update({"yacs": package, "yacs.config": module})
    try:
        yield CfgNode
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


CONFIG = {
    "MODEL": {
        "TYPE": "swin",
        "NAME": "swin_tiny_patch4_window7_224",
        "NUM_CLASSES": 1000,
        "SWIN": {"EMBED_DIM": 96, "DEPTHS": [2, 2, 6, 2], "NUM_HEADS": [3, 6, 12, 24], "WINDOW_SIZE": 7},
    },
    "DATA": {"IMG_SIZE": 224, "INTERPOLATION": "bicubic"},
    "TRAIN": {"EPOCHS": 300, "BASE_LR": 1e-3},
}


def _training_checkpoint(path: Path, **save_kwargs) -> dict:
    """Save a checkpoint shaped like the official Swin-Transformer ``save_checkpoint`` output."""
    state = _tiny_state_dict()
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    param.grad = torch.full((3,), 0.5)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    with fake_yacs() as CfgNode:
        config = CfgNode(CONFIG)
        config.__dict__["__immutable__"] = True  # as after config.freeze()
        checkpoint = {
            "model": state,
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": scheduler.state_dict(),
            "max_accuracy": 81.2,
            "epoch": 299,
            "config": config,
            "args": argparse.Namespace(cfg="configs/swin/swin_tiny.yaml", batch_size=128, amp=True),
        }
        torch.save(checkpoint, path, **save_kwargs)
    assert "yacs" not in sys.modules and "yacs.config" not in sys.modules
    return checkpoint


# --------------------------------------------------------------------------------- layouts


def test_plain_state_dict_loads_with_its_tensors(tmp_path):
    state = _tiny_state_dict()
    path = tmp_path / "plain.pth"
    torch.save(state, path)
    _assert_same_tensors(load_state_dict(path), state)


def test_official_model_layout_is_found(tmp_path):
    state = _tiny_state_dict()
    path = tmp_path / "official.pth"
    torch.save({"model": state}, path)
    _assert_same_tensors(extract_state_dict(load_checkpoint(path), path), state)


def test_state_dict_key_layout_is_found(tmp_path):
    state = _tiny_state_dict()
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    _assert_same_tensors(load_state_dict(path), state)


@pytest.mark.parametrize("save_kwargs", [{}, LEGACY], ids=["zip", "legacy"])
def test_training_checkpoint_with_optimizer_yacs_config_and_namespace_loads_inertly(tmp_path, save_kwargs):
    path = tmp_path / "ckpt_epoch_299.pth"
    original = _training_checkpoint(path, **save_kwargs)

    # torch alone refuses this file: the stand-ins are what make it load.
    with pytest.raises(Exception, match="yacs.config.CfgNode|CfgNode"):
        torch.load(path, map_location="cpu", weights_only=True)

    loaded = load_checkpoint(path)
    assert "yacs" not in sys.modules  # nothing was imported to rebuild the config
    _assert_same_tensors(extract_state_dict(loaded, path), original["model"])

    config = loaded["config"]
    assert isinstance(config, PickledConfig) and config.pickled_class == "yacs.config.CfgNode"
    assert config == CONFIG  # same keys and values, nested CfgNodes included
    assert isinstance(config.MODEL.SWIN, PickledConfig)
    assert config.MODEL.SWIN.EMBED_DIM == 96 and config.MODEL.SWIN.DEPTHS == [2, 2, 6, 2]
    assert config.pickled_state["__immutable__"] is True
    assert config.MODEL.pickled_state["__immutable__"] is False
    with pytest.raises(AttributeError, match="NOPE"):
        _ = config.NOPE

    args = loaded["args"]
    assert isinstance(args, PickledNamespace)
    assert (args.cfg, args.batch_size, args.amp) == ("configs/swin/swin_tiny.yaml", 128, True)

    assert loaded["epoch"] == 299 and loaded["max_accuracy"] == 81.2
    assert loaded["lr_scheduler"] == original["lr_scheduler"]
    got_state, want_state = loaded["optimizer"]["state"][0], original["optimizer"]["state"][0]
    assert torch.equal(got_state["exp_avg"], want_state["exp_avg"])
    assert loaded["optimizer"]["param_groups"] == original["optimizer"]["param_groups"]


def test_loading_leaves_torch_safe_globals_as_it_found_them(tmp_path):
    path = tmp_path / "ckpt.pth"
    _training_checkpoint(path)
    before = set(torch.serialization.get_safe_globals())  # a set inside torch: order is not stable
    load_checkpoint(path)
    assert set(torch.serialization.get_safe_globals()) == before


def test_zip_files_are_memory_mapped_and_legacy_files_are_not(tmp_path, monkeypatch):
    calls: list[dict] = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    state = _tiny_state_dict()
    torch.save(state, tmp_path / "zip.pth")
    torch.save(state, tmp_path / "legacy.pth", **LEGACY)
    _assert_same_tensors(load_state_dict(tmp_path / "zip.pth"), state)
    _assert_same_tensors(load_state_dict(tmp_path / "legacy.pth"), state)
    assert [(c["weights_only"], c["mmap"], c["map_location"]) for c in calls] == [
        (True, True, "cpu"),
        (True, False, "cpu"),
    ]


def test_ddp_module_prefix_is_stripped_when_every_key_has_it(tmp_path):
    state = _tiny_state_dict()
    path = tmp_path / "ddp.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    _assert_same_tensors(load_state_dict(path), state)


def test_module_prefix_is_kept_when_only_some_keys_have_it(tmp_path):
    weights = {"module.a": torch.zeros(1), "b": torch.ones(1)}
    path = tmp_path / "mixed.pth"
    torch.save(weights, path)
    assert list(load_state_dict(path)) == ["module.a", "b"]


def test_safetensors_file_loads_as_a_state_dict(tmp_path):
    state = {k: v.contiguous() for k, v in _tiny_state_dict().items()}
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    loaded = load_checkpoint(path)
    _assert_same_tensors(dict(sorted(loaded.items())), dict(sorted(state.items())))
    _assert_same_tensors(dict(sorted(extract_state_dict(loaded, path).items())), dict(sorted(state.items())))


def test_safetensors_content_is_recognised_without_the_suffix(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    path = tmp_path / "download"
    save_file(state, str(path))
    _assert_same_tensors(load_state_dict(path), state)


# --------------------------------------------------------------------------------- refusing code


class _RunsShell:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class _RunsExec:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.sentinel)!r}, 'w').close()",))


class CustomObject:
    """An arbitrary class: not code by itself, but its module would have to be imported."""

    def __init__(self) -> None:
        self.value = 1


def test_os_system_payload_is_refused_without_running(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "evil.pth"
    torch.save({"model": _tiny_state_dict(), "payload": _RunsShell(sentinel)}, path)

    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    assert not sentinel.exists()
    assert str(path) in str(info.value)
    assert f"{os.system.__module__}.system" in info.value.offending  # posix.system on Linux
    assert f"{os.system.__module__}.system" in str(info.value)


@pytest.mark.parametrize("save_kwargs", [{}, LEGACY], ids=["zip", "legacy"])
def test_every_offending_global_is_named_and_none_runs(tmp_path, save_kwargs):
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "evil.pth"
    payload = {"model": _tiny_state_dict(), "a": _RunsExec(sentinel), "b": CustomObject()}
    torch.save(payload, path, **save_kwargs)

    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    assert not sentinel.exists()
    assert "builtins.exec" in str(info.value)
    assert f"{__name__}.CustomObject" in str(info.value)  # both named, not just the first one met


def test_payload_hidden_inside_a_config_is_refused(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "evil_config.pth"
    with fake_yacs() as CfgNode:
        config = CfgNode({"MODEL": {"TYPE": "swin"}})
        config["MODEL"]["HOOK"] = _RunsExec(sentinel)
        torch.save({"model": _tiny_state_dict(), "config": config}, path)
    with pytest.raises(UnsafeCheckpointError, match="builtins.exec"):
        load_checkpoint(path)
    assert not sentinel.exists()


# --------------------------------------------------------------------------------- broken files


@pytest.mark.parametrize("save_kwargs", [{}, LEGACY], ids=["zip", "legacy"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_checkpoint_names_the_file(tmp_path, save_kwargs, keep):
    full = tmp_path / "full.pth"
    torch.save({"model": _tiny_state_dict()}, full, **save_kwargs)
    data = full.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "truncated" in str(info.value) or "corrupt" in str(info.value)


def test_truncated_safetensors_names_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(8)}, str(path))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CorruptCheckpointError, match="model.safetensors"):
        load_checkpoint(path)


def test_html_error_page_saved_as_checkpoint_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "swin.pth"
    path.write_text("<html><body>Rate limit exceeded</body></html>")
    with pytest.raises(CorruptCheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(path)


def test_empty_and_missing_files_are_named(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.touch()
    with pytest.raises(CorruptCheckpointError, match="empty.pth.*empty"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match="missing.pth"):
        load_checkpoint(tmp_path / "missing.pth")


def test_non_dict_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.ones(2), path)
    with pytest.raises(CheckpointError, match="expected a dict.*Tensor"):
        load_checkpoint(path)


# --------------------------------------------------------------------------------- finding the weights


def test_missing_state_dict_error_lists_the_top_level_keys(tmp_path):
    path = tmp_path / "opt_only.pth"
    obj = {"optimizer": {"state": {}}, "epoch": 3}
    with pytest.raises(StateDictError) as info:
        extract_state_dict(obj, path)
    assert str(path) in str(info.value)
    assert "'optimizer'" in str(info.value) and "'epoch'" in str(info.value)


def test_non_tensor_value_in_the_state_dict_is_named(tmp_path):
    path = tmp_path / "odd.pth"
    with pytest.raises(StateDictError) as info:
        extract_state_dict({"model": {"a.weight": torch.ones(1), "a.note": "hello"}}, path)
    assert "'a.note'" in str(info.value) and "str" in str(info.value) and str(path) in str(info.value)


def test_empty_state_dict_is_an_error(tmp_path):
    with pytest.raises(StateDictError, match="empty"):
        extract_state_dict({"model": {}}, tmp_path / "x.pth")
