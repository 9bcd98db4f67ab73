"""Transformation-prediction pretext tasks as a method, plus the pieces CSTP and MTCL share.

``Pretext`` trains a backbone to recognise the transformations applied to one clip: each task
of ``tasks`` (``vidssl.data.pretext.TASK_KINDS``: ``"pace"``, ``"order"``, ``"rotation"``,
``"jigsaw"``) has a linear classifier on the pooled features, and the loss is the sum of the
tasks' cross-entropies. A single task or any combination works; combined tasks transform the
*same* clip (recipe ``"pretext"``), whereas MTCL gives every task its own view
(``vidssl.methods.mtcl``).

Heads are one fully-connected layer, as MTCL (sec. 2.3.1, "一个 FC 层") and CSTP ("individual
fully-connected (FC) heads") use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vidssl.data.pretext import DEFAULT_PACES, check_paces, check_tasks, task_classes
from vidssl.losses.pretext import pretext_accuracy, pretext_cross_entropy
from vidssl.methods.base import Method
from vidssl.models.backbones.base import pooled_features


class ClassifierHeads(nn.Module):
    """One linear classifier per task. x: (N, in_dim) -> {task: (N, classes[task])}."""

    def __init__(self, in_dim: int, classes: Mapping[str, int]) -> None:
        super().__init__()
        bad = {task: k for task, k in classes.items() if k < 2}
        if in_dim < 1 or bad:
            raise ValueError(
                f"ClassifierHeads: need in_dim >= 1 and >= 2 classes, got {in_dim}, {bad}"
            )
        self.heads = nn.ModuleDict({task: nn.Linear(in_dim, k) for task, k in classes.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {task: head(x) for task, head in self.heads.items()}


def batch_labels(batch: dict[str, Any], tasks: Sequence[str], owner: str) -> dict[str, Tensor]:
    """``batch["pretext"][task]`` ``(N,)`` for every task, with an error naming what is missing."""
    labels = batch.get("pretext")
    if not isinstance(labels, dict):
        raise KeyError(
            f"{owner}: batch has no 'pretext' labels (keys: {sorted(batch)}); use its recipe"
        )
    missing = [t for t in tasks if t not in labels]
    if missing:
        raise KeyError(
            f"{owner}: batch['pretext'] lacks {missing} (has {sorted(labels)}); do data.recipe "
            "overrides disagree with the method's tasks?"
        )
    return {t: labels[t] for t in tasks}


def classification_logs(
    logits: Mapping[str, Tensor], labels: Mapping[str, Tensor]
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum of the per-task cross-entropies and the logs ``loss_<task>``, ``acc_<task>``."""
    losses = pretext_cross_entropy(logits, labels)
    accuracy = pretext_accuracy(logits, labels)
    logs = {f"loss_{t}": v.detach() for t, v in losses.items()}
    logs.update({f"acc_{t}": v for t, v in accuracy.items()})
    return torch.stack(list(losses.values())).sum(), logs


class Pretext(Method):
    """Single or combined transformation-prediction tasks on one clip (recipe ``"pretext"``)."""

    recipe: ClassVar[str] = "pretext"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        tasks: Sequence[str] = ("rotation",),
        paces: Sequence[int] = DEFAULT_PACES,
    ) -> None:
        super().__init__(backbone)
        self.tasks = check_tasks(tasks, "method.tasks")
        if not self.tasks:
            raise ValueError("method.tasks: give at least one pretext task")
        paces = check_paces(paces, "method.paces")
        self.recipe_overrides = {"tasks": self.tasks, "paces": paces}
        classes = {t: task_classes(t, paces) for t in self.tasks}
        self.heads = ClassifierHeads(self.feature_dim, classes)

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        if "video" not in batch:
            raise KeyError(f"Pretext: batch has no 'video' (keys: {sorted(batch)})")
        labels = batch_labels(batch, self.tasks, "Pretext")
        h = pooled_features(self.backbone, batch["video"])  # (N, D)
        loss, logs = classification_logs(self.heads(h), labels)
        return {"loss": loss, **logs}
