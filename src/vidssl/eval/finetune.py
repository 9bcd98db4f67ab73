"""``finetune``: the whole network with a new linear head, trained end to end, tested by
averaging the softmax over ``num_clips`` x ``num_crops`` views of every test video (CSTP
appendix: "the average of the scores of 10 clips uniformly sampled from the video").

The training itself is the caller's (:meth:`EvalJob.train_network`; ``vidssl eval`` runs the
engine's ``Trainer``, so ``torchrun`` DDP and resume work as for pre-training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from vidssl.eval.linear import topk_accuracy
from vidssl.eval.protocol_base import EvalJob, Outcome, Protocol


@dataclass
class FinetuneSettings:
    """End-to-end fine-tuning (CSTP appendix "Supervised Fine-tuning Stage": 100 epochs,
    batch 60, lr 0.02, wd 5e-4; 10-clip softmax averaging)."""

    # Departure: the paper decays the lr x0.1 on loss plateaus; the engine's schedule is cosine.
    finetune_epochs: int = 100  # passes over the training split
    finetune_max_steps: int = 0  # > 0: optimiser steps instead of epochs
    finetune_batch_size: int = 60  # clips per micro-batch per process (capped at the set size)
    finetune_optim: Literal["sgd", "adam", "adamw", "lars"] = "sgd"  # optimiser
    finetune_lr: float = 0.02  # peak learning rate
    finetune_weight_decay: float = 5e-4  # weight decay on conv / linear weights
    finetune_warmup_epochs: float = 0.0  # linear warmup length in epochs
    finetune_dropout: float = 0.0  # dropout before the new linear head
    finetune_resume: bool = True  # continue an unfinished fine-tune from its last.pt
    # further "clip" recipe arguments for the training clips, e.g. {jitter_strength: 0.5}
    finetune_recipe: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def multi_clip_scores(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    label_key: str,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """Softmax averaged over every video's K views: (N, num_classes) scores, (N,) labels.

    ``model.logits(x)``: (B*K, C, T, H, W) -> (B*K, num_classes).
    """
    from vidssl.bars import ProgressBar

    model.eval()
    scores, labels = [], []
    for batch in ProgressBar(loader, desc="multi-clip test", unit="batch", disable=not progress):
        clips = batch["clips"]  # (B, K, C, T, H, W)
        b, k = clips.shape[:2]
        x = clips.reshape(b * k, *clips.shape[2:]).to(device)  # -> (B*K, C, T, H, W)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model.logits(x)
        probs = logits.float().softmax(dim=1).reshape(b, k, -1)  # (B*K, C) -> (B, K, C)
        scores.append(probs.mean(dim=1).cpu())
        labels.append(torch.as_tensor(batch[label_key]).long())
    return torch.cat(scores), torch.cat(labels)


class Finetune(Protocol):
    """Backbone + new head trained end to end, multi-clip softmax test."""

    name = "finetune"
    title = "Fine-tuning: top-k accuracy"
    prefix = "fine-tune "
    needs = "network"
    settings = FinetuneSettings

    def run(self, job: EvalJob, settings: Any) -> list[Outcome]:
        outcomes = []
        for key in job.label_keys:
            model, info = job.train_network(key, settings)
            metrics: dict[str, float] = {}
            if job.is_main:  # testing runs once, on rank 0
                device, amp_dtype = job.device_and_amp()
                scores, labels = multi_clip_scores(
                    model, job.test_loader(), device, amp_dtype, key, job.progress
                )
                acc = topk_accuracy(scores, labels, (1, 5))
                metrics = {"top1": acc[1], "top5": acc[5]}
            outcomes.append(Outcome(key, metrics, info, model=model))
        return outcomes
