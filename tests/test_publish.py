"""`swinzoo publish` against the test Hub (tests/hubserver.py) with the real huggingface_hub client.

Expected values come from outside the code under test: the folder's own files (hashlib), the server's stored
commits, and the libraries that load each export format (swinzoo, transformers, timm) running their own
forward passes on the same input.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import random_model, tiny_config
from hubserver import HubServer, hub_env, subprocess_env
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError
from safetensors import safe_open

import swinzoo
from swinzoo.cli import main
from swinzoo.loading import save_pretrained
from swinzoo.modeling import SwinForImageClassification, SwinForMaskedImageModeling
from swinzoo.publish import PublishError, publish

TOKEN = "hf_publish_test_token_9f3b2e"
SOURCE_SHA = "5" * 64
TOL = 1e-5  # max |diff| of logits between swinzoo and a library loading the export (float32)


def probe(*shape: int, seed: int = 0) -> torch.Tensor:
    """A fixed random input, so a tolerance check cannot pass or fail by chance between runs."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------- fixtures
def small_config(version: int = 1, **changes):
    """Three stages at 64 px with window 4: every stage keeps the window, so transformers can hold it too."""
    base = dict(depths=[2, 2, 2], num_heads=[1, 2, 4], embed_dim=16, image_size=64, window_size=4, num_labels=10)
    base.update(changes)
    return tiny_config(version, **base)


def verification_record(passed: bool = True, source_sha256: str = SOURCE_SHA, **changes) -> dict:
    """verification.json as swinzoo.verify writes it (status/passed/references with library versions)."""
    status = "pass" if passed else "fail"
    record = {
        "schema_version": 3,
        "swinzoo_version": swinzoo.__version__,
        "entry": "",
        "status": status,
        "passed": passed,
        "problems": [] if passed else ["timm: logits differ by 3.2e-02 > 1.0e-05"],
        "source_sha256": source_sha256,
        "tolerance": {"atol": 1e-5, "rtol": 1e-4},
        "images": ["chelsea.jpg", "coffee.jpg"],
        "references": [
            {
                "reference": "timm",
                "library": "timm",
                "library_version": "1.0.31",
                "status": status,
                "output_max_abs_diff": 1.5e-6 if passed else 3.2e-2,
                "hidden_max_abs_diff": 4.0e-6,
                "top5_agreement": 1.0,
            },
            {
                "reference": "transformers",
                "library": "transformers",
                "library_version": "5.23.0",
                "status": "pass",
                "output_max_abs_diff": 2.5e-6,
                "hidden_max_abs_diff": 3.0e-6,
                "top5_agreement": 1.0,
            },
        ],
    }
    record.update(changes)
    return record


def make_folder(
    path: Path,
    model: torch.nn.Module | None = None,
    *,
    entry: str = "",
    verification: dict | None | bool = True,
    seed: int = 0,
    conversion: dict | None = None,
) -> Path:
    """A converted folder as `swinzoo convert` leaves it (+ verification.json), holding a tiny random model.

    ``conversion``: fields of conversion.json to change before the verdict binds it."""
    model = model if model is not None else random_model(SwinForImageClassification, small_config(), seed)
    save_pretrained(model, path, metadata={"entry": entry, "source_sha256": SOURCE_SHA})
    record = {
        "swinzoo_version": swinzoo.__version__,
        "source": "synthetic official-swin checkpoint (seed 0)",
        "source_sha256": SOURCE_SHA,
        "source_pinned": False,
        "synthetic": True,
        "converter": "official-swin" if model.config.version == 1 else "official-swinv2",
        "entry": entry,
        "dtype": "float32",
        "mapped": {"a": "b"},
        "dropped": {},
        "notes": [],
    }
    record = {**record, **(conversion or {})}
    (path / "conversion.json").write_text(json.dumps(record, indent=2))
    if verification is True:
        verification = verification_record(entry=record["entry"])
    if verification:
        verification = {
            "synthetic": record["synthetic"],
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            **verification,
        }
        (path / "verification.json").write_text(json.dumps(verification, indent=2))
        rebind(path)
    return path


def rebind(path: Path) -> None:
    """Bind verification.json to the folder's bytes as they are now, as `swinzoo verify` binds them (hashlib
    here, not swinzoo's code): a re-verify after an edit."""
    record = json.loads((path / "verification.json").read_text())
    record.update(
        weights_sha256=sha256_file(path / "model.safetensors"),
        config_sha256=sha256_file(path / "config.json"),
        conversion_sha256=sha256_file(path / "conversion.json"),
    )
    (path / "verification.json").write_text(json.dumps(record, indent=2))


@pytest.fixture
def hub(tmp_path: Path):
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token=TOKEN):
        yield server


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "tiny")


def commits(repo_id: str, revision: str = "main") -> list[str]:
    return [c.commit_id for c in HfApi().list_repo_commits(repo_id, revision=revision)]


def commit_requests(server: HubServer) -> list:
    return [ex for ex in server.exchanges if ex.method == "POST" and "/commit/" in ex.path]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------- swinzoo format
def test_publish_then_from_pretrained_round_trip_is_exact(hub: HubServer, folder: Path) -> None:
    local = swinzoo.from_pretrained(folder)
    result = publish(folder, "alice/tiny-swin")
    assert result.changed and result.commit == commits("alice/tiny-swin")[0]

    files = set(HfApi().list_repo_files("alice/tiny-swin"))
    assert files == {".gitattributes", "README.md", "config.json", "conversion.json", "model.safetensors",
                     "verification.json"}  # fmt: skip
    remote = swinzoo.from_pretrained("alice/tiny-swin")
    assert type(remote) is SwinForImageClassification
    assert remote.state_dict().keys() == local.state_dict().keys()
    for name, tensor in local.state_dict().items():
        assert torch.equal(remote.state_dict()[name], tensor), name
    x = probe(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(remote(x).logits, local(x).logits)
    # the published weights are the folder's bytes: the Hub's LFS sha256 is the file's
    info = HfApi().model_info("alice/tiny-swin", files_metadata=True)
    lfs = {s.rfilename: s.lfs for s in info.siblings}["model.safetensors"]
    assert lfs is not None and lfs.sha256 == sha256_file(folder / "model.safetensors")


def test_republishing_an_unchanged_folder_makes_no_commit(hub: HubServer, folder: Path) -> None:
    first = publish(folder, "alice/tiny-swin")
    history = commits("alice/tiny-swin")
    requests_before = len(commit_requests(hub))
    again = publish(folder, "alice/tiny-swin")
    assert not again.changed and again.commit == first.commit and again.uploaded == []
    assert commits("alice/tiny-swin") == history
    assert len(commit_requests(hub)) == requests_before  # not even an empty commit was attempted


def test_a_changed_file_commits_only_what_differs(hub: HubServer, folder: Path) -> None:
    first = publish(folder, "alice/tiny-swin")
    conversion = json.loads((folder / "conversion.json").read_text())
    conversion["notes"] = ["a note added after the first publish"]
    (folder / "conversion.json").write_text(json.dumps(conversion))
    rebind(folder)  # verified again after the edit
    second = publish(folder, "alice/tiny-swin")
    assert second.changed and second.commit != first.commit
    # the card lists the notes, so it changes with conversion.json (and the verdict binding it); weights and
    # config do not
    assert sorted(second.uploaded) == ["README.md", "conversion.json", "verification.json"]
    lines = [json.loads(line) for line in commit_requests(hub)[-1].request_body.splitlines()]
    sent = sorted(x["value"]["path"] for x in lines if x["key"] != "header")
    assert sent == ["README.md", "conversion.json", "verification.json"]
    assert commits("alice/tiny-swin")[:2] == [second.commit, first.commit]


def test_a_concurrent_push_makes_the_commit_fail_cleanly(
    hub: HubServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    HfApi().create_repo("alice/tiny-swin")
    original = HfApi.create_commit
    raced = {}

    def racing_create_commit(self, repo_id, operations, **kwargs):
        # Another writer pushes between publish reading the head and committing on top of it.
        if not raced:
            raced["oid"] = original(
                HfApi(), repo_id, [CommitOperationAdd("other.txt", b"someone else")], commit_message="racer"
            ).oid
        return original(self, repo_id, operations, **kwargs)

    monkeypatch.setattr(HfApi, "create_commit", racing_create_commit)
    with pytest.raises(PublishError, match="412.*branch moved"):
        publish(folder, "alice/tiny-swin")
    assert commits("alice/tiny-swin")[0] == raced["oid"]
    assert set(HfApi().list_repo_files("alice/tiny-swin")) == {".gitattributes", "other.txt"}


def test_tag_names_the_published_commit_and_is_never_moved(hub: HubServer, folder: Path) -> None:
    first = publish(folder, "alice/tiny-swin", tag="v1")
    tags = {t.name: t.target_commit for t in HfApi().list_repo_refs("alice/tiny-swin").tags}
    assert first.tag_created and tags == {"v1": first.commit}

    again = publish(folder, "alice/tiny-swin", tag="v1")  # unchanged: same commit, tag already right
    assert not again.changed and not again.tag_created

    make_folder(folder, seed=1)  # different weights: a new commit, which v1 must not be moved to
    with pytest.raises(PublishError, match="tag 'v1'.*already points at.*nothing was committed"):
        publish(folder, "alice/tiny-swin", tag="v1")
    tags = {t.name: t.target_commit for t in HfApi().list_repo_refs("alice/tiny-swin").tags}
    assert tags == {"v1": first.commit} and commits("alice/tiny-swin")[0] == first.commit

    second = publish(folder, "alice/tiny-swin", tag="v2")
    seed0 = random_model(SwinForImageClassification, small_config(), 0).head.weight
    seed1 = random_model(SwinForImageClassification, small_config(), 1).head.weight
    assert not torch.equal(seed0, seed1)
    assert torch.equal(swinzoo.from_pretrained("alice/tiny-swin", revision="v1").head.weight, seed0)
    assert torch.equal(swinzoo.from_pretrained("alice/tiny-swin", revision="v2").head.weight, seed1)
    assert torch.equal(swinzoo.from_pretrained("alice/tiny-swin", revision=second.commit).head.weight, seed1)


def test_revision_publishes_to_a_branch_and_leaves_main_alone(hub: HubServer, folder: Path) -> None:
    result = publish(folder, "alice/tiny-swin", revision="dev")
    refs = HfApi().list_repo_refs("alice/tiny-swin")
    branches = {b.name: b.target_commit for b in refs.branches}
    assert branches["dev"] == result.commit and branches["main"] != result.commit
    assert HfApi().list_repo_files("alice/tiny-swin") == [".gitattributes"]
    loaded = swinzoo.from_pretrained("alice/tiny-swin", revision="dev")
    assert torch.equal(loaded.head.weight, swinzoo.from_pretrained(folder).head.weight)
    with pytest.raises(swinzoo.LoadError, match="no file config.json"):
        swinzoo.from_pretrained("alice/tiny-swin")


def test_private_repo_and_commit_message(hub: HubServer, folder: Path) -> None:
    publish(folder, "alice/secret", private=True, commit_message="First release of the tiny model")
    assert hub.repo("alice/secret").private
    assert HfApi().list_repo_commits("alice/secret")[0].title == "First release of the tiny model"
    with pytest.raises(RepositoryNotFoundError):  # invisible without the token
        HfApi(token=False).model_info("alice/secret")


def test_revision_must_name_a_branch_not_a_tag(hub: HubServer, folder: Path) -> None:
    first = publish(folder, "alice/tiny-swin", tag="v1")
    make_folder(folder, seed=1)
    with pytest.raises(PublishError, match="--revision 'v1' is a tag.*names a branch"):
        publish(folder, "alice/tiny-swin", revision="v1")
    assert commits("alice/tiny-swin")[0] == first.commit


def test_files_from_an_earlier_publish_are_deleted_in_the_same_commit(hub: HubServer, folder: Path) -> None:
    hub.seed_repo("alice/tiny-swin", {"pytorch_model.bin": b"\x00old pickle", "notes.txt": b"old"})
    result = publish(folder, "alice/tiny-swin")
    assert result.deleted == ["notes.txt", "pytorch_model.bin"]
    assert "pytorch_model.bin" not in HfApi().list_repo_files("alice/tiny-swin")
    assert len(commits("alice/tiny-swin")) == 3  # initial, seed, publish: one commit did it all


# --------------------------------------------------------------------------------------------- refusals
def test_an_unverified_folder_is_refused_and_nothing_is_sent(hub: HubServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "tiny", verification=None)
    with pytest.raises(PublishError, match=r"verification.json is missing.*swinzoo verify NAME --converted .*--force"):
        publish(folder, "alice/tiny-swin")
    assert hub.exchanges == [] and hub.repos == {}


def test_a_failed_verification_is_refused(hub: HubServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "tiny", verification=verification_record(passed=False))
    with pytest.raises(PublishError, match=r"did not pass: status fail \(timm: fail\)"):
        publish(folder, "alice/tiny-swin")
    assert hub.repos == {}


def test_a_verification_of_another_source_is_refused(hub: HubServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "tiny", verification=verification_record(source_sha256="6" * 64))
    with pytest.raises(PublishError, match="made for other provenance: source_sha256"):
        publish(folder, "alice/tiny-swin")


def test_force_publishes_unverified_weights_and_the_card_says_so(hub: HubServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "tiny", verification=None)
    result = publish(folder, "alice/tiny-swin", force=True)
    assert result.changed and result.forced_reasons
    card = ModelCard.load("alice/tiny-swin")
    assert "**NOT VERIFIED**" in card.text and "not-verified" in card.data.tags
    commit = HfApi().list_repo_commits("alice/tiny-swin")[0]
    assert "NOT VERIFIED" in commit.message or "NOT VERIFIED" in (commit.description or "")


def test_dry_run_builds_and_lists_the_files_without_contacting_the_hub(hub: HubServer, folder: Path) -> None:
    result = publish(folder, "alice/tiny-swin", dry_run=True, tag="v1")
    assert hub.exchanges == []
    listed = {f.path_in_repo: f for f in result.files}
    assert set(listed) == {"README.md", "config.json", "conversion.json", "model.safetensors", "verification.json"}
    for name in ("config.json", "model.safetensors", "verification.json"):
        assert listed[name].sha256 == sha256_file(folder / name)
        assert listed[name].size == (folder / name).stat().st_size


# --------------------------------------------------------------------------------------------- export formats
@pytest.mark.parametrize("version", [1, 2])
def test_transformers_format_loads_with_auto_model_and_matches(hub: HubServer, tmp_path: Path, version: int) -> None:
    transformers = pytest.importorskip("transformers")
    folder = make_folder(tmp_path / "tiny", random_model(SwinForImageClassification, small_config(version)))
    publish(folder, "alice/tiny-hf", fmt="transformers")
    hf = transformers.AutoModelForImageClassification.from_pretrained("alice/tiny-hf").eval()
    assert type(hf).__name__ == ("SwinForImageClassification" if version == 1 else "Swinv2ForImageClassification")
    ours = swinzoo.from_pretrained(folder)
    assert hf.config.id2label == ours.config.id2label
    x = probe(2, 3, 64, 64)
    with torch.inference_mode():
        assert (hf(x).logits - ours(x).logits).abs().max().item() <= TOL
    card = ModelCard.load("alice/tiny-hf")
    assert card.data.library_name == "transformers" and "AutoModelForImageClassification" in card.text
    # transformers 4.x parameter names (5.x reads them too), so both major versions load the repo
    with safe_open(hf_hub_download("alice/tiny-hf", "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    prefix = "swin" if version == 1 else "swinv2"
    assert f"{prefix}.encoder.layers.0.blocks.0.attention.self.query.weight" in keys
    assert not any("q_proj" in k for k in keys)


@pytest.mark.parametrize("version", [1, 2])
def test_transformers_format_of_simmim_loads_as_masked_image_modeling(
    hub: HubServer, tmp_path: Path, version: int
) -> None:
    transformers = pytest.importorskip("transformers")
    model = random_model(SwinForMaskedImageModeling, small_config(version, num_labels=1, encoder_stride=16))
    folder = make_folder(tmp_path / "mim", model)
    publish(folder, "alice/tiny-mim", fmt="transformers")
    cls = transformers.SwinForMaskedImageModeling if version == 1 else transformers.Swinv2ForMaskedImageModeling
    hf = cls.from_pretrained("alice/tiny-mim").eval()
    x = probe(2, 3, 64, 64)
    mask = torch.rand(2, 16 * 16, generator=torch.Generator().manual_seed(1)) < 0.5
    with torch.inference_mode():
        ours = model(x, bool_masked_pos=mask).reconstruction
        theirs = hf(x, bool_masked_pos=mask).reconstruction
    # reconstructions reach |4| here: float32 noise (measured up to 3e-6 relative) scales with them
    assert (ours - theirs).abs().max().item() <= TOL * theirs.abs().max().item()
    assert ModelCard.load("alice/tiny-mim").data.pipeline_tag == "image-feature-extraction"


@pytest.mark.parametrize("version", [1, 2])
def test_timm_format_loads_with_create_model_hf_hub_and_matches(hub: HubServer, tmp_path: Path, version: int) -> None:
    timm = pytest.importorskip("timm")
    folder = make_folder(tmp_path / "tiny", random_model(SwinForImageClassification, small_config(version)))
    publish(folder, "alice/tiny-timm", fmt="timm")
    model = timm.create_model("hf-hub:alice/tiny-timm", pretrained=True).eval()
    ours = swinzoo.from_pretrained(folder)
    x = probe(2, 3, 64, 64)
    with torch.inference_mode():
        assert (model(x) - ours(x).logits).abs().max().item() <= TOL
    data = timm.data.resolve_data_config({}, model=model)
    assert data["input_size"] == (3, 64, 64) and data["crop_pct"] == 0.875 and data["interpolation"] == "bicubic"
    assert ModelCard.load("alice/tiny-timm").data.library_name == "timm"


@pytest.mark.parametrize("fmt", ["transformers", "timm"])
def test_a_bfloat16_folder_exports_in_bfloat16(hub: HubServer, tmp_path: Path, fmt: str) -> None:
    model = random_model(SwinForImageClassification, small_config())
    folder = make_folder(tmp_path / "bf16", model.to(torch.bfloat16))  # weights stored in bfloat16
    publish(folder, "alice/bf16", fmt=fmt)
    with safe_open(hf_hub_download("alice/bf16", "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    if fmt == "timm":
        loaded = pytest.importorskip("timm").create_model("hf-hub:alice/bf16", pretrained=True)
    else:
        loaded = pytest.importorskip("transformers").AutoModelForImageClassification.from_pretrained("alice/bf16")
    x = probe(1, 3, 64, 64)
    ours_model, loaded = swinzoo.from_pretrained(folder).float(), loaded.eval().float()
    with torch.inference_mode():
        ours, theirs = ours_model(x).logits, loaded(x)
    assert (getattr(theirs, "logits", theirs) - ours).abs().max().item() <= TOL


def test_absolute_position_embeddings_have_no_transformers_format(hub: HubServer, tmp_path: Path) -> None:
    model = random_model(SwinForImageClassification, small_config(1, use_absolute_embeddings=True))
    folder = make_folder(tmp_path / "ape", model)
    with pytest.raises(PublishError, match="no transformers format.*absolute position embeddings"):
        publish(folder, "alice/ape", fmt="transformers")
    assert hub.repos == {}


def test_simmim_has_no_timm_format(hub: HubServer, tmp_path: Path) -> None:
    model = random_model(SwinForMaskedImageModeling, small_config(2, num_labels=1, encoder_stride=16))
    folder = make_folder(tmp_path / "mim", model)
    with pytest.raises(PublishError, match="no timm format.*--format swinzoo or --format transformers"):
        publish(folder, "alice/tiny-mim", fmt="timm")
    assert hub.repos == {}


# --------------------------------------------------------------------------------------------- CLI
def run_cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter, so huggingface_hub reads the environment the way a user's shell sets it."""
    command = [sys.executable, "-c", "from swinzoo.cli import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_cli_publish_tags_reports_and_never_prints_the_token(tmp_path: Path, folder: Path) -> None:
    with HubServer(tokens={TOKEN}) as server:
        env = subprocess_env(server, tmp_path / "hf-cache", token=TOKEN)
        args = ["publish", str(folder), "--repo-id", "alice/tiny-swin", "--tag", "v1"]
        first = run_cli(args, env)
        assert first.returncode == 0, first.stderr
        assert "published" in first.stdout and "tag v1" in first.stdout
        second = run_cli(args, env)
        assert second.returncode == 0, second.stderr
        assert "nothing changed" in second.stdout and "no new commit" in second.stdout
        for out in (first, second):
            assert TOKEN not in out.stdout and TOKEN not in out.stderr
        assert server.find_in_responses(TOKEN) == []
        repo = server.repo("alice/tiny-swin")
        assert repo.tags["v1"] == repo.branches["main"]


def test_cli_publish_refusal_exits_1_with_the_reason(hub: HubServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "tiny", verification=None)
    out = CliRunner().invoke(main, ["publish", str(folder), "--repo-id", "alice/tiny-swin"])
    assert out.exit_code == 1
    assert "refusing to publish unverified weights" in out.output and out.exception.__class__ is SystemExit
    assert hub.exchanges == []


def test_cli_publish_without_a_token_says_how_to_log_in(tmp_path: Path, folder: Path) -> None:
    # in-process (the test above runs the real entry point): no token anywhere, the Hub answers 401
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token=None):
        out = CliRunner().invoke(main, ["publish", str(folder), "--repo-id", "alice/tiny-swin"])
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.output
    assert "401" in out.stderr and "hf auth login" in out.stderr and "Traceback" not in out.output


def test_cli_publish_dry_run_lists_files_and_hashes(hub: HubServer, folder: Path) -> None:
    out = CliRunner().invoke(main, ["publish", str(folder), "--repo-id", "alice/tiny-swin", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert hub.exchanges == []
    assert "dry run: would publish" in out.output
    for name in ("model.safetensors", "config.json"):
        assert sha256_file(folder / name) in out.output


def test_cli_publish_json_summary(hub: HubServer, folder: Path) -> None:
    out = CliRunner().invoke(main, ["publish", str(folder), "--repo-id", "alice/tiny-swin", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["changed"] is True and summary["verified"] is True
    assert summary["commit"] == commits("alice/tiny-swin")[0]


def test_cli_publish_json_lists_only_the_files_it_sent(hub: HubServer, folder: Path) -> None:
    args = ["publish", str(folder), "--repo-id", "alice/tiny-swin", "--json"]
    first = json.loads(CliRunner().invoke(main, args).stdout)
    assert first["files"] and first["unchanged"] == []
    assert sorted(f["path"] for f in first["files"]) == sorted(first["uploaded"])
    again = json.loads(CliRunner().invoke(main, args).stdout)  # nothing changed: nothing listed as sent
    assert again["changed"] is False and again["files"] == [] and again["uploaded"] == []
    assert sorted(again["unchanged"]) == sorted(f["path"] for f in first["files"])


# --------------------------------------------------------------------------------------------- real entries
@pytest.mark.slow
def test_convert_verify_publish_reload_a_real_entry_end_to_end(hub: HubServer, tmp_path: Path) -> None:
    """The README pipeline on a real-size synthetic Swin V2-T: convert, verify, publish (3 formats), reload."""
    timm = pytest.importorskip("timm")
    transformers = pytest.importorskip("transformers")
    from swinzoo.convert import convert
    from swinzoo.verify import verify_entry

    name = "swinv2-tiny-patch4-window8-256"
    folder = tmp_path / name
    convert(name, synthetic=True, out_dir=folder, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(PublishError, match="verification.json is missing"):
        publish(folder, f"alice/{name}")
    report = verify_entry(name, synthetic=True, converted=folder, cache_dir=tmp_path / "cache")
    assert report.passed, report.problems

    result = publish(folder, f"alice/{name}", tag="v1")
    card = ModelCard.load(f"alice/{name}")
    # synthetic weights: no Hub copy, no authors' accuracy (81.8 % belongs to the real SwinV2-T/8), no verified tag
    assert card.data.base_model is None and card.data.eval_results is None and "verified" not in card.data.tags
    assert "| timm | " in card.text and "NOT VERIFIED" not in card.text
    local = swinzoo.from_pretrained(folder)
    remote = swinzoo.from_pretrained(f"alice/{name}", revision=result.commit)
    for key, tensor in local.state_dict().items():
        assert torch.equal(remote.state_dict()[key], tensor), key

    publish(folder, f"alice/{name}-hf", fmt="transformers")
    publish(folder, f"alice/{name}-timm", fmt="timm")
    hf = transformers.AutoModelForImageClassification.from_pretrained(f"alice/{name}-hf").eval()
    tm = timm.create_model(f"hf-hub:alice/{name}-timm", pretrained=True).eval()
    assert tm.pretrained_cfg["input_size"] == (3, 256, 256) and tm.pretrained_cfg["crop_pct"] == 0.875
    x = probe(1, 3, 256, 256)
    with torch.inference_mode():
        ours = local(x).logits
        assert (hf(x).logits - ours).abs().max().item() <= TOL
        assert (tm(x) - ours).abs().max().item() <= TOL


# --------------------------------------------------------------------------------------------- the gate's record
def test_the_record_verify_writes_is_accepted_and_voided_by_a_config_edit(tmp_path: Path) -> None:
    """swinzoo.verify's own writer and the publish gate agree on the record; a config edit afterwards voids it."""
    from swinzoo.gate import verification_problems
    from swinzoo.verify import TOLERANCES, EntryReport, ReferenceResult, write_verification

    folder = make_folder(tmp_path / "tiny", verification=None)
    report = EntryReport(entry="", status="pass", source_sha256=SOURCE_SHA, dtype="float32", synthetic=True)
    report.references = [ReferenceResult(reference="timm", status="pass", library="timm", library_version="1")]
    write_verification(folder, report)
    record = json.loads((folder / "verification.json").read_text())
    assert record["schema_version"] == 3 and record["swinzoo_version"] == swinzoo.__version__
    assert record["weights_sha256"] == sha256_file(folder / "model.safetensors")
    assert record["config_sha256"] == sha256_file(folder / "config.json")
    assert record["conversion_sha256"] == sha256_file(folder / "conversion.json")
    assert record["tolerance"] == TOLERANCES["float32"].to_dict()
    assert verification_problems(folder) == []
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-3}))
    (problem,) = verification_problems(folder)
    assert "config_sha256" in problem and "swinzoo verify NAME --converted" in problem


def test_evaluation_of_these_weights_travels_and_one_of_other_weights_is_refused(hub: HubServer, folder: Path) -> None:
    record = {"images": 10, "top1": 0.5, "top5": 0.9, "weights_sha256": sha256_file(folder / "model.safetensors")}
    (folder / "evaluation.json").write_text(json.dumps(record))
    result = publish(folder, "me/evaluated")
    assert "evaluation.json" in HfApi().list_repo_files("me/evaluated")
    assert result.changed
    (folder / "evaluation.json").write_text(json.dumps({**record, "weights_sha256": "0" * 64}))
    with pytest.raises(PublishError, match="evaluation.json was measured on other weights"):
        publish(folder, "me/evaluated-2")
