"""The training loop: ``Trainer(cfg, method, dataset).fit()``.

One optimiser step = ``optim.accumulate`` micro-batches of ``data.batch_size`` samples per
process. The data order is a pure function of ``(seed, epoch)`` (a ``DistributedSampler``
reseeded by ``set_epoch``) and every sample a pure function of ``(seed, epoch, index)`` (the
dataset's contract), so a checkpoint only needs the position ``(epoch, step, batch)``: a
resumed run skips the micro-batches of the epoch already trained on and continues with the
same batches, RNG states, optimiser and method state as an uninterrupted run.

Under DDP (``torchrun``) the method is wrapped in ``DistributedDataParallel`` (its ``forward``
is ``training_step``), logging and checkpointing happen on rank 0 only, and the logged loss is
the mean over ranks.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from vidssl import dist
from vidssl.app.train.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    all_finite,
    atomic_save,
    gather_rng,
    load_checkpoint,
    restore_rng,
    seed_all,
    training_state,
)
from vidssl.app.train.data import (
    EpochBatches,
    ResumableSampler,
    count_clips,
    make_loader,
    make_run_loader,
    to_device,
)
from vidssl.app.train.logging import RunLogger, reduce_scalars
from vidssl.app.train.optim import build_optimizer
from vidssl.app.train.precision import (
    autocast,
    guard_bf16_conv3d,
    make_scaler,
    model_to_channels_last,
    resolve_amp,
)
from vidssl.app.train.schedule import WarmupCosine
from vidssl.app.train.sync_bn import convert_sync_batchnorm
from vidssl.app.train.threads import auto_threads, torch_threads
from vidssl.config import Config, ConfigError, config_changes, config_to_dict, save_config
from vidssl.data.datasets import VideoDataset


class NonFiniteLossError(RuntimeError):
    """The loss (or the weights) became NaN / inf; the last good checkpoint is left as it was."""


@dataclass
class Progress:
    epoch: int = 0  # current epoch
    step: int = 0  # optimiser steps done
    batch: int = 0  # micro-batches done in the current epoch


@dataclass
class EpochStats:
    loss_sum: float = 0.0  # sum of micro-batch losses (mean over ranks)
    batches: int = 0
    clips: int = 0  # clips seen, all ranks
    skipped: int = 0  # corrupt videos replaced by the dataset, all ranks
    seconds: float = 0.0


class Trainer:
    """Pre-trains ``method`` on ``dataset`` as ``cfg`` says (see the module docstring)."""

    def __init__(
        self,
        cfg: Config,
        method: nn.Module,
        dataset: Dataset,
        *,
        info: dist.DistInfo | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        self.cfg, self.dataset, self.collate_fn = cfg, dataset, collate_fn
        info = info or dist.DistInfo(0, 1, 0, torch.device("cpu"))
        self.rank, self.world = info.rank, info.world_size
        self.device = torch.device("cpu") if cfg.train.device == "cpu" else info.device
        self.amp_dtype = resolve_amp(cfg.train.amp, self.device)
        self.out_dir = Path(cfg.train.out_dir)
        self.ckpt_path = self.out_dir / CHECKPOINT_NAME

        method.to(self.device)
        if self.amp_dtype == torch.bfloat16 and self.device.type == "cpu":
            guard_bf16_conv3d(method)  # oneDNN bf16 weight-gradient defect, see precision.py
        if cfg.train.channels_last:
            model_to_channels_last(method)
        if cfg.model.sync_bn and self.world > 1:
            method = convert_sync_batchnorm(method, self.device)
        self.method = method
        self.step_fn: nn.Module = method
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.step_fn = DistributedDataParallel(method, device_ids=ids)
        if cfg.train.compile:
            self.step_fn = torch.compile(self.step_fn)

        self.sampler = ResumableSampler(
            dataset, self.world, self.rank, shuffle=True, seed=cfg.train.seed, drop_last=True
        )
        self.steps_per_epoch = len(self.sampler) // cfg.data.batch_size // cfg.optim.accumulate
        if self.steps_per_epoch < 1:
            raise ConfigError(
                "data.batch_size",
                f"{cfg.data.batch_size} x optim.accumulate {cfg.optim.accumulate} x {self.world} "
                f"process(es) needs more than the dataset's {len(dataset)} samples for one step",
            )
        self.total_steps = cfg.train.max_steps or cfg.train.epochs * self.steps_per_epoch
        warmup = min(self.total_steps, round(cfg.optim.warmup_epochs * self.steps_per_epoch))
        self.optimizer = build_optimizer(method, cfg.optim)
        self.schedule = WarmupCosine(self.optimizer, self.total_steps, warmup, cfg.optim.min_lr)
        self.scaler = make_scaler(self.device, self.amp_dtype)
        self.progress, self.stats = Progress(), EpochStats()
        self.saved_step: int | None = None
        self._stream: Iterator[Any] | None = None  # the run loader's iterator (_batches)
        self._window: dict[str, float] = {}
        self._window_start = time.perf_counter()
        seed_all(cfg.train.seed + self.rank)  # per-rank randomness from here on

    # ------------------------------------------------------------------ checkpoints

    def resume(self, path: str | Path) -> None:
        """Restore everything a checkpoint holds; training continues at its position."""
        ckpt = load_checkpoint(path)
        try:
            self.method.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scaler.load_state_dict(ckpt["scaler"])
            self.progress = Progress(epoch=ckpt["epoch"], step=ckpt["step"], batch=ckpt["batch"])
            self.stats = EpochStats(**ckpt["epoch_stats"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{path}: does not fit this run's model / optimiser ({err})"
            ) from err
        changed = config_changes(ckpt.get("config", {}), config_to_dict(self.cfg))
        if changed and self.rank == 0:
            print(f"resuming {path} with a changed config: {', '.join(changed)}", file=sys.stderr)
        self.schedule.set_step(self.progress.step)
        rngs = ckpt["rng"]
        restore_rng(rngs[self.rank] if len(rngs) == self.world else rngs[0])
        self.saved_step = self.progress.step

    def save(self) -> None:
        """Write ``last.pt`` atomically (rank 0), unless the weights went non-finite."""
        rngs = gather_rng(self.world)
        if not all_finite(self.method):
            raise NonFiniteLossError(
                f"the weights became non-finite after step {self.progress.step}; "
                f"not writing a checkpoint ({self._last_good()})"
            )
        if self.rank == 0:
            state = training_state(
                self.method, self.optimizer, self.schedule, self.scaler, rngs, self.cfg.train.seed
            )
            state.update(**asdict(self.progress), epoch_stats=asdict(self.stats))
            state["config"] = config_to_dict(self.cfg)
            atomic_save(state, self.ckpt_path)
        self.saved_step = self.progress.step
        dist.barrier()

    def _last_good(self) -> str:
        if self.saved_step is None:
            return "no checkpoint was written in this run"
        return f"last good checkpoint: {self.ckpt_path} at step {self.saved_step}, left untouched"

    # ------------------------------------------------------------------ training

    def fit(self) -> Progress:
        """Train until ``total_steps``; returns the final position."""
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.out_dir / "config.yaml")
        self.logger = RunLogger(self.out_dir, self.rank == 0, self.total_steps, self.progress.step)
        threads = auto_threads(self.cfg.train.threads, self.cfg.data.workers)
        try:
            with torch_threads(threads):
                while self.progress.step < self.total_steps:
                    self._run_epoch()
                if self.saved_step != self.progress.step:
                    self.save()
        finally:
            self._stream = None  # shuts the run loader's workers down
            self.logger.close()
        return self.progress

    def _batches(self, epoch: int) -> Iterator[Any]:
        """This epoch's remaining micro-batches. A ``VideoDataset`` is read through one loader
        for the whole run (``(epoch, index)`` keys, workers kept and prefetching across
        epochs); any other dataset through a new loader per epoch."""
        p, d = self.progress, self.cfg.data
        pin = self.device.type == "cuda"
        if not isinstance(self.dataset, VideoDataset):
            return iter(
                make_loader(
                    self.dataset,
                    self.sampler,
                    batch_size=d.batch_size,
                    workers=d.workers,
                    seed=self.cfg.train.seed,
                    epoch=epoch,
                    pin_memory=pin,
                    collate_fn=self.collate_fn,
                )
            )
        if self._stream is None:
            batches = EpochBatches(
                self.dataset,
                self.world,
                self.rank,
                seed=self.cfg.train.seed,
                batch_size=d.batch_size,
                batches_per_epoch=self.steps_per_epoch * self.cfg.optim.accumulate,
                epoch=p.epoch,
                start_batch=p.batch,
            )
            loader = make_run_loader(
                self.dataset,
                batches,
                workers=d.workers,
                seed=self.cfg.train.seed,
                pin_memory=pin,
                collate_fn=self.collate_fn,
            )
            self._stream = iter(loader)
        return self._stream

    def _run_epoch(self) -> None:
        p, accumulate = self.progress, self.cfg.optim.accumulate
        per_epoch = self.steps_per_epoch * accumulate  # micro-batches
        self.sampler.set_epoch(p.epoch)
        self.sampler.start = (
            p.batch * self.cfg.data.batch_size
        )  # skip what was done before a resume
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(p.epoch)
        self.method.train()
        self._window, self._window_start = {}, time.perf_counter()
        epoch_start = time.perf_counter()
        for batch in self._batches(p.epoch) if p.batch < per_epoch else []:
            self._micro_step(batch, sync=(p.batch + 1) % accumulate == 0)
            p.batch += 1
            if p.batch % accumulate == 0:
                self._optimizer_step()
            if p.batch >= per_epoch or p.step >= self.total_steps:
                break
        self.stats.seconds += time.perf_counter() - epoch_start
        if p.batch >= per_epoch:
            self._end_epoch()

    def _micro_step(self, batch: dict[str, Any], sync: bool) -> None:
        batch = to_device(batch, self.device, self.cfg.train.channels_last)
        no_sync = isinstance(self.step_fn, DistributedDataParallel) and not sync
        with self.step_fn.no_sync() if no_sync else contextlib.nullcontext():
            with autocast(self.device, self.amp_dtype):
                out = self.step_fn(batch)
            loss: Tensor = out["loss"]
            logs = reduce_scalars(out, batch.get("skipped"), self.world)
            if logs.pop("nonfinite") > 0 or not math.isfinite(logs["loss"]):
                raise NonFiniteLossError(
                    f"non-finite loss {logs['loss']} at step {self.progress.step + 1} "
                    f"(epoch {self.progress.epoch}); stopping ({self._last_good()})"
                )
            self.scaler.scale(loss.float() / self.cfg.optim.accumulate).backward()
        clips = count_clips(batch) * self.world
        skipped = round(logs.pop("skipped"))
        self.stats.loss_sum += logs["loss"]
        self.stats.batches += 1
        self.stats.clips += clips
        self.stats.skipped += skipped
        for key, value in {**logs, "clips": clips, "batches": 1}.items():
            self._window[key] = self._window.get(key, 0.0) + value

    def _optimizer_step(self) -> None:
        p, cfg = self.progress, self.cfg
        if cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.method.parameters(), cfg.optim.grad_clip)
        lr = self.schedule.set_step(p.step)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        p.step += 1
        self.method.on_after_optimizer_step(p.step / self.total_steps)

        w = self._window
        elapsed = max(time.perf_counter() - self._window_start, 1e-9)
        rate = w["clips"] / elapsed
        self.logger.advance(1, w["loss"] / w["batches"], lr, rate)
        if p.step % cfg.train.log_every == 0 or p.step == self.total_steps:
            extras = {k: v / w["batches"] for k, v in w.items() if k not in ("clips", "batches")}
            self.logger.log_step(
                {"step": p.step, "epoch": p.epoch, **extras, "lr": lr, "clips_per_s": rate}
            )
            self._window, self._window_start = {}, time.perf_counter()
        if p.batch < self.steps_per_epoch * cfg.optim.accumulate:  # else _end_epoch saves
            self._maybe_save()

    def _maybe_save(self) -> None:
        step = self.progress.step
        if step % self.cfg.train.ckpt_every == 0 or step == self.total_steps:
            self.save()

    def _end_epoch(self) -> None:
        p, s = self.progress, self.stats
        self.logger.log_epoch(
            {
                "step": p.step,
                "epoch": p.epoch,
                "loss": s.loss_sum / max(s.batches, 1),
                "lr": self.schedule.current_lr(),
                "clips_per_s": s.clips / max(s.seconds, 1e-9),
                "skipped": s.skipped,
            }
        )
        p.epoch, p.batch = p.epoch + 1, 0
        self.stats = EpochStats()
        self._maybe_save()
