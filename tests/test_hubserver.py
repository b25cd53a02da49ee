"""The test Hub (tests/hubserver.py) driven by the real huggingface_hub client, end to end on 127.0.0.1.

Expected values come from outside the server: hashlib (sha256 for LFS, git's blob sha1 for regular files),
the bytes the test uploaded, and the client's own behaviour (its exceptions, its cache layout).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hubserver import HubServer, hub_env, subprocess_env
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

TOKEN = "hf_hubserver_test_token_5d1c9a"
REPO = "alice/tiny-swin"


def git_sha1(data: bytes) -> str:
    """Git's blob id, written out here independently of the server's helper."""
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\x00" + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hub(tmp_path: Path):
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token=TOKEN):
        yield server


@pytest.fixture
def api(hub: HubServer) -> HfApi:
    return HfApi()


def _raw(server: HubServer, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """A request that bypasses the client, for server guarantees the client never lets us violate."""
    request = urllib.request.Request(server.url + path, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _commit_ops(api: HfApi, files: dict[str, bytes], message: str, **kwargs):
    ops = [CommitOperationAdd(path, data) for path, data in files.items()]
    return api.create_commit(REPO, ops, commit_message=message, **kwargs)


def test_create_repo_has_initial_commit_and_exist_ok_absorbs_the_409(api: HfApi, hub: HubServer) -> None:
    url = api.create_repo(REPO)
    assert url.repo_id == REPO and url.startswith(hub.url)
    info = api.model_info(REPO)
    assert len(info.sha) == 40 and [s.rfilename for s in info.siblings] == [".gitattributes"]

    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_repo(REPO)
    assert excinfo.value.response.status_code == 409
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    assert api.model_info(REPO).sha == info.sha  # exist_ok did not reset the repo

    assert api.create_repo("no-namespace").repo_id == f"{hub.user}/no-namespace"


def test_writes_without_a_token_get_401_and_change_nothing(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    head = api.model_info(REPO).sha
    anonymous = HfApi(token=False)
    with pytest.raises(HfHubHTTPError) as excinfo:
        anonymous.create_repo("alice/other")
    assert excinfo.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as excinfo:
        anonymous.create_commit(REPO, [CommitOperationAdd("a.txt", b"a")], commit_message="anonymous write")
    assert excinfo.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as excinfo:
        anonymous.create_tag(REPO, tag="v0")
    assert excinfo.value.response.status_code == 401
    assert ("model", "alice/other") not in hub.repos
    assert api.model_info(REPO).sha == head and api.list_repo_refs(REPO).tags == []
    assert anonymous.model_info(REPO).sha == head  # reads of public repos stay anonymous-friendly


def test_token_allowlist_rejects_other_tokens_with_401(tmp_path: Path) -> None:
    with HubServer(tokens={TOKEN}) as server, hub_env(server, tmp_path / "cache"):
        with pytest.raises(HfHubHTTPError) as excinfo:
            HfApi(token="hf_not_the_right_one").create_repo(REPO)
        assert excinfo.value.response.status_code == 401
        assert HfApi(token=TOKEN).create_repo(REPO).repo_id == REPO
        assert server.find_in_responses("hf_not_the_right_one") == []


def test_regular_and_lfs_uploads_round_trip_with_hub_hashes(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    config = json.dumps({"embed_dim": 96, "depths": [2, 2, 6, 2]}).encode()
    weights = os.urandom(200_000)
    commit = _commit_ops(api, {"config.json": config, "weights/model.safetensors": weights}, "Add weights")

    commit_request = [ex for ex in hub.exchanges if "/commit/" in ex.path][-1]
    lines = [json.loads(line) for line in commit_request.request_body.splitlines()]
    assert [line["key"] for line in lines] == ["header", "file", "lfsFile"]
    assert lines[2]["value"] == {
        "path": "weights/model.safetensors",
        "algo": "sha256",
        "oid": sha256(weights),
        "size": len(weights),
    }
    puts = [ex for ex in hub.exchanges if ex.method == "PUT"]
    assert [ex.request_body for ex in puts] == [weights]  # the LFS bytes went through the basic transfer

    tree = {f.path: f for f in api.list_repo_tree(REPO, recursive=True) if hasattr(f, "blob_id")}
    assert tree["config.json"].lfs is None and tree["config.json"].blob_id == git_sha1(config)
    lfs = tree["weights/model.safetensors"].lfs
    assert lfs is not None and lfs.sha256 == sha256(weights) and lfs.size == len(weights)
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(weights)}\nsize {len(weights)}\n"
    assert tree["weights/model.safetensors"].blob_id == git_sha1(pointer.encode())
    folders = [f.path for f in api.list_repo_tree(REPO) if not hasattr(f, "blob_id")]
    assert folders == ["weights"]

    status, headers, _ = _raw(hub, "HEAD", f"/{REPO}/resolve/main/weights/model.safetensors")
    assert status == 200 and headers["X-Repo-Commit"] == commit.oid
    assert headers["X-Linked-Etag"] == f'"{sha256(weights)}"' and headers["X-Linked-Size"] == str(len(weights))
    status, headers, body = _raw(hub, "GET", f"/{REPO}/resolve/{commit.oid}/config.json")
    assert (status, body, headers["ETag"]) == (200, config, f'"{git_sha1(config)}"')
    assert "X-Linked-Etag" not in headers

    # The client names cache blobs after the ETag it got: git sha1 for regular files, sha256 for LFS files.
    config_path = Path(hf_hub_download(REPO, "config.json"))
    weights_path = Path(hf_hub_download(REPO, "weights/model.safetensors"))
    assert config_path.read_bytes() == config and config_path.resolve().name == git_sha1(config)
    assert weights_path.read_bytes() == weights and weights_path.resolve().name == sha256(weights)

    info = api.model_info(REPO, files_metadata=True)
    sizes = {s.rfilename: (s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings}
    assert sizes["weights/model.safetensors"] == (len(weights), sha256(weights))
    assert sizes["config.json"] == (len(config), None)


def test_preupload_sends_large_or_binary_files_to_lfs(tmp_path: Path) -> None:
    with HubServer(lfs_size_threshold=1024) as server, hub_env(server, tmp_path / "cache", token=TOKEN):
        api = HfApi()
        api.create_repo(REPO)
        files = {"notes.txt": b"x" * 2048, "table.raw": b"\x00\x01\x02", "README.txt": b"hello"}
        _commit_ops(api, files, "Mixed files")
        tree = {f.path: f for f in api.list_repo_tree(REPO)}
        assert tree["notes.txt"].lfs is not None  # reached the size threshold
        assert tree["table.raw"].lfs is not None  # binary sample
        assert tree["README.txt"].lfs is None
        for path, data in files.items():
            assert Path(hf_hub_download(REPO, path)).read_bytes() == data


def test_reuploading_unchanged_files_makes_no_commit(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    files = {"config.json": b"{}", "model.safetensors": b"\x01" * 100}
    first = _commit_ops(api, files, "v1")
    again = _commit_ops(api, files, "same again")  # preupload returns the remote oids, the client skips
    assert again.oid == first.oid
    assert len(api.list_repo_commits(REPO)) == 2


def test_stale_parent_commit_is_rejected_with_412_and_branch_unchanged(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    initial = api.model_info(REPO).sha
    first = _commit_ops(api, {"a.txt": b"first"}, "first", parent_commit=initial)
    with pytest.raises(HfHubHTTPError) as excinfo:
        _commit_ops(api, {"a.txt": b"racing writer"}, "stale", parent_commit=initial)
    assert excinfo.value.response.status_code == 412
    assert api.model_info(REPO).sha == first.oid
    assert [c.commit_id for c in api.list_repo_commits(REPO)] == [first.oid, initial]
    assert Path(hf_hub_download(REPO, "a.txt")).read_bytes() == b"first"


def test_tags_and_refs_point_at_the_tagged_commit(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    v1 = _commit_ops(api, {"a.txt": b"one"}, "one")
    api.create_tag(REPO, tag="v1", tag_message="first release")
    v2 = _commit_ops(api, {"a.txt": b"two"}, "two")
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_tag(REPO, tag="v1")
    assert excinfo.value.response.status_code == 409
    api.create_tag(REPO, tag="v1", exist_ok=True)
    api.create_tag(REPO, tag="v0-initial", revision=api.list_repo_commits(REPO)[-1].commit_id)

    refs = api.list_repo_refs(REPO)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": v2.oid}
    tags = {t.name: (t.ref, t.target_commit) for t in refs.tags}
    assert tags["v1"] == ("refs/tags/v1", v1.oid)
    assert tags["v0-initial"][1] == api.list_repo_commits(REPO)[-1].commit_id

    api.delete_tag(REPO, tag="v0-initial")
    assert [t.name for t in api.list_repo_refs(REPO).tags] == ["v1"]


def test_hf_hub_download_pins_main_a_tag_and_a_commit_sha(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    v1 = _commit_ops(api, {"config.json": b'{"v": 1}'}, "v1")
    api.create_tag(REPO, tag="v1")
    v2 = _commit_ops(api, {"config.json": b'{"v": 2}'}, "v2")

    at_main = Path(hf_hub_download(REPO, "config.json"))
    at_tag = Path(hf_hub_download(REPO, "config.json", revision="v1"))
    at_sha = Path(hf_hub_download(REPO, "config.json", revision=v1.oid))
    assert at_main.read_bytes() == b'{"v": 2}' and at_main.parent.name == v2.oid
    assert at_tag.read_bytes() == b'{"v": 1}' and at_tag.parent.name == v1.oid
    assert at_sha == at_tag
    assert api.list_repo_files(REPO, revision="v1") == [".gitattributes", "config.json"]


def test_snapshot_download_at_a_tag_gets_exactly_that_tree(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    weights = os.urandom(5000)
    v1 = _commit_ops(api, {"config.json": b"{}", "model.safetensors": weights, "old.txt": b"old"}, "v1")
    api.create_tag(REPO, tag="v1")
    api.create_commit(
        REPO,
        [CommitOperationDelete("old.txt"), CommitOperationAdd("new.txt", b"new")],
        commit_message="v2",
    )
    folder = Path(snapshot_download(REPO, revision="v1"))
    assert folder.name == v1.oid
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == [".gitattributes", "config.json", "model.safetensors", "old.txt"]
    assert (folder / "model.safetensors").read_bytes() == weights
    main = Path(snapshot_download(REPO))
    assert sorted(p.name for p in main.iterdir()) == [
        ".gitattributes",
        "config.json",
        "model.safetensors",
        "new.txt",
    ]


def test_branches_take_commits_without_moving_main(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    main_head = _commit_ops(api, {"a.txt": b"main"}, "on main").oid
    api.create_branch(REPO, branch="dev")
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_branch(REPO, branch="dev")
    assert excinfo.value.response.status_code == 409
    dev_head = _commit_ops(api, {"a.txt": b"dev"}, "on dev", revision="dev").oid
    assert api.model_info(REPO).sha == main_head
    assert api.model_info(REPO, revision="dev").sha == dev_head
    assert Path(hf_hub_download(REPO, "a.txt", revision="dev")).read_bytes() == b"dev"
    assert [c.commit_id for c in api.list_repo_commits(REPO, revision="dev")][:2] == [dev_head, main_head]
    api.delete_branch(REPO, branch="dev")
    assert [b.name for b in api.list_repo_refs(REPO).branches] == ["main"]


def test_deleting_files_and_missing_deletions(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    _commit_ops(api, {"keep.txt": b"k", "drop/a.txt": b"a", "drop/b.txt": b"b", "gone.txt": b"g"}, "add")
    api.create_commit(
        REPO,
        [CommitOperationDelete("gone.txt"), CommitOperationDelete("drop/")],
        commit_message="delete",
    )
    assert api.list_repo_files(REPO) == [".gitattributes", "keep.txt"]
    with pytest.raises(EntryNotFoundError):
        api.create_commit(REPO, [CommitOperationDelete("gone.txt")], commit_message="again")


def test_offline_reload_from_cache_after_the_server_stops(tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    weights = os.urandom(4096)
    with HubServer() as server, hub_env(server, cache, token=TOKEN):
        api = HfApi()
        api.create_repo(REPO)
        sha = _commit_ops(api, {"config.json": b"{}", "model.safetensors": weights}, "v1").oid
        api.create_tag(REPO, tag="v1")
        online_file = hf_hub_download(REPO, "model.safetensors", revision="v1")
        online_snapshot = snapshot_download(REPO)
        server.stop()  # from here any request would fail to connect
        with hub_env(server, cache, offline=True):
            assert hf_hub_download(REPO, "model.safetensors", revision="v1") == online_file
            assert hf_hub_download(REPO, "model.safetensors", revision=sha) == online_file
            assert snapshot_download(REPO) == online_snapshot
            assert Path(online_file).read_bytes() == weights
            with pytest.raises(LocalEntryNotFoundError):
                hf_hub_download(REPO, "never-downloaded.txt")
            with pytest.raises(LocalEntryNotFoundError):
                snapshot_download(REPO, revision="never-fetched-branch")


def test_subprocess_env_points_a_fresh_interpreter_at_the_server(tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    script = (
        "import sys\n"
        "from huggingface_hub import hf_hub_download\n"
        "print(hf_hub_download(sys.argv[1], sys.argv[2], revision=sys.argv[3]))\n"
    )
    with HubServer() as server:
        server.seed_repo(REPO, {"config.json": b'{"from": "seed"}'})
        online_env = subprocess_env(server, cache, token=TOKEN)
        offline_env = subprocess_env(server, cache, offline=True)
        assert "HF_TOKEN" not in offline_env and online_env["HF_HUB_DISABLE_XET"] == "1"
        run = [sys.executable, "-c", script, REPO, "config.json", "main"]
        online = subprocess.run(run, env=online_env, capture_output=True, text=True, timeout=120)
        assert online.returncode == 0, online.stderr
        resolve_requests = [ex for ex in server.exchanges if "/resolve/" in ex.path]
        assert resolve_requests and resolve_requests[0].request_headers["authorization"] == f"Bearer {TOKEN}"
    offline = subprocess.run(run, env=offline_env, capture_output=True, text=True, timeout=120)
    assert offline.returncode == 0, offline.stderr
    path = Path(online.stdout.strip())
    assert offline.stdout.strip() == str(path) and path.is_relative_to(cache)
    assert path.read_bytes() == b'{"from": "seed"}'


def test_client_raises_not_found_errors_of_the_right_kind(api: HfApi, hub: HubServer) -> None:
    hub.seed_repo(REPO, {"config.json": b"{}"})
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/missing", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/missing")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("alice/missing")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.safetensors")
    assert not api.file_exists(REPO, "missing.safetensors") and api.file_exists(REPO, "config.json")
    assert not api.revision_exists(REPO, "no-such-branch")


def test_private_repos_are_invisible_without_a_token(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO, private=True)
    assert api.model_info(REPO).private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info(REPO)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(REPO, ".gitattributes", token=False)


def test_token_is_sent_on_writes_and_never_echoed(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    commit = _commit_ops(api, {"config.json": b"{}", "model.safetensors": os.urandom(1000)}, "v1")
    api.create_tag(REPO, tag="v1")
    hf_hub_download(REPO, "model.safetensors", revision="v1")
    api.whoami()

    writes = [ex for ex in hub.exchanges if ex.method in ("POST", "DELETE") and "validate-yaml" not in ex.path]
    assert len(writes) >= 6  # create, preupload, lfs batch, lfs verify, commit, tag
    assert all(ex.request_headers.get("authorization") == f"Bearer {TOKEN}" for ex in writes)
    # The check below does find what responses contain (the commit oid), so an echoed token would be caught.
    assert hub.find_in_responses(commit.oid)
    assert hub.find_in_responses(TOKEN) == []


def test_lfs_upload_must_match_the_announced_object(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    data = b"real weights" * 100
    announce = {
        "operation": "upload",
        "transfers": ["basic"],
        "objects": [{"oid": sha256(data), "size": len(data)}],
    }
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    status, _, body = _raw(hub, "POST", f"/{REPO}.git/info/lfs/objects/batch", json.dumps(announce).encode(), auth)
    assert status == 200
    href = json.loads(body)["objects"][0]["actions"]["upload"]["href"]
    status, _, _ = _raw(hub, "PUT", href[len(hub.url) :], b"tampered" * 150)
    assert status == 400
    assert hub.repo(REPO).lfs_objects == {}
    status, _, _ = _raw(hub, "PUT", href[len(hub.url) :], data)
    assert status == 403  # one-time URL, already consumed by the rejected attempt


def test_commit_rejects_missing_lfs_objects_and_binary_regular_files(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    head = api.model_info(REPO).sha
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    header = {"key": "header", "value": {"summary": "sneaky"}}
    missing = {"key": "lfsFile", "value": {"path": "model.safetensors", "algo": "sha256", "oid": "a" * 64}}
    payload = b"\n".join(json.dumps(line).encode() for line in (header, missing))
    status, _, _ = _raw(hub, "POST", f"/api/models/{REPO}/commit/main", payload, auth)
    assert status == 422
    regular = {"key": "file", "value": {"path": "model.safetensors", "content": "AAEC", "encoding": "base64"}}
    payload = b"\n".join(json.dumps(line).encode() for line in (header, regular))
    status, _, _ = _raw(hub, "POST", f"/api/models/{REPO}/commit/main", payload, auth)
    assert status == 400
    assert api.model_info(REPO).sha == head


def test_transformers_and_timm_load_repos_from_the_server(api: HfApi, hub: HubServer, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    transformers = pytest.importorskip("transformers")
    from timm.models import save_for_hf

    config = transformers.SwinConfig(
        image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=2
    )
    swin = transformers.SwinModel(config).eval()
    swin.save_pretrained(tmp_path / "swin")
    api.create_repo("alice/hf-swin")
    api.upload_folder(repo_id="alice/hf-swin", folder_path=tmp_path / "swin")
    loaded = transformers.AutoModel.from_pretrained("alice/hf-swin")
    assert type(loaded).__name__ == "SwinModel"
    for name, tensor in swin.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name

    vit = timm.create_model("test_vit", num_classes=5)
    save_for_hf(vit, tmp_path / "vit", model_config={"num_classes": 5}, safe_serialization="both")
    api.create_repo("alice/timm-vit")
    api.upload_folder(repo_id="alice/timm-vit", folder_path=tmp_path / "vit")
    loaded_vit = timm.create_model("hf-hub:alice/timm-vit", pretrained=True)
    for name, tensor in vit.state_dict().items():
        assert torch.equal(loaded_vit.state_dict()[name], tensor), name
    assert hub.unhandled == []

    before = len(hub.exchanges)
    with hub_env(hub, tmp_path / "hf-cache", offline=True):
        transformers.AutoModel.from_pretrained("alice/hf-swin")
        timm.create_model("hf-hub:alice/timm-vit", pretrained=True)
    assert len(hub.exchanges) == before  # offline loads never touched the server
