"""``vidssl embed`` vs ``vidssl eval``'s feature extraction on prepared storage, same settings.

A folder of ``--videos`` prepared ``.vfs`` files (JPEG frames of moving gradients, 128x128,
``--frames`` frames each) is written to a temporary folder. Then, alternating, best of
``--rounds``:

- eval: the loader ``vidssl eval`` builds for feature extraction
  (``vidssl.eval.context.multi_clip_loader`` over the ``unlabelled`` dataset of that folder)
  through ``vidssl.eval.features.extract_features``: extraction only (backbone already built);
- embed: the whole ``vidssl embed SRC --out EMB_DIR`` command into a fresh folder (listing,
  backbone build, loader, extraction, stored parts, embeddings.npy + manifest.tsv).

Both with the same backbone (random init), clips, batch size, workers and autocast. The ratio
is embed videos/s over eval videos/s. Target: >= 0.8.

    python benchmarks/bench_embed.py [--videos 96] [--rounds 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from vidssl.app.cli import main
from vidssl.app.train.precision import guard_bf16_conv3d, resolve_amp
from vidssl.data.datasets import open_split
from vidssl.data.storage import write_frames
from vidssl.eval.context import multi_clip_loader
from vidssl.eval.features import extract_features
from vidssl.eval.protocols import eval_config_from_dict
from vidssl.eval.weights import read_weights

BACKBONE = ["--backbone", "r3d_18", "--width", "0.25"]


def write_videos(root: Path, count: int, frames: int, size: int = 128) -> None:
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(count):
        video = []
        for t in range(frames):
            r = (xx * (1 + i % 5) + 3 * t) % 256
            g = (yy * (1 + i % 3) + 5 * t * (i % 2)) % 256
            b = ((xx + yy) // 2 + 7 * i) % 256
            video.append(np.stack([r, g, b], -1).astype(np.uint8))  # (H, W, 3)
        write_frames(root / f"video_{i:04d}.mp4.vfs", video, fps=25.0, codec="jpeg")


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settings = {
        "num_clips": 4,
        "clip_len": 8,
        "stride": 2.0,
        "size": 64,
        "batch_size": 8,
        "workers": args.workers,
        "amp": "auto",
        "progress": False,
    }
    overrides = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]
    print(f"settings: r3d_18 width 0.25 (random init), {', '.join(overrides)}")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "prepared"
        src.mkdir()
        write_videos(src, args.videos, args.frames)
        print(f"{args.videos} prepared .vfs videos of {args.frames} frames, 128x128 JPEG")

        cfg = eval_config_from_dict(settings)
        weights = read_weights("random", backbone="r3d_18", width=0.25)
        device = torch.device("cpu")
        amp_dtype = resolve_amp(cfg.amp, device)
        model = weights.build(0)
        if amp_dtype is not None:
            guard_bf16_conv3d(model)
        built = open_split("unlabelled", str(src), None, {})
        ctx = SimpleNamespace(
            cfg=cfg,
            weights=weights,
            clip=weights.clip_settings(cfg.clip_len, cfg.stride, cfg.size),
            root=str(src),
            device=device,
        )

        def run_eval() -> int:
            loader = multi_clip_loader(ctx, built, model)  # type: ignore[arg-type]
            feats = extract_features(
                model, loader, device, amp=amp_dtype is not None, progress=False
            )
            return len(feats.feats)

        def run_embed(j: int) -> int:
            out = Path(tmp) / f"emb{j}"
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                rc = main(
                    [
                        "embed",
                        str(src),
                        "--checkpoint",
                        "random",
                        *BACKBONE,
                        "--out",
                        str(out),
                        *overrides,
                    ]
                )
            assert rc == 0, rc
            return len(np.load(out / "embeddings.npy"))

        best = {"eval": float("inf"), "embed": float("inf")}
        for j in range(args.rounds):
            for name, fn in (("eval", run_eval), ("embed", lambda j=j: run_embed(j))):
                t = time.perf_counter()
                n = fn()
                dt = time.perf_counter() - t
                assert n == args.videos
                best[name] = min(best[name], dt)
                print(f"round {j + 1} {name:<5}: {dt:6.2f} s  {n / dt:6.2f} videos/s")
        rate = {k: args.videos / v for k, v in best.items()}
        print(
            f"\nbest: eval {rate['eval']:.2f} videos/s, embed {rate['embed']:.2f} videos/s, "
            f"ratio embed/eval = {rate['embed'] / rate['eval']:.2f} (target >= 0.8)"
        )


if __name__ == "__main__":
    main_bench()
