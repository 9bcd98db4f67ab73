"""MTCL (Shan et al., 2023): multitask contrastive learning over temporal and spatial pretext tasks.

Every video gives one view per task (recipe ``"pretext_views"``, MTCL sec. 2.1): temporal pace
(TP, ``"pace"``, 1x-4x), temporal order (TO, ``"order"``, three 3-frame segments, 6 orders),
spatial rotation (SR, ``"rotation"``, 0/90/180/270) and spatial jigsaw (SJ, ``"jigsaw"``, 2x2).
All views pass through the backbone in one batch; its pooled stage-5 features ``h_n^{task}``
feed

- one linear classifier per task -> L_task, eq. (8): the sum over tasks of the cross-entropy,
  averaged over videos. Eq. (8) writes ``p = Sigmoid(FC(h))`` with ``-sum y log p``; on one-hot
  labels that only rewards the true class's sigmoid and is minimised by pushing every logit up,
  so we use the softmax cross-entropy it stands for (departure);
- the pretext-task contrastive loss L_con, eq. (9) (``vidssl.losses.pretext_contrastive``):
  (TP, TO) and (SR, SJ) of the same video are positives, the four temporal-vs-spatial pairs
  negatives, tau = 0.07, computed on ``h`` itself (no projection head, as sec. 2.3.2).

Overall loss, eq. (7): ``L = L_con + λ L_task`` with λ = 10 (sec. 3.2). ``use_con=False`` drops
L_con (MTCL Table 1's "L_task only" rows); ``tasks`` selects the single tasks and task pairs of
Table 1. The attention variants of Table 2 are backbones (``vidssl.models.backbones.attention``:
``r2plus1d_18_sa`` / ``_ta`` / ``_sta``); with attention off the backbone is the plain
R(2+1)D-18.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vidssl.data.pretext import (
    DEFAULT_PACES,
    SPATIAL,
    TASK_KINDS,
    TEMPORAL,
    check_paces,
    check_tasks,
    task_classes,
)
from vidssl.losses.pretext import pretext_contrastive
from vidssl.methods.base import Method
from vidssl.methods.pretext import ClassifierHeads, batch_labels, classification_logs
from vidssl.models.backbones.base import pooled_features

MTCL_TASKS: tuple[str, ...] = ("pace", "order", "rotation", "jigsaw")  # TP, TO, SR, SJ
# task kind -> group id of eq. (9)
KIND_GROUPS: dict[str, int] = {TEMPORAL: 0, SPATIAL: 1}


class MTCL(Method):
    recipe: ClassVar[str] = "pretext_views"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        tasks: Sequence[str] = MTCL_TASKS,
        use_con: bool = True,
        lambda_task: float = 10.0,
        temperature: float = 0.07,
        paces: Sequence[int] = DEFAULT_PACES,
    ) -> None:
        super().__init__(backbone)
        self.tasks = check_tasks(tasks, "method.tasks")
        if not self.tasks:
            raise ValueError("method.tasks: give at least one pretext task")
        kinds = {TASK_KINDS[t] for t in self.tasks}
        if use_con and kinds != set(KIND_GROUPS):
            raise ValueError(
                f"method.use_con: L_con (eq. 9) contrasts temporal with spatial tasks and needs "
                f"at least one of each, got tasks {list(self.tasks)}"
            )
        if lambda_task < 0:
            raise ValueError(f"method.lambda_task: must be >= 0, got {lambda_task}")
        if not temperature > 0:
            raise ValueError(f"method.temperature: must be > 0, got {temperature}")
        paces = check_paces(paces, "method.paces")
        self.use_con = use_con
        self.lambda_task = lambda_task
        self.temperature = temperature
        self.recipe_overrides = {"tasks": self.tasks, "paces": paces}
        self.register_buffer(
            "groups",
            torch.tensor([KIND_GROUPS[TASK_KINDS[t]] for t in self.tasks]),
            persistent=False,
        )
        self.heads = ClassifierHeads(
            self.feature_dim, {t: task_classes(t, paces) for t in self.tasks}
        )

    def features(self, views: Sequence[Tensor]) -> Tensor:
        """M views (N, C, T, H, W) -> h: (N, M, D), one backbone pass over all views."""
        m, n = len(views), views[0].shape[0]
        h = pooled_features(self.backbone, torch.cat(list(views)))  # (M*N, D)
        return h.reshape(m, n, -1).transpose(0, 1)  # (M*N, D) -> (M, N, D) -> (N, M, D)

    def task_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """L_task of eq. (8) on one batch, the features h: (N, M, D) and the per-task logs."""
        views = batch.get("views")
        if not isinstance(views, list | tuple) or len(views) != len(self.tasks):
            count = len(views) if isinstance(views, list | tuple) else type(views).__name__
            raise ValueError(
                f"MTCL: batch['views'] must hold one view per task {list(self.tasks)}, got {count}"
            )
        labels = batch_labels(batch, self.tasks, "MTCL")
        h = self.features(views)  # (N, M, D)
        logits = {t: head(h[:, i]) for i, (t, head) in enumerate(self.heads.heads.items())}
        loss_task, logs = classification_logs(logits, labels)  # eq. (8)
        return loss_task, h, logs

    def con_loss(self, h: Tensor) -> Tensor:
        """L_con of eq. (9) on h: (N, M, D), whether or not this method trains on it."""
        return pretext_contrastive(h, self.groups, self.temperature)

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        loss_task, h, logs = self.task_loss(batch)
        loss = self.lambda_task * loss_task
        logs["loss_task"] = loss_task.detach()
        if self.use_con:
            loss_con = self.con_loss(h)  # eq. (9)
            loss = loss + loss_con  # eq. (7)
            logs["loss_con"] = loss_con.detach()
        return {"loss": loss, **logs}
