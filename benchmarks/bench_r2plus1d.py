"""R(2+1)D-18 vs R3D-18 train-step time per FLOP on CPU (bf16 autocast + channels_last_3d).

The engine's CPU training path: bf16 autocast, model and clips in channels_last_3d, the
oneDNN bf16 guard of `vidssl.app.train.precision`. A train step here is forward +
cross-entropy on 10 classes + backward (no optimizer step). FLOPs of that step are counted
with `torch.utils.flop_counter.FlopCounterMode` (convolutions and matmuls, forward and
backward). Models per shape, built in one process with the same seed and threads:

- ``r3d_18``: the baseline.
- ``r2plus1d_18``: the library's module: each (2+1)D conv is a 1x3x3 `nn.Conv3d` -> BN ->
  ReLU -> 3x1x1 `TemporalConv3d` (a Conv2d with a (3, 1) kernel over `(N, C, T, H*W)`).
- ``r2+1 2d-spatial``: the same weights, the spatial convs (stem's 1x7x7 included) computed as
  a Conv2d over `(N*T, C, H, W)` (:class:`FrameConv2d`, a view in channels_last_3d).
- ``r2+1 3d-temporal``: the same weights, the temporal convs as a plain 3x1x1 `nn.Conv3d`.
- ``r2+1 no mid BN/ReLU``: a diagnostic, not the same network (:func:`without_mid_norm`):
  what the step would cost without the elementwise work between the two convs.

Before timing, every variant's fp32 output and gradients are checked against the library
module's (max relative difference printed; the variants compute the same function).

Rounds interleave the models so that load from other processes hits all of them alike; the
medians over rounds are printed. Two clocks: wall time, and the process's CPU time
(`time.process_time`, which with one intra-op thread leaves out the time the process waited
for a core: much steadier on a shared machine). "s/TFLOP" is the step time per 10^12 counted
FLOPs and "/r3d" its ratio to R3D-18's at the same shape.

Shapes: the MTCL bench row (width 0.25, batch 32, 9x32x32 clips; src/vidssl/presets/bench/cpu.yaml),
width 0.5, batch 8, 8x64x64 (benchmarks/bench_backbones.py's default), and on request full
width (batch 4, 8x64x64).

    python benchmarks/bench_r2plus1d.py [--rounds 7] [--threads 1] [--shapes mtcl w0.5 w1.0]

`--threads 1` is what the bench preset gives each training process on this 2-core machine
(`threads: 0` = half the cores).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from vidssl.app.train.precision import guard_bf16_conv3d, model_to_channels_last
from vidssl.models.backbones import create_backbone
from vidssl.models.backbones.base import TemporalConv3d


@dataclass(frozen=True)
class Shape:
    width: float
    batch: int
    frames: int
    size: int

    def label(self) -> str:
        return (
            f"width {self.width}, batch {self.batch}, {self.frames}x{self.size}x{self.size} clips"
        )


SHAPES: dict[str, Shape] = {
    "mtcl": Shape(width=0.25, batch=32, frames=9, size=32),
    "w0.5": Shape(width=0.5, batch=8, frames=8, size=64),
    "w1.0": Shape(width=1.0, batch=4, frames=8, size=64),  # not by default: full width
}
DEFAULT_SHAPES = ["mtcl", "w0.5"]


class FrameConv2d(nn.Conv3d):
    """A `(1, kh, kw)` Conv3d computed as a Conv2d over the frames, `(N*T, C, H, W)`."""

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> (N, O, T, H', W')."""
        n, t = x.shape[0], x.shape[2]
        weight = self.weight.squeeze(2)  # (O, C, 1, kh, kw) -> (O, C, kh, kw)
        frames = x.transpose(1, 2).flatten(0, 1)  # (N, C, T, H, W) -> (N*T, C, H, W)
        y = F.conv2d(frames, weight, self.bias, self.stride[1:], self.padding[1:])
        return y.unflatten(0, (n, t)).transpose(1, 2)  # (N*T, O, H', W') -> (N, O, T, H', W')


def spatial_as_conv2d(model: nn.Module) -> nn.Module:
    """Every (1, k, k) `nn.Conv3d` (k > 1) becomes a :class:`FrameConv2d`, in place."""
    for module in model.modules():
        if type(module) is nn.Conv3d and module.kernel_size[0] == 1 and module.kernel_size[1] > 1:
            module.__class__ = FrameConv2d
    return model


def temporal_as_conv3d(model: nn.Module) -> nn.Module:
    """Every `TemporalConv3d` becomes the plain `nn.Conv3d` it subclasses, in place."""
    for module in model.modules():
        if type(module) is TemporalConv3d:
            module.__class__ = nn.Conv3d
    return model


def without_mid_norm(model: nn.Module) -> nn.Module:
    """Diagnostic, NOT the same network: the BN and ReLU between the spatial and the temporal
    conv of every (2+1)D conv (stem included) become identities, in place. Its step time is
    what R(2+1)D-18 would cost if that elementwise work were free."""
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 3):
            if type(module[i + 3]) is TemporalConv3d and isinstance(module[i + 1], nn.BatchNorm3d):
                module[i + 1], module[i + 2] = nn.Identity(), nn.Identity()
    return model


@dataclass(frozen=True)
class Variant:
    backbone: str
    rewrite: Callable[[nn.Module], nn.Module] | None = None  # in place, on the built model
    same_function: bool = True  # checked against the library's r2plus1d_18 before timing


VARIANTS: dict[str, Variant] = {
    "r3d_18": Variant("r3d_18", same_function=False),
    "r2plus1d_18": Variant("r2plus1d_18"),
    "r2+1 2d-spatial": Variant("r2plus1d_18", spatial_as_conv2d),
    "r2+1 3d-temporal": Variant("r2plus1d_18", temporal_as_conv3d),
    "r2+1 no mid BN/ReLU": Variant("r2plus1d_18", without_mid_norm, same_function=False),
}


def check_same_function(variant: nn.Module, library: nn.Module) -> float:
    """Max difference of fp32 outputs and gradients (relative to each tensor's largest entry)
    of `variant` vs the library module on a channels_last_3d clip with T = 4 (T = 2 and 1
    inside: stride 2 in time). In eval mode: batch statistics over layer4's few positions
    would amplify float rounding differences into large gradient differences."""
    variant.eval()
    library.eval()
    x = torch.randn(2, 3, 4, 32, 32).contiguous(memory_format=torch.channels_last_3d)
    outs = [m(x) for m in (variant, library)]
    for out in outs:
        out.sin().sum().backward()
    pairs = [(outs[0].detach(), outs[1].detach())]
    pairs += [(p.grad, q.grad) for p, q in zip(variant.parameters(), library.parameters())]
    worst = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in pairs)
    for model in (variant, library):
        model.zero_grad(set_to_none=True)
        model.train()
    return worst


def build(label: str, width: float) -> nn.Module:
    """The variant's model with a 10-way head on the engine's CPU path (guarded bf16,
    channels_last_3d), the same weights for every variant of one backbone."""
    variant = VARIANTS[label]
    torch.manual_seed(0)
    model = create_backbone(variant.backbone, num_classes=10, width=width)
    if variant.rewrite is not None:
        variant.rewrite(model)
    guard_bf16_conv3d(model)
    return model_to_channels_last(model).train()


def train_step(model: nn.Module, x: Tensor, target: Tensor) -> None:
    """Forward (bf16 autocast), cross-entropy, backward; gradients cleared first."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    nn.functional.cross_entropy(logits.float(), target).backward()


def count_flops(step: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def bench_shape(shape: Shape, rounds: int) -> None:
    x = torch.randn(shape.batch, 3, shape.frames, shape.size, shape.size)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    target = torch.arange(shape.batch) % 10
    models = {label: build(label, shape.width) for label in VARIANTS}
    for label, model in models.items():
        if label != "r2plus1d_18" and VARIANTS[label].same_function:
            diff = check_same_function(model, models["r2plus1d_18"])
            print(f"{label}: same function as r2plus1d_18 (max rel. diff {diff:.1e}, fp32)")
            if diff > 1e-5:
                raise AssertionError(f"{label} differs from r2plus1d_18 by {diff:.1e}")
    flops = {name: count_flops(lambda m=m: train_step(m, x, target)) for name, m in models.items()}
    for model in models.values():  # warm-up: oneDNN primitive creation, allocator
        train_step(model, x, target)
    wall: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            w0, c0 = time.perf_counter(), time.process_time()
            train_step(model, x, target)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    print(f"\n{shape.label()}: train step (fwd + bwd), median of {rounds} interleaved rounds")
    print(
        f"{'model':<20}{'GFLOP':>8}{'wall ms':>10}{'s/TFLOP':>9}{'/r3d':>7}"
        f"{'cpu ms':>10}{'s/TFLOP':>9}{'/r3d':>7}"
    )
    base = {
        clock: statistics.median(t["r3d_18"]) / flops["r3d_18"]
        for clock, t in (("wall", wall), ("cpu", cpu))
    }
    for name in models:
        row = f"{name:<20}{flops[name] / 1e9:>8.2f}"
        for clock, times in (("wall", wall), ("cpu", cpu)):
            median = statistics.median(times[name])
            per_flop = median / flops[name]
            row += f"{median * 1e3:>10.0f}{per_flop * 1e12:>9.2f}{per_flop / base[clock]:>6.2f}x"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, choices=list(SHAPES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s)")
    for name in args.shapes:
        bench_shape(SHAPES[name], args.rounds)


if __name__ == "__main__":
    main()
