"""The ``swinzoo`` command line: a click group; each verb is a small command that calls the library.

Commands import what they need inside their body, so ``swinzoo --help`` and ``swinzoo list`` stay quick.
"""

from __future__ import annotations

import json

import click

from . import __version__
from .manifest import FAMILIES, KINDS, ManifestError, ZooEntry, load_manifests


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="swinzoo")
def main() -> None:
    """Official Swin / Swin V2 / SimMIM checkpoints: list, convert, verify, publish."""


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


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5}  # numbers
    lines = []
    for row in [header, *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@main.command("list")
@click.option("--family", type=click.Choice(FAMILIES), help="Only this model family.")
@click.option("--kind", type=click.Choice(KINDS), help="Only this kind of checkpoint.")
@click.option(
    "--pinned/--unpinned",
    default=None,
    help="Only entries whose source sha256 is pinned (or only those that are not).",
)
@click.option(
    "--filter", "substring", metavar="SUBSTRING", help="Only names containing SUBSTRING (any case)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print every manifest field of each entry as a JSON list."
)
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
    click.echo(_table([_row(e) for e in entries], header))
    notes = [f"{len(entries)} entries; acc@1: ImageNet-1K top-1 as reported by the authors."]
    if any(e.architecture.derive_from_checkpoint for e in entries):
        notes.append(
            "*: provisional architecture (read from the checkpoint at convert time); params may be off."
        )
    click.echo("\n" + "\n".join(notes), err=True)


# --------------------------------------------------------------------------------------------- shared
def _library_errors() -> tuple[type[BaseException], ...]:
    """Every error the library raises on bad input: the CLI turns them into a message and exit code 1."""
    from .config import ConfigError
    from .convert import ConvertError
    from .converters.engine import MappingError
    from .fetch import FetchError
    from .images import ImageError
    from .io import LoadError
    from .safeload import CheckpointError

    return (ConfigError, ConvertError, MappingError, FetchError, ImageError, LoadError, CheckpointError, ManifestError)


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except _library_errors() as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("interrupted: nothing was written", err=True)
        raise SystemExit(130) from None


# --------------------------------------------------------------------------------------------- convert
@main.command("convert")
@click.argument("name", required=False)
@click.option("--source", metavar="PATH|URL", help="Convert this file (a local path or URL) instead of the entry's.")
@click.option("--synthetic", is_flag=True, help="Generate a random checkpoint in the entry's official layout (offline).")
@click.option("--seed", default=0, show_default=True, help="Seed of the --synthetic checkpoint.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder [default: converted/NAME].")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), help="Store weights in this dtype.")
@click.option("--image-size", type=int, help="Image size, when it cannot be read from the file (no stored masks).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Download cache [default: ~/.cache/swinzoo].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def convert_command(name, source, synthetic, seed, out_dir, dtype, image_size, cache_dir, as_json, quiet) -> None:
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
        dtype=dtype,
        image_size=image_size,
        cache_dir=Path(cache_dir) if cache_dir else None,
        progress=not quiet,
    )
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for note in result.notes:
        click.echo(f"inferred: {note}")
    if not result.source.pinned and not result.source.synthetic:
        click.echo(f"warning: source not pinned; sha256 seen: {result.source.sha256}", err=True)
    click.echo(
        f"converted {summary['entry'] or result.source.description} -> {summary['out_dir']}\n"
        f"  {result.report.summary()}; {format_params(summary['parameters'])} parameters; "
        f"source sha256 {result.source.sha256}"
    )
