"""Synthetic checkpoints look like the released files, entry by entry, and the same entry and seed give the same
bytes in any cache.

The layouts the official save functions write (Swin-Transformer utils.py / utils_simmim.py ``save_checkpoint``,
SimMIM utils.py) and the released files' own names (``rpe_mlp`` in the SimMIM V2 files, issue #271) are read from
the manifest; each manifest value must be produced, and yacs' own pickle is the reference for the config node.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import pickletools
import subprocess
import sys

import pytest
import test_verify
from test_verify import TINY, zoo  # noqa: F401  (fixture)

import swinzoo.manifest as manifest
from swinzoo.convert import convert, resolve_source
from swinzoo.safeload import PickledConfig, load_checkpoint
from swinzoo.synthetic import _CfgNode, _pickled_as_yacs

# What each official save function writes, in its order (read from the official sources, not from swinzoo).
SAVED_KEYS = {
    "weights-only": ["model"],
    "swin-save-checkpoint": ["model", "optimizer", "lr_scheduler", "max_accuracy", "scaler", "epoch", "config"],
    "simmim-save-checkpoint": ["model", "optimizer", "lr_scheduler", "max_accuracy", "epoch", "config", "amp"],
}


def test_the_manifest_says_how_every_layout_was_saved_and_simmim_v2_files_say_rpe_mlp():
    by_layout: dict[str, set[tuple[str, str]]] = {}
    for entry in manifest.load_manifests().values():
        by_layout.setdefault(entry.layout, set()).add((entry.source.saved_by, entry.source.cpb_mlp_name))
    assert by_layout == {
        "official-swin": {("weights-only", "cpb_mlp")},
        "official-swinv2": {("weights-only", "cpb_mlp")},
        "simmim-swin-pretrain": {("simmim-save-checkpoint", "cpb_mlp")},
        "simmim-swin-finetune": {("simmim-save-checkpoint", "cpb_mlp")},
        "simmim-swinv2-pretrain": {("swin-save-checkpoint", "rpe_mlp")},
        "simmim-swinv2-finetune": {("swin-save-checkpoint", "rpe_mlp")},
    }


@pytest.mark.parametrize("name", list(TINY))
def test_each_synthetic_file_holds_what_its_entry_says_the_released_file_holds(zoo, tmp_path, name):  # noqa: F811
    entry = manifest.get_entry(name)
    path = resolve_source(entry, synthetic=True, cache_dir=tmp_path).path
    checkpoint = load_checkpoint(path)
    assert list(checkpoint) == SAVED_KEYS[entry.source.saved_by]
    keys = list(checkpoint["model"])
    if entry.architecture.version == 2:
        named = {k.split(".attn.")[1].split(".")[0] for k in keys if ".attn." in k and "_mlp." in k}
        assert named == {entry.source.cpb_mlp_name}
    if "config" in checkpoint:
        config = checkpoint["config"]
        assert isinstance(config, PickledConfig) and config.pickled_class == "yacs.config.CfgNode"
        assert config.pickled_state["__immutable__"] is True and isinstance(config.MODEL, PickledConfig)
    if entry.layout.endswith("-pretrain"):
        assert {k.split(".")[0] for k in keys} == {"encoder", "decoder"} and "decoder.0.weight" in keys


def test_the_config_node_pickles_byte_for_byte_as_yacs_does():
    with _pickled_as_yacs():
        ours = pickle.dumps(_CfgNode(TRAIN=_CfgNode(EPOCHS=300), NAME="x"), protocol=2)
    ops = [op.name for op, _, _ in pickletools.genops(ours)]
    # a dict subclass under protocol 2: NEWOBJ of the class, its items, then BUILD of its instance __dict__
    assert ops[:5] == ["PROTO", "GLOBAL", "BINPUT", "EMPTY_TUPLE", "NEWOBJ"] and ops[-2:] == ["BUILD", "STOP"]
    assert b"yacs.config\nCfgNode" in ours and b"__immutable__" in ours
    # yacs itself, in a child process: importing it here would hide a safeload that imported it (test_safeload)
    if importlib.util.find_spec("yacs") is None:
        pytest.skip("the byte-for-byte reference needs yacs (the test extra installs it)")
    code = (
        "import pickle, sys; from yacs.config import CfgNode as C\n"
        "c = C(); c.TRAIN = C(); c.TRAIN.EPOCHS = 300; c.NAME = 'x'; c.freeze()\n"
        "sys.stdout.write(pickle.dumps(c, protocol=2).hex())"
    )
    theirs = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert ours == bytes.fromhex(theirs.stdout)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["tiny-swin", "tiny-simmim-swinv2-pretrain"])
def test_same_entry_and_seed_give_the_same_bytes_in_two_caches(zoo, tmp_path, name):  # noqa: F811
    entry = manifest.get_entry(name)
    first = resolve_source(entry, synthetic=True, cache_dir=tmp_path / "a").path
    second = resolve_source(entry, synthetic=True, cache_dir=tmp_path / "b" / "deeper").path
    assert _sha256(first) == _sha256(second)
    other_seed = resolve_source(entry, synthetic=True, seed=1, cache_dir=tmp_path / "a").path
    assert _sha256(other_seed) != _sha256(first)


def test_the_archive_names_its_records_without_the_file_or_temporary_name(tmp_path):
    import zipfile

    from conftest import tiny_config

    from swinzoo.synthetic import write_official_checkpoint

    config = tiny_config(1, embed_dim=16)
    a = write_official_checkpoint(tmp_path / "a.pth", config, "official-swin", seed=2)
    b = write_official_checkpoint(tmp_path / "other-name.pth", config, "official-swin", seed=2)
    assert {n.split("/")[0] for n in zipfile.ZipFile(a).namelist()} == {"archive"}  # torch's name for a stream
    assert _sha256(a) == _sha256(b)


def test_a_folder_converted_in_one_cache_verifies_against_a_file_made_in_another(zoo, tmp_path):  # noqa: F811
    folder = tmp_path / "out"
    convert("tiny-swinv2", synthetic=True, out_dir=folder, cache_dir=tmp_path / "one", progress=False)
    code, out, err = test_verify.cli("--cache-dir", str(tmp_path / "two"), "--converted", str(folder))
    assert code == 0, out + err


def test_convert_synthetic_says_it_is_generating_the_file_unless_quiet(zoo, tmp_path):  # noqa: F811
    from click.testing import CliRunner

    from swinzoo.cli import main

    args = ["convert", "tiny-swin", "--synthetic", "--cache-dir", str(tmp_path / "c")]
    loud = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert loud.exit_code == 0, loud.output
    assert "generating a synthetic official-swin checkpoint of tiny-swin" in loud.stderr
    quiet = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b"), "--quiet", "--seed", "1"])
    assert quiet.exit_code == 0 and "generating" not in quiet.stderr
