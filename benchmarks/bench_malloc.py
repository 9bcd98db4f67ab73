"""Train-step time and minor page faults with glibc's default malloc vs vidssl's settings.

`vidssl.app.malloc.tune_malloc` (what the training / evaluation commands call first) raises
glibc's mmap and trim thresholds so that the large activation and gradient buffers freed every
step stay in the heap instead of going back to the OS and being page-faulted in again. mallopt
changes the whole process, so each setting runs in its own child process (this script with
``--child default|tuned``); the children alternate (default, tuned, tuned, default, ...) so that
load from other processes hits both alike, and the medians over the children are printed.

In each child, per shape, the models are built as in benchmarks/bench_r2plus1d.py (the
engine's CPU path: bf16 autocast, channels_last_3d, the oneDNN bf16 guard; forward +
cross-entropy + backward, no optimizer step), warmed up, then stepped `--steps` times in
interleaved order; the child reports per model the median wall time, CPU time
(`time.process_time`) and minor page faults (`getrusage` ``ru_minflt``) of one step.
"/r3d" is the step time per FLOP relative to R3D-18's at the same shape and setting.

Shapes: ``mtcl`` (width 0.25, batch 32, 9x32x32 clips: the MTCL bench row's batch),
``mtcl-4views`` (the same with batch 128: MTCL's four views of the 32 videos go through the
backbone as one batch, so this is the row's real step) and ``w0.5`` (width 0.5, batch 8,
8x64x64). R3D-18 and R(2+1)D-18 at every shape, the MTCL row's ``r2plus1d_18_sta`` at the
MTCL shapes.

    nice -n 5 python benchmarks/bench_malloc.py [--rounds 4] [--steps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from bench_r2plus1d import SHAPES, Shape, count_flops, train_step
from vidssl.app.malloc import tune_malloc
from vidssl.app.train.precision import guard_bf16_conv3d, model_to_channels_last
from vidssl.models.backbones import create_backbone

# MTCL's step puts its four views through the backbone as one batch (torch.cat in
# vidssl.methods.mtcl): 4 x 32 clips, the shape the bench row's backbone really sees
SHAPES = {**SHAPES, "mtcl-4views": Shape(width=0.25, batch=128, frames=9, size=32)}
MODELS: dict[str, list[str]] = {  # shape -> backbones timed at it
    "mtcl": ["r3d_18", "r2plus1d_18", "r2plus1d_18_sta"],
    "mtcl-4views": ["r3d_18", "r2plus1d_18", "r2plus1d_18_sta"],
    "w0.5": ["r3d_18", "r2plus1d_18"],
}
SETTINGS = ("default", "tuned")


def build(backbone: str, width: float) -> nn.Module:
    torch.manual_seed(0)
    model = create_backbone(backbone, num_classes=10, width=width)
    guard_bf16_conv3d(model)
    return model_to_channels_last(model).train()


def time_shape(shape_name: str, steps: int) -> dict[str, dict[str, float]]:
    """Per model of the shape: FLOPs and the median wall / CPU time and minor faults of a step."""
    shape = SHAPES[shape_name]
    x = torch.randn(shape.batch, 3, shape.frames, shape.size, shape.size)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    target = torch.arange(shape.batch) % 10
    models = {name: build(name, shape.width) for name in MODELS[shape_name]}
    flops = {n: count_flops(lambda m=m: train_step(m, x, target)) for n, m in models.items()}
    for _ in range(2):  # warm-up: oneDNN primitives, the allocator's heap
        for model in models.values():
            train_step(model, x, target)
    samples: dict[str, dict[str, list[float]]] = {
        n: {"wall": [], "cpu": [], "minflt": []} for n in models
    }
    for _ in range(steps):
        for name, model in models.items():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            w0, c0 = time.perf_counter(), time.process_time()
            train_step(model, x, target)
            samples[name]["wall"].append(time.perf_counter() - w0)
            samples[name]["cpu"].append(time.process_time() - c0)
            samples[name]["minflt"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return {
        n: {"flops": flops[n], **{k: statistics.median(v) for k, v in s.items()}}
        for n, s in samples.items()
    }


def child(setting: str, shapes: list[str], steps: int, threads: int) -> None:
    """Time every model of every shape in this process; one JSON line per shape."""
    if setting == "tuned" and not tune_malloc({}):
        raise RuntimeError("mallopt did not take the settings (not glibc?)")
    torch.set_num_threads(threads)
    for shape_name in shapes:
        result = time_shape(shape_name, steps)
        print("RESULT " + json.dumps({"shape": shape_name, "models": result}), flush=True)


def run_child(setting: str, args: argparse.Namespace) -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [sys.executable, __file__, "--child", setting, "--steps", str(args.steps)]
    cmd += ["--threads", str(args.threads), "--shapes", *args.shapes]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    results = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    return {r["shape"]: r["models"] for r in results}


def report(shape: str, runs: dict[str, list[dict[str, dict]]]) -> None:
    """Medians over the children of each setting, their ratios, and time per FLOP vs R3D."""
    med: dict[str, dict[str, dict[str, float]]] = {
        s: {
            model: {
                k: statistics.median(r[shape][model][k] for r in rs)
                for k in ("flops", "wall", "cpu", "minflt")
            }
            for model in MODELS[shape]
        }
        for s, rs in runs.items()
    }
    n = len(runs["default"])
    print(f"\n{SHAPES[shape].label()}: one train step, medians over {n} children per setting")
    print(
        f"{'model':<17}{'GFLOP':>7} | {'wall ms def':>11}{'tuned':>7}{'t/d':>6} | "
        f"{'cpu ms def':>10}{'tuned':>7}{'t/d':>6} | {'faults def':>10}{'tuned':>7} | "
        f"{'/r3d wall def':>13}{'tuned':>6} | {'/r3d cpu def':>12}{'tuned':>6}"
    )
    for model in MODELS[shape]:
        d, t = med["default"][model], med["tuned"][model]
        row = f"{model:<17}{d['flops'] / 1e9:>7.2f} |"
        for clock in ("wall", "cpu"):
            row += f"{d[clock] * 1e3:>11.0f}{t[clock] * 1e3:>7.0f}{t[clock] / d[clock]:>6.2f} |"
        row += f"{d['minflt']:>10.0f}{t['minflt']:>7.0f} |"
        for clock in ("wall", "cpu"):
            per_flop = [
                (med[s][model][clock] / med[s][model]["flops"])
                / (med[s]["r3d_18"][clock] / med[s]["r3d_18"]["flops"])
                for s in SETTINGS
            ]
            row += f"{per_flop[0]:>12.2f}x{per_flop[1]:>5.2f}x |"
        print(row.rstrip(" |"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=4, help="children per setting")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model and child")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.shapes, args.steps, args.threads)
        return
    print(f"torch {torch.__version__}, {args.threads} intra-op thread(s), load {os.getloadavg()}")
    runs: dict[str, list[dict[str, dict]]] = {s: [] for s in SETTINGS}
    for i in range(args.rounds):
        for setting in SETTINGS if i % 2 == 0 else SETTINGS[::-1]:
            runs[setting].append(run_child(setting, args))
            print(f"round {i} {setting} done, load {os.getloadavg()[0]:.2f}", flush=True)
    for shape in args.shapes:
        report(shape, runs)
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
