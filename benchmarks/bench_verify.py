"""Peak memory and time of ``swinzoo verify NAME --synthetic`` per size class, and of ``swinzoo convert``.

Each entry runs in a fresh child process (``swinzoo verify NAME --synthetic --json-file``, then ``swinzoo convert NAME
--synthetic`` on the file verify generated); its peak resident set size is the child's own ``ru_maxrss`` from
``os.wait4`` (this parent never imports torch, so nothing of it is counted). Per entry it prints the float32 model
size, verify's peak RSS and its ratio to the target 1.5 x model + 1 GiB, the time split into generate (the
synthetic file) / convert (swinzoo's model and outputs) / each reference, and convert's peak RSS against the
checkpoint file (target <= 1.3x). A measurement, not a test: nothing here asserts.

    python benchmarks/bench_verify.py                        # tiny, small, base, large
    python benchmarks/bench_verify.py --classes tiny base --huge --json
    python benchmarks/bench_verify.py --classes --giant --limit-gib 16   # under `prlimit --as`
    python benchmarks/bench_verify.py --classes --huge --converted       # also verify --converted on convert's folder
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: One entry per size class (SwinV2-H/G exist as SimMIM fine-tunes only).
CLASSES = {
    "tiny": "swin-tiny-patch4-window7-224",
    "small": "swin-small-patch4-window7-224",
    "base": "swinv2-base-patch4-window8-256",
    "large": "swinv2-large-patch4-window12to16-192to256-22kto1k-ft",
    "huge": "simmim-swinv2-huge-1k-500k-ft",
    "giant": "simmim-swinv2-giant-1k-500k-ft",
}
GIB = 2**30


def _swinzoo() -> list[str]:
    return [sys.executable, "-c", "from swinzoo.cli import run; run()"]


def run_child(argv: list[str], limit_bytes: int | None) -> tuple[int, float, int, str]:
    """(exit status, wall seconds, peak RSS bytes, stderr tail) of one child; ``limit_bytes``: ``prlimit --as``."""
    if limit_bytes:
        argv = ["prlimit", f"--as={limit_bytes}", "--", *argv]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        err.seek(0)
        tail = err.read().decode(errors="replace")[-600:]
    return proc.returncode, wall, usage.ru_maxrss * 1024, tail  # ru_maxrss is in KiB on Linux


def measure(name: str, work: Path, limit_bytes: int | None, converted: bool = False) -> dict:
    cache, results, out = work / "cache", work / "verify.json", work / "converted"
    rc, wall, peak, tail = run_child(
        [*_swinzoo(), "verify", name, "--synthetic", "--quiet", "--cache-dir", str(cache), "--json-file", str(results)],
        limit_bytes,
    )
    row: dict = {"entry": name, "verify_exit": rc, "verify_seconds": round(wall, 1), "verify_peak_rss": peak}
    if results.exists():
        report = json.loads(results.read_text())["entries"][0]
        row["status"] = report["status"]
        row["generate_seconds"] = report.get("source_seconds")
        row["convert_seconds"] = report["convert_seconds"]
        row["reference_seconds"] = {r["reference"]: r["seconds"] for r in report["references"]}
        row["reference_status"] = {r["reference"]: r["status"] for r in report["references"]}
    else:
        row["status"], row["stderr"] = "crashed", tail
    ckpts = sorted((cache / "synthetic").glob("*.pth")) if (cache / "synthetic").is_dir() else []
    if ckpts:
        file_bytes = ckpts[0].stat().st_size
        rc, wall, peak, tail = run_child(
            [*_swinzoo(), "convert", name, "--synthetic", "--quiet", "--cache-dir", str(cache), "--out", str(out)],
            limit_bytes,
        )
        weights = out / "model.safetensors"
        model_bytes = weights.stat().st_size if weights.exists() else None  # float32 safetensors ~ the weights
        row.update(
            checkpoint_bytes=file_bytes,
            convert_exit=rc,
            convert_process_seconds=round(wall, 1),
            convert_peak_rss=peak,
            convert_peak_over_file=round(peak / file_bytes, 3),
        )
        if model_bytes:
            target = 1.5 * model_bytes + GIB
            row.update(model_bytes=model_bytes, target_bytes=int(target))
            row["verify_peak_over_target"] = round(row["verify_peak_rss"] / target, 3)
        if converted and rc == 0:  # the folder convert wrote, loaded with from_pretrained, then the references
            checked = work / "verify-converted.json"
            rc, wall, peak, tail = run_child(
                [*_swinzoo(), "verify", name, "--synthetic", "--quiet", "--cache-dir", str(cache), "--converted",
                 str(out), "--json-file", str(checked)],
                limit_bytes,
            )  # fmt: skip
            status = json.loads(checked.read_text())["entries"][0]["status"] if checked.exists() else "crashed"
            row.update(converted_status=status, converted_exit=rc, converted_seconds=round(wall, 1))
            row["converted_peak_rss"] = peak
            if model_bytes:
                row["converted_peak_over_target"] = round(peak / (1.5 * model_bytes + GIB), 3)
    return row


def _fmt(row: dict) -> str:
    g = lambda n: f"{n / GIB:.2f} GiB"  # noqa: E731
    parts = [f"{row['entry']}: {row['status']}"]
    if "model_bytes" in row:
        parts.append(
            f"model {g(row['model_bytes'])}; verify peak RSS {g(row['verify_peak_rss'])} = "
            f"{row['verify_peak_over_target']:.2f} of the target {g(row['target_bytes'])} (1.5 x model + 1 GiB)"
        )
    times = [f"verify {row['verify_seconds']:.1f} s"]
    if row.get("generate_seconds") is not None:
        times.append(f"generate {row['generate_seconds']:.1f}")
    if "convert_seconds" in row:
        times.append(f"convert {row['convert_seconds']:.1f}")
        times += [f"{k} {v:.1f}" for k, v in row["reference_seconds"].items()]
    parts.append(", ".join(times))
    if "convert_peak_rss" in row:
        parts.append(
            f"convert peak RSS {g(row['convert_peak_rss'])} = {row['convert_peak_over_file']:.2f}x the "
            f"{g(row['checkpoint_bytes'])} checkpoint (target <= 1.3x)"
        )
    if "converted_peak_rss" in row:
        over = row.get("converted_peak_over_target")
        parts.append(
            f"verify --converted: {row['converted_status']}, peak RSS {g(row['converted_peak_rss'])}"
            + (f" = {over:.2f} of the target" if over is not None else "")
            + f", {row['converted_seconds']:.1f} s"
        )
    if row.get("stderr"):
        parts.append("stderr: " + row["stderr"].strip().splitlines()[-1])
    return "\n  ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", nargs="*", default=["tiny", "small", "base", "large"], choices=list(CLASSES))
    parser.add_argument("--huge", action="store_true", help="Add SwinV2-H (658M parameters, ~2.5 GiB).")
    parser.add_argument("--giant", action="store_true", help="Add SwinV2-G (1.06B parameters, ~4 GiB).")
    parser.add_argument("--entry", action="append", default=[], help="Any other entry NAME (repeatable).")
    parser.add_argument("--limit-gib", type=float, help="Run each child under `prlimit --as` of this many GiB.")
    parser.add_argument("--workdir", type=Path, help="Where the synthetic files go (default: a temp dir, removed).")
    parser.add_argument(
        "--converted",
        action="store_true",
        help="Also run `swinzoo verify NAME --synthetic --converted DIR` on the folder convert wrote (its peak RSS).",
    )
    parser.add_argument("--json", action="store_true", help="One JSON object on stdout instead of the lines.")
    args = parser.parse_args()
    names = [CLASSES[c] for c in args.classes] + (["huge"] if args.huge else []) + (["giant"] if args.giant else [])
    names = [CLASSES.get(n, n) for n in names] + args.entry
    limit = int(args.limit_gib * GIB) if args.limit_gib else None
    _, _, baseline, _ = run_child([sys.executable, "-c", "import torch, timm, transformers, swinzoo.cli"], limit)
    if not args.json:
        print(f"peak RSS of importing torch, timm, transformers and swinzoo alone: {baseline / GIB:.2f} GiB")
    rows = []
    for name in names:
        work = Path(tempfile.mkdtemp(prefix="swinzoo-bench-verify-", dir=args.workdir))
        try:
            rows.append(measure(name, work, limit, converted=args.converted))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if not args.json:
            print(_fmt(rows[-1]), flush=True)
    if args.json:
        summary = {"cpu_count": os.cpu_count(), "limit_bytes": limit, "import_peak_rss": baseline, "entries": rows}
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
