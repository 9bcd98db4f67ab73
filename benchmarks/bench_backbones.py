"""Clips/s of every backbone on CPU: fp32 vs channels_last_3d vs bf16 autocast + channels_last_3d.

A CPU-sized config (width 0.5, 8x64x64 clips, batch 8 by default). For each backbone and mode
it times the forward pass (eval, no grad) and a full train step (forward, loss, backward,
SGD step), and prints clips/s with the ratio against the fp32 (contiguous) baseline measured
in the same process. Rounds alternate between modes so that load from other processes hits
all of them alike; the best round is kept.

A second table times one R(2+1)D-style 3x1x1 temporal conv (forward + backward), plain
`nn.Conv3d` vs `TemporalConv3d` (the same conv as a Conv2d over (T, H*W)).

    python benchmarks/bench_backbones.py [--names r3d_18 s3d] [--width 0.5] [--frames 8]
        [--size 64] [--batch 8] [--rounds 2] [--iters 2] [--threads 0]

On a shared machine `--threads 1` gives steadier figures (OpenMP threads spin when preempted).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm import tqdm

from vidssl.models.backbones import create_backbone, list_backbones
from vidssl.models.backbones.base import TemporalConv3d, scale_channels
from vidssl.models.backbones.resnet3d import r2plus1d_midplanes


@dataclass(frozen=True)
class Mode:
    channels_last: bool
    autocast: Callable[[], AbstractContextManager[object]]


MODES: dict[str, Mode] = {
    "fp32": Mode(False, nullcontext),
    "fp32+cl": Mode(True, nullcontext),
    "bf16+cl": Mode(True, lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
}


def prepare(model: nn.Module, x: Tensor, mode: Mode) -> tuple[nn.Module, Tensor]:
    if mode.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return model, x


def forward_rate(model: nn.Module, x: Tensor, mode: Mode, iters: int) -> float:
    """Clips/s of eval-mode forward passes (one warm-up pass first)."""
    model.eval()
    with torch.no_grad(), mode.autocast():
        model(x)
        t0 = time.perf_counter()
        for _ in range(iters):
            model(x)
    return iters * x.shape[0] / (time.perf_counter() - t0)


def train_rate(model: nn.Module, x: Tensor, mode: Mode, iters: int) -> float:
    """Clips/s of train steps: forward, cross-entropy on 10 classes, backward, SGD step."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    target = torch.arange(x.shape[0]) % 10

    def step() -> None:
        with mode.autocast():
            loss = nn.functional.cross_entropy(model(x).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return iters * x.shape[0] / (time.perf_counter() - t0)


def bench_backbones(args: argparse.Namespace) -> None:
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    best: dict[tuple[str, str, str], float] = {}
    jobs = [(r, n, m) for r in range(args.rounds) for n in args.names for m in MODES]
    for _, name, mode_name in tqdm(jobs, desc="backbones", unit="run"):
        torch.manual_seed(0)
        model = create_backbone(name, num_classes=10, width=args.width)
        model, xm = prepare(model, x, MODES[mode_name])
        for kind, rate_fn in (("forward", forward_rate), ("train", train_rate)):
            rate = rate_fn(model, xm, MODES[mode_name], args.iters)
            key = (name, kind, mode_name)
            best[key] = max(best.get(key, 0.0), rate)
    print(
        f"\nclips/s, width {args.width}, clips {args.frames}x{args.size}x{args.size}, "
        f"batch {args.batch}, {torch.get_num_threads()} threads (best of {args.rounds} rounds)"
    )
    header = f"{'backbone':<12} {'pass':<8}" + "".join(f"{m:>10}" for m in MODES)
    print(header + "".join(f"{m + '/fp32':>14}" for m in list(MODES)[1:]))
    for name in args.names:
        for kind in ("forward", "train"):
            rates = [best[(name, kind, m)] for m in MODES]
            row = f"{name:<12} {kind:<8}" + "".join(f"{r:>10.1f}" for r in rates)
            print(row + "".join(f"{r / rates[0]:>13.2f}x" for r in rates[1:]))


def bench_temporal_conv(args: argparse.Namespace) -> None:
    """The temporal half of an R(2+1)D-18 layer1 conv at `--width`: mid-planes -> planes, fwd+bwd.

    Plain `nn.Conv3d` vs `TemporalConv3d` with the same weights; rounds alternate between the
    two and the best round is kept.
    """
    c_out = scale_channels(64, args.width)
    c_in = r2plus1d_midplanes(c_out, c_out)  # 72 -> 32 at width 0.5
    t, hw = args.frames, args.size // 2  # layer1 runs at half the input resolution
    plain = nn.Conv3d(c_in, c_out, (3, 1, 1), padding=(1, 0, 0), bias=False)
    fast = TemporalConv3d(c_in, c_out, 3)
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(args.batch, c_in, t, hw, hw)
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for mode_name, mode in MODES.items():
            for impl, conv in (("Conv3d", plain), ("Temporal", fast)):
                conv, xm = prepare(conv, x, mode)
                xm = xm.requires_grad_()

                def step(conv: nn.Module = conv, xm: Tensor = xm, mode: Mode = mode) -> None:
                    with mode.autocast():
                        y = conv(xm)
                    y.float().sum().backward()

                step()
                t0 = time.perf_counter()
                for _ in range(5 * args.iters):
                    step()
                ms = (time.perf_counter() - t0) / (5 * args.iters) * 1e3
                best[(mode_name, impl)] = min(best.get((mode_name, impl), float("inf")), ms)
    print(f"\n3x1x1 conv {c_in}->{c_out}, input ({args.batch}, {c_in}, {t}, {hw}, {hw}), fwd+bwd")
    print(f"{'mode':<10}{'Conv3d ms':>12}{'Temporal ms':>14}{'speed-up':>10}")
    for mode_name in MODES:
        plain_ms, fast_ms = best[(mode_name, "Conv3d")], best[(mode_name, "Temporal")]
        print(f"{mode_name:<10}{plain_ms:>12.2f}{fast_ms:>14.2f}{plain_ms / fast_ms:>9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", default=list_backbones(), choices=list_backbones())
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    bench_temporal_conv(args)
    bench_backbones(args)


if __name__ == "__main__":
    main()
