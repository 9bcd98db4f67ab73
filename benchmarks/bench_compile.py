"""torch.compile vs eager for one backbone's train step on CPU (bf16 autocast + channels_last_3d).

The engine's CPU path (`vidssl.app.train.precision`: the oneDNN bf16 guard, channels_last_3d,
bf16 autocast) for ``bench_r2plus1d.train_step`` (forward, cross-entropy on 10 classes, backward), one backbone built twice
from one seed; one is wrapped in `torch.compile` (default inductor backend). After the compile
(its time printed), rounds interleave the two; each round times ``--steps`` steps by process
CPU time (`time.process_time`, steadier than wall time on a shared machine). Prints the
medians and the compiled / eager ratio.

    python benchmarks/bench_compile.py [--backbone r2plus1d_18_sta] [--width 0.25]
        [--batch 32] [--frames 9] [--size 32] [--rounds 5] [--steps 3] [--threads 1]

Defaults: the MTCL bench row's shape (src/vidssl/presets/bench/cpu.yaml).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from bench_r2plus1d import train_step
from vidssl.app.train.precision import guard_bf16_conv3d, model_to_channels_last
from vidssl.models.backbones import create_backbone


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="r2plus1d_18_sta")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=9)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    def build() -> nn.Module:
        torch.manual_seed(0)
        model = create_backbone(args.backbone, width=args.width, num_classes=10)
        guard_bf16_conv3d(model)
        return model_to_channels_last(model).train()

    shape = (args.batch, 3, args.frames, args.size, args.size)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, 10, (args.batch,))

    eager, compiled = build(), build()
    compiled_step = torch.compile(lambda: train_step(compiled, x, y))
    start = time.time()
    compiled_step()
    print(f"compile + first step: {time.time() - start:.1f} s wall", flush=True)
    steps = {"eager": lambda: train_step(eager, x, y), "compiled": compiled_step}
    ms: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            fn()  # untimed: the round's first step
            t = time.process_time()
            for _ in range(args.steps):
                fn()
            ms[name].append((time.process_time() - t) / args.steps * 1000)
    for name, values in ms.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:<9} CPU ms/step median {statistics.median(values):7.1f} (rounds: {shown})")
    ratio = statistics.median(ms["compiled"]) / statistics.median(ms["eager"])
    print(f"compiled / eager: {ratio:.2f}x")


if __name__ == "__main__":
    main()
