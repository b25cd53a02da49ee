"""Publish a converted, verified folder to the Hugging Face Hub in one atomic commit.

Why one ``create_commit`` with ``parent_commit``: the branch head is read together with its file list, the
local files are compared with it (sha256 for LFS files, git's blob sha1 for the others, the hashes the Hub
reports), and only what differs is committed on top of exactly that head. A concurrent push moves the head,
the Hub answers 412, and nothing is half-published. Unchanged files mean no commit at all. The branch ends
up holding exactly the published files (plus ``.gitattributes``): files left from an earlier publish that
are not part of this one are deleted in the same commit, so a tag always names one coherent model.

Formats: ``swinzoo`` (the folder as converted: model.safetensors, config.json, conversion.json,
verification.json), ``transformers`` (config.json + model.safetensors that ``AutoModelForImageClassification``
or ``Swin(v2)ForMaskedImageModeling`` load; 4.x parameter names, which 5.x also reads) and ``timm``
(config.json with ``architecture``/``model_args``/``pretrained_cfg`` + model.safetensors in timm's layout,
for ``timm.create_model("hf-hub:ORG/NAME", pretrained=True)``). Every format gets the model card.

The gate (:mod:`swinzoo.gate`) decides what counts as verified; publish asks it before building anything, and
again, in every format, once the files are built (the folder's bound files hashed anew, each file sent from
the folder the one hashed), so a file replaced between the gate and the upload is refused. Only regular files
inside the folder that parse as what their name says are read, even with ``--force``.

The token comes from huggingface_hub (``HF_TOKEN`` or ``hf auth login``); swinzoo never reads or prints it.
"""

from __future__ import annotations

import hashlib  # git's blob sha1; sha256 is fetch.sha256_file's
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from . import __version__
from .card import CONFIG_FIELDS, FORMATS, CardError, build_card, entry_of, reference_rows
from .config import CONFIG_NAME, SwinConfig
from .converters.engine import Fused, Pattern, Rename, convert_state_dict, shapes_of
from .converters.timm_layout import create_timm_model, timm_model_args, timm_rules
from .converters.transformers_layout import (
    create_transformers_model,
    detect_style,
    foreign_shapes,
    transformers_config,
    transformers_rules,
)
from .errors import SwinzooError, one_line
from .export_records import ExportError, export_records, stale_reason
from .fetch import git_blob_sha1, sha256_file
from .folder import CARD_NAME, CONVERSION_NAME, VERIFICATION_NAME, ConvertedFolder
from .gate import (
    BOUND_FILES,
    UnsafeFileError,
    bound_hashes,
    check_publishable,
    read_verification,
    verification_passed,
    verification_problems,
)
from .loading import WEIGHTS_NAME, from_pretrained
from .manifest import official_22k_synsets
from .processing import PROCESSOR_NAME, ImageProcessor
from .records import VerificationRecord, read_json
from .system import network_errors

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from .converters.engine import Rule
    from .modeling import SwinPreTrainedModel

KEEP_REMOTE = frozenset({".gitattributes"})


class PublishError(SwinzooError, RuntimeError):
    """Publishing was refused or failed; the message says why and what to do. Nothing was half-published.

    The message is redacted (tokens, URL secrets) and kept to one line: Hub replies may echo headers.
    """

    def __init__(self, message: str) -> None:
        super().__init__(one_line(" ".join(str(message).split())))


# --------------------------------------------------------------------------------------------- files
@dataclass
class UploadFile:
    """One file of the commit: its path in the repo and where its bytes are (memory or a local file)."""

    path_in_repo: str
    content: bytes | Path  # an export's file lives in a temporary folder: only valid during publish()
    _sha256: str | None = field(default=None, repr=False)
    _sha1: str | None = field(default=None, repr=False)
    _size: int | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = len(self.content) if isinstance(self.content, bytes) else self.content.stat().st_size
        return self._size

    def freeze(self) -> UploadFile:
        """Compute size and sha256 now, so they outlive a temporary export folder."""
        _ = self.size, self.sha256
        return self

    @property
    def sha256(self) -> str:
        """What the Hub reports for an LFS file."""
        if self._sha256 is None:
            if isinstance(self.content, bytes):
                self._sha256 = hashlib.sha256(self.content).hexdigest()
            else:
                self._sha256 = sha256_file(self.content)
        return self._sha256

    @property
    def git_sha1(self) -> str:
        """Git's blob id (sha1 of ``blob <size>\\0`` + bytes): what the Hub reports for a regular file."""
        if self._sha1 is None:
            if isinstance(self.content, bytes):
                self._sha1 = hashlib.sha1(f"blob {self.size}\0".encode() + self.content).hexdigest()
            else:
                self._sha1 = git_blob_sha1(self.content)
        return self._sha1


@dataclass
class PublishResult:
    """What a publish did (or, with ``dry_run``, would do)."""

    repo_id: str
    revision: str
    fmt: str
    files: list[UploadFile]
    verification: VerificationRecord | None
    dry_run: bool = False
    forced_reasons: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    commit: str | None = None
    parent: str | None = None
    changed: bool = False
    tag: str | None = None
    tag_created: bool = False
    url: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "format": self.fmt,
            "dry_run": self.dry_run,
            # the files sent (a dry run: those it would send); the ones the branch already held are "unchanged"
            "files": [
                {"path": f.path_in_repo, "size": f.size, "sha256": f.sha256}
                for f in self.files
                if f.path_in_repo in self.uploaded
            ],
            "unchanged": [f.path_in_repo for f in self.files if f.path_in_repo not in self.uploaded],
            "uploaded": self.uploaded,
            "deleted": self.deleted,
            "commit": self.commit,
            "parent": self.parent,
            "changed": self.changed,
            "tag": self.tag,
            "tag_created": self.tag_created,
            "verified": verification_passed(self.verification) and not self.forced_reasons,
            "forced": self.forced_reasons,
            "url": self.url,
        }


# --------------------------------------------------------------------------------------------- checks
def _check_folder(folder: Path) -> dict[str, Any]:
    for name in (CONFIG_NAME, WEIGHTS_NAME, CONVERSION_NAME):
        if not (folder / name).exists() and not (folder / name).is_symlink():
            raise PublishError(f"{folder}: no {name}; publish takes a folder written by `swinzoo convert`")
        _publishable(folder, name)
    config = read_json(folder / CONFIG_NAME, fields=CONFIG_FIELDS)
    if config.get("task") not in ("image-classification", "masked-image-modeling"):
        raise PublishError(
            f"{folder / CONFIG_NAME}: task {config.get('task')!r}; publish takes classification or SimMIM folders"
        )
    ConvertedFolder(folder).require_conversion()  # its fields type-checked before anything is built
    return config


# --------------------------------------------------------------------------------------------- exports
def _load_swinzoo(folder: Path) -> SwinPreTrainedModel:
    return from_pretrained(folder)


def _same_outputs(ours: torch.Tensor, theirs: torch.Tensor, what: str, rtol: float = 1e-4) -> None:
    """Float32 implementation noise is relative to the output's scale; a mis-mapped tensor is far above it."""
    limit = rtol * max(1.0, theirs.abs().max().item())
    diff = (ours.double() - theirs.double()).abs().max().item()
    if not diff <= limit:
        raise PublishError(
            f"the {what} export does not reproduce swinzoo's outputs: max |diff| {diff:.3g} > {limit:.3g}"
        )


def _probe_input(config: SwinConfig) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, config.num_channels, *config.image_hw, generator=generator)


def _shapes_in_style(
    shapes: Mapping[str, torch.Size], from_rules: list[Rule], to_rules: list[Rule]
) -> dict[str, torch.Size]:
    """The parameters of a transformers model (``shapes``, one naming style) in another style's names and shapes.

    Rules of the two styles are paired by their swinzoo side; a shape goes through the first style's transform
    back to swinzoo and the second's forward (on the meta device). Used to check the 4.x-style ("legacy")
    export against the parameter list of the real, installed transformers model.
    """
    partner = {r.swinzoo: r for r in to_rules if isinstance(r, (Rename, Fused))}
    out: dict[str, torch.Size] = {}
    for key, shape in shapes.items():
        for rule in from_rules:
            if not isinstance(rule, (Rename, Fused)):
                continue
            templates = [rule.foreign] if isinstance(rule, Rename) else list(rule.foreign)
            matches = [(i, Pattern(t).match(key)) for i, t in enumerate(templates)]
            found = next(((i, v) for i, v in matches if v is not None), None)
            if found is None:
                continue
            i, values = found
            other = partner[rule.swinzoo]
            if isinstance(other, Rename):
                tensor = torch.empty(shape, device="meta")
                if isinstance(rule, Rename):
                    tensor = other.transform.to_foreign(rule.transform.to_swinzoo(tensor))
                out[Pattern(other.foreign).format(values)] = tensor.shape
            else:
                out[Pattern(other.foreign[i]).format(values)] = shape
            break
        else:
            raise PublishError(f"transformers parameter {key} has no rule in converters/transformers_layout.py")
    return out


def export_transformers(folder: Path, out: Path) -> list[UploadFile]:
    """config.json + model.safetensors for transformers, checked by loading them with transformers."""
    from safetensors.torch import save_file

    model = _load_swinzoo(folder)
    config, task = model.config, read_json(folder / CONFIG_NAME)["task"]
    if config.use_absolute_embeddings:
        # transformers 4.x keeps a class-token row that 5.x's Swin drops, and Swinv2 cannot run with absolute
        # positions at all (it adds N + 1 rows to N patches): no export would load everywhere.
        raise PublishError(
            f"{folder}: no transformers format for a model with absolute position embeddings "
            "(use_absolute_embeddings=True; no official checkpoint has them): publish with --format swinzoo"
        )
    try:
        hf_config = transformers_config(config)
        with torch.device("meta"):
            reference = create_transformers_model(config, task)
    except ValueError as exc:
        raise PublishError(f"{folder}: no transformers format: {exc}") from exc
    installed = foreign_shapes(reference)
    style = detect_style(installed)
    target = _shapes_in_style(
        installed, transformers_rules(config, task, style=style), transformers_rules(config, task, style="legacy")
    )
    state, _ = convert_state_dict(
        model.state_dict(), transformers_rules(config, task, style="legacy"), target, to_swinzoo=False, what="model"
    )
    hf_config.architectures = [type(reference).__name__]
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    config_dict = hf_config.to_dict()
    config_dict.pop("_name_or_path", None)
    (out / CONFIG_NAME).write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")
    # AutoImageProcessor / pipeline() read this: the image processor class whose transform is the official one
    processor = ImageProcessor.for_model(model, folder=folder).to_transformers()
    (out / PROCESSOR_NAME).write_text(json.dumps(processor, indent=2, sort_keys=True) + "\n")

    import transformers

    loaded = getattr(transformers, type(reference).__name__).from_pretrained(out).eval()
    x = _probe_input(config)
    model, loaded = model.float(), loaded.float()  # compared in float32, whatever dtype each side loaded in
    with torch.inference_mode():
        ours, theirs = model(x), loaded(x)
    field_name = "logits" if task == "image-classification" else "reconstruction"
    _same_outputs(getattr(ours, field_name), getattr(theirs, field_name), "transformers")
    return [
        UploadFile(CONFIG_NAME, out / CONFIG_NAME),
        UploadFile(WEIGHTS_NAME, out / WEIGHTS_NAME),
        UploadFile(PROCESSOR_NAME, out / PROCESSOR_NAME),
    ]


def _timm_architecture(config: SwinConfig, entry_name: str | None) -> str:
    """A registered timm model name; ``model_args`` carry the real architecture, so any Swin name works."""
    entry = entry_of(entry_name)
    if entry is not None and entry.upstream.timm:
        return entry.upstream.timm.split(".")[0]
    return "swin_tiny_patch4_window7_224" if config.version == 1 else "swinv2_tiny_window8_256"


def export_timm(folder: Path, out: Path) -> list[UploadFile]:
    """config.json + model.safetensors written by timm's own ``save_for_hf``, checked by loading them back."""
    import timm
    from timm.models import save_for_hf

    config_json = read_json(folder / CONFIG_NAME)
    if config_json["task"] != "image-classification":
        raise PublishError(
            f"{folder}: a {config_json['task']} (SimMIM pretrain) folder has no timm format: timm has no SimMIM "
            "decoder; publish it with --format swinzoo or --format transformers"
        )
    model = _load_swinzoo(folder)
    config = model.config
    try:
        layout_model = create_timm_model(config)  # the kwargs swinzoo's parity checks use
    except ValueError as exc:
        raise PublishError(f"{folder}: no timm format: {exc}") from exc
    conversion = ConvertedFolder(folder).require_conversion()
    model_args = timm_model_args(config)
    arch = _timm_architecture(config, conversion.entry)
    timm_model = timm.create_model(arch, pretrained=False, **model_args).eval()
    if shapes_of(timm_model) != shapes_of(layout_model):
        raise PublishError(f"timm.create_model({arch!r}, **model_args) does not build the expected architecture")
    state, _ = convert_state_dict(
        model.state_dict(), timm_rules(), shapes_of(timm_model), to_swinzoo=False, what="model"
    )
    timm_model.load_state_dict(state, strict=True)
    timm_model.to(next(model.parameters()).dtype)  # keep the folder's dtype (bfloat16 stays bfloat16)
    pretrained_cfg = cast(dict[str, Any], timm_model.pretrained_cfg)  # set by timm.create_model on every model
    timm_model.pretrained_cfg = {  # type: ignore[assignment]  # torch types Module.__setattr__ as Tensor | Module only
        **pretrained_cfg,
        "tag": None,
        "hf_hub_id": None,
        "url": None,
        "pool_size": None,
        # the official eval transform (centre crop or squash), as timm's resolve_data_config reads it
        **ImageProcessor.for_model(model, folder=folder).to_timm_pretrained_cfg(),
        "num_classes": config.num_labels,
        "license": "mit",
    }
    save_for_hf(
        timm_model,
        str(out),
        model_config={"model_args": model_args, **_timm_labels(config, conversion.entry)},
        safe_serialization=True,
    )
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = _probe_input(config)
    model, loaded = model.float(), loaded.float()
    with torch.inference_mode():
        _same_outputs(model(x).logits, loaded(x), "timm")
    return [UploadFile(CONFIG_NAME, out / CONFIG_NAME), UploadFile(WEIGHTS_NAME, out / WEIGHTS_NAME)]


def _timm_labels(config: SwinConfig, entry_name: str | None) -> dict[str, Any]:
    """timm's label convention: WordNet ids in ``label_names``, their descriptions in ``label_descriptions``
    (ImageNet label sets); other heads keep their names in ``label_names`` alone."""
    names = [config.id2label[i] for i in range(config.num_labels)]
    entry = entry_of(entry_name)
    label_set = getattr(entry, "label_set", None)
    if label_set in ("imagenet-1k", "imagenet-22k"):
        from timm.data import ImageNetInfo

        info = ImageNetInfo(label_set)
        synsets = official_22k_synsets() if label_set == "imagenet-22k" else list(info.label_names())
        if len(synsets) == config.num_labels:
            return {"label_names": synsets, "label_descriptions": dict(zip(synsets, names, strict=True))}
    return {"label_names": names}


def _publishable(folder: Path, name: str) -> Path:
    """``folder/name`` checked by the gate: a regular file inside the folder that parses as its name says."""
    try:
        return check_publishable(folder, name)
    except UnsafeFileError as exc:
        raise PublishError(str(exc)) from exc


def _folder_files(folder: Path, names: list[str]) -> list[UploadFile]:
    """The files of ``names`` the folder holds (a link counts as present, and is refused), read from the folder."""
    present = [n for n in names if (folder / n).exists() or (folder / n).is_symlink()]
    return [UploadFile(n, _publishable(folder, n)) for n in present]


def export_swinzoo(folder: Path) -> list[UploadFile]:
    """The folder as converted (weights, config, conversion record and verification record)."""
    return _folder_files(folder, [WEIGHTS_NAME, CONFIG_NAME, CONVERSION_NAME, VERIFICATION_NAME])


def _evaluation(folder: Path) -> list[UploadFile]:
    """``evaluation.json`` (measured accuracy) travels when it was measured on exactly these weights."""
    converted = ConvertedFolder(folder)
    path, record = converted.evaluation_file, converted.evaluation()
    if record is None:
        return []
    _publishable(folder, path.name)
    weights = converted.weights
    if record.get("weights_sha256") != UploadFile(WEIGHTS_NAME, weights).sha256:
        raise PublishError(
            f"{path} was measured on other weights (weights_sha256 differs from {weights}): run `swinzoo evaluate "
            f"{folder} --data PATH` again, or delete it"
        )
    return [UploadFile(path.name, path)]


def _exports(folder: Path) -> list[UploadFile]:
    """``swinzoo export`` outputs (``onnx/``, ``openvino/``) and their records travel when they were made from
    exactly these weights and are unchanged since their check; a stale one is refused, never sent."""
    try:
        records = export_records(folder)
    except ExportError as exc:
        raise PublishError(str(exc)) from exc
    files = []
    for record_file, record in records:
        why = stale_reason(folder, record_file, record)
        if why:
            raise PublishError(f"{why}: run `swinzoo export {folder}` again (--overwrite), or delete it")
        sub = record_file.parent.name
        files += [UploadFile(f"{sub}/{name}", record_file.parent / name) for name in record["files"]]
        files.append(UploadFile(f"{sub}/{record_file.name}", record_file))
    return files


def build_files(folder: Path, fmt: str, workdir: Path, repo_id: str) -> list[UploadFile]:
    """Every file of the commit for ``fmt``, the model card included (rendered now, with the repo id)."""
    if fmt == "swinzoo":
        files = export_swinzoo(folder)
    elif fmt == "transformers":
        files = export_transformers(folder, workdir / "transformers")
    elif fmt == "timm":
        files = export_timm(folder, workdir / "timm")
    else:
        raise PublishError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt != "swinzoo":
        # the conversion and verification records travel in every format: they are the provenance.
        files += _folder_files(folder, [CONVERSION_NAME, VERIFICATION_NAME])
    files += _evaluation(folder)
    files += _exports(folder)
    card = build_card(folder, fmt=fmt, repo_id=repo_id)
    files.append(UploadFile(CARD_NAME, str(card).encode("utf-8")))
    return sorted(files, key=lambda f: f.path_in_repo)


# --------------------------------------------------------------------------------------------- hub
def _hub_errors() -> tuple[type[BaseException], ...]:
    """What a Hub call raises when the Hub is unreachable, drops the connection or answers with an error.

    huggingface_hub 1.x talks through ``httpx``, 2.x through ``httpx2`` (older ones through requests, whose
    errors are OSErrors): whichever is installed. ValueError/KeyError/TypeError: a reply that is not the JSON
    the client expects (an HTML page, garbage, a truncated body).
    """
    from huggingface_hub.errors import HfHubHTTPError

    return (HfHubHTTPError, OSError, ValueError, KeyError, TypeError, *network_errors())


def _explain(exc: BaseException, doing: str, repo_id: str) -> PublishError:
    """A clear message for a Hub failure; built from status and server message only (never headers)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return PublishError(f"{doing}: offline mode is on (HF_HUB_OFFLINE=1); publishing needs the Hub")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, HfHubHTTPError) and status is not None:
        hint = {
            401: "not logged in: run `hf auth login` or set HF_TOKEN",
            403: f"the token may not write to {repo_id} (needs a write token for that namespace)",
            412: "the branch moved while publishing (someone else pushed): nothing was committed; run again",
        }.get(status, "")
        server = getattr(exc, "server_message", None) or ""
        detail = "; ".join(x for x in (hint, server.strip()) if x)
        return PublishError(f"{doing}: the Hub answered {status}" + (f" ({detail})" if detail else ""))
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return PublishError(
            f"{doing}: the Hub at {constants.ENDPOINT} sent a reply that is not what the Hub API answers "
            f"({type(exc).__name__}: {exc}); is HF_ENDPOINT a Hub?"
        )
    if "Connect" in type(exc).__name__ or not type(exc).__module__.startswith("httpx"):
        return PublishError(f"{doing}: cannot reach the Hub at {constants.ENDPOINT} ({type(exc).__name__}: {exc})")
    return PublishError(
        f"{doing}: the connection to the Hub at {constants.ENDPOINT} failed mid-request ({type(exc).__name__}: "
        f"{exc}); run again (files the Hub already holds are not sent twice)"
    )


def _hub_call(doing: str, repo_id: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except _hub_errors() as exc:
        raise _explain(exc, doing, repo_id) from exc


def _remote_tree(api: HfApi, repo_id: str, branch: str) -> tuple[str, dict[str, Any]]:
    """The branch head and its files (with LFS sha256 / blob ids), read in one request."""
    info = _hub_call(
        f"reading {repo_id}@{branch}", repo_id, api.model_info, repo_id, revision=branch, files_metadata=True
    )
    return info.sha, {s.rfilename: s for s in info.siblings or []}


def _unchanged(local: UploadFile, remote: Any) -> bool:  # a RepoFile of the remote tree, or None
    if remote is None or remote.size is not None and remote.size != local.size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == local.sha256
    return remote.blob_id == local.git_sha1


def _ensure_branch(api: HfApi, repo_id: str, branch: str) -> None:
    from huggingface_hub.errors import RevisionNotFoundError

    if branch == "main":
        return
    refs = _hub_call(f"listing the refs of {repo_id}", repo_id, api.list_repo_refs, repo_id)
    if any(t.name == branch for t in refs.tags):
        raise PublishError(f"--revision {branch!r} is a tag of {repo_id}; --revision names a branch (use --tag)")
    if not any(b.name == branch for b in refs.branches):
        try:
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        except RevisionNotFoundError as exc:  # pragma: no cover - main always exists on the Hub
            raise PublishError(f"cannot create branch {branch!r} of {repo_id}: {exc}") from exc
        except _hub_errors() as exc:
            raise _explain(exc, f"creating branch {branch!r} of {repo_id}", repo_id) from exc


def _existing_tag(api: HfApi, repo_id: str, tag: str) -> str | None:
    refs = _hub_call(f"listing the refs of {repo_id}", repo_id, api.list_repo_refs, repo_id)
    return {t.name: t.target_commit for t in refs.tags}.get(tag)


def _tag(api: HfApi, result: PublishResult, tag: str) -> None:
    """Tag the published commit (after :func:`_push` checked that an existing tag already names it)."""
    if _existing_tag(api, result.repo_id, tag) == result.commit:
        return
    _hub_call(
        f"creating tag {tag!r} on {result.repo_id}",
        result.repo_id,
        api.create_tag,
        result.repo_id,
        tag=tag,
        revision=result.commit,
        tag_message=f"swinzoo {__version__}: {result.fmt} format",
    )
    result.tag_created = True


def _uploading_what_was_verified(
    folder: Path, files: list[UploadFile], verification: VerificationRecord | None
) -> None:
    """The bytes about to be sent are the bytes the gate checked, in every format: the folder's bound files
    hashed again now the export and the card are built from them (a file replaced in between is refused), and
    each of them sent as is (swinzoo format, the records) is what was hashed."""
    now = bound_hashes(folder)
    sent = {f.path_in_repo: f.sha256 for f in files if isinstance(f.content, Path) and f.content.parent == folder}
    for key, name in BOUND_FILES.items():
        verified = getattr(verification, key, None)
        for seen in (now[key], sent.get(name, verified)):
            if seen != verified:
                raise PublishError(
                    f"{folder / name} changed while publishing (sha256 {seen}, verified "
                    f"{verified}): nothing was sent; run `swinzoo verify --converted {folder}` again"
                )


_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def _check_repo_id(repo_id: str) -> None:
    """ORG/NAME as the Hub allows them, checked before anything is built or sent (no ``..``, spaces, ``a/b/c``)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    ok = len(parts) == 2 and all(_REPO_PART.fullmatch(p) and ".." not in p and not p.endswith(".") for p in parts)
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        ok = False
    if not ok:
        raise PublishError(
            f"--repo-id {repo_id!r}: expected ORG/NAME (letters, digits, '-', '_', '.'; no '..', no spaces, one '/')"
        )


def publish(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    tag: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    fmt: str = "swinzoo",
    force: bool = False,
    commit_message: str | None = None,
    token: str | bool | None = None,
) -> PublishResult:
    """Publish a converted folder to ``repo_id`` (branch ``revision``, default main) in one atomic commit.

    Refuses a folder without a passing ``verification.json`` for these weights unless ``force``. With
    ``dry_run`` nothing is sent: the files are built (exports included) and listed. ``token`` is passed to
    huggingface_hub (None: its usual lookup, HF_TOKEN or the stored login).
    """
    folder = Path(folder)
    if fmt not in FORMATS:
        raise PublishError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    _check_repo_id(repo_id)
    _check_folder(folder)
    verification = read_verification(folder)
    problems = verification_problems(folder, verification)
    if problems and not force:
        raise PublishError(
            "refusing to publish unverified weights: "
            + "; ".join(problems)
            + ". Pass --force to publish anyway (the card then says NOT VERIFIED / FAILED)."
        )
    branch = revision or "main"
    with tempfile.TemporaryDirectory(prefix="swinzoo-publish-") as tmp:
        try:
            files = build_files(folder, fmt, Path(tmp), repo_id)
        except CardError:
            raise
        except ValueError as exc:  # mapping / config errors from the converters
            raise PublishError(f"{folder}: cannot export to {fmt} format: {exc}") from exc
        result = PublishResult(repo_id, branch, fmt, files, verification, dry_run=dry_run, forced_reasons=problems)
        for f in files:
            f.freeze()
        if not problems:
            _uploading_what_was_verified(folder, files, result.verification)
        if dry_run:
            result.uploaded = [f.path_in_repo for f in files]
            result.tag = tag
            return result
        return _push(result, folder, private=private, tag=tag, commit_message=commit_message, token=token)


def _push(
    result: PublishResult,
    folder: Path,
    *,
    private: bool,
    tag: str | None,
    commit_message: str | None,
    token: str | bool | None,
) -> PublishResult:
    from huggingface_hub import CommitOperationDelete, HfApi

    api = HfApi(token=token, library_name="swinzoo", library_version=__version__)
    repo_url = _hub_call(
        f"creating {result.repo_id}", result.repo_id, api.create_repo, result.repo_id, private=private, exist_ok=True
    )
    result.repo_id = getattr(repo_url, "repo_id", None) or result.repo_id
    _ensure_branch(api, result.repo_id, result.revision)
    head, remote = _remote_tree(api, result.repo_id, result.revision)
    result.parent = head
    local = {f.path_in_repo: f for f in result.files}
    changed = [f for f in result.files if not _unchanged(f, remote.get(f.path_in_repo))]
    stale = sorted(p for p in remote if p not in local and p not in KEEP_REMOTE)
    result.commit = head
    if tag:
        # Tags are never moved: refuse before committing, so a refusal leaves the branch as it was.
        tagged = _existing_tag(api, result.repo_id, tag)
        if tagged is not None and (changed or stale or tagged != head):
            raise PublishError(
                f"tag {tag!r} of {result.repo_id} already points at {tagged}, which does not hold these files; "
                "tags are not moved: choose a new tag (nothing was committed)"
            )
    if changed or stale:
        operations = [_operation(f) for f in changed] + [CommitOperationDelete(p) for p in stale]
        message = commit_message or f"Publish {folder.name} ({result.fmt} format) with swinzoo {__version__}"
        info = _hub_call(
            f"committing to {result.repo_id}@{result.revision}",
            result.repo_id,
            api.create_commit,
            result.repo_id,
            operations,
            commit_message=message,
            commit_description=_description(result),
            revision=result.revision,
            parent_commit=head,
        )
        result.commit = info.oid
        result.changed = info.oid != head
        result.uploaded = [f.path_in_repo for f in changed]
        result.deleted = stale
    if tag:
        result.tag = tag
        _tag(api, result, tag)
    result.url = f"{api.endpoint}/{result.repo_id}/tree/{result.commit}"
    return result


def _operation(f: UploadFile) -> Any:  # huggingface_hub.CommitOperationAdd
    """The commit operation for ``f``, whose bytes (hashed again by huggingface_hub as it prepares the upload,
    the hash the Hub's LFS store checks) must be the ones hashed for the gate."""
    from huggingface_hub import CommitOperationAdd

    op = CommitOperationAdd(f.path_in_repo, f.content if isinstance(f.content, bytes) else str(f.content))
    if op.upload_info.sha256.hex() != f.sha256:
        raise PublishError(
            f"{f.path_in_repo} changed while publishing (sha256 {op.upload_info.sha256.hex()}, checked {f.sha256}): "
            "nothing was sent; publish again"
        )
    return op


def _description(result: PublishResult) -> str:
    v = result.verification
    if v is not None and verification_passed(v) and not result.forced_reasons:
        refs = ", ".join(f"{r['reference']} {r['version']}" for r in reference_rows(v) if r["status"] == "pass")
        return f"Verified against {refs}." if refs else "Verified."
    return "NOT VERIFIED (published with --force): " + "; ".join(result.forced_reasons)
