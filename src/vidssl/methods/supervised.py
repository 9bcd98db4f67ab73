"""Supervised classification: backbone + a new linear head, cross-entropy on one label set.

Used for two things through the same engine (``vidssl.app.train.Trainer``):
- the supervised-from-scratch baseline (``vidssl train-supervised``, random init), the
  ceiling of every table;
- end-to-end fine-tuning (``vidssl eval finetune``): the backbone is initialised from a
  pre-trained checkpoint, the head is new (CSTP appendix, "Supervised Fine-tuning Stage":
  convolutional weights kept, the fully-connected classifier randomly initialised, trained
  with cross-entropy).

The head is a separate module (``head.``), not the backbone's classifier, so that the
``backbone.`` weights of a supervised checkpoint load into a feature-only backbone like any
pre-trained one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.methods.base import Method
from vidssl.models.backbones.base import pooled_features


class Supervised(Method):
    """Cross-entropy on ``batch[label_key]`` from one clip per video (the ``"clip"`` recipe)."""

    recipe: ClassVar[str] = "clip"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        num_classes: int = 0,
        label_key: str = "label",
        dropout: float = 0.0,
        label_smoothing: float = 0.0,
    ) -> None:
        """
        Args:
            num_classes: classifier outputs; 0 = not set (``vidssl train-supervised`` fills it
                from the dataset's class list before building the method).
            label_key: batch key of the labels, ``"label"`` or an extra label set such as the
                synthetic set's ``"appearance"``.
            dropout: dropout probability before the linear head.
            label_smoothing: cross-entropy label smoothing in [0, 1).
        """
        super().__init__(backbone)
        if num_classes < 1:
            raise ValueError(
                f"Supervised: num_classes must be >= 1, got {num_classes} "
                "(set method.num_classes, or let train-supervised read it from the dataset)"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Supervised: dropout must be in [0, 1), got {dropout}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"Supervised: label_smoothing must be in [0, 1), got {label_smoothing}"
            )
        self.num_classes = num_classes
        self.label_key = label_key
        self.label_smoothing = label_smoothing
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, num_classes)
        nn.init.normal_(self.head.weight, 0.0, 0.01)  # as the backbones' own classifiers
        nn.init.zeros_(self.head.bias)

    def logits(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> (N, num_classes)."""
        return self.head(self.dropout(pooled_features(self.backbone, x)))

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        if "video" not in batch:
            raise KeyError(f"Supervised: batch has no 'video' (keys: {sorted(batch)})")
        if self.label_key not in batch:
            raise KeyError(
                f"Supervised: batch has no label set {self.label_key!r} (keys: {sorted(batch)})"
            )
        labels = torch.as_tensor(batch[self.label_key]).long().to(batch["video"].device)  # (N,)
        if (labels < 0).any() or (labels >= self.num_classes).any():
            raise ValueError(
                f"Supervised: {self.label_key} labels must be in [0, {self.num_classes}), got "
                f"{labels.min().item()}..{labels.max().item()} (unlabelled data or wrong num_classes)"
            )
        logits = self.logits(batch["video"])  # (N, num_classes)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            acc = (logits.argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "acc": acc}
