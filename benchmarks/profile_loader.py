"""Where the input time goes: CPU milliseconds per clip of each stage of the training loader.

    PYTHONPATH=src python benchmarks/profile_loader.py [--configs demo bench-simclr] [--repeats 5]

Each stage is timed with ``time.thread_time`` (CPU time of the calling thread, so other jobs on
a shared machine inflate it far less than wall time), one torch thread as in a DataLoader
worker, median over interleaved repeats. Stages, for the config's recipe and synthetic set:

- render: the frames of one clip drawn by ``SyntheticVideo.get_frames`` (the old per-item path);
- cached read: the same frames from the warm frame cache (``CachedSyntheticOpener``);
- crop: random resized crop + resize of one clip (``ClipAugment.crop``);
- photometric, per clip: flip, colour jitter, grayscale, blur, normalise of one clip;
- photometric, batched: the same for a whole batch at once (``batch_augment``), per clip;
- item, before: a whole dataset item as before this change (no frame cache), per clip;
- item / batched fetch: a whole dataset item (warm cache), per-clip / batched photometric;
- collate: ``default_collate`` of one batch, per clip;
- transfer: CPU of the *training* process per clip to receive a batch from one worker;
- to_device: the trainer's ``to_device`` (channels_last_3d copy), per clip;
- training step: CPU of ``Trainer.fit`` per clip on one fixed batch (1 thread), from the
  difference of a 2-step and a (2 + k)-step run, for the loader / model ratio per core.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import default_collate

from bench_train import pipeline_configs
from pipeline_rates import BatchList, fit_records
from vidssl.app.train.build import build_dataset, build_method
from vidssl.app.train.data import ResumableSampler, count_clips, make_loader, to_device
from vidssl.config import Config
from vidssl.data.batch_augment import apply_photometric, draw_photometric
from vidssl.data.synthetic import SyntheticVideo
from vidssl.data.transforms import frames_tchw, normalize


def cpu_ms(fn: Callable[[], object]) -> float:
    start = time.thread_time()
    fn()
    return (time.thread_time() - start) * 1e3


def step_cpu_ms(cfg: Config, batch: dict, k: int = 3) -> float:
    """CPU ms per clip of the training step (the Trainer on a fixed batch, 1 thread)."""
    cfg = replace(cfg, train=replace(cfg.train, threads=1))
    b = cfg.data.batch_size
    run = [
        cpu_ms(lambda n=n: fit_records(cfg, BatchList(b * n), n, collate_fn=lambda _: batch))
        for n in (2, 2 + k)
    ]
    return (run[1] - run[0]) / (k * count_clips(batch))


def stages(cfg: Config) -> dict[str, Callable[[], float]]:
    """Stage name -> a callable returning CPU ms per clip of one measurement."""
    dataset = build_dataset(cfg, build_method(cfg))
    recipe, opener, b = dataset.recipe, dataset.opener, cfg.data.batch_size
    aug = recipe.augment
    items = dataset.index.items
    for i in range(len(dataset)):  # warm the frame cache
        dataset[i]
    videos = [opener(item.path) for item in items[:b]]
    plain = [SyntheticVideo(opener.cfg, item.path) for item in items[:b]]
    idx = np.arange(cfg.data.clip_len) * int(cfg.data.stride)
    clips = [v.get_frames(idx) for v in videos]
    crops = [aug.crop(frames_tchw(c), np.random.default_rng(i)) for i, c in enumerate(clips)]
    uncached_cfg = replace(cfg, data=replace(cfg.data, args={**cfg.data.args, "cache": False}))
    uncached = build_dataset(uncached_cfg, build_method(cfg))
    batch = default_collate([dataset[i] for i in range(b)])
    per_batch = count_clips(batch)
    per_item = per_batch / b
    ids = list(range(b))

    def photometric_per_clip() -> None:
        for i, x in enumerate(crops):
            normalize(
                aug.photometric(x, np.random.default_rng(i)).permute(1, 0, 2, 3),
                (0.45,) * 3,
                (0.225,) * 3,
            )

    def photometric_batched() -> None:
        draws = [draw_photometric(aug, np.random.default_rng(i), cfg.data.size) for i in ids]
        apply_photometric(torch.stack(crops), draws, aug)

    def per_item_path() -> None:
        recipe.batch_augment = False
        dataset.__getitems__(ids)

    def batched_fetch() -> None:
        recipe.batch_augment = True
        dataset.__getitems__(ids)
        recipe.batch_augment = False

    def transfer() -> float:
        sampler = ResumableSampler(dataset, 1, 0, shuffle=False, seed=0, drop_last=True)
        loader = make_loader(dataset, sampler, batch_size=b, workers=1, seed=0, epoch=0)
        it = iter(loader)
        next(it)
        time.sleep(0.5)  # the worker prefetches: received batches are ready
        start, clips = time.thread_time(), 0
        for _, got in zip(range(2), it):
            clips += count_clips(got)
        del it
        return (time.thread_time() - start) * 1e3 / clips

    return {
        "render (uncached)": lambda: cpu_ms(lambda: [v.get_frames(idx) for v in plain]) / b,
        "cached read": lambda: cpu_ms(lambda: [v.get_frames(idx) for v in videos]) / b,
        "crop + resize": lambda: (
            cpu_ms(lambda: [aug.crop(frames_tchw(c), np.random.default_rng(0)) for c in clips]) / b
        ),
        "photometric, per clip": lambda: cpu_ms(photometric_per_clip) / b,
        "photometric, batched": lambda: cpu_ms(photometric_batched) / b,
        "item, before (no cache)": lambda: (
            cpu_ms(lambda: [uncached[i] for i in ids]) / (b * per_item)
        ),
        "item, per-clip aug": lambda: cpu_ms(per_item_path) / (b * per_item),
        "batched fetch": lambda: cpu_ms(batched_fetch) / (b * per_item),
        "collate": lambda: (
            cpu_ms(lambda: default_collate(dataset.__getitems__(ids))) / per_batch
            - cpu_ms(lambda: dataset.__getitems__(ids)) / per_batch
        ),
        "transfer (trainer side)": transfer,
        "training step (1 thread)": lambda: step_cpu_ms(cfg, batch),
        "to_device (trainer side)": lambda: (
            cpu_ms(lambda: to_device(batch, torch.device("cpu"), cfg.train.channels_last))
            / per_batch
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["demo", "bench-simclr"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    configs = pipeline_configs()
    for name in args.configs:
        cfg = configs[name]
        cfg = replace(cfg, data=replace(cfg.data, workers=1))
        fns = stages(cfg)
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.repeats):
            for k, fn in fns.items():
                times[k].append(fn())
        d = cfg.data
        print(
            f"{name}: {cfg.method.name}, {d.clip_len}x{d.size}^2 clips from "
            f"{d.args.get('frames')}x{d.args.get('size')}^2 videos, batch {d.batch_size}; "
            f"CPU ms per clip, median of {args.repeats}"
        )
        med = {k: statistics.median(ts) for k, ts in times.items()}
        for k, value in med.items():
            print(f"   {k:<26} {value:7.3f}")
        step = med["training step (1 thread)"]
        print(
            f"   loader per core / model per core: before {step / med['item, before (no cache)']:.2f}x, "
            f"now {step / med['item, per-clip aug']:.2f}x (target >= 5x)"
        )


if __name__ == "__main__":
    main()
