"""Step-only, loader-only and end-to-end clips/s of one training config (``bench_train.py``).

All three run with the same torch thread count (the trainer's ``train.threads``, resolved
once) and the config's ``data.workers``:

- step only: ``Trainer.fit`` on one fixed collated batch, handed over by ``collate_fn``, so
  the loader costs nothing; steady state over the last ``steps`` steps;
- loader only: the Trainer's own run loader (``make_run_loader``, same workers and batch):
  the first epoch (cold: it fills the synthetic frame cache, worker start included), then
  the second epoch (warm);
- end to end: a real short run, ``Trainer.fit`` on the real dataset (metrics.jsonl, one
  record per step); clips / seconds over the steps of epochs >= 1 (warm frame cache; epoch
  boundaries and checkpoint writes are inside the window).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from vidssl.app.train.build import build_dataset, build_method
from vidssl.app.train.checkpoint import seed_all
from vidssl.app.train.data import EpochBatches, count_clips, make_run_loader
from vidssl.app.train.loop import Trainer
from vidssl.app.train.threads import auto_threads, torch_threads
from vidssl.config import Config, config_from_dict


@dataclass
class Rates:
    step: float  # clips/s, training step alone
    loader: float  # clips/s, DataLoader alone (warm cache)
    loader_cold: float  # clips/s, DataLoader, first epoch (renders the frame cache)
    end_to_end: float  # clips/s, real run, epochs >= 1
    threads: int  # torch threads of the training process


class BatchList(torch.utils.data.Dataset):
    """``n`` dummy items; the Trainer's ``collate_fn`` returns the fixed batch instead."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def _records(out: str) -> list[dict[str, Any]]:
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "step"]


def _rate_over(records: list[dict[str, Any]], clips_per_step: int) -> float:
    """Clips / seconds over ``records`` (one per step: ``clips_per_s`` of that step)."""
    seconds = sum(clips_per_step / r["clips_per_s"] for r in records)
    return clips_per_step * len(records) / seconds


def fit_records(cfg: Config, dataset: Any, steps: int, **kwargs: Any) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as out:
        cfg = replace(cfg, train=replace(cfg.train, out_dir=out, max_steps=steps, log_every=1))
        seed_all(cfg.train.seed)
        method = build_method(cfg)
        ds = dataset if dataset is not None else build_dataset(cfg, method)
        Trainer(cfg, method, ds, **kwargs).fit()
        return _records(out)


def step_rate(cfg: Config, batch: dict[str, Any], steps: int) -> float:
    """Steady-state clips/s of ``Trainer.fit`` on one fixed batch (first 3 steps dropped)."""
    b = cfg.data.batch_size
    fixed = replace(cfg, data=replace(cfg.data, workers=0))
    records = fit_records(fixed, BatchList(b * (steps + 3)), steps + 3, collate_fn=lambda _: batch)
    return _rate_over(records[3:], count_clips(batch))


def loader_rates(cfg: Config) -> tuple[float, float, dict[str, Any], int]:
    """(cold epoch-0, warm epoch-1 clips/s of the Trainer's run loader, one batch of it,
    batches per epoch)."""
    seed_all(cfg.train.seed)
    dataset = build_dataset(cfg, build_method(cfg))
    per_epoch = len(dataset) // cfg.data.batch_size
    batches = EpochBatches(
        dataset, 1, 0, seed=cfg.train.seed, batch_size=cfg.data.batch_size,
        batches_per_epoch=per_epoch, epoch=0,
    )  # fmt: skip
    stream = iter(make_run_loader(dataset, batches, workers=cfg.data.workers, seed=0))
    rates, first = [], None
    for _ in range(2):
        start, clips = time.perf_counter(), 0
        for _, batch in zip(range(per_epoch), stream, strict=False):
            first = first or batch
            clips += count_clips(batch)
        rates.append(clips / (time.perf_counter() - start))
    del stream  # shuts the worker down
    assert first is not None
    return rates[0], rates[1], first, per_epoch


def pipeline_rates(cfg: Config, steps: int) -> Rates:
    """The three rates of ``cfg`` (module docstring), all with the trainer's thread count."""
    threads = auto_threads(cfg.train.threads, cfg.data.workers)
    cfg = replace(cfg, train=replace(cfg.train, threads=threads))
    with torch_threads(threads):
        cold, warm, batch, per_epoch = loader_rates(cfg)
        step = step_rate(cfg, batch, steps)
        records = fit_records(cfg, None, per_epoch + max(steps, per_epoch))
        warm_records = [r for r in records if r["epoch"] >= 1]
        e2e = _rate_over(warm_records, count_clips(batch))
    return Rates(step, warm, cold, e2e, threads)


def cpu_row_config(name: str, extra: dict[str, Any] | None = None) -> Config:
    """The CPU bench preset's row ``name`` as a run config: its overrides (and ``extra``) on
    the shared budget, the method called by name."""
    from vidssl.app.bench import deep_merge, load_preset, preset_path, row_method

    preset = load_preset(preset_path("cpu"))
    override = deep_merge(preset.overrides.get(name, {}), extra or {})
    sections = deep_merge(override, {"method": {"name": row_method(name, override)}})
    return config_from_dict(deep_merge(preset.pretrain, sections), check=True)
