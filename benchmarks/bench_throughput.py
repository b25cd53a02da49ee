"""Eval throughput (images/s) of swinzoo against timm and transformers on the same architecture and weights.

All implementations get the *same* random weights: swinzoo's are mapped into timm with
``swinzoo.converters.timm_layout`` and into transformers with ``transformers_layout`` (the converters' engine),
and the logits are compared before anything is timed, so a fast model that computes something else shows.

Timing: warm-up passes, then ``--rounds`` rounds in one process; each round runs every implementation in turn
(swinzoo, timm, transformers, swinzoo, ...), so a slow phase of a shared machine hits all of them alike.
The figure reported per implementation is the median over rounds; ratios are swinzoo's median over the others',
and (steadier when the load changes) the median over rounds of the ratio within each round.

    python benchmarks/bench_throughput.py                       # CPU, float32, batch 8, both models
    python benchmarks/bench_throughput.py --models swin-t --rounds 9 --json results.json
    python benchmarks/bench_throughput.py --device cuda         # bfloat16, batch 64 (also run by default
                                                                # after CPU when CUDA is available)
    python benchmarks/bench_throughput.py --reference-path      # + swinzoo without its CPU fast path

This is a measurement, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from swinzoo.config import SwinConfig
from swinzoo.converters.engine import convert_state_dict, shapes_of
from swinzoo.converters.timm_layout import create_timm_model, timm_rules
from swinzoo.converters.transformers_layout import (
    create_transformers_model,
    detect_style,
    transformers_config,
    transformers_rules,
)
from swinzoo.modeling import SwinForImageClassification
from swinzoo.synthetic import randomize_state

# The two architectures of the paper's tiny presets (microsoft/Swin-Transformer configs swin_tiny_patch4_window7_224
# and swinv2_tiny_patch4_window8_256); 1000 ImageNet classes so the head costs what it costs in practice.
MODELS: dict[str, dict[str, Any]] = {
    "swin-t": dict(version=1, image_size=224, window_size=7),
    "swinv2-t": dict(version=2, image_size=256, window_size=8),
}
TINY = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), num_labels=1000, drop_path_rate=0.0)


@dataclass
class Result:
    """Throughput samples of one implementation on one model (images/s, one per round)."""

    implementation: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def build(
    name: str, device: torch.device, dtype: torch.dtype, eager_too: bool, reference_too: bool = False
) -> dict[str, torch.nn.Module]:
    """swinzoo, timm and transformers models of one preset, all holding the same random weights (and with
    ``reference_too`` swinzoo once more on its reference path: what swinzoo.fast_inference buys)."""
    config = SwinConfig(**MODELS[name], **TINY)
    torch.manual_seed(0)
    swinzoo_model = SwinForImageClassification(config)
    # Distinct random values in every tensor (initial weights leave e.g. timm's v2 head at zero: equal logits).
    swinzoo_model.load_state_dict(randomize_state(swinzoo_model.state_dict(), seed=0))
    state = swinzoo_model.state_dict()

    import transformers

    cls = transformers.SwinForImageClassification if config.version == 1 else transformers.Swinv2ForImageClassification
    foreign: dict[str, tuple[torch.nn.Module, list]] = {"timm": (create_timm_model(config), timm_rules())}
    # transformers' default attention implementation (sdpa where the model supports it, else eager) ...
    hf_default = cls(transformers_config(config))
    foreign["transformers"] = (hf_default, [])
    # ... and eager when that is a different code path (it is for Swin v1; Swinv2 only has eager).
    if eager_too and hf_default.config._attn_implementation != "eager":
        foreign["transformers-eager"] = (create_transformers_model(config), [])
    models: dict[str, torch.nn.Module] = {"swinzoo": swinzoo_model}
    if reference_too:
        models["swinzoo-reference"] = copy.deepcopy(swinzoo_model).set_inference_path("readable")
    for key, (model, rules) in foreign.items():
        target = shapes_of(model)
        if key.startswith("transformers"):
            rules = transformers_rules(config, style=detect_style(target))
        mapped, _ = convert_state_dict(state, rules, target, to_swinzoo=False, what="swinzoo model")
        model.load_state_dict(mapped, strict=True)
        models[key] = model
    return {k: m.to(device=device, dtype=dtype).eval() for k, m in models.items()}


def logits_fn(name: str, model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Every implementation as ``pixels -> logits`` (timm returns a tensor, the others an output object)."""
    if name == "timm":
        return model
    return lambda x: model(x).logits


def check_same_function(fns: dict[str, Callable], x: torch.Tensor) -> dict[str, float]:
    """Max |logit difference| of every implementation to swinzoo: proof the weights were mapped, not just loaded."""
    with torch.inference_mode():
        ref = fns["swinzoo"](x).float()
        return {k: (fn(x).float() - ref).abs().max().item() for k, fn in fns.items() if k != "swinzoo"}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_once(fn: Callable, x: torch.Tensor, iters: int, device: torch.device, clock: str) -> float:
    """Images per second over ``iters`` forward passes, by wall time or by this process's CPU time."""
    now = CLOCKS[clock]
    synchronize(device)
    start = now()
    for _ in range(iters):
        fn(x)
    synchronize(device)
    return iters * x.shape[0] / (now() - start)


@dataclass
class Setting:
    """One device's configuration: float32 batch 8 on CPU, bfloat16 batch 64 on CUDA unless overridden."""

    device: torch.device
    dtype: torch.dtype
    batch_size: int

    def device_name(self) -> str:
        return "cpu" if self.device.type == "cpu" else torch.cuda.get_device_name(self.device)


def bench_model(name: str, setting: Setting, args: argparse.Namespace) -> dict[str, Any]:
    device, dtype = setting.device, setting.dtype
    models = build(name, device, dtype, eager_too=not args.no_eager, reference_too=args.reference_path)
    fns = {k: logits_fn(k, m) for k, m in models.items()}
    config = models["swinzoo"].config
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(setting.batch_size, 3, *config.image_hw, generator=gen).to(device=device, dtype=dtype)
    diffs = check_same_function(fns, x)
    results = {k: Result(k) for k in fns}
    with torch.inference_mode():
        for fn in fns.values():  # warm-up: allocator, caches (swinzoo's bias cache), oneDNN/cuBLAS kernels
            for _ in range(args.warmup):
                fn(x)
        for r in range(args.rounds):
            for k, fn in fns.items():
                results[k].samples.append(time_once(fn, x, args.iters, device, args.clock))
            if args.verbose:
                line = "  ".join(f"{k} {res.samples[-1]:7.1f}" for k, res in results.items())
                print(f"  [{name}] round {r + 1}/{args.rounds}: {line}", file=sys.stderr)
    medians = {k: res.median for k, res in results.items()}
    ratios = {f"swinzoo/{k}": medians["swinzoo"] / v for k, v in medians.items() if k != "swinzoo"}
    # The same ratio taken within each round (neighbouring timings, the same machine state), then the median:
    # steadier than the ratio of medians when the machine's load changes between rounds.
    paired = {
        f"swinzoo/{k}": statistics.median(a / b for a, b in zip(results["swinzoo"].samples, res.samples, strict=True))
        for k, res in results.items()
        if k != "swinzoo"
    }
    return {
        "model": name,
        "device": setting.device_name(),
        "dtype": str(dtype).removeprefix("torch."),
        "batch_size": setting.batch_size,
        "image_size": list(config.image_hw),
        "max_abs_logit_diff_vs_swinzoo": diffs,
        "attn_implementation": {
            k: m.config._attn_implementation for k, m in models.items() if k.startswith("transformers")
        },
        "median_images_per_s": medians,
        "ratios": ratios,
        "median_paired_ratios": paired,
        "samples": {k: asdict(res)["samples"] for k, res in results.items()},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS), help="presets to run")
    p.add_argument(
        "--device",
        nargs="+",
        help="devices to run on (default: cpu, plus cuda when torch.cuda.is_available())",
    )
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: float32 on CPU, bf16 on CUDA")
    p.add_argument("--batch-size", type=int, help="default: 8 on CPU, 64 on CUDA")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds; each runs every implementation once")
    p.add_argument("--iters", type=int, default=3, help="forward passes per implementation per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed forward passes per implementation")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    p.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: images per wall-clock second (what a user sees); cpu: per second of this process's CPU time, "
        "steadier on a shared machine, comparable only at --threads 1",
    )
    p.add_argument("--no-eager", action="store_true", help="skip transformers' eager attention variant")
    p.add_argument(
        "--reference-path",
        action="store_true",
        help="also time swinzoo with model.set_inference_path('readable') (no swinzoo.fast_inference)",
    )
    p.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write results as JSON (to stdout: -)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every round to stderr")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.iters < 1 or (args.batch_size is not None and args.batch_size < 1):
        p.error("--rounds, --iters and --batch-size must be >= 1")
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    args.settings = []
    for spec in devices:
        device = torch.device(spec)
        cuda = device.type == "cuda"
        if cuda and not torch.cuda.is_available():
            p.error(f"--device {spec}: torch.cuda.is_available() is False on this machine")
        dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
        args.settings.append(Setting(device, dtype, args.batch_size or (64 if cuda else 8)))
    return args


def write_atomically(path: str, text: str) -> None:
    """Temp file in the same folder, then rename: a reader never sees half a JSON document."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench-", suffix=".json", dir=folder)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for secrets; this is a report
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import timm
    import transformers

    report: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "iters_per_round": args.iters,
        "clock": args.clock,
        "versions": {"torch": torch.__version__, "timm": timm.__version__, "transformers": transformers.__version__},
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "results": [],
    }
    for setting in args.settings:
        for name in args.models:
            res = bench_model(name, setting, args)
            report["results"].append(res)
            if args.json != "-":
                print_table(res, report)
    if args.json == "-":
        print(json.dumps(report, indent=2))
    elif args.json:
        write_atomically(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def print_table(res: dict[str, Any], report: dict[str, Any]) -> None:
    h, w = res["image_size"]
    print(
        f"{res['model']} {h}x{w}  {res['device']} {res['dtype']} batch {res['batch_size']}  "
        f"threads {report['threads']}  {report['clock']} clock, "
        f"median of {report['rounds']} rounds x {report['iters_per_round']} passes"
    )
    for k, v in res["median_images_per_s"].items():
        samples = res["samples"][k]
        spread = f"[{min(samples):.1f} .. {max(samples):.1f}]"
        diff = res["max_abs_logit_diff_vs_swinzoo"].get(k)
        note = "" if diff is None else f"  max|dlogit| {diff:.1e}"
        attn = res["attn_implementation"].get(k)
        note += f"  attn={attn}" if attn else ""
        print(f"  {k:<20} {v:8.1f} img/s  {spread:<20}{note}")
    print("  ratio of medians:   " + "  ".join(f"{k} = {v:.2f}x" for k, v in res["ratios"].items()))
    print("  median round ratio: " + "  ".join(f"{k} = {v:.2f}x" for k, v in res["median_paired_ratios"].items()))
    print()


if __name__ == "__main__":
    sys.exit(main())
