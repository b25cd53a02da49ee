"""`swinzoo predict` on synthetic weights warns; a Hub that cannot be reached is one line naming the repo; every
command's `--json` is a flag that prints JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import random_model
from hubserver import HubServer, hub_env
from test_publish import make_folder, small_config

from swinzoo.cli import main
from swinzoo.images import sample_image_paths
from swinzoo.modeling import SwinForImageClassification
from swinzoo.publish import publish

WARNING = "SYNTHETIC weights"


def _folder(path: Path, synthetic: bool) -> Path:
    model = random_model(SwinForImageClassification, small_config())
    return make_folder(path, model, conversion={"synthetic": synthetic})


def _predict(*args: str) -> click.testing.Result:
    result = CliRunner().invoke(main, ["predict", str(sample_image_paths()[0]), *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("as_json", [False, True])
def test_predict_warns_on_stderr_when_the_folder_says_synthetic(tmp_path: Path, as_json: bool) -> None:
    folder = _folder(tmp_path / "s", synthetic=True)
    result = _predict("--model", str(folder), *(["--json"] if as_json else []))
    assert WARNING in result.stderr and "testing the pipeline only" in result.stderr
    assert WARNING not in result.stdout
    if as_json:
        json.loads(result.stdout)  # the warning leaves stdout pure JSON


def test_predict_does_not_warn_on_real_weights(tmp_path: Path) -> None:
    result = _predict("--model", str(_folder(tmp_path / "r", synthetic=False)))
    assert WARNING not in result.stderr


def test_predict_warns_for_a_synthetic_hub_repo(tmp_path: Path) -> None:
    synthetic, real = _folder(tmp_path / "s", synthetic=True), _folder(tmp_path / "r", synthetic=False)
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token="hf_predict_test"):
        publish(synthetic, "alice/synthetic")
        publish(real, "alice/real")
        assert WARNING in _predict("--model", "alice/synthetic").stderr
        assert WARNING not in _predict("--model", "alice/real").stderr


def test_an_unreachable_hub_is_one_line_naming_the_repo(tmp_path: Path, monkeypatch) -> None:
    import types

    from huggingface_hub.utils import _http

    # huggingface_hub retries a refused connection 5 times with backoff; its only use of `time` is that sleep
    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    with HubServer() as server, hub_env(server, tmp_path / "hf-cache"):
        pass  # started and stopped: its port now refuses connections
    with hub_env(server, tmp_path / "hf-cache"):
        result = CliRunner().invoke(main, ["predict", str(sample_image_paths()[0]), "--model", "alice/gone"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "alice/gone" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(lambda: __import__("httpx2").ConnectError("connection reset by peer"), id="httpx2"),
        pytest.param(lambda: ConnectionResetError(104, "Connection reset by peer"), id="os"),
        pytest.param(lambda: TimeoutError("timed out"), id="timeout"),
    ],
)
def test_a_network_failure_midway_is_a_load_error_naming_the_repo(monkeypatch, error) -> None:
    import huggingface_hub

    from swinzoo.loading import LoadError, from_pretrained

    def fail(*args, **kwargs):
        raise error()

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with pytest.raises(LoadError, match=r"alice/tiny@main: cannot download config.json .*network failure"):
        from_pretrained("alice/tiny")


def test_every_commands_json_option_is_a_flag() -> None:
    for name, command in main.commands.items():
        options = {o.name: o for o in command.params if isinstance(o, click.Option)}
        if "--json" not in [opt for o in options.values() for opt in o.opts]:
            continue
        (json_option,) = [o for o in options.values() if "--json" in o.opts]
        assert json_option.is_flag, name
