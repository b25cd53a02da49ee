"""`swinzoo.from_pretrained` from Hub repos served by tests/hubserver.py: revisions, cache, offline, errors.

Repos are seeded directly on the server (not through `publish`), so these tests check the loading side alone;
the expected tensors are the ones the test saved.
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
import torch
from conftest import random_model
from hubserver import HubServer, hub_env
from test_publish import small_config

import swinzoo
from swinzoo import LoadError
from swinzoo.loading import save_pretrained
from swinzoo.modeling import SwinForImageClassification, SwinForMaskedImageModeling, SwinModel

TOKEN = "hf_load_test_token_1c7d"


def repo_files(model: torch.nn.Module, tmp: Path) -> dict[str, bytes]:
    folder = save_pretrained(model, tmp)
    return {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert a.state_dict().keys() == b.state_dict().keys()
    for name, tensor in a.state_dict().items():
        assert torch.equal(b.state_dict()[name], tensor), name


@pytest.fixture
def hub(tmp_path: Path):
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token=TOKEN):
        yield server


@pytest.fixture
def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    return (
        random_model(SwinForImageClassification, small_config(), 0),
        random_model(SwinForImageClassification, small_config(), 1),
    )


def test_loads_the_class_the_config_names(hub: HubServer, tmp_path: Path, models) -> None:
    mim = random_model(SwinForMaskedImageModeling, small_config(2, num_labels=1, encoder_stride=16))
    hub.seed_repo("alice/mim", repo_files(mim, tmp_path / "mim"))
    loaded = swinzoo.from_pretrained("alice/mim")
    assert type(loaded) is SwinForMaskedImageModeling
    assert_same_weights(mim, loaded)
    classifier = models[0]
    hub.seed_repo("alice/cls", repo_files(classifier, tmp_path / "cls"))
    assert type(swinzoo.from_pretrained("alice/cls")) is SwinForImageClassification
    base = SwinModel.from_pretrained("alice/cls")  # the encoder alone, from a task checkpoint on the Hub
    assert_same_weights(classifier.swin, base)


def test_revision_pins_a_tag_a_commit_or_a_branch(hub: HubServer, tmp_path: Path, models) -> None:
    first, second = models
    api = huggingface_hub.HfApi()
    one = hub.seed_repo("alice/tiny", repo_files(first, tmp_path / "one"))
    api.create_tag("alice/tiny", tag="v1")
    api.create_branch("alice/tiny", branch="stable")
    two = hub.seed_repo("alice/tiny", repo_files(second, tmp_path / "two"))
    assert_same_weights(first, swinzoo.from_pretrained("alice/tiny", revision="v1"))
    assert_same_weights(first, swinzoo.from_pretrained("alice/tiny", revision=one))
    assert_same_weights(first, swinzoo.from_pretrained("alice/tiny", revision="stable"))
    assert_same_weights(second, swinzoo.from_pretrained("alice/tiny"))
    assert_same_weights(second, swinzoo.from_pretrained("alice/tiny", revision=two))


def test_config_and_weights_come_from_one_commit_even_if_main_moves_between_downloads(
    hub: HubServer, tmp_path: Path, models, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = models
    hub.seed_repo("alice/tiny", repo_files(first, tmp_path / "one"))
    other = random_model(SwinForImageClassification, small_config(embed_dim=32, num_heads=[2, 4, 8]), 1)
    real_download = huggingface_hub.hf_hub_download

    def download_then_push(repo_id, filename, **kwargs):
        path = real_download(repo_id, filename, **kwargs)
        if filename == "config.json":  # a new commit with another architecture lands right now
            hub.seed_repo("alice/tiny", repo_files(other, tmp_path / "other"))
        return path

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download_then_push)
    assert_same_weights(first, swinzoo.from_pretrained("alice/tiny"))  # not a mismatch error


def test_offline_reload_from_the_cache(tmp_path: Path, models) -> None:
    first, second = models
    cache = tmp_path / "hf-cache"
    with HubServer() as server, hub_env(server, cache, token=TOKEN):
        server.seed_repo("alice/tiny", repo_files(first, tmp_path / "one"))
        huggingface_hub.HfApi().create_tag("alice/tiny", tag="v1")
        server.seed_repo("alice/tiny", repo_files(second, tmp_path / "two"))
        swinzoo.from_pretrained("alice/tiny")
        swinzoo.from_pretrained("alice/tiny", revision="v1")
        server.stop()
        with hub_env(server, cache, offline=True):
            assert_same_weights(second, swinzoo.from_pretrained("alice/tiny"))
            assert_same_weights(first, swinzoo.from_pretrained("alice/tiny", revision="v1"))
            with pytest.raises(LoadError, match=r"alice/tiny@never-fetched: config.json is not in the local cache"):
                swinzoo.from_pretrained("alice/tiny", revision="never-fetched")
            with pytest.raises(LoadError, match="not in the local cache.*HF_HUB_OFFLINE"):
                swinzoo.from_pretrained("alice/other")
        # no offline flag, but the server is gone: the cache still serves what was downloaded
        with hub_env(server, cache):
            assert_same_weights(second, swinzoo.from_pretrained("alice/tiny"))


def test_a_missing_repo_revision_or_file_is_named(hub: HubServer, tmp_path: Path, models) -> None:
    first, _ = models
    files = repo_files(first, tmp_path / "one")
    with pytest.raises(LoadError, match="Hub repo 'alice/nope' not found"):
        swinzoo.from_pretrained("alice/nope")
    hub.seed_repo("alice/tiny", files)
    with pytest.raises(LoadError, match="Hub repo 'alice/tiny' has no revision 'v9'"):
        swinzoo.from_pretrained("alice/tiny", revision="v9")
    hub.seed_repo("alice/config-only", {"config.json": files["config.json"]})
    with pytest.raises(
        LoadError, match=r"alice/config-only@main: no file model.safetensors \(swinzoo loads safetensors"
    ):
        swinzoo.from_pretrained("alice/config-only")
    hub.seed_repo("alice/pickle-only", {"config.json": files["config.json"], "pytorch_model.bin": b"\x80\x02}q"})
    with pytest.raises(LoadError, match="safetensors only"):
        swinzoo.from_pretrained("alice/pickle-only")
    with pytest.raises(LoadError, match="no file config.json"):
        hub.seed_repo("alice/weights-only", {"model.safetensors": files["model.safetensors"]})
        swinzoo.from_pretrained("alice/weights-only")


def test_a_private_repo_needs_the_token(tmp_path: Path, models) -> None:
    first, _ = models
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token=TOKEN):
        server.seed_repo("alice/secret", repo_files(first, tmp_path / "one"), private=True)
        assert_same_weights(first, swinzoo.from_pretrained("alice/secret"))
        with hub_env(server, tmp_path / "other-cache", token=None):
            with pytest.raises(LoadError, match="not found .*or private: log in"):
                swinzoo.from_pretrained("alice/secret")


def test_a_config_that_does_not_match_the_weights_is_refused(hub: HubServer, tmp_path: Path, models) -> None:
    first, _ = models
    files = repo_files(first, tmp_path / "one")
    config = json.loads(files["config.json"])
    config["embed_dim"] = 32
    hub.seed_repo("alice/mismatch", {**files, "config.json": json.dumps(config).encode()})
    with pytest.raises(LoadError, match=r"shape mismatches.*swin.patch_embed.proj.weight: file \(16, 3, 4, 4\)"):
        swinzoo.from_pretrained("alice/mismatch")
    config = json.loads(files["config.json"])
    config["depths"] = [2, 2, 3]
    hub.seed_repo("alice/deeper", {**files, "config.json": json.dumps(config).encode()})
    with pytest.raises(LoadError, match=r"missing from model.safetensors: swin.stages.2.blocks.2"):
        swinzoo.from_pretrained("alice/deeper")


def test_a_local_folder_takes_no_revision(tmp_path: Path, models) -> None:
    folder = save_pretrained(models[0], tmp_path / "tiny")
    with pytest.raises(LoadError, match="local folder: revision='v1' only applies to Hub repos"):
        swinzoo.from_pretrained(folder, revision="v1")
    assert_same_weights(models[0], swinzoo.from_pretrained(folder))
