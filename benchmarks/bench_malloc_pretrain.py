"""`vidssl pretrain` end to end with vidssl's glibc malloc settings vs glibc's defaults.

Each bench row asked for (default: the CPU bench preset's MTCL and SimCLR rows) is resolved
exactly as `vidssl bench --preset cpu` resolves it (the cell's config file), then trained for
`--steps` steps in a child process `python -m vidssl pretrain --config ... train.max_steps=N`
with one torch thread (what the bench gives each training process on 2 cores), alternately
with the default (tuned allocator) and with ``VIDSSL_MALLOC=0`` (glibc's defaults), the order
flipping every run. Printed per run and as medians per setting:

- s/step: between the first and the last step record of ``metrics.jsonl`` (one every 10
  steps; the parent notes when each appears, polling every 50 ms), so start-up and the first
  10 steps (loader and oneDNN warm-up) are left out;
- wall: the child's whole wall time (Python / torch start-up and model building included);
- CPU time and minor page faults (``wait4``'s rusage: the training process and its reaped
  DataLoader worker);
- peak RSS: the training process's ``VmHWM`` (sampled every 50 ms, as `vidssl bench` does;
  the DataLoader worker is a separate process, not included).

    nice -n 5 python benchmarks/bench_malloc_pretrain.py [--rows mtcl simclr] [--steps 40]
        [--runs 2] [--out /tmp/bench-malloc]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from vidssl.app.bench import load_preset, make_bench, plan_cells, preset_path
from vidssl.app.malloc import ENV_SWITCH
from vidssl.config import save_config

SETTINGS = {"tuned": "1", "default": "0"}  # label -> VIDSSL_MALLOC


def row_config(preset: str, row: str, out: Path) -> Path:
    """The bench cell's config file for `row` (seed 0, last stage)."""
    bench = make_bench(load_preset(preset_path(preset)), out / "bench", methods=[row])
    plan = next(p for p in plan_cells(bench) if p.cell.row == row)
    stage = plan.stages[-1]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{row}.yaml"
    save_config(stage.config, path)
    return path


def vm_hwm_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MB; NaN once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def logged_steps(metrics: Path) -> int:
    """The last step record's step in ``metrics.jsonl`` (0 if none yet)."""
    steps = [0]
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if record.get("kind") == "step":
                steps.append(int(record["step"]))
    return max(steps)


def run_once(config: Path, steps: int, setting: str, run_dir: Path) -> dict[str, float]:
    """One child run; s/step from the times its step records appear (polled every 50 ms),
    first record (start-up, loader warm-up) to last."""
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update({ENV_SWITCH: SETTINGS[setting], "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    cmd = [sys.executable, "-m", "vidssl", "pretrain", "--config", str(config)]
    cmd += [f"train.max_steps={steps}", f"train.out_dir={run_dir}", "train.ckpt_every=100000"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    seen: dict[int, float] = {}  # logged step -> when its record appeared
    peak = float("nan")
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        hwm = vm_hwm_mb(proc.pid)
        peak = hwm if peak != peak else max(peak, hwm if hwm == hwm else peak)
        step = logged_steps(run_dir / "metrics.jsonl")
        if step and step not in seen:
            seen[step] = time.perf_counter()
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    (s0, t0), (s1, t1) = min(seen.items()), max(seen.items())
    return {
        "s_per_step": (t1 - t0) / (s1 - s0),
        "wall_s": wall,
        "peak_mb": peak,
        "minflt_k": usage.ru_minflt / 1e3,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--rows", nargs="+", default=["mtcl", "simclr"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--runs", type=int, default=2, help="runs per setting and row")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-malloc"))
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    for row in args.rows:
        config = row_config(args.preset, row, args.out)
        results: dict[str, list[dict[str, float]]] = {s: [] for s in SETTINGS}
        for i in range(args.runs):
            order = list(SETTINGS) if i % 2 == 0 else list(SETTINGS)[::-1]
            for setting in order:
                r = run_once(config, args.steps, setting, args.out / "runs" / row)
                results[setting].append(r)
                print(
                    f"{row} run {i} {setting:<8} {r['s_per_step']:.3f} s/step, wall "
                    f"{r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, {r['minflt_k']:.0f}k minor "
                    f"faults, peak RSS {r['peak_mb']:.0f} MB, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
        print(f"\n{row}: medians of {args.runs} runs of {args.steps} steps")
        med = {
            s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in results.items()
        }
        for s, m in med.items():
            print(
                f"  {s:<8} {m['s_per_step']:.3f} s/step, wall {m['wall_s']:.1f} s, CPU "
                f"{m['cpu_s']:.1f} s, {m['minflt_k']:.0f}k minor faults, peak RSS "
                f"{m['peak_mb']:.0f} MB"
            )
        t, d = med["tuned"], med["default"]
        print("  tuned/default: " + ", ".join(f"{k} {t[k] / d[k]:.2f}x" for k in t) + "\n")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
