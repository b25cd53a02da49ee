"""Hostile inputs for `swinzoo publish` (and the readers it shares with predict and the card): issue 11.

Each case asserts the harness's contract (tests/hostile.py): non-zero exit, a one-line message naming the
file / field / value at fault, no traceback, bounded memory and time, the folder untouched, nothing left
behind. The Hub is tests/hubserver.py, made to misbehave through ``server.fault``; hashes are computed here
with hashlib, never by the code under test.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
import torch
from conftest import random_model
from hostile import assert_clean_failure, leftovers, run_cli, tree_digest
from hubserver import DROP, HubServer, Response, hub_env
from test_publish import make_folder, small_config, verification_record
from test_verify import cache, zoo  # noqa: F401 - fixtures

import swinzoo
from swinzoo.card import build_card
from swinzoo.modeling import SwinForImageClassification
from swinzoo.publish import PublishError, publish

TOKEN = "hf_" + "Zq8XvT3mKp7LwR2nB5cY9dF4gH6jA1sE"  # the shape of a real user token
SECONDS = 60


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "tiny")


@pytest.fixture
def hub(tmp_path: Path):
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token=TOKEN):
        yield server


def publish_fails(folder: Path, *needles: str, repo_id: str = "alice/tiny", args: tuple[str, ...] = ()) -> str:
    """`swinzoo publish` must refuse cleanly, leave the folder as it was and leave nothing behind."""
    before = tree_digest(folder.parent)
    result = run_cli("publish", folder, "--repo-id", repo_id, *args, seconds=SECONDS)
    message = assert_clean_failure(result, *needles)
    assert TOKEN not in message
    assert tree_digest(folder.parent) == before
    assert leftovers(folder.parent) == []
    return message


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------------------------- the gate
def test_changing_hidden_act_after_verify_changes_predictions_and_is_refused(hub, folder: Path) -> None:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = swinzoo.from_pretrained(folder)(x).logits
        edit_json(folder / "config.json", hidden_act="relu")
        after = swinzoo.from_pretrained(folder)(x).logits
    assert not torch.allclose(before, after)  # why config.json must be bound: it changes what the model computes
    publish_fails(folder, "config_sha256", "config.json", "swinzoo verify NAME --converted")
    assert hub.exchanges == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("layer_norm_eps", 1e-2), ("hidden_act", "relu"), ("id2label", {str(i): f"x{i}" for i in range(10)})],
)
def test_any_config_change_after_verify_is_refused(hub, folder: Path, field: str, value) -> None:
    edit_json(folder / "config.json", **{field: value})
    publish_fails(folder, "config_sha256", "changed since verify")


def test_changed_weights_are_refused(hub, folder: Path) -> None:
    other = make_folder(folder.parent / "other", seed=1)
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    publish_fails(folder, "weights_sha256", sha256_file(folder / "model.safetensors"))


def summary_of(output: str) -> dict:
    """The --json summary out of stdout + stderr (a --force warning may come first)."""
    return json.JSONDecoder().raw_decode(output, output.index("{"))[0]


def _bound(folder: Path, **changes) -> dict:
    record = verification_record(
        weights_sha256=sha256_file(folder / "model.safetensors"),
        config_sha256=sha256_file(folder / "config.json"),
        conversion_sha256=sha256_file(folder / "conversion.json"),
        dtype="float32",
        synthetic=True,
    )
    record.update(changes)
    return record


HAND_WRITTEN = [
    ("passed-only", lambda f: {"passed": True}, ["schema_version", "re-verify"]),
    ("passed-status-only", lambda f: {"passed": True, "status": "pass", "schema_version": 3}, ["weights_sha256"]),
    ("no-weights-hash", lambda f: {k: v for k, v in _bound(f).items() if k != "weights_sha256"}, ["weights_sha256"]),
    ("no-config-hash", lambda f: {k: v for k, v in _bound(f).items() if k != "config_sha256"}, ["config_sha256"]),
    ("no-conversion-hash", lambda f: {k: v for k, v in _bound(f).items() if k != "conversion_sha256"}, ["conversion"]),
    ("schema-2", lambda f: _bound(f, schema_version=2), ["older schema", "re-verify"]),
    ("other-source", lambda f: _bound(f, source_sha256="6" * 64), ["source_sha256", "6" * 64]),
    ("says-real", lambda f: _bound(f, synthetic=False), ["synthetic", "conversion.json"]),
    ("no-tolerance", lambda f: {k: v for k, v in _bound(f).items() if k != "tolerance"}, ["tolerance"]),
    ("no-dtype", lambda f: {k: v for k, v in _bound(f).items() if k != "dtype"}, ["dtype"]),
    ("old-schema", lambda f: {k: v for k, v in _bound(f).items() if k != "schema_version"}, ["older schema"]),
    ("schema-1", lambda f: _bound(f, schema_version=1), ["older schema", "re-verify"]),
    ("schema-99", lambda f: _bound(f, schema_version=99), ["schema_version 99"]),
    ("other-version", lambda f: _bound(f, swinzoo_version="0.0.1"), ["swinzoo_version", "'0.0.1'"]),
    ("loose-tolerance", lambda f: _bound(f, tolerance={"atol": 1.0, "rtol": 0.0}), ["tolerance", "float32"]),
    ("dtype-lie", lambda f: _bound(f, dtype="bfloat16"), ["dtype", "'bfloat16'", "float32"]),
    ("passed-but-failed", lambda f: _bound(f, status="fail"), ["did not pass", "status fail"]),
    ("hash-null", lambda f: _bound(f, config_sha256=None), ["config_sha256"]),
]


@pytest.mark.parametrize(("case", "record", "needles"), HAND_WRITTEN, ids=[c[0] for c in HAND_WRITTEN])
def test_a_hand_written_or_stale_verification_is_refused(hub, folder: Path, case, record, needles) -> None:
    (folder / "verification.json").write_text(json.dumps(record(folder)))
    publish_fails(folder, "verification.json", *needles)
    assert hub.exchanges == []


def test_the_bound_record_itself_is_accepted(hub, folder: Path) -> None:
    """The control for the cases above: the same record, complete and matching, publishes."""
    (folder / "verification.json").write_text(json.dumps(_bound(folder)))
    result = run_cli("publish", folder, "--repo-id", "alice/tiny", "--json", seconds=SECONDS)
    assert result.exit_code == 0, result.output
    assert summary_of(result.output)["verified"] is True


def test_the_card_does_not_say_verified_for_a_changed_config(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "real", conversion={"synthetic": False})  # random weights are never verified
    assert "verified" in build_card(folder).data.tags
    edit_json(folder / "config.json", layer_norm_eps=1e-2)
    card = build_card(folder)
    assert "verified" not in card.data.tags and "not-verified" in card.data.tags
    assert "**NOT VERIFIED**" in card.text and "config_sha256" in card.text


def test_force_still_publishes_a_refused_folder_as_not_verified(hub, folder: Path) -> None:
    edit_json(folder / "config.json", hidden_act="relu")
    result = run_cli("publish", folder, "--repo-id", "alice/tiny", "--force", "--json", seconds=SECONDS)
    assert result.exit_code == 0, result.output
    assert summary_of(result.output)["verified"] is False
    card = hub.repo("alice/tiny")
    readme = card.content(card.commits[card.branches["main"]].tree["README.md"]).decode()
    assert "not-verified" in readme and "**NOT VERIFIED**" in readme


# --------------------------------------------------------------------------------------------- bad JSON files
BAD_JSON = [
    ("invalid", b'{"task": ', "not valid JSON"),
    ("list", b"[]", "expected a JSON object, got list"),
    ("null", b"null", "expected a JSON object, got null"),
    ("bad-utf8", b'{"task": "\xff\xfe"}', "not UTF-8"),
    ("deep", b"[" * 100000 + b"]" * 100000, "nested too deeply"),
]
WRONG_TYPES = {
    "conversion.json": [("notes", 5), ("mapped", []), ("entry", 3), ("synthetic", "yes"), ("notes", [1])],
    "config.json": [("task", 5), ("version", "x"), ("id2label", [1]), ("version", True)],
    "verification.json": [
        ("references", 5),
        ("passed", "yes"),
        ("images", [1]),
        ("tolerance", "1e-5"),
        ("references", [1]),
        ("schema_version", "2"),
    ],  # fmt: skip
}
BAD_FILES = [(name, case, body, needle) for name in WRONG_TYPES for case, body, needle in BAD_JSON]
BAD_FIELDS = [(name, key, value) for name, fields in WRONG_TYPES.items() for key, value in fields]


@pytest.mark.parametrize(("name", "case", "body", "needle"), BAD_FILES, ids=[f"{n}-{c}" for n, c, _, _ in BAD_FILES])
def test_publish_names_an_unreadable_json_file(hub, folder: Path, name, case, body, needle) -> None:
    (folder / name).write_bytes(body)
    publish_fails(folder, name, needle)
    assert hub.exchanges == []


@pytest.mark.parametrize(("name", "key", "value"), BAD_FIELDS, ids=[f"{n}-{k}-{v!r}" for n, k, v in BAD_FIELDS])
def test_publish_names_a_field_of_the_wrong_type(hub, folder: Path, name, key, value) -> None:
    edit_json(folder / name, **{key: value})
    if name != "verification.json":  # keep the record bound, so it is the field that is refused
        edit_json(folder / "verification.json", config_sha256=sha256_file(folder / "config.json"))
    publish_fails(folder, name, repr(key))


@pytest.mark.parametrize(("case", "body", "needle"), BAD_JSON, ids=[c[0] for c in BAD_JSON])
def test_predict_names_an_unreadable_conversion_json(folder: Path, tmp_path: Path, case, body, needle) -> None:
    from PIL import Image

    image = tmp_path / "cat.png"
    Image.new("RGB", (64, 64), (120, 80, 40)).save(image)
    (folder / "conversion.json").write_bytes(body)
    assert_clean_failure(run_cli("predict", image, "--model", folder, seconds=SECONDS), "conversion.json", needle)


# --------------------------------------------------------------------------------------------- the Hub
def test_an_unreachable_hub_is_one_line(folder: Path, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = HubServer()
    server._url = f"http://127.0.0.1:{port}"
    with hub_env(server, tmp_path / "hf-cache", token=TOKEN):
        publish_fails(folder, "cannot reach the Hub", f"127.0.0.1:{port}")


def _on(path_part: str, answer):
    """A fault on requests whose path holds ``path_part`` (the rest are served normally)."""
    return lambda request: answer(request) if path_part in request.path else None


HTML = Response(200, b"<html><body>Welcome to the captive portal</body></html>", {"Content-Type": "text/html"})
GARBAGE = Response(200, bytes(range(256)) * 4, {"Content-Type": "application/json"})
HUB_FAULTS = [
    ("create-html", "/api/repos/create", lambda r: HTML, "not what the Hub API answers"),
    ("create-garbage", "/api/repos/create", lambda r: GARBAGE, "not what the Hub API answers"),
    ("create-500-html", "/api/repos/create", lambda r: Response(502, b"<html>Bad gateway</html>"), "502"),
    ("create-drop", "/api/repos/create", lambda r: DROP, "creating alice/tiny"),
    ("info-html", "/api/models/", lambda r: HTML, "reading alice/tiny@main"),
    ("info-garbage", "/api/models/", lambda r: GARBAGE, "reading alice/tiny@main"),
    ("info-drop", "/api/models/", lambda r: DROP, "reading alice/tiny@main"),
    ("info-wrong-json", "/api/models/", lambda r: Response(200, b'{"siblings": 5}'), "reading alice/tiny@main"),
    ("commit-drop", "/commit/", lambda r: DROP, "committing to alice/tiny@main"),
    ("commit-html", "/commit/", lambda r: HTML, "committing to alice/tiny@main"),
    ("preupload-drop", "/preupload/", lambda r: DROP, "committing to alice/tiny@main"),
]


@pytest.mark.parametrize(("case", "where", "answer", "needle"), HUB_FAULTS, ids=[c[0] for c in HUB_FAULTS])
def test_a_misbehaving_hub_is_one_line(hub: HubServer, folder: Path, case, where, answer, needle) -> None:
    hub.fault = _on(where, answer)
    publish_fails(folder, needle)


def _echo_token(request) -> Response:
    header = request.headers.get("Authorization", "")
    body = json.dumps({"error": f"Invalid credentials: got Authorization: {header} (token {header.split()[-1]})"})
    return Response(401, body.encode(), {"Content-Type": "application/json", "X-Error-Message": f"bad {header}"})


@pytest.mark.parametrize("where", ["/api/repos/create", "/api/models/", "/commit/"])
def test_a_hub_error_echoing_the_token_never_prints_it(hub: HubServer, folder: Path, where: str) -> None:
    hub.fault = _on(where, _echo_token)
    message = publish_fails(folder, "401")
    assert TOKEN[3:] not in message and "[REDACTED]" in message
    with pytest.raises(PublishError) as caught:  # Python callers print the exception too: redacted at the source
        publish(folder, "alice/tiny")
    assert TOKEN[3:] not in str(caught.value) and "401" in str(caught.value)
    assert any(TOKEN in ex.response_body.decode() for ex in hub.exchanges)  # the server did echo it


def test_from_pretrained_never_prints_an_echoed_token(hub: HubServer, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "cat.png"
    Image.new("RGB", (64, 64)).save(image)
    hub.fault = _echo_token
    result = run_cli("predict", image, "--model", "alice/tiny", seconds=SECONDS)
    message = assert_clean_failure(result, "alice/tiny")
    assert TOKEN[3:] not in message
    assert any(TOKEN in ex.response_body.decode() for ex in hub.exchanges)


BAD_REPO_IDS = ["a/b/c", "../x", "x/..", "a b/c", "alice/my model", "alice/", "/x", "", "alice", "a/.."]


@pytest.mark.parametrize("repo_id", BAD_REPO_IDS)
def test_an_invalid_repo_id_is_refused_before_anything_is_sent(hub: HubServer, folder: Path, repo_id: str) -> None:
    publish_fails(folder, "--repo-id", repr(repo_id), repo_id=repo_id)
    assert hub.exchanges == []


def test_a_bfloat16_folder_is_bound_to_its_own_dtype(hub: HubServer, tmp_path: Path) -> None:
    model = random_model(SwinForImageClassification, small_config()).to(torch.bfloat16)
    folder = make_folder(tmp_path / "bf16", model)
    assert json.loads((folder / "verification.json").read_text())["dtype"] == "bfloat16"
    edit_json(folder / "verification.json", dtype="float32")
    publish_fails(folder, "dtype", "'float32'", "bfloat16")


# --------------------------------------------------------------------------------------------- convert, verify, publish
@pytest.fixture
def verified(zoo, cache, tmp_path: Path) -> Path:  # noqa: F811 - fixtures of test_verify
    """A tiny entry converted and verified by swinzoo itself (the real writer of verification.json)."""
    from swinzoo.convert import convert
    from swinzoo.verify import verify_entry

    folder = tmp_path / "tiny-swin"
    convert("tiny-swin", synthetic=True, out_dir=folder, cache_dir=cache, progress=False)
    assert verify_entry("tiny-swin", synthetic=True, converted=folder, cache_dir=cache).passed
    return folder


def test_a_folder_verified_by_swinzoo_publishes_and_a_later_config_edit_is_refused(hub, verified: Path) -> None:
    dry = run_cli("publish", verified, "--repo-id", "alice/tiny", "--dry-run", seconds=SECONDS)
    assert dry.exit_code == 0, dry.output
    edit_json(verified / "config.json", layer_norm_eps=1e-3)
    publish_fails(verified, "config_sha256", "swinzoo verify tiny-swin --converted")


@pytest.mark.parametrize(
    ("name", "body", "needle"),
    [
        ("conversion.json", b"[]", "conversion.json"),
        ("conversion.json", b'{"source_sha256": 5}', "conversion.json"),
        ("config.json", b"\xff\xfe", "config.json"),
        ("conversion.json", {"notes": 5}, "conversion.json: field 'notes'"),  # read by the card verify rewrites
        ("conversion.json", {"mapped": []}, "conversion.json: field 'mapped'"),
    ],
    ids=["list", "sha-int", "bad-utf8", "notes-int", "mapped-list"],
)
def test_verify_names_an_unreadable_record(verified: Path, cache: Path, name: str, body, needle: str) -> None:  # noqa: F811
    if isinstance(body, dict):
        edit_json(verified / name, **body)
    else:
        (verified / name).write_bytes(body)
    result = run_cli("verify", "tiny-swin", "--synthetic", "--converted", verified, "--cache-dir", cache, "--quiet")
    assert_clean_failure(result, needle)


def test_a_config_replaced_between_the_gate_and_the_upload_is_refused(hub, folder: Path, monkeypatch) -> None:
    import swinzoo.publish as P

    original = P.build_card

    def swap_then_build(*args, **kwargs):  # runs after the gate passed, before the files are hashed for upload
        edit_json(folder / "config.json", hidden_act="relu")
        return original(*args, **kwargs)

    monkeypatch.setattr(P, "build_card", swap_then_build)
    with pytest.raises(PublishError, match="config.json changed while publishing.*nothing was sent"):
        publish(folder, "alice/tiny")
    assert hub.exchanges == []


@pytest.mark.parametrize("name", ["conversion.json", "verification.json", "config.json"])
def test_an_oversized_record_is_refused_before_it_is_read(hub, folder: Path, name: str) -> None:
    with (folder / name).open("r+b") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: 64 MB of NULs that cost no disk
    publish_fails(folder, name, "bytes; a swinzoo record is at most")


# ----------------------------------------------------------------------------------------- the provenance (issue 21)
CONVERSION_EDITS = [
    ("says-real", {"synthetic": False}),
    ("other-entry", {"entry": "swin-large-patch4-window12-384-22k"}),
    ("other-source", {"source": "https://example.org/other.pth"}),
    ("other-source-sha", {"source_sha256": "6" * 64}),
    ("no-source-sha", {"source_sha256": None}),
    ("retargeted", {"retarget": {"from": {"image_size": 224}, "to": {"image_size": 384}}}),
    ("pinned", {"source_pinned": True}),
]


@pytest.mark.parametrize("changes", [c for _, c in CONVERSION_EDITS], ids=[n for n, _ in CONVERSION_EDITS])
def test_editing_the_provenance_after_verify_is_refused(hub, tmp_path: Path, changes: dict) -> None:
    """conversion.json is what the card states (entry, source and its sha256, synthetic or not, retargeting):
    the verdict binds its bytes, so any edit after verify voids it."""
    folder = make_folder(tmp_path / "real", conversion={"synthetic": False})
    assert "verified" in build_card(folder).data.tags  # the control: as verified, the card says so
    edit_json(folder / "conversion.json", **changes)
    publish_fails(folder, "conversion_sha256", "conversion.json", "changed since verify")
    assert hub.exchanges == []
    card = build_card(folder)
    assert "verified" not in card.data.tags and "**NOT VERIFIED**" in card.text


def test_forcing_an_edited_provenance_publishes_it_as_not_verified(hub, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "real", conversion={"synthetic": False})
    edit_json(folder / "conversion.json", entry="swin-tiny-patch4-window7-224")
    result = run_cli("publish", folder, "--repo-id", "alice/tiny", "--force", "--json", seconds=SECONDS)
    assert result.exit_code == 0, result.output
    assert summary_of(result.output)["verified"] is False
    repo = hub.repo("alice/tiny")
    readme = repo.content(repo.commits[repo.branches["main"]].tree["README.md"]).decode()
    assert "not-verified" in readme and "**NOT VERIFIED**" in readme and "conversion_sha256" in readme


def test_a_verdict_copied_from_another_folder_is_refused(hub, tmp_path: Path) -> None:
    """Two folders of the same weights, config and source, but one of them says its weights are real: the
    verification.json of the synthetic one does not make the other verified."""
    synthetic = make_folder(tmp_path / "synthetic")
    real = make_folder(tmp_path / "real", conversion={"synthetic": False}, verification=None)
    (real / "verification.json").write_bytes((synthetic / "verification.json").read_bytes())
    publish_fails(real, "conversion_sha256")


# ------------------------------------------------------------------------------------- what publish sends (issue 21)
@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "conversion.json", "verification.json"])
def test_force_never_sends_a_file_reached_through_a_link(hub, folder: Path, tmp_path: Path, name: str) -> None:
    """A private file linked into the folder (as a bound file or a record) is not read and not sent."""
    private = tmp_path / "private" / name
    private.parent.mkdir()
    private.write_bytes((folder / name).read_bytes())  # the same bytes: the verdict would even match
    (folder / name).unlink()
    (folder / name).symlink_to(private)
    for args in ((), ("--force",)):
        publish_fails(folder, str(folder / name), "symbolic link", args=args)
    assert hub.exchanges == []


def test_force_never_sends_a_weights_file_that_is_not_safetensors(hub, folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + b"A" * 400)
    publish_fails(folder, "model.safetensors", "not a safetensors file", args=("--force",))
    assert hub.exchanges == []


def test_force_never_sends_a_record_that_is_not_json(hub, folder: Path) -> None:
    (folder / "verification.json").write_bytes(b"aws_secret_access_key = AKIA0123456789ABCDEF\n")
    publish_fails(folder, "verification.json", "not valid JSON", args=("--force",))
    assert hub.exchanges == []


@pytest.mark.parametrize("fmt", ["swinzoo", "transformers", "timm"])
def test_weights_replaced_after_the_gate_are_refused_in_every_format(
    hub, folder: Path, tmp_path: Path, monkeypatch, fmt: str
) -> None:
    """The gate passes, then the weights are swapped before the export reads them: the bytes sent (or exported)
    are not the verified ones, whatever the format."""
    import swinzoo.publish as P

    other = make_folder(tmp_path / "other", seed=1)
    original = P.build_files

    def swap_then_build(folder_: Path, *args, **kwargs):  # runs after the gate passed
        (folder_ / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
        return original(folder_, *args, **kwargs)

    monkeypatch.setattr(P, "build_files", swap_then_build)
    with pytest.raises(PublishError, match="model.safetensors changed while publishing.*nothing was sent"):
        publish(folder, "alice/tiny", fmt=fmt)
    assert hub.exchanges == []


# ------------------------------------------------------------------------- verify binds what it compared (issue 21)
def test_weights_swapped_during_verify_are_not_bound_into_a_passing_verdict(
    verified: Path,
    cache: Path,  # noqa: F811 - the fixture of test_verify
    tmp_path: Path,
    monkeypatch,
) -> None:
    import swinzoo.verify.orchestration as O
    from swinzoo.convert import convert
    from swinzoo.gate import verification_problems
    from swinzoo.verify import verify_entry

    compared = sha256_file(verified / "model.safetensors")
    other = tmp_path / "other"
    convert("tiny-swin", synthetic=True, seed=1, out_dir=other, cache_dir=cache, progress=False)
    original = O.run_swinzoo

    def swap_after_reading(*args, **kwargs):  # the folder's weights are read: swinzoo's outputs are computed now
        (verified / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
        return original(*args, **kwargs)

    monkeypatch.setattr(O, "run_swinzoo", swap_after_reading)
    verify_entry("tiny-swin", synthetic=True, converted=verified, cache_dir=cache)
    record = json.loads((verified / "verification.json").read_text())
    assert record["weights_sha256"] == compared  # the bytes compared, not the ones there at the end
    assert any("weights_sha256" in p for p in verification_problems(verified))


def test_weights_swapped_while_verify_reads_them_fail_the_run(
    verified: Path,
    cache: Path,  # noqa: F811 - the fixture of test_verify
    tmp_path: Path,
    monkeypatch,
) -> None:
    import swinzoo.loading
    from swinzoo.convert import convert
    from swinzoo.gate import verification_problems
    from swinzoo.verify import verify_entry

    other = tmp_path / "other"
    convert("tiny-swin", synthetic=True, seed=1, out_dir=other, cache_dir=cache, progress=False)
    original = swinzoo.loading.from_pretrained

    def swap_then_load(path, *args, **kwargs):  # after the folder's bytes were hashed, before they are loaded
        (verified / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
        return original(path, *args, **kwargs)

    monkeypatch.setattr("swinzoo.verify.orchestration.from_pretrained", swap_then_load)  # the loader verify calls
    report = verify_entry("tiny-swin", synthetic=True, converted=verified, cache_dir=cache)
    assert report.status == "fail"
    assert any("model.safetensors changed while verify read it" in p for p in report.problems)
    assert any("did not pass" in p for p in verification_problems(verified))


# ----------------------------------------------------------------------------------------- secrets in URLs (issue 21)
def test_a_password_in_hf_endpoint_is_printed_nowhere(hub: HubServer, tmp_path: Path, monkeypatch) -> None:
    """HF_ENDPOINT=http://user:pass@host: swinzoo's message and every log line of the libraries it calls (the
    client logs each retry with the full URL) show the host without the credentials."""
    import logging

    from huggingface_hub import constants
    from huggingface_hub.utils import _http
    from PIL import Image

    password = "s3cret-Pa55word"
    with socket.socket() as s:  # a port nobody listens on: the client retries, logging each try
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://alice:{password}@127.0.0.1:{port}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(_http.time, "sleep", lambda seconds: None)  # the client's retries, without their waits
    # past swinzoo's reachability probe (which fails fast without a request): the client itself tries and logs
    # and with its retry warnings on (swinzoo silences them): what any library logs must be redacted too
    import contextlib

    monkeypatch.setattr("swinzoo.loading._hub_reachable", lambda: True)
    monkeypatch.setattr("swinzoo.loading._hub_quiet", contextlib.nullcontext)
    image = tmp_path / "cat.png"
    Image.new("RGB", (8, 8)).save(image)

    class Lines(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(self.format(record))

    lines = Lines()
    logging.getLogger("huggingface_hub").addHandler(lines)
    try:
        result = run_cli("predict", image, "--model", "alice/tiny", seconds=SECONDS)
    finally:
        logging.getLogger("huggingface_hub").removeHandler(lines)
        logging.setLogRecordFactory(logging.LogRecord)  # the CLI's redaction, installed for its process
    assert_clean_failure(result, "alice/tiny")
    assert any("127.0.0.1" in line for line in lines.lines), (result.output, lines.lines)  # the URL was logged
    assert password not in result.output and all(password not in line for line in lines.lines), lines.lines


# ----------------------------------------------------------------------------------------- Hub downloads (issue 21)
def test_weights_that_do_not_match_the_sha256_the_hub_states_are_refused(hub: HubServer, folder: Path) -> None:
    """The Hub's storage serves other bytes (same size) under the sha256 it states (X-Linked-Etag): predict and
    from_pretrained refuse them, naming the file and both hashes."""
    from PIL import Image

    publish(folder, "alice/tiny")
    repo = hub.repo("alice/tiny")
    stated = sha256_file(folder / "model.safetensors")
    good = repo.lfs_objects[stated]
    tampered = bytearray(good)
    tampered[-64:] = bytes(64)  # the last tensor's values changed; the header (and the size) as before
    repo.lfs_objects[stated] = bytes(tampered)
    image = folder.parent / "cat.png"
    Image.new("RGB", (64, 64)).save(image)
    result = run_cli("predict", image, "--model", "alice/tiny", seconds=SECONDS)
    message = assert_clean_failure(result, "alice/tiny", "model.safetensors", stated)
    assert hashlib.sha256(bytes(tampered)).hexdigest() in message
    with pytest.raises(swinzoo.loading.LoadError, match="the Hub states sha256"):
        swinzoo.from_pretrained("alice/tiny")
