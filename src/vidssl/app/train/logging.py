"""Run logging on rank 0: a tqdm bar, TensorBoard scalars and ``metrics.jsonl``.

``metrics.jsonl`` holds one JSON object per line:
- per logged step: ``{"kind": "step", "step", "epoch", "loss", "lr", "clips_per_s", ...}`` plus
  any scalar the method returns from ``training_step`` (e.g. ``"pos_sim"``);
- per epoch: ``{"kind": "epoch", "step", "epoch", "loss", "lr", "clips_per_s", "skipped"}``,
  where ``skipped`` counts the corrupt videos the dataset replaced during that epoch.

``step`` is the number of optimiser steps done. On resume, records past the checkpoint's step
are dropped from ``metrics.jsonl`` and purged from TensorBoard, so the files read as one run.
Other ranks get a logger whose methods do nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidssl import dist
from vidssl.bars import ProgressBar

METRICS_NAME = "metrics.jsonl"
TENSORBOARD_DIR = "tb"


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of a ``metrics.jsonl`` that have a numeric ``step``, in file order, and the
    count of other lines (not JSON, not an object, no numeric ``step``); blank lines skipped.
    A missing file gives no records."""
    records: list[dict[str, Any]] = []
    bad = 0
    if not path.is_file():
        return records, bad
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            records.append(record)
        else:
            bad += 1
    return records, bad


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the records past ``step``: a run resumed from a checkpoint at ``step`` redoes them."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(f"{line}\n" for line in lines if json.loads(line)["step"] <= step))


def reduce_scalars(out: dict[str, Tensor], skipped: Any, world: int) -> dict[str, float]:
    """One all-reduce per micro-batch: the method's scalar outputs (mean over ranks), a
    non-finite-loss flag (> 0 if any rank's loss is NaN / inf) and the skipped-video count
    (sum over ranks)."""
    scalars = {
        k: v.detach().float().reshape(())
        for k, v in out.items()
        if torch.is_tensor(v) and v.numel() == 1
    }
    loss = scalars["loss"]
    scalars["nonfinite"] = (~torch.isfinite(loss)).float()
    scalars["skipped"] = skipped.sum().float() if torch.is_tensor(skipped) else loss.new_zeros(())
    keys = sorted(scalars)
    values = dist.reduce_mean(torch.stack([scalars[k] for k in keys])).tolist()
    logs = dict(zip(keys, values))
    logs["skipped"] *= world  # mean -> sum over ranks
    return logs


class RunLogger:
    """Progress bar + TensorBoard + metrics.jsonl; a no-op unless ``enabled`` (rank 0)."""

    def __init__(
        self, out_dir: str | Path, enabled: bool, total_steps: int, start_step: int = 0
    ) -> None:
        self.enabled = enabled
        self.bar: ProgressBar | None = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.metrics_path = out / METRICS_NAME
        _truncate_metrics(self.metrics_path, start_step)
        purge = start_step if start_step > 0 else None
        self.writer = SummaryWriter(log_dir=str(out / TENSORBOARD_DIR), purge_step=purge)
        self.bar = ProgressBar(
            total=total_steps, initial=start_step, desc="pretrain", unit="step", dynamic_ncols=True
        )

    def _write(self, record: dict[str, Any], prefix: str) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if key not in ("kind", "step", "epoch") and isinstance(value, int | float):
                self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])

    def advance(self, steps: int, loss: float, lr: float, clips_per_s: float) -> None:
        """Move the bar by ``steps`` optimiser steps and show the latest figures."""
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{loss:.4f}", lr=f"{lr:.3g}", clips_s=f"{clips_per_s:.1f}", refresh=False
            )
            self.bar.update(steps)

    def log_step(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._write({"kind": "step", **record}, "train")

    def log_epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._write({"kind": "epoch", **record}, "epoch")
        self.writer.flush()
        message = (
            f"epoch {record['epoch']}: loss {record['loss']:.4f}, lr {record['lr']:.3g}, "
            f"{record['clips_per_s']:.1f} clips/s, skipped {record['skipped']} corrupt video(s)"
        )
        ProgressBar.write(message)

    def message(self, text: str) -> None:
        if self.enabled:
            ProgressBar.write(text)

    def close(self) -> None:
        if self.enabled:
            self.writer.close()
            if self.bar is not None:
                self.bar.close()
