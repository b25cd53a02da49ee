"""A verify run: each entry's swinzoo outputs computed once, then every selected reference, then the verdict.

:func:`verify_entry` checks one entry, :func:`verify` several one after the other. Both take a :class:`ZooEntry`
(or its name, looked up once here) and a :class:`VerifyOptions` (or its fields as keywords).
"""

from __future__ import annotations

import gc
import os
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..card import write_card
from ..config import SwinConfig
from ..convert import convert, resolve_source
from ..fetch import ManualDownloadRequired, evict
from ..folder import CARD_NAME, VERIFICATION_NAME, committing
from ..gate import BOUND_FILES, bound_hashes
from ..images import load_samples
from ..loading import from_pretrained
from ..manifest import ZooEntry
from .context import Context, Outputs, release, run_swinzoo
from .errors import VerifyError
from .folder_checks import check_folder, check_folder_config, folder_for, records_agree
from .options import VerifyOptions
from .references import REFERENCES, Reference
from .references.base import error_result
from .reporting import write_verification
from .results import PARTS, EntryReport, ReferenceResult
from .retargeted import read_record, sample_preprocessing
from .selection import as_entry
from .simmim import simmim_mask
from .tolerances import Tolerance, tolerance_for


def verify_entry(
    entry: ZooEntry | str,
    options: VerifyOptions | None = None,
    *,
    converted: str | os.PathLike | None = None,
    **fields: Any,
) -> EntryReport:
    """Verify one zoo entry; never raises for a problem with the entry itself (it is in the report).

    ``converted``: a converted folder to check instead of converting in memory; ``verification.json`` is
    written into it. ``fields``: :class:`VerifyOptions` fields, replacing those of ``options``.
    """
    options = VerifyOptions.of(options, **fields)
    entry = as_entry(entry)
    started = time.perf_counter()
    report = EntryReport(entry=entry.name, seed=options.seed, layout=entry.layout)
    folder = Path(converted) if converted is not None else None
    report.converted = str(folder) if folder else None
    try:
        ctx = _prepare(entry, options, folder, report)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the entry cannot be checked; the report says why
        report.problems.append(str(exc) if isinstance(exc, ManualDownloadRequired) else f"{type(exc).__name__}: {exc}")
        report.status = "error"
        return _done(report, started, folder)
    try:
        for name in options.references:
            _status(options, f"{entry.name}: {name} reference")
            report.references += _run_reference(REFERENCES[name], ctx)
    finally:  # every reference has read it, or the run was stopped: free the disk either way
        if options.evict_sources and options.source is None:
            report.source_evicted = evict(ctx.source_path, Path(options.cache_dir) if options.cache_dir else None)
    del ctx
    _verdict(report)
    return _done(report, started, folder)


def _prepare(entry: ZooEntry, options: VerifyOptions, folder: Path | None, report: EntryReport) -> Context:
    """swinzoo's side: the samples, the converted model (in memory, or the folder's), its outputs; the model is
    freed before returning, so the references are built one checkpoint at a time."""
    o = options
    cache = Path(o.cache_dir) if o.cache_dir else None
    # a folder's verdict binds the bytes read for the comparison: hashed before its records, config and weights
    # are read, and again once they are (a file replaced in between fails the run instead of being bound)
    report.bound = bound_hashes(folder) if folder is not None else None
    retarget = read_record(folder) if folder is not None else None
    images = Path(o.images_dir) if o.images_dir is not None else None  # load_samples takes a Path or str
    pixels, report.images = load_samples(sample_preprocessing(entry, retarget), images)
    t0 = time.perf_counter()
    _status(o, f"{entry.name}: " + ("synthetic checkpoint (generated once per seed)" if o.synthetic else "source file"))
    src = resolve_source(
        entry, source=o.source, synthetic=o.synthetic, seed=o.seed, cache_dir=cache, progress=o.progress
    )
    report.source_seconds = time.perf_counter() - t0  # generating a synthetic file, or fetching and hashing
    release()  # a synthetic file's generator model is gone: its memory too
    t0 = time.perf_counter()
    if folder is None:
        conversion = convert(
            entry,
            source=o.source,
            synthetic=o.synthetic,
            seed=o.seed,
            cache_dir=cache,
            progress=o.progress,
            write=False,
            resolved=src,
        )
        model, config = conversion.model, conversion.config
        del conversion
    else:
        report.problems += check_folder(folder, entry, src.sha256)
        model = from_pretrained(folder)
        config = model.config
        report.problems += check_folder_config(config, entry, retarget)
        report.problems += _unchanged_while_read(folder, report.bound or {})
    report.source, report.source_sha256, report.synthetic = src.description, src.sha256, src.synthetic
    dtype = next(model.parameters()).dtype
    report.dtype = str(dtype).removeprefix("torch.")
    report.tolerance = tolerance_for(dtype)
    report.task = "masked-image-modeling" if entry.kind == "simmim-pretrain" else "image-classification"
    if retarget is not None:  # a SimMIM pretrain retargeted is a classifier
        report.task = retarget["target_task"]
    mask = _mask(entry, config, len(pixels), o.seed, report) if report.task == "masked-image-modeling" else None
    ours = run_swinzoo(model.float().eval(), pixels, mask)
    # The references check the path that runs by default (fast on the CPU); the readable one, the code of
    # swinzoo/modeling.py, is checked against it at the same batch so that the code a reader studies is proven too.
    model.set_inference_path("readable")
    try:
        report.inference_paths = compare_paths(ours, run_swinzoo(model, pixels, mask), report.tolerance)
    finally:
        model.set_inference_path("fast")
    if report.inference_paths["readable"]["status"] != "pass":
        report.problems.append(f"the readable inference path differs from the fast one: {report.inference_paths}")
    report.convert_seconds = time.perf_counter() - t0
    alive = weakref.ref(model)
    del model  # one checkpoint at a time: the references are built after swinzoo's model is gone
    release(alive)
    return Context(
        entry, config, report.task, Path(src.path), src.synthetic, pixels, mask, ours, dtype, report.tolerance, retarget
    )


def _unchanged_while_read(folder: Path, before: dict[str, str | None]) -> list[str]:
    """The bound files hashed again after verify read them: any change means the outputs may come from bytes
    other than the hashed ones."""
    after = bound_hashes(folder)
    return [
        f"{folder / BOUND_FILES[key]} changed while verify read it (sha256 {before.get(key)}, then {after[key]}): "
        "nothing else may write to the folder during a verify; run it again"
        for key in BOUND_FILES
        if after[key] != before.get(key)
    ]


def compare_paths(fast: Outputs, readable: Outputs, tolerance: Tolerance) -> dict[str, Any]:
    """max |readable - fast| over the head's output and every hidden state, each within ``tolerance``."""
    head = [t for t in (fast.logits, fast.reconstruction) if t is not None]
    head_r = [t for t in (readable.logits, readable.reconstruction) if t is not None]
    pairs = {
        "output": list(zip(head, head_r, strict=True)),
        "hidden": list(zip(fast.hidden, readable.hidden, strict=True)),
    }
    result: dict[str, Any] = {"status": "pass"}
    for part, tensors in pairs.items():
        worst = 0.0
        for a, b in tensors:
            diff = (a - b).abs().max().item()
            worst = max(worst, diff)
            if not diff <= tolerance.limit(a.abs().max().item()):
                result["status"] = "fail"
        result[f"{part}_max_abs_diff"] = worst
    return {"fast": {"checked_by": "the references"}, "readable": result}


def _mask(entry: ZooEntry, config: SwinConfig, count: int, seed: int, report: EntryReport) -> torch.Tensor:
    """The one SimMIM mask of this run (recorded in the report), seeded by ``seed``."""
    sim = entry.simmim
    if sim is None:  # the manifest schema requires it for simmim-pretrain entries
        raise VerifyError(f"{entry.name}: a SimMIM pretrain entry without [entry.simmim] mask settings")
    mask = simmim_mask(count, config.image_hw[0], config.patch_size, sim.mask_patch_size, sim.mask_ratio, seed)
    report.mask = {
        "mask_patch_size": sim.mask_patch_size,
        "mask_ratio": sim.mask_ratio,
        "seed": seed,
        "masked_patches_per_image": int(mask[0].sum()),
        "patches_per_image": int(mask.shape[1]),
    }
    return mask


def _status(options: VerifyOptions, step: str) -> None:
    """One line on stderr as a long step starts (a synthetic file, a download, a reference): progress only,
    so only with ``progress`` and on a terminal."""
    import sys

    if options.progress and sys.stderr.isatty():
        from tqdm.auto import tqdm

        tqdm.write(f"  {step}...", file=sys.stderr)


def _run_reference(ref: Reference, ctx: Context) -> list[ReferenceResult]:
    """``ref.run``; should a reference raise after all, its error is its result, not the end of the run."""
    try:
        return ref.run(ctx)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # recorded: an error fails the entry
        return [error_result(ref.name, ref.name, exc)]
    finally:
        release()  # the reference's source tensors and activations go back to the system before the next one


def _verdict(report: EntryReport) -> None:
    """The entry's status from its references' (see :class:`EntryReport`)."""
    statuses = {r.status for r in report.references}
    checked = {p for r in report.references if r.status == "pass" for p in r.checked}
    report.unchecked = [p for p in PARTS[report.task] if p not in checked]
    if "fail" in statuses or report.problems:
        report.status = "fail"
    elif "error" in statuses:
        report.status = "error"
    elif report.unchecked:
        report.status = "unchecked"
        na = "; ".join(f"{r.reference}: {r.reason}" for r in report.references if r.status == "n/a")
        report.problems.append(f"no reference could check {', '.join(report.unchecked)}" + (f" ({na})" if na else ""))
    else:
        report.status = "pass"


def _done(report: EntryReport, started: float, folder: Path | None) -> EntryReport:
    """Stamp the time; a converted folder gets its verification.json whatever the verdict."""
    report.seconds = time.perf_counter() - started
    if folder is not None and folder.is_dir() and records_agree(folder, report.entry, report.source_sha256):
        with committing(folder / VERIFICATION_NAME, folder / CARD_NAME):  # an interrupt: both or neither
            write_verification(folder, report)
            write_card(folder)  # the card shows the verdict it now has
    return report


def verify(
    entries: Sequence[ZooEntry | str],
    options: VerifyOptions | None = None,
    *,
    converted: str | os.PathLike | None = None,
    on_report: Callable[[EntryReport], None] | None = None,
    **fields: Any,
) -> list[EntryReport]:
    """Verify several entries one after the other (each entry's models freed before the next one).

    ``converted``: one model folder (one entry) or a parent holding ``NAME/`` per entry. Entries with no
    download URL (Google-Drive-only SimMIM v1) and no ``source`` are reported ``skipped`` instead of ``error``
    when ``skip_manual``. ``on_report`` is called after each entry (the CLI prints a line). ``fields``:
    :class:`VerifyOptions` fields, replacing those of ``options``.
    """
    from tqdm.auto import tqdm

    options = VerifyOptions.of(options, **fields)
    if options.source is not None and len(entries) != 1:
        raise VerifyError("--source is one file: it can be the source of one entry only")
    if converted is not None and not Path(converted).is_dir():
        raise VerifyError(f"--converted {converted}: no such folder")
    chosen = [as_entry(e) for e in entries]
    reports = []
    bar = tqdm(chosen, desc="verify", unit="entry", disable=None if options.progress else True)  # None: TTY only
    for entry in bar:
        bar.set_postfix_str(entry.name)
        if options.skip_manual and options.source is None and not options.synthetic and not entry.source.urls:
            report = EntryReport(entry=entry.name, status="skipped", layout=entry.layout, seed=options.seed)
            report.problems.append(f"skipped: no download URL ({entry.source.manual_download or 'manual download'})")
        else:
            folder = folder_for(Path(converted), entry.name, len(chosen) > 1) if converted is not None else None
            report = verify_entry(entry, options, converted=folder)
        reports.append(report)
        gc.collect()
        if on_report is not None:
            on_report(report)
    return reports
