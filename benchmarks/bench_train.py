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
3. Data loader vs model for a config (default: the one ``make demo`` pre-trains with,
   ``vidssl.app.demo.DEMO_CONFIG``): clips/s of the DataLoader the Trainer builds (same
   workers / batch) against clips/s of the Trainer's step on that config. Target >= 3x.

    .venv/bin/python benchmarks/bench_train.py [--config configs/simclr.yaml] [--steps 6]

Figures on a shared machine are noisy; each timing is the best of a few repeats.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import Dataset, default_collate
from torch.utils.flop_counter import FlopCounterMode

from vidssl.app.train.build import build_dataset, build_method
from vidssl.app.train.checkpoint import seed_all
from vidssl.app.train.data import ResumableSampler, count_clips, make_loader
from vidssl.app.train.loop import Trainer
from vidssl.config import Config, load_config

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


def loader_vs_model(cfg: Config, batches: int, steps: int) -> tuple[float, float]:
    """clips/s of the Trainer's DataLoader for ``cfg`` and of its training step."""
    seed_all(0)
    method = build_method(cfg)
    dataset = build_dataset(cfg, method)
    sampler = ResumableSampler(dataset, 1, 0, shuffle=True, seed=cfg.train.seed, drop_last=True)
    sampler.set_epoch(0)
    loader = make_loader(
        dataset, sampler, batch_size=cfg.data.batch_size, workers=cfg.data.workers, seed=0, epoch=0
    )
    it = iter(loader)
    first = next(it)  # worker start-up is not throughput
    start, clips = time.perf_counter(), 0
    for _, batch in zip(range(batches), it):
        clips += count_clips(batch)
    loader_rate = clips / (time.perf_counter() - start)
    sample = {k: v[0] if torch.is_tensor(v) else v for k, v in first.items() if k != "views"}
    sample["views"] = [v[0] for v in first["views"]]
    model_rate = trainer_clips_per_s(cfg, sample, steps)
    return loader_rate, model_rate


def demo_config(path: str | None) -> tuple[Config, str]:
    """``path``, else the ``make demo`` pre-training config, else the built-in defaults."""
    if path:
        return load_config(path, []), path
    try:
        from vidssl.app.demo import DEMO_CONFIG
    except ImportError:
        return load_config(None, []), "built-in default config"
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "demo.yaml"
        file.write_text(yaml.safe_dump(DEMO_CONFIG))
        return load_config(str(file), []), "make demo config"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="config for part 3 (default: make demo's)")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per measurement")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; figures on a shared machine are noisy\n"
    )

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

    demo, source = demo_config(args.config)
    loader_rate, model_rate = loader_vs_model(demo, batches=8, steps=args.steps)
    d = demo.data
    print(
        f"3. loader vs model, {source}: {demo.method.name}, {demo.model.backbone} "
        f"width {demo.model.width}, batch {d.batch_size}, {d.clip_len}x{d.size}x{d.size}, {d.workers} workers"
    )
    print(f"   data loader            {loader_rate:8.1f} clips/s")
    print(f"   training step          {model_rate:8.1f} clips/s")
    print(f"   ratio                  {loader_rate / model_rate:8.2f}x   (target >= 3x)")


if __name__ == "__main__":
    main()
