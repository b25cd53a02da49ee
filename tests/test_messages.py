"""Messages a new user meets first: each names what to do, once, and nothing runs before the input is checked."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from swinzoo.cli import main
from swinzoo.errors import SwinzooError
from swinzoo.fetch import ManualDownloadRequired
from swinzoo.manifest import get_entry, load_manifests


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_drive_only_error_says_pass_it_with_source_once_and_ends_one_sentence_once():
    drive = [e for e in load_manifests().values() if not e.source.urls]
    assert drive
    for entry in drive:
        message = str(ManualDownloadRequired(entry.name, entry.source.manual_download))
        assert ".." not in message and message.count("--source") == 1, message


def test_verify_with_no_arguments_names_every_way_to_say_what_to_verify():
    result = _cli("verify")
    assert result.exit_code != 0
    assert all(word in result.output for word in ("NAME", "--all", "--converted")), result.output
    assert "not both" not in result.output


def test_an_entry_prefix_is_answered_with_the_entries_it_starts():
    with pytest.raises(SwinzooError) as info:
        get_entry("swin-tiny")
    assert "swin-tiny-patch4-window7-224" in str(info.value)


def test_predict_names_a_missing_image_before_loading_any_model(monkeypatch, tmp_path):
    import swinzoo.predict as predict_module

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the images were checked")

    monkeypatch.setattr(predict_module, "load_classifier", must_not_load)
    result = _cli("predict", str(tmp_path / "nope.jpg"), "--model", "swin-tiny-patch4-window7-224")
    assert result.exit_code == 1, result.output
    assert "nope.jpg does not exist" in result.output and "AssertionError" not in result.output


def test_default_dataloader_workers_fit_the_cpus_this_process_may_use(monkeypatch):
    from swinzoo.evaluate import default_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert default_workers() == 2
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert default_workers() == 4
