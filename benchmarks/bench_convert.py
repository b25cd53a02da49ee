"""Convert Swin-L (197M parameters) from a synthetic official checkpoint: wall time and peak RSS.

The checkpoint is generated first; the conversion runs in a fresh child process that reads its own peak resident
set size (VmHWM; a forked child's ru_maxrss would include the parent's pages). Reported twice: absolute, and
above the child's RSS right after ``import torch`` (a CUDA build of torch maps ~0.7 GiB of libraries at import).
Target: peak RSS <= 1.5x file size.

    python benchmarks/bench_convert.py [--entry NAME] [--dtype float32|bfloat16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
import torch
from swinzoo.convert import convert
baseline = status("VmRSS:")
t = time.perf_counter()
convert(source=sys.argv[1], out_dir=sys.argv[2], dtype=sys.argv[3] or None, progress=False, overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - t, "baseline": baseline, "peak": status("VmHWM:")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entry", default="swin-large-patch4-window7-224-22kto1k")
    parser.add_argument("--dtype", default="", choices=["", "float32", "bfloat16", "float16"])
    parser.add_argument("--workdir", type=Path, default=None, help="Where to put the files (default: a temp dir).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from swinzoo.convert import synthetic_config
    from swinzoo.manifest import get_entry
    from swinzoo.synthetic import write_official_checkpoint

    entry = get_entry(args.entry)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="swinzoo-bench-"))
    ckpt = work / f"{entry.name}.pth"
    if not ckpt.exists():
        write_official_checkpoint(ckpt, synthetic_config(entry), entry.layout, training_state=False)
    size = ckpt.stat().st_size
    start = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(ckpt), str(work / "out"), args.dtype],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    peak, baseline = measured["peak"], measured["baseline"]
    result = {
        "entry": entry.name,
        "parameters": entry.num_params,
        "file_bytes": size,
        "convert_seconds": round(measured["seconds"], 2),
        "process_seconds": round(wall, 2),
        "peak_rss_bytes": peak,
        "peak_rss_over_file_size": round(peak / size, 3),
        "rss_after_import_torch_bytes": baseline,
        "peak_above_import_over_file_size": round((peak - baseline) / size, 3),
        "output_bytes": (work / "out" / "model.safetensors").stat().st_size,
        "cpu_count": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{entry.name}: {entry.num_params / 1e6:.0f}M params, file {size / 2**20:.0f} MiB; "
            f"convert {result['convert_seconds']:.1f} s (process {wall:.1f} s); "
            f"peak RSS {peak / 2**20:.0f} MiB = {peak / size:.2f}x the file (target <= 1.5x); "
            f"{(peak - baseline) / size:.2f}x above the {baseline / 2**20:.0f} MiB of `import torch`"
        )


if __name__ == "__main__":
    main()
