"""The converted folder's records: one typed schema each, written by convert / verify and read by every step.

The expected fields are the ones this file states (what the issue and the card need), not read off the code;
the reading checks feed the records as a user's hand edit or an older swinzoo would leave them.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from test_convert import tiny

import swinzoo
from swinzoo.convert import convert
from swinzoo.folder import ConvertedFolder
from swinzoo.gate import verification_problems
from swinzoo.records import ConversionRecord, RecordError, VerificationRecord
from swinzoo.synthetic import write_official_checkpoint
from swinzoo.verify import TOLERANCES, Comparison, EntryReport, ReferenceResult, write_verification

#: What a conversion.json must tell a reader (provenance, mapping, the eval transform and a retarget).
CONVERSION_FIELDS = {
    "schema_version", "swinzoo_version", "entry", "converter", "source", "source_sha256", "source_pinned",
    "synthetic", "seed", "dtype", "mapped", "dropped", "buffers_checked", "notes", "preprocessing", "retarget",
}  # fmt: skip
#: What verification.json binds its verdict to, and what the card's table shows.
VERIFICATION_FIELDS = {
    "schema_version", "swinzoo_version", "verified_at", "entry", "status", "passed", "problems", "unchecked",
    "source", "source_sha256", "weights_sha256", "config_sha256", "conversion_sha256", "synthetic", "dtype",
    "tolerance", "images", "seed", "mask", "libraries", "references",
}  # fmt: skip


@pytest.fixture
def converted(tmp_path: Path) -> Path:
    ckpt = write_official_checkpoint(tmp_path / "c.pth", tiny(2), "official-swinv2")
    convert(source=ckpt, out_dir=tmp_path / "out", progress=False, num_labels=3)
    return tmp_path / "out"


def _passing_report(source_sha256: str) -> EntryReport:
    comparison = Comparison("logits", 1.0e-6, 4.0, 1e-3, True)
    timm = ReferenceResult("timm", "pass", library="timm", library_version="1.0", comparisons=[comparison])
    return EntryReport(entry="", status="pass", images=["a.jpg"], source_sha256=source_sha256, references=[timm])


def test_convert_writes_every_schema_field_and_nothing_outside_it(converted: Path, tmp_path: Path) -> None:
    raw = json.loads((converted / "conversion.json").read_text())
    assert set(raw) == CONVERSION_FIELDS
    assert raw["schema_version"] == ConversionRecord.SCHEMA == 1
    record = ConvertedFolder(converted).require_conversion()
    assert record.source_sha256 == hashlib.sha256((tmp_path / "c.pth").read_bytes()).hexdigest()
    assert record.converter == "official-swinv2" and record.synthetic is False and record.seed is None
    assert record.retarget is not None and record.retarget["to"]["num_labels"] == 3
    assert record.to_dict() == raw  # the typed record is the file, field for field


def test_verify_writes_every_schema_field_and_the_gate_accepts_it(converted: Path) -> None:
    sha = ConvertedFolder(converted).require_conversion().source_sha256
    assert sha is not None
    write_verification(converted, _passing_report(sha))
    raw = json.loads((converted / "verification.json").read_text())
    assert set(raw) == VERIFICATION_FIELDS
    record = ConvertedFolder(converted).verification()
    assert record is not None and record.to_dict() == raw
    assert record.schema_version == 3 and record.verdict and record.missing() == []
    assert record.weights_sha256 == hashlib.sha256((converted / "model.safetensors").read_bytes()).hexdigest()
    assert record.conversion_sha256 == hashlib.sha256((converted / "conversion.json").read_bytes()).hexdigest()
    assert record.tolerance == TOLERANCES["float32"].to_dict()
    assert verification_problems(converted) == []


def test_a_record_written_before_schema_versions_reads_as_schema_1(converted: Path) -> None:
    path = converted / "conversion.json"
    raw = json.loads(path.read_text())
    del raw["schema_version"], raw["preprocessing"], raw["retarget"], raw["seed"]
    path.write_text(json.dumps(raw))
    record = ConvertedFolder(converted).require_conversion()
    assert record.schema_version is None and record.entry == raw["entry"] and record.retarget is None


def test_a_conversion_schema_from_a_newer_swinzoo_is_refused_by_name(converted: Path) -> None:
    path = converted / "conversion.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 7}))
    with pytest.raises(RecordError, match=r"conversion.json: schema_version 7; this swinzoo reads schema 1"):
        ConvertedFolder(converted).conversion()


def test_an_older_verification_schema_reads_but_is_no_verdict(converted: Path) -> None:
    sha = ConvertedFolder(converted).require_conversion().source_sha256
    assert sha is not None
    write_verification(converted, _passing_report(sha))
    path = converted / "verification.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("config_sha256", "tolerance")}
    path.write_text(json.dumps({**old, "schema_version": 1}))
    record = ConvertedFolder(converted).verification()
    assert record is not None and record.schema_version == 1 and record.verdict
    (problem,) = verification_problems(converted)
    assert "an older schema (schema_version 1" in problem


@pytest.mark.parametrize(
    ("cls", "data", "needle"),
    [
        (ConversionRecord, {"mapped": []}, "field 'mapped' is list, expected an object"),
        (ConversionRecord, {"seed": True}, "field 'seed' is true, expected an integer"),
        (ConversionRecord, {"notes": ["ok", 3]}, "field 'notes' must be a list of strings"),
        (ConversionRecord, {"source_pinned": "true"}, "field 'source_pinned' is \"true\", expected true/false"),
        (VerificationRecord, {"references": ["timm"]}, "field 'references' must be a list of objects"),
        (VerificationRecord, {"tolerance": 1e-5}, "field 'tolerance' is 1e-05, expected an object"),
        (VerificationRecord, {"libraries": "torch"}, "field 'libraries' is \"torch\", expected an object"),
    ],
)
def test_a_field_of_the_wrong_json_type_is_named_with_its_file(cls, data: dict, needle: str) -> None:
    with pytest.raises(RecordError, match="^x/rec.json: ") as caught:
        cls.from_dict(data, "x/rec.json")
    assert needle in str(caught.value)


def test_fields_this_swinzoo_does_not_know_are_ignored() -> None:
    record = VerificationRecord.from_dict({"passed": True, "status": "pass", "reviewer": "bob"})
    assert record.verdict and "reviewer" not in record.to_dict()


def test_an_infinite_difference_is_written_as_strict_json(converted: Path) -> None:
    report = _passing_report("0" * 64)
    report.references[0].comparisons = [Comparison("logits", math.inf, 1.0, 1e-3, False)]
    path = write_verification(converted, report)
    raw = json.loads(path.read_text())  # json.loads accepts Infinity; the file must not hold it
    assert "Infinity" not in path.read_text() and raw["references"][0]["output_max_abs_diff"] == "inf"


def test_the_folder_names_each_file_swinzoo_writes(tmp_path: Path) -> None:
    folder = ConvertedFolder(tmp_path)
    names = [folder.weights, folder.config_file, folder.conversion_file, folder.verification_file]
    names += [folder.evaluation_file, folder.card_file]
    assert [p.name for p in names] == [
        "model.safetensors", "config.json", "conversion.json", "verification.json", "evaluation.json", "README.md",
    ]  # fmt: skip
    assert folder.conversion() is None and folder.verification() is None and folder.evaluation() is None
    with pytest.raises(RecordError, match="conversion.json: missing"):
        folder.require_conversion()
    assert swinzoo.folder.SWINZOO_FILES == tuple(p.name for p in names)


def test_the_first_reference_shape_reads_as_todays_and_the_card_shows_it(tmp_path: Path) -> None:
    from swinzoo.card import reference_rows

    first = {"reference": "timm", "version": "0.9.2", "max_abs_diff_logits": 2e-6, "max_abs_diff_hidden": 3e-6}
    record = VerificationRecord.from_dict({"passed": True, "references": [{**first, "passed": True}]})
    assert record.references == [
        {
            "reference": "timm",
            "library_version": "0.9.2",
            "output_max_abs_diff": 2e-6,
            "hidden_max_abs_diff": 3e-6,
            "passed": True,
            "status": "pass",
        }
    ]
    (row,) = reference_rows(record)
    assert (row["version"], row["logits"], row["hidden"], row["status"]) == ("0.9.2", 2e-6, 3e-6, "pass")
    failed = VerificationRecord.from_dict({"references": [{**first, "passed": False}]})
    assert reference_rows(failed)[0]["status"] == "fail"


def test_the_folder_and_its_records_are_public_and_read_without_torch() -> None:
    import subprocess
    import sys

    assert swinzoo.ConvertedFolder is ConvertedFolder and swinzoo.ConversionRecord is ConversionRecord
    assert {"ConvertedFolder", "ConversionRecord", "VerificationRecord"} <= set(swinzoo.__all__)
    code = "import sys, swinzoo; swinzoo.ConvertedFolder('.').conversion(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # a script reading records does not pay for torch


def test_type_checkers_see_exactly_the_public_names_from_the_modules_that_load_them() -> None:
    """``swinzoo._PUBLIC`` is the one list of public names; the ``if TYPE_CHECKING:`` imports mirror it."""
    import ast
    import importlib

    tree = ast.parse(Path(swinzoo.__file__).read_text(encoding="utf-8"))
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    imported = {
        alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert imported == swinzoo._PUBLIC
    assert swinzoo.__all__ == sorted(swinzoo._PUBLIC)
    for name, module in swinzoo._PUBLIC.items():
        assert getattr(swinzoo, name) is getattr(importlib.import_module(f"swinzoo.{module}"), name)
