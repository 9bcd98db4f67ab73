"""The frozen-feature protocols (CSTP appendix, "Experimental Settings"): retrieval, a linear
probe and a kNN classifier on the cached video-level features."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vidssl.eval.features import Features
from vidssl.eval.linear import LinearProbeConfig, knn_classify, train_linear_probe
from vidssl.eval.protocol_base import FrozenProtocol
from vidssl.eval.retrieval import recall_at_k, recall_metric_names


@dataclass
class RetrievalSettings:
    """Settings of the ``retrieval`` protocol."""

    ks: tuple[int, ...] = (1, 5, 10, 20, 50)  # retrieval R@k


@dataclass
class LinearSettings:
    """The linear probe on cached features (CSTP appendix: 100 epochs, batch 60, lr 0.02,
    wd 5e-4)."""

    linear_lr: float = 0.02  # SGD learning rate (cosine to 0)
    linear_weight_decay: float = 5e-4  # SGD weight decay
    linear_epochs: int = 100  # passes over the training features
    linear_batch_size: int = 60  # features per SGD step
    linear_standardize: bool = True  # standardise features with the train split's mean / std


@dataclass
class KnnSettings:
    """The kNN classifier on cached features."""

    knn_k: int = 20  # neighbours that vote
    knn_temperature: float = 0.0  # 0 = one vote each; > 0 = votes weighted exp(sim / T)


class Retrieval(FrozenProtocol):
    """Test videos query the training videos by cosine similarity; R@k."""

    name = "retrieval"
    title = "Video retrieval: recall at k (test videos query the training set)"
    prefix = ""
    columns = ("R@1", "R@5")
    settings = RetrievalSettings

    def score(
        self, train: Features, test: Features, key: str, settings: Any, seed: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        recalls = recall_at_k(
            test.feats, test.labels[key], train.feats, train.labels[key], settings.ks
        )
        return recall_metric_names(recalls), {}


def linear_probe(
    train_x: Any, train_y: Any, test_x: Any, test_y: Any, settings: Any, seed: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Top-1 / top-5 of a linear classifier trained with ``settings`` (:class:`LinearSettings`)
    and seed ``seed``; details: the probe settings, train top-1 and final loss."""
    probe = LinearProbeConfig(
        lr=settings.linear_lr,
        weight_decay=settings.linear_weight_decay,
        epochs=settings.linear_epochs,
        batch_size=settings.linear_batch_size,
        standardize=settings.linear_standardize,
        seed=seed,
    )
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    result = train_linear_probe(train_x, train_y, test_x, test_y, probe, num_classes)
    info = {"train_top1": result.train_top1, "final_loss": result.epoch_losses[-1]}
    return result.metrics(), {"linear": dataclasses.asdict(probe), **info}


class Linear(FrozenProtocol):
    """A linear classifier on the frozen features (seeded init and batch order)."""

    name = "linear"
    title = "Linear probe on frozen features: top-k accuracy"
    prefix = "linear "
    settings = LinearSettings

    def score(
        self, train: Features, test: Features, key: str, settings: Any, seed: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        return linear_probe(
            train.feats, train.labels[key], test.feats, test.labels[key], settings, seed
        )


class Knn(FrozenProtocol):
    """A cosine kNN classifier on the frozen features."""

    name = "knn"
    title = "kNN classifier on frozen features: top-k accuracy"
    prefix = "kNN "
    settings = KnnSettings

    def score(
        self, train: Features, test: Features, key: str, settings: Any, seed: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        temperature = settings.knn_temperature or None
        metrics = knn_classify(
            train.feats,
            train.labels[key],
            test.feats,
            test.labels[key],
            settings.knn_k,
            temperature,
        )
        return metrics, {"knn_k": settings.knn_k, "knn_temperature": temperature}
