"""Per-step learning-rate schedule: linear warmup, then cosine decay to ``min_lr``.

For optimiser step ``s`` (0-based: the lr used by the s-th update), ``W`` warmup steps and
``T`` total steps:

    s <  W:  lr = base * (s + 1) / W
    s >= W:  lr = min_lr + (base - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2

The lr is a pure function of the step, so resuming only needs the step count.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def cosine_lr(
    step: int, base_lr: float, total_steps: int, warmup_steps: int, min_lr: float = 0.0
) -> float:
    """Learning rate for 0-based optimiser ``step`` (see the module docstring)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """Sets every param group's ``lr`` from :func:`cosine_lr`; groups keep their own base lr.

    Call :meth:`set_step` before each ``optimizer.step()``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int,
        min_lr: float = 0.0,
    ) -> None:
        if total_steps < 1 or warmup_steps < 0:
            raise ValueError(
                f"total_steps={total_steps} must be >= 1, warmup_steps={warmup_steps} >= 0"
            )
        self.optimizer = optimizer
        self.total_steps, self.warmup_steps, self.min_lr = total_steps, warmup_steps, min_lr
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        self.step_count = 0
        self.set_step(0)

    def set_step(self, step: int) -> float:
        """Set the lr for 0-based optimiser ``step``; returns the first scheduled group's lr.

        Groups flagged ``constant_lr`` (``vidssl.app.train.optim.apply_lr_multipliers``) stay
        at their base lr.
        """
        self.step_count = step
        for group in self.optimizer.param_groups:
            group["lr"] = (
                group["base_lr"]
                if group.get("constant_lr", False)
                else cosine_lr(
                    step, group["base_lr"], self.total_steps, self.warmup_steps, self.min_lr
                )
            )
        return self.current_lr()

    def current_lr(self) -> float:
        """The lr of the first group that follows the schedule (the first group if none does)."""
        groups = self.optimizer.param_groups
        scheduled = [g for g in groups if not g.get("constant_lr", False)]
        return (scheduled or groups)[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "min_lr": self.min_lr,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total_steps, self.warmup_steps = int(state["total_steps"]), int(state["warmup_steps"])
        self.min_lr = float(state["min_lr"])
        self.set_step(int(state["step"]))
