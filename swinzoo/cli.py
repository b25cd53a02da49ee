"""The ``swinzoo`` command line: a click group; each verb is a small command that calls the library.

Commands import what they need inside their body, so ``swinzoo --help`` and ``swinzoo list`` stay quick.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .card import is_synthetic, retarget_lines
from .errors import SwinzooError, one_line, printable, redact_library_logs
from .export_records import summary_line
from .folder import CONVERSION_NAME, committed
from .manifest import FAMILIES, KINDS, ManifestError, ZooEntry, load_manifests
from .text import text_table

if TYPE_CHECKING:
    from .verify import EntryReport


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="swinzoo")
def main() -> None:
    """Official Swin / Swin V2 / SimMIM checkpoints: list, convert, verify, publish."""
    redact_library_logs()  # credentials in HF_ENDPOINT and other URLs never reach the terminal through a library


# --------------------------------------------------------------------------------------------- list
def format_params(n: int) -> str:
    """28288354 -> '28.3M', 3010430176 -> '3.01B': what a reader compares against papers."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _row(entry: ZooEntry) -> list[str]:
    top1 = entry.metrics.top1 if entry.metrics is not None else None
    return [
        entry.name,
        entry.family,
        entry.kind,
        format_params(entry.num_params) + ("*" if entry.architecture.derive_from_checkpoint else ""),
        str(entry.architecture.image_size),
        "-" if top1 is None else str(top1),
        "yes" if entry.source.pinned else "no",
    ]


@main.command("list")
@click.option("--family", type=click.Choice(FAMILIES), help="Only this model family.")
@click.option("--kind", type=click.Choice(KINDS), help="Only this kind of checkpoint.")
@click.option(
    "--pinned/--unpinned",
    default=None,
    help="Only entries whose source sha256 is pinned (or only those that are not).",
)
@click.option("--filter", "substring", metavar="SUBSTRING", help="Only names containing SUBSTRING (any case).")
@click.option("--json", "as_json", is_flag=True, help="Print every manifest field of each entry as a JSON list.")
def list_command(
    family: str | None, kind: str | None, pinned: bool | None, substring: str | None, as_json: bool
) -> None:
    """List the zoo: one row per official checkpoint (params are counted from the architecture)."""
    try:
        entries = list(load_manifests().values())
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
    if family:
        entries = [e for e in entries if e.family == family]
    if kind:
        entries = [e for e in entries if e.kind == kind]
    if pinned is not None:
        entries = [e for e in entries if e.source.pinned == pinned]
    if substring:
        entries = [e for e in entries if substring.lower() in e.name.lower()]

    if as_json:
        data = [{**e.to_dict(), "num_params": e.num_params, "manifest": e.origin} for e in entries]
        click.echo(json.dumps(data, indent=2))
        return
    if not entries:
        click.echo("no zoo entries match these filters", err=True)
        return
    header = ["name", "family", "kind", "params", "resolution", "acc@1", "pinned"]
    click.echo(text_table(header, [_row(e) for e in entries], right={3, 4, 5}))  # numbers right-aligned
    notes = [f"{len(entries)} entries; acc@1: ImageNet-1K top-1 as reported by the authors."]
    if any(e.architecture.derive_from_checkpoint for e in entries):
        notes.append("*: provisional architecture (read from the checkpoint at convert time); params may be off.")
    click.echo("\n" + "\n".join(notes), err=True)


# --------------------------------------------------------------------------------------------- shared
class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so every cleanup that Ctrl-C runs also runs for a kill."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _os_message(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    why = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {why}" if where else why


def _debug() -> bool:
    """``SWINZOO_DEBUG`` on: 1, true, yes or on (0, false, no, off and empty mean off, as the words say)."""
    import os

    return os.environ.get("SWINZOO_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def _after_the_command(signum: int, frame: FrameType | None) -> None:
    import os
    import signal
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        name = "terminated" if signum == signal.SIGTERM else "interrupted"
        os.write(2, f"{name} after the command had finished: what it wrote is complete\n".encode())
    os._exit(143 if signum == signal.SIGTERM else 130)


def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the library; its errors become one redacted line on stderr and exit 1, an interrupt 130 (143 for
    SIGTERM) with an honest account of what was written. ``SWINZOO_DEBUG=1`` shows tracebacks of unexpected
    errors instead of the one-line report."""

    already = len(committed())  # a Python caller may run several commands in one process: report this one's
    try:
        return fn(*args, **kwargs)
    except SwinzooError as exc:
        raise click.ClickException(exc.terminal_text()) from exc
    except MemoryError as exc:
        raise click.ClickException("out of memory: the input asks for more memory than this machine has") from exc
    except OSError as exc:
        raise click.ClickException(one_line(_os_message(exc))) from exc
    except KeyboardInterrupt as exc:
        written = committed()[already:]
        what = f"{', '.join(map(str, written))} was written completely" if written else "nothing was written"
        click.echo(f"{'terminated' if isinstance(exc, Terminated) else 'interrupted'}: {what}", err=True)
        raise SystemExit(143 if isinstance(exc, Terminated) else 130) from None
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as exc:
        if _debug():
            raise
        raise click.ClickException(
            one_line(
                f"unexpected {type(exc).__name__}: {exc} (a bug in swinzoo: please report it; "
                "SWINZOO_DEBUG=1 shows the traceback)"
            )
        ) from exc


def run() -> None:
    """The ``swinzoo`` entry point: SIGTERM cleans up like Ctrl-C, and an interrupt never prints a traceback."""
    import signal
    import sys

    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
        main()
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    except SystemExit:
        # The command is over and everything it wrote is complete; a signal from here on (the interpreter
        # shutting down DataLoader workers) must not kill the process by its default action mid-exit: say that
        # it came, and exit 130 / 143 all the same.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _after_the_command)
        raise


# --------------------------------------------------------------------------------------------- convert
@main.command("convert")
@click.argument("name", required=False)
@click.option("--source", metavar="PATH|URL", help="Convert this file (a local path or URL) instead of the entry's.")
@click.option(
    "--synthetic", is_flag=True, help="Generate a random checkpoint in the entry's official layout (offline)."
)
@click.option("--seed", default=0, show_default=True, help="Seed of the --synthetic checkpoint.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder [default: converted/NAME].")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace a previous swinzoo output in --out (only swinzoo's files).",
)
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), help="Store weights in this dtype.")
@click.option(
    "--image-size",
    type=click.IntRange(min=1),
    help="Retarget: the image size to move the weights to (tables resized as the official fine-tuning does).",
)
@click.option("--window-size", type=click.IntRange(min=1), help="Retarget: the window size to move the weights to.")
@click.option(
    "--num-labels",
    type=click.IntRange(min=1),
    help="Retarget: a head of this many classes (21841 -> 1000 through the official 22k->1k map; else zero).",
)
@click.option(
    "--source-image-size",
    type=click.IntRange(min=1),
    help="The size the file was trained at, when its stored buffers do not tell (--source without masks).",
)
@click.option(
    "--source-window-size",
    type=click.IntRange(min=1),
    help="The window the file was trained with, when it stores nothing window-sized (SwinV2 without buffers).",
)
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Download cache [default: ~/.cache/swinzoo].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def convert_command(
    name: str | None, source: str | None, synthetic: bool, seed: int, out_dir: str | None, overwrite: bool,
    dtype: str | None, image_size: int | None, window_size: int | None, num_labels: int | None,
    source_image_size: int | None, source_window_size: int | None, cache_dir: str | None, as_json: bool,
    quiet: bool,
) -> None:  # fmt: skip
    """Convert official checkpoint NAME (see `swinzoo list`), or --source FILE, into a swinzoo folder.

    Writes model.safetensors, config.json, conversion.json and a README.md model card, atomically.
    """
    from pathlib import Path

    from .convert import convert

    if name is None and source is None:
        raise click.UsageError("give a zoo entry NAME or --source PATH|URL")
    result = _run(
        convert,
        name,
        source=source,
        synthetic=synthetic,
        seed=seed,
        out_dir=out_dir,
        overwrite=overwrite,
        dtype=dtype,
        source_image_size=source_image_size,
        source_window_size=source_window_size,
        image_size=image_size,
        window_size=window_size,
        num_labels=num_labels,
        cache_dir=Path(cache_dir) if cache_dir else None,
        progress=not quiet,
    )
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for note in result.notes:
        click.echo(f"inferred: {printable(note)}")
    if not result.source.pinned and not result.source.synthetic:
        click.echo(f"warning: source not pinned; sha256 seen: {result.source.sha256}", err=True)
    click.echo(
        f"converted {printable(summary['entry'] or result.source.description)} -> {printable(summary['out_dir'])}\n"
        f"  {result.report.summary()}; {format_params(summary['parameters'])} parameters; "
        f"source sha256 {result.source.sha256}"
    )
    if summary["retarget"]:
        click.echo("  " + retarget_lines(summary["retarget"])[0].removeprefix("- ").replace("**", ""))


# --------------------------------------------------------------------------------------------- verify
@main.command("verify")
@click.argument("names", nargs=-1)
@click.option("--all", "all_entries", is_flag=True, help="Every zoo entry (combine with --shard in CI).")
@click.option("--synthetic", is_flag=True, help="Random checkpoints in each entry's official layout (offline).")
@click.option("--source", metavar="PATH|URL", help="Verify this file as the source of the (single) entry NAME.")
@click.option(
    "--converted",
    type=click.Path(file_okay=False),
    help="Check this converted folder (or a parent with one NAME/ folder per entry) instead of converting in "
    "memory; writes verification.json into it. Without NAME, the folder's conversion.json names the entry "
    "(and whether its source was synthetic, and the seed).",
)
@click.option(
    "--reference",
    "reference",
    default="timm,transformers",
    show_default=True,
    help="Comma-separated references: timm, transformers, upstream (Hub weights; needs a network).",
)
@click.option("--images", "images_dir", type=click.Path(file_okay=False), help="Sample images [default: shipped].")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout (the table goes to stderr).")
@click.option(
    "--json-file",
    "json_file",
    type=click.Path(dir_okay=False),
    help="Also write the results as JSON to this file, rewritten after each entry.",
)
@click.option("--shard", metavar="K/N", help="Only shard K of N (1-based), balanced by checkpoint size.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Download cache [default: ~/.cache/swinzoo].")
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of --synthetic checkpoints and of SimMIM masks [default: the --converted folder's, else 0].",
)
@click.option(
    "--skip-manual",
    is_flag=True,
    help="Report entries without a download URL (Google-Drive-only) as skipped instead of failing.",
)
@click.option(
    "--evict-sources",
    is_flag=True,
    help="Delete each entry's checkpoint from the cache once it is verified: a whole-zoo shard then needs disk "
    "for its largest checkpoint only (a --source file is never deleted).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def verify_command(
    names: tuple[str, ...], all_entries: bool, synthetic: bool, source: str | None, converted: str | None,
    reference: str, images_dir: str | None, as_json: bool, json_file: str | None, shard: str | None,
    cache_dir: str | None, seed: int | None, skip_manual: bool, evict_sources: bool, quiet: bool,
) -> None:  # fmt: skip
    """Check converted weights against timm and transformers loading the same official file.

    Compares logits (max |diff|, top-5 per image), every stage's hidden state and, for SimMIM, the
    reconstruction and loss under a fixed seeded mask. Exit code 1 when any entry fails or cannot be checked.
    See docs/verification.md for the tolerance policy.
    """

    from .verify import format_table, parse_references, verify, write_json
    from .verify.folder_checks import plan_converted_run

    done = []
    planned_count: list[int] = []  # how many entries the run selected (known once they are chosen)

    def on_report(report: EntryReport) -> None:
        # One line per entry as it finishes, and the JSON file kept current: a run killed midway keeps its results.
        import sys

        from tqdm.auto import tqdm

        done.append(report)
        tqdm.write(f"{report.entry}: {report.status} ({report.seconds:.1f}s)", file=sys.stderr)  # under the bar
        if json_file:
            _run(write_json, json_file, done, planned_count[0] if planned_count else None)

    refs = _run(parse_references, reference)
    plan = _run(
        plan_converted_run, converted, names, all_entries=all_entries, shard=shard, synthetic=synthetic,
        source=source, seed=seed, cache_dir=cache_dir, progress=not quiet,
    )  # fmt: skip
    selected, synthetic, source, seed = plan.entries, plan.synthetic, plan.source, plan.seed
    planned_count.append(len(selected))
    if not selected:
        click.echo(f"shard {shard} holds no entries", err=True)
    reports = _run(
        verify,
        selected,
        synthetic=synthetic,
        source=source,
        converted=converted,
        references=refs,
        images_dir=images_dir,
        cache_dir=cache_dir,
        seed=0 if seed is None else seed,
        skip_manual=skip_manual,
        evict_sources=evict_sources,
        progress=not quiet,
        on_report=on_report,
    )
    click.echo(format_table(reports), err=as_json)  # stdout stays pure JSON with --json
    if json_file:
        _run(write_json, json_file, reports)
    if as_json:
        _run(write_json, "-", reports)
    failed = [r.entry for r in reports if not r.passed]
    if failed:
        click.echo(f"verification FAILED for: {', '.join(failed)}", err=True)
        raise SystemExit(1)


# --------------------------------------------------------------------------------------------- publish
def _format_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


@main.command("publish")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--repo-id", required=True, metavar="ORG/NAME", help="Hub repository to publish to.")
@click.option("--revision", metavar="BRANCH", help="Branch to commit to (created from main if new) [default: main].")
@click.option("--tag", metavar="TAG", help="Tag the published commit (an existing tag must already point at it).")
@click.option("--private", is_flag=True, help="Create the repo private (an existing repo keeps its visibility).")
@click.option("--dry-run", is_flag=True, help="Build and list the files; send nothing.")
@click.option(
    "--format", "fmt", type=click.Choice(["swinzoo", "transformers", "timm"]), default="swinzoo", show_default=True
)
@click.option("--force", is_flag=True, help="Publish even without a passing verification.json.")
@click.option("--commit-message", metavar="TEXT", help="Commit message [default: says folder, format, version].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def publish_command(
    folder: str, repo_id: str, revision: str | None, tag: str | None, private: bool, dry_run: bool, fmt: str,
    force: bool, commit_message: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Publish a converted FOLDER to the Hugging Face Hub in one atomic commit, with its model card.

    Refuses weights without a passing verification.json (see `swinzoo verify --converted`) unless --force.
    Unchanged files make no commit. The token comes from `hf auth login` or HF_TOKEN and is never printed.
    """
    from .publish import publish

    result = _run(
        publish,
        folder,
        repo_id,
        revision=revision,
        tag=tag,
        private=private,
        dry_run=dry_run,
        fmt=fmt,
        force=force,
        commit_message=commit_message,
    )
    if result.forced_reasons:
        click.echo("warning: published without verification (--force): " + "; ".join(result.forced_reasons), err=True)
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2))
        return
    target = f"{result.repo_id}@{result.revision}"
    if dry_run:
        click.echo(f"dry run: would publish {folder} ({fmt} format) to {target}" + (f", tag {tag}" if tag else ""))
        width = max(len(f.path_in_repo) for f in result.files)
        for f in result.files:
            click.echo(f"  {f.path_in_repo.ljust(width)}  {_format_size(f.size):>9}  sha256 {f.sha256}")
        return
    if result.changed:
        click.echo(
            f"published {folder} ({fmt} format) -> {target}: commit {result.commit} "
            f"({len(result.uploaded)} file(s) uploaded, {len(result.deleted)} deleted)"
        )
    else:
        click.echo(f"nothing changed: {target} already holds these files (commit {result.commit}); no new commit")
    if tag:
        click.echo(f"tag {tag} -> {result.commit}" + ("" if result.tag_created else " (already there)"))
    click.echo(result.url)


# --------------------------------------------------------------------------------------------- export
@main.command("export")
@click.argument("model_spec", metavar="NAME|DIR|REPO")
@click.option("--format", "fmt", type=click.Choice(["onnx", "openvino"]), default="onnx", show_default=True)
@click.option("--int8", is_flag=True, help="int8 weights (onnxruntime dynamic quantization / NNCF compression).")
@click.option("--image-size", type=int, help="The one input size of the graph [default: the model's].")
@click.option("--batch", default="dynamic", show_default=True, metavar="dynamic|N", help="Batch dimension.")
@click.option(
    "--task", type=click.Choice(["backbone"]), help="Export a classifier's encoder as feature maps of every stage."
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder [default: DIR/onnx or DIR/openvino].")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export of the same file in --out.")
@click.option("--force", is_flag=True, help="Export even without a passing verification.json (the record says so).")
@click.option("--revision", metavar="REV", help="Branch, tag or commit of a Hub repo.")
@click.option("--json", "as_json", is_flag=True, help="Print the export record as JSON.")
def export_command(
    model_spec: str, fmt: str, int8: bool, image_size: int | None, batch: str, task: str | None, out_dir: str | None,
    overwrite: bool, force: bool, revision: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Export a verified model to ONNX or OpenVINO, checked by the runtime against swinzoo eager and timm on the
    sample images before anything is written; the figures go into a JSON record beside the file.
    """
    from .export import export

    result = _run(
        export,
        model_spec,
        fmt,
        int8=int8,
        image_size=image_size,
        batch=batch,
        out=out_dir,
        task=task,
        revision=revision,
        overwrite=overwrite,
        force=force,
    )
    if as_json:
        click.echo(json.dumps({**result.record, "written": [str(p) for p in [*result.files, result.record_file]]}))
        return
    for path in result.files:
        click.echo(f"wrote {path}")
    click.echo(f"record {result.record_file}: {summary_line(result.record)}")


# --------------------------------------------------------------------------------------------- predict
def _synthetic_model(spec: str, revision: str | None) -> bool:
    """Does the conversion.json of what ``predict --model spec`` loaded say synthetic? Read from the folder, or
    from the Hub cache the load just filled (no second request)."""
    from pathlib import Path

    from .predict import CONVERTED_DIR

    if Path(spec).is_dir():
        return is_synthetic(spec)
    if spec in load_manifests():
        return is_synthetic(CONVERTED_DIR / spec)
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(spec, CONVERSION_NAME, revision=revision)
    except ValueError:  # not a repo id: the load already said what it is
        return False
    return isinstance(cached, str) and is_synthetic(Path(cached).parent)


@main.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model", "model_spec", required=True, metavar="NAME|REPO|DIR", help="Zoo entry, Hub id or folder.")
@click.option("--revision", metavar="REV", help="Branch, tag or commit of a Hub repo.")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(min=1), help="Classes per image.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16", "auto"]),
    help="Run in this dtype; auto: bfloat16 where the CPU (AMX, AVX512-BF16) or GPU runs it natively.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
def predict_command(
    images: tuple[str, ...], model_spec: str, revision: str | None, top_k: int, dtype: str | None, as_json: bool
) -> None:
    """Classify IMAGES: the top-k class names and probabilities of each.

    NAME loads converted/NAME (run `swinzoo convert NAME` first); the eval preprocessing is the checkpoint's own.
    """
    from .predict import check_images_exist, classify, load_classifier

    _run(check_images_exist, list(images))
    loaded = _run(load_classifier, model_spec, revision, dtype)
    if _synthetic_model(model_spec, revision):
        click.echo(
            f"warning: {printable(loaded.source)} holds SYNTHETIC weights (random, for testing the pipeline only; its "
            "conversion.json says synthetic): these predictions mean nothing",
            err=True,
        )
    results = _run(classify, loaded, list(images), top_k)
    if as_json:
        data = {"model": loaded.source, "results": [r.to_dict() for r in results]}
        click.echo(json.dumps(data, indent=2))
        return
    for result in results:
        click.echo(f"{printable(result.image)}:")
        for p in result.predictions:
            click.echo(f"  {p.probability:8.4f}  {printable(p.label)}")


# --------------------------------------------------------------------------------------------- evaluate
@main.command("evaluate")
@click.argument("model_spec", metavar="NAME|DIR|REPO")
@click.option(
    "--data",
    required=True,
    type=click.Path(),
    help="ImageNet-1k images: one folder per WordNet id, or a flat folder with --ground-truth.",
)
@click.option(
    "--ground-truth", type=click.Path(dir_okay=False), help="Labels of a flat --data folder: lines 'FILE INDEX'."
)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1), help="Images per batch.")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=0),
    help="DataLoader workers.  [default: 4, at most the CPUs this process may use]",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most N images, spread evenly over the data.")
@click.option("--skip-corrupt", is_flag=True, help="Count images that cannot be decoded as skipped, not an error.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16", "auto"]),
    help="Run in this dtype; auto: bfloat16 where the CPU (AMX, AVX512-BF16) or GPU runs it natively.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate_command(
    model_spec: str, data: str, ground_truth: str | None, batch_size: int, workers: int, limit: int | None,
    skip_corrupt: bool, dtype: str | None, as_json: bool, quiet: bool,
) -> None:  # fmt: skip
    """Measure top-1 / top-5 of a classifier on ImageNet-1k validation images, with its own eval transform.

    Runs as it is, or under `torchrun --nproc-per-node N` (each image counted once; rank 0 reports). A local
    folder (or converted/NAME) gets evaluation.json. 22k-head models are read through the 22k->1k class map.
    """
    from .evaluate import evaluate

    result = _run(
        evaluate,
        model_spec,
        data,
        ground_truth=ground_truth,
        batch_size=batch_size,
        workers=workers,
        limit=limit,
        skip_corrupt=skip_corrupt,
        progress=not quiet,
        dtype=dtype,
    )
    if result.rank != 0:
        return
    if _synthetic_model(model_spec, None):
        click.echo(
            f"warning: {result.model} holds SYNTHETIC weights (random, for testing the pipeline only; its "
            "conversion.json says synthetic): this accuracy means nothing, and its card will not claim it",
            err=True,
        )
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "written": str(result.written) if result.written else None}))
        return
    for path in result.skipped:
        click.echo(f"skipped (corrupt): {printable(path)}", err=True)
    click.echo(
        f"{printable(result.model)}: top-1 {100 * result.top1:.2f}% ({result.top1_correct}/{result.images}), "
        f"top-5 {100 * result.top5:.2f}% ({result.top5_correct}/{result.images}) on {result.images} images"
        + (f" ({len(result.skipped)} skipped)" if result.skipped else "")
    )
    click.echo(
        f"  {result.head}; {result.world_size} process(es) on {result.device}; {result.seconds:.1f}s, "
        f"{result.images_per_second:.1f} images/s" + (f"; wrote {printable(result.written)}" if result.written else "")
    )
    if result.float32_top1_agreement is not None:
        click.echo(
            f"  {result.dtype}: top-1 agrees with float32 on {100 * result.float32_top1_agreement:.2f}% of the images"
        )


if __name__ == "__main__":  # `python -m swinzoo.cli ...`, as `torchrun -m swinzoo.cli` runs it
    run()
