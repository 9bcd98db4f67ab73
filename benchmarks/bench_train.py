"""Training speed on CPU: vidssl's default path vs a plain fp32 PyTorch loop, FLOP rates, loader.

Three measurements, all in one process so they share the machine's state:

1. Training-step throughput of SimCLR on R3D-18 (width 0.5, 8x64x64 clips, batch 8 -> 16
   clips per step) through ``Trainer.fit`` (the default CPU path: bf16 autocast,
   channels_last_3d, the bf16 Conv3d guard, SGD) against a plain fp32 loop (contiguous
   tensors, ``loss.backward(); opt.step()``) over the same network, batch and input. The data
   is one fixed batch, so only the training step is timed. Target: ratio >= 2x.
2. Achieved conv GFLOP/s of both (conv FLOPs of one step counted with ``FlopCounterMode``)
   next to a 3x3x3 Conv3d forward microbenchmark: fp32, fp32 channels_last_3d, bf16
   channels_last_3d (the peak the training step could reach).
3. Input pipeline vs model, for ``make demo``'s config and the CPU bench table's SimCLR row,
   SimCLR on ``r2plus1d_18`` and the MTCL row (``r2plus1d_18_sta``, 9-frame clips), all with
   the trainer's thread count: step-only, loader-only and end-to-end (a real short run
   through ``Trainer.fit``) clips/s and their ratios (see ``pipeline_rates.py``). Targets:
   end to end >= 75 % of step-only (demo, bench SimCLR); loader >= 5x the step per loader core.

    PYTHONPATH=src python benchmarks/bench_train.py [--steps 6] [--only-pipeline]
        [--configs demo bench-simclr bench-simclr-r2plus1d bench-mtcl] [--repeats 3]

Figures on a shared machine are noisy; parts 1-2 take the best of a few repeats, part 3 the
median of ``--repeats`` interleaved repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, default_collate
from torch.utils.flop_counter import FlopCounterMode

from pipeline_rates import Rates, cpu_row_config, pipeline_rates
from vidssl.app.train.build import build_method
from vidssl.app.train.checkpoint import seed_all
from vidssl.app.train.data import count_clips
from vidssl.app.train.loop import Trainer
from vidssl.config import Config, config_from_dict, load_config

BENCH_MODEL = [
    "model.backbone=r3d_18",
    "model.width=0.5",
    "data.clip_len=8",
    "data.size=64",
    "data.batch_size=8",
    "data.workers=0",
    "method.name=simclr",
    "method.hidden_dim=512",
    "optim.name=sgd",
    "optim.warmup_epochs=0",
]


class FixedBatch(Dataset):
    """``n`` copies of one sample: the loader costs nothing, only the training step is timed."""

    def __init__(self, sample: dict[str, Any], n: int) -> None:
        self.sample, self.n = sample, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.sample


def _best(fn: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def trainer_clips_per_s(cfg: Config, sample: dict[str, Any], steps: int) -> float:
    """Steady-state clips/s of ``Trainer.fit`` on a fixed sample (first two steps dropped)."""
    with tempfile.TemporaryDirectory() as out:
        cfg.train.out_dir, cfg.train.max_steps = out, steps + 2
        cfg.train.log_every, cfg.train.ckpt_every = 1, 10**9
        seed_all(0)
        method = build_method(cfg)
        dataset = FixedBatch(sample, cfg.data.batch_size * (steps + 2))
        Trainer(cfg, method, dataset).fit()
        records = [
            json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()
        ]
    rates = [r["clips_per_s"] for r in records if r["kind"] == "step"][2:]
    return max(rates)


def plain_fp32_step(
    cfg: Config, batch: dict[str, Any]
) -> tuple[Callable[[], None], torch.nn.Module]:
    """The textbook loop over the same network: fp32, contiguous, SGD."""
    seed_all(0)
    method = build_method(cfg)
    opt = torch.optim.SGD(method.parameters(), lr=cfg.optim.lr, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        loss = method(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, method


def conv_flops(method: torch.nn.Module, batch: dict[str, Any]) -> int:
    """Convolution FLOPs (forward + backward) of one training step."""
    with FlopCounterMode(display=False) as counter:
        method(batch)["loss"].backward()
    method.zero_grad(set_to_none=True)
    per_op = counter.get_flop_counts().get("Global", {})
    return int(sum(n for op, n in per_op.items() if "convolution" in str(op)))


def conv3d_peak() -> dict[str, float]:
    """GFLOP/s of a 3x3x3 Conv3d forward (64 -> 64 channels, 8x16x28x28 input)."""
    n, c, t, h, w = 8, 64, 16, 28, 28
    flops = 2 * n * c * t * h * w * c * 27
    conv = torch.nn.Conv3d(c, c, 3, padding=1, bias=False)
    x = torch.randn(n, c, t, h, w)
    cases = {
        "fp32": (conv, x),
        "fp32 channels_last_3d": (
            torch.nn.Conv3d(c, c, 3, padding=1, bias=False).to(
                memory_format=torch.channels_last_3d
            ),
            x.contiguous(memory_format=torch.channels_last_3d),
        ),
    }
    bf16_conv = torch.nn.Conv3d(c, c, 3, padding=1, bias=False).to(torch.bfloat16)
    bf16_conv = bf16_conv.to(memory_format=torch.channels_last_3d)
    cases["bf16 channels_last_3d"] = (
        bf16_conv,
        x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last_3d),
    )
    out = {}
    with torch.no_grad():
        for name, (module, inp) in cases.items():
            module(inp)  # oneDNN primitive creation
            out[name] = flops / _best(lambda m=module, i=inp: m(i), 5) / 1e9
    return out


def pipeline_configs() -> dict[str, Config]:
    """The configs of part 3: ``make demo``'s and the CPU bench table's rows (SimCLR, SimCLR on
    R(2+1)D-18, MTCL on its 9-frame R(2+1)D-18 with attention), backbones called by name."""
    from vidssl.app.demo import DEMO_CONFIG

    return {
        "demo": config_from_dict(DEMO_CONFIG, check=True),
        "bench-simclr": cpu_row_config("simclr"),
        "bench-simclr-r2plus1d": cpu_row_config("simclr", {"model": {"backbone": "r2plus1d_18"}}),
        "bench-mtcl": cpu_row_config("mtcl"),
    }


PIPELINE_CONFIGS = ("demo", "bench-simclr", "bench-simclr-r2plus1d", "bench-mtcl")
RATE_FIELDS = ("step", "loader", "loader_cold", "end_to_end")


def pipeline_table(names: list[str], steps: int, repeats: int) -> None:
    """Part 3: step-only / loader-only / end-to-end clips/s per config, medians of interleaved
    repeats (see pipeline_rates.py)."""
    configs = pipeline_configs()
    unknown = set(names) - set(configs)
    if unknown:
        raise SystemExit(f"--configs: unknown {sorted(unknown)}; choose from {list(configs)}")
    runs: dict[str, list[Rates]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(pipeline_rates(configs[name], steps))
    print(
        f"3. input pipeline vs model, medians of {repeats} interleaved repeat(s); clips/s\n"
        f"   {'config':<22} {'thr':>3} {'wrk':>3} {'step':>7} {'loader':>7} {'cold':>7} "
        f"{'e2e':>7} {'e2e/step':>8} {'loader/step':>11}"
    )
    for name in names:
        r = {f: statistics.median(getattr(x, f) for x in runs[name]) for f in RATE_FIELDS}
        cfg = configs[name]
        per_core = r["loader"] / max(cfg.data.workers, 1)
        print(
            f"   {name:<22} {runs[name][0].threads:>3} {cfg.data.workers:>3} {r['step']:7.1f} "
            f"{r['loader']:7.1f} {r['loader_cold']:7.1f} {r['end_to_end']:7.1f} "
            f"{r['end_to_end'] / r['step']:8.2f} {per_core / r['step']:11.2f}",
            flush=True,
        )
    print(
        "   targets: e2e/step >= 0.75 (demo, bench-simclr); loader/step >= 5 per loader core\n"
        "   (loader: warm frame cache; cold: the first epoch, which renders it)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per measurement")
    parser.add_argument(
        "--configs", nargs="+", default=list(PIPELINE_CONFIGS), help="part 3's configs"
    )
    parser.add_argument("--repeats", type=int, default=1, help="part 3: interleaved repeats")
    parser.add_argument("--only-pipeline", action="store_true", help="run part 3 only")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; figures on a shared machine are noisy\n"
    )
    if args.only_pipeline:
        pipeline_table(args.configs, args.steps, args.repeats)
        return

    cfg = load_config(None, BENCH_MODEL)
    n, t, s = cfg.data.batch_size, cfg.data.clip_len, cfg.data.size
    views = [torch.rand(n, 3, t, s, s) for _ in range(2)]
    batch = {"views": views}
    sample = {"views": [v[0] for v in views]}
    clips = count_clips(batch)

    plain_step, plain_method = plain_fp32_step(cfg, batch)
    plain_step()  # warm-up
    plain_rate = clips / _best(plain_step, max(2, args.steps // 2))
    vidssl_rate = trainer_clips_per_s(load_config(None, BENCH_MODEL), sample, args.steps)
    flops = conv_flops(plain_method, default_collate([sample] * n))
    print(
        f"1. SimCLR + R3D-18 (width {cfg.model.width}), {n} x 2 views of {t}x{s}x{s}, one step = {clips} clips"
    )
    print(f"   plain fp32 loop        {plain_rate:8.1f} clips/s")
    print(
        f"   vidssl default path    {vidssl_rate:8.1f} clips/s   (bf16 autocast + channels_last_3d)"
    )
    print(f"   ratio                  {vidssl_rate / plain_rate:8.2f}x   (target >= 2x)\n")

    peak = conv3d_peak()
    step_gflop = flops / 1e9
    print(f"2. conv FLOPs per training step (fwd + bwd): {step_gflop:.1f} GFLOP")
    print(f"   achieved, plain fp32   {step_gflop * plain_rate / clips:8.1f} GFLOP/s")
    print(f"   achieved, vidssl       {step_gflop * vidssl_rate / clips:8.1f} GFLOP/s")
    for name, rate in peak.items():
        print(f"   Conv3d 3x3x3 peak, {name:<22} {rate:8.1f} GFLOP/s")
    print()

    pipeline_table(args.configs, args.steps, args.repeats)


if __name__ == "__main__":
    main()
