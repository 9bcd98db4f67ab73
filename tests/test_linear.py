"""Linear probe and kNN classifier on frozen features."""

import pytest
import torch

from vidssl.eval.linear import (
    LinearProbeConfig,
    knn_classify,
    knn_scores,
    topk_accuracy,
    train_linear_probe,
)


def _blobs(n_per_class, num_classes, dim, seed, spread=0.3):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(123)) * 2
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    feats = centres[labels] + spread * torch.randn(len(labels), dim, generator=gen)
    return feats, labels


def test_topk_accuracy_hand_computed_with_ties_and_clamp():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0], [0.3, 0.3, 0.4]])
    labels = torch.tensor([1, 1, 1])
    # row 0: top1 = 1 (hit); row 1: tie 0/1 -> class 0 first (miss), top2 hit;
    # row 2: order 2, 0, 1 -> hit only at k = 3; k = 5 is clamped to 3 classes
    acc = topk_accuracy(scores, labels, (1, 2, 3, 5))
    assert acc == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: 1.0, 5: 1.0}


def test_linear_probe_separable_features_reach_high_accuracy():
    x_train, y_train = _blobs(50, 4, 16, seed=0)
    x_test, y_test = _blobs(20, 4, 16, seed=1)
    cfg = LinearProbeConfig(epochs=10, batch_size=50)
    result = train_linear_probe(x_train, y_train, x_test, y_test, cfg)
    assert result.top1 >= 0.95
    assert result.top5 == 1.0  # top-5 clamped to 4 classes
    assert result.train_top1 >= 0.95
    assert result.num_classes == 4
    assert result.epoch_losses[-1] < 0.3 * result.epoch_losses[0]
    assert result.metrics() == {"top1": result.top1, "top5": result.top5}


def test_linear_probe_is_deterministic_given_the_seed():
    x, y = _blobs(10, 3, 8, seed=0, spread=2.0)
    cfg = LinearProbeConfig(epochs=5, batch_size=7, seed=3)
    a = train_linear_probe(x, y, x, y, cfg)
    b = train_linear_probe(x, y, x, y, cfg)
    assert a.epoch_losses == b.epoch_losses


def test_linear_probe_on_random_labels_is_near_chance():
    gen = torch.Generator().manual_seed(0)
    x_train, x_test = torch.randn(400, 32, generator=gen), torch.randn(400, 32, generator=gen)
    y_train = torch.randint(0, 4, (400,), generator=gen)
    y_test = torch.randint(0, 4, (400,), generator=gen)
    result = train_linear_probe(
        x_train, y_train, x_test, y_test, LinearProbeConfig(epochs=8, batch_size=100)
    )
    # chance is 0.25; the std of a 400-sample accuracy at chance is ~0.022
    assert abs(result.top1 - 0.25) < 0.08
    assert result.train_top1 > result.top1  # it can only memorise the training labels


def test_linear_probe_config_errors_name_the_field():
    with pytest.raises(ValueError, match="batch_size"):
        LinearProbeConfig(batch_size=0)
    with pytest.raises(ValueError, match="dims differ"):
        train_linear_probe(torch.zeros(4, 3), torch.zeros(4), torch.zeros(2, 5), torch.zeros(2))


def test_knn_scores_hand_computed():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    train_labels = torch.tensor([0, 1, 1, 2])
    test = torch.tensor([[1.0, 0.05]])
    # neighbours by cosine: index 0 (class 0), 1 (class 1), 2 (class 1), 3 (class 2)
    assert knn_scores(train, train_labels, test, k=1).tolist() == [[1.0, 0.0, 0.0]]
    assert knn_scores(train, train_labels, test, k=3).tolist() == [[1.0, 2.0, 0.0]]
    weighted = knn_scores(train, train_labels, test, k=2, temperature=0.1)
    sims = torch.nn.functional.cosine_similarity(test, train[:2])
    expected = torch.tensor([(sims[0] / 0.1).exp(), (sims[1] / 0.1).exp(), 0.0])
    assert torch.allclose(weighted[0], expected)


def test_knn_classify_on_blobs():
    x_train, y_train = _blobs(30, 5, 16, seed=0)
    x_test, y_test = _blobs(10, 5, 16, seed=1)
    acc = knn_classify(x_train, y_train, x_test, y_test, k=5)
    assert acc["top1"] >= 0.95 and acc["top5"] == 1.0
