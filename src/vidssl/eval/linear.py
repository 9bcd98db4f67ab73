"""Classifiers on frozen (cached) features: a linear probe and a cosine kNN classifier.

Linear probe (CSTP appendix, "Supervised Fine-tuning Stage", linear evaluation: frozen
convolutional layers, a randomly initialised FC layer trained with cross-entropy; 100 epochs,
batch 60, lr 0.02, weight decay 5e-4). Here the backbone never runs: the FC layer is trained
on cached video-level features with mini-batch SGD (momentum 0.9). Departure: the paper
decays the lr by 0.1 when the loss plateaus; we use a cosine schedule to zero instead, which
needs no validation split and is deterministic. Features can be standardised with the train
split's per-dimension mean and std first (``standardize=True``, the default), which makes one
learning rate work across backbones whose feature scales differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.eval.retrieval import topk_neighbours


@dataclass(frozen=True)
class LinearProbeConfig:
    """Linear-probe hyper-parameters (defaults: CSTP appendix, except the cosine schedule)."""

    lr: float = 0.02
    weight_decay: float = 5e-4
    epochs: int = 100
    batch_size: int = 60
    momentum: float = 0.9
    standardize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "momentum": 0 <= self.momentum < 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"linear probe: invalid {name}={getattr(self, name)!r}")


@dataclass
class LinearProbeResult:
    """top1 / top5 on the test split (fractions in [0, 1]); top5 is top-min(5, C)."""

    top1: float
    top5: float
    train_top1: float
    num_classes: int
    epoch_losses: list[float] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Names used in eval result files."""
        return {"top1": self.top1, "top5": self.top5}


def topk_accuracy(scores: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """scores (N, C), labels (N,) -> {k: fraction of rows whose label is among the top-k scores}.

    k is clamped to C (so top-5 over 3 classes is top-3 = 1.0). Ties between scores are broken
    towards the lower class index (stable sort).
    """
    if scores.shape[0] != labels.shape[0]:
        raise ValueError(f"{scores.shape[0]} score rows but {labels.shape[0]} labels")
    order = torch.sort(-scores, dim=1, stable=True).indices  # (N, C)
    correct = order == labels[:, None]  # (N, C)
    return {k: correct[:, : min(k, scores.shape[1])].any(dim=1).float().mean().item() for k in ks}


def _num_classes(*label_sets: Tensor) -> int:
    for labels in label_sets:
        if (labels < 0).any():
            raise ValueError("classifier needs labelled features (found label -1)")
    return int(max(labels.max().item() for labels in label_sets)) + 1


def train_linear_probe(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    config: LinearProbeConfig | None = None,
    num_classes: int | None = None,
) -> LinearProbeResult:
    """Fit a linear classifier on ``train_feats`` and score it on ``test_feats``.

    train_feats (N, D), train_labels (N,), test_feats (M, D), test_labels (M,). Runs on the
    features' device; deterministic given ``config.seed``.
    """
    cfg = config or LinearProbeConfig()
    if train_feats.shape[0] != train_labels.shape[0] or test_feats.shape[0] != test_labels.shape[0]:
        raise ValueError("features and labels differ in length")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(
            f"feature dims differ: train {train_feats.shape[1]}, test {test_feats.shape[1]}"
        )
    c = num_classes or _num_classes(train_labels, test_labels)
    x_train, x_test = train_feats.float(), test_feats.float()
    if cfg.standardize:
        mean = x_train.mean(dim=0, keepdim=True)
        std = x_train.std(dim=0, keepdim=True).clamp_min(1e-6) if len(x_train) > 1 else 1.0
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    gen = torch.Generator().manual_seed(cfg.seed)
    head = nn.Linear(x_train.shape[1], c).to(x_train.device)
    with torch.no_grad():  # seeded init, nn.Linear's default uniform(-1/sqrt(D), 1/sqrt(D))
        bound = 1.0 / math.sqrt(x_train.shape[1])
        head.weight.copy_(
            torch.empty_like(head.weight, device="cpu").uniform_(-bound, bound, generator=gen)
        )
        head.bias.zero_()
    opt = torch.optim.SGD(
        head.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    y_train = train_labels.long().to(x_train.device)
    epoch_losses = []
    with torch.enable_grad():
        for _ in range(cfg.epochs):
            perm = torch.randperm(len(x_train), generator=gen).to(x_train.device)
            total = 0.0
            for start in range(0, len(x_train), cfg.batch_size):
                batch = perm[start : start + cfg.batch_size]
                loss = F.cross_entropy(head(x_train[batch]), y_train[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(batch)
            epoch_losses.append(total / len(x_train))

    with torch.no_grad():
        test_acc = topk_accuracy(head(x_test), test_labels.to(x_test.device), (1, 5))
        train_acc = topk_accuracy(head(x_train), y_train, (1,))
    return LinearProbeResult(
        top1=test_acc[1],
        top5=test_acc[5],
        train_top1=train_acc[1],
        num_classes=c,
        epoch_losses=epoch_losses,
    )


def knn_scores(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    k: int = 20,
    num_classes: int | None = None,
    temperature: float | None = None,
) -> Tensor:
    """Class scores of a cosine kNN classifier: (M, C).

    Each test item's k nearest train items (cosine similarity, ties by lower train index, see
    :mod:`vidssl.eval.retrieval`) vote for their class with weight 1, or ``exp(sim / T)`` when
    a ``temperature`` T is given (the weighted vote of Wu et al. 2018). k is clamped to N.
    """
    c = num_classes or _num_classes(train_labels)
    sims, idx = topk_neighbours(test_feats, train_feats, k)  # (M, k), (M, k)
    weights = torch.ones_like(sims) if temperature is None else torch.exp(sims / temperature)
    votes = F.one_hot(train_labels[idx].long(), c).float()  # (M, k, C)
    return torch.einsum("mk,mkc->mc", weights, votes)


def knn_classify(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    k: int = 20,
    temperature: float | None = None,
) -> dict[str, float]:
    """Top-1 / top-5 accuracy of the cosine kNN classifier (score ties -> lower class index)."""
    c = _num_classes(train_labels, test_labels)
    scores = knn_scores(train_feats, train_labels, test_feats, k, c, temperature)
    acc = topk_accuracy(scores, test_labels, (1, 5))
    return {"top1": acc[1], "top5": acc[5]}
