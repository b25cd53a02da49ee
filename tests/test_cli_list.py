"""`swinzoo list`: the table, the JSON dump and the filters, run through click's CliRunner."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from swinzoo import cli
from swinzoo.manifest import load_manifests


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["list", *args])
    return result.exit_code, result.stdout


def table_names(stdout: str) -> list[str]:
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["name", "family", "kind", "params", "resolution", "acc@1", "pinned"]
    return [line.split()[0] for line in lines[1:]]


def test_table_lists_every_entry_with_size_resolution_and_accuracy():
    code, out = run()
    assert code == 0
    assert len(table_names(out)) == len(load_manifests())
    row = next(line.split() for line in out.splitlines() if line.startswith("swin-tiny-patch4-window7-224 "))
    # 28,288,354 parameters is timm's count for swin_tiny_patch4_window7_224; 81.2 is the MODELHUB top-1.
    assert row == ["swin-tiny-patch4-window7-224", "swin", "classification", "28.3M", "224", "81.2", "no"]
    pre = next(line.split() for line in out.splitlines() if line.startswith("simmim-swin-base-window6-192-100ep "))
    assert pre[2:] == ["simmim-pretrain", "89.9M", "192", "-", "no"]


def test_json_has_every_manifest_field_and_the_source_urls():
    code, out = run("--json")
    assert code == 0
    data = json.loads(out)
    assert len(data) == len(load_manifests())
    by_name = {d["name"]: d for d in data}
    tiny = by_name["swinv2-tiny-patch4-window8-256"]
    assert tiny["source"]["urls"] == [
        "https://github.com/SwinTransformer/storage/releases/download/v2.0.0/swinv2_tiny_patch4_window8_256.pth"
    ]
    assert set(tiny) >= {
        "name", "family", "kind", "layout", "num_classes", "label_set", "source", "architecture",
        "preprocessing", "metrics", "upstream", "simmim", "pretrained_from", "notes", "num_params",
    }  # fmt: skip
    assert tiny["architecture"]["depths"] == [2, 2, 6, 2]
    assert tiny["preprocessing"]["crop_pct"] == 0.875
    assert tiny["upstream"]["transformers"] == "microsoft/swinv2-tiny-patch4-window8-256"
    drive = by_name["simmim-swin-large-window12-192-800ep"]["source"]
    assert drive["urls"] == [] and "--source PATH" in drive["manual_download"]


FILTERS = [
    (["--family", "swinv2"], lambda e: e.family == "swinv2"),
    (["--kind", "simmim-pretrain"], lambda e: e.kind == "simmim-pretrain"),
    (["--filter", "WINDOW12TO"], lambda e: "window12to" in e.name),
    (
        ["--family", "swin", "--kind", "simmim-finetune"],
        lambda e: (e.family, e.kind) == ("swin", "simmim-finetune"),
    ),
]


@pytest.mark.parametrize(("args", "check"), FILTERS, ids=[" ".join(f[0]) for f in FILTERS])
def test_filters_keep_exactly_the_matching_entries(args, check):
    zoo = load_manifests()
    expected = [name for name, e in zoo.items() if check(e)]
    assert expected  # every filter here selects something
    code, out = run(*args)
    assert code == 0
    assert table_names(out) == expected
    code, out = run(*args, "--json")
    assert [d["name"] for d in json.loads(out)] == expected


def test_pinned_filter_splits_pinned_from_unpinned(monkeypatch):
    zoo = load_manifests()
    name = "swin-small-patch4-window7-224"
    pinned_source = dataclasses.replace(zoo[name].source, sha256="ab" * 32, pinned=True)
    zoo[name] = dataclasses.replace(zoo[name], source=pinned_source)
    monkeypatch.setattr(cli, "load_manifests", lambda: zoo)

    code, out = run("--pinned")
    assert code == 0 and table_names(out) == [name]
    assert out.splitlines()[1].split()[-1] == "yes"
    code, out = run("--unpinned")
    assert code == 0 and name not in table_names(out) and len(table_names(out)) == len(zoo) - 1


def test_no_match_prints_nothing_on_stdout_and_an_empty_json_list():
    code, out = run("--filter", "no-such-model")
    assert code == 0 and out == ""
    code, out = run("--filter", "no-such-model", "--json")
    assert code == 0 and json.loads(out) == []


def test_unknown_family_is_a_usage_error():
    result = CliRunner().invoke(cli.main, ["list", "--family", "vit"])
    assert result.exit_code == 2
    assert "swinv2" in result.output


def test_provisional_architectures_are_marked():
    code, out = run("--filter", "giant-22k-500k")
    assert code == 0
    params = [line.split()[3] for line in out.splitlines()[1:]]
    assert params and all(p.endswith("*") for p in params)


def test_format_params_uses_millions_and_billions():
    assert cli.format_params(28_288_354) == "28.3M"
    assert cli.format_params(3_010_430_176) == "3.01B"


def test_python_dash_m_swinzoo_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "swinzoo", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Usage: swinzoo" in done.stdout and "convert" in done.stdout
