"""Training-mode BatchNorm + ReLU on a 5-D video tensor: BatchNorm3d vs a BatchNorm2d view.

R(2+1)D-18's factorised convolutions put a BN + ReLU between the spatial and the temporal
conv (docs/performance.md, section 5). This times forward + backward of that pair, CPU time
per call, one thread, for ``BatchNorm3d`` on ``(N, C, T, H, W)``, the same normalisation as a
``BatchNorm2d`` over a ``(N, C, T, H*W)`` view (identical statistics: per channel over N, T,
H, W), and a hand-written fp32 normalisation; in fp32 and bf16 (under CPU autocast), in the
channels_last_3d and the contiguous layout. Ratios are within one process and run.

    python benchmarks/bench_batchnorm_views.py [--shape 32 40 9 16 16] [--repeats 20]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn


def cpu_ms(fn: Callable[[Tensor], None], x: Tensor, repeats: int) -> float:
    """Mean CPU milliseconds per call of ``fn(x)`` after 3 warm-up calls."""
    for _ in range(3):
        fn(x)
    start = time.process_time()
    for _ in range(repeats):
        fn(x)
    return (time.process_time() - start) / repeats * 1e3


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", nargs=5, type=int, default=[32, 40, 9, 16, 16])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    n, c, t, h, w = args.shape
    bn3, bn2 = nn.BatchNorm3d(c), nn.BatchNorm2d(c)

    def as_4d(x: Tensor) -> Tensor:
        if x.is_contiguous():
            return x.view(n, c, t, h * w)  # (N, C, T, H, W) -> (N, C, T, H*W)
        # channels_last_3d: (N, T, H, W, C) in memory -> (N, T, H*W, C) -> (N, C, T, H*W)
        return x.permute(0, 2, 3, 4, 1).reshape(n, t, h * w, c).permute(0, 3, 1, 2)

    def bn3d(x: Tensor) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.relu(bn3(x)).sum().backward()

    def bn2d_view(x: Tensor) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.relu(bn2(as_4d(x))).sum().backward()

    def by_hand(x: Tensor) -> None:
        xf = x.float()
        mean = xf.mean(dim=(0, 2, 3, 4), keepdim=True)  # (1, C, 1, 1, 1)
        var = xf.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)  # (1, C, 1, 1, 1)
        torch.relu((xf - mean) * torch.rsqrt(var + 1e-5)).to(x.dtype).sum().backward()

    print(f"torch {torch.__version__}, 1 thread, shape {tuple(args.shape)}, CPU ms per call")
    print(f"{'dtype':<16}{'layout':<10}{'BatchNorm3d':>12}{'BN2d view':>12}{'by hand':>10}")
    for dtype in (torch.float32, torch.bfloat16):
        for layout in ("cl3d", "contig"):
            x = torch.randn(n, c, t, h, w)
            if layout == "cl3d":
                x = x.contiguous(memory_format=torch.channels_last_3d)
            x = x.to(dtype).requires_grad_()
            times = [cpu_ms(f, x, args.repeats) for f in (bn3d, bn2d_view, by_hand)]
            print(f"{str(dtype):<16}{layout:<10}" + "".join(f"{v:>12.2f}" for v in times))


if __name__ == "__main__":
    main()
