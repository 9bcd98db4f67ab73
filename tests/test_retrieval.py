"""Retrieval R@k: a hand-computed example with ties, a brute-force reference, clamping, I/O."""

import pytest
import torch

from vidssl.eval.retrieval import (
    RetrievalExamples,
    cosine_similarity,
    recall_at_k,
    recall_metric_names,
    topk_neighbours,
)

# gallery: g0 and g1 are the same vector (an exact tie) with different classes
GALLERY = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
GALLERY_LABELS = torch.tensor([0, 1, 1, 2, 2])
QUERIES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0]])
QUERY_LABELS = torch.tensor([1, 2, 0, 0])


def test_topk_neighbours_orders_ties_by_gallery_index():
    # q0 sims: g0 1, g1 1, g2 0, g3 -1, g4 .6   -> 0, 1 (tie, lower index first), 4, 2, 3
    # q1 sims: g0 0, g1 0, g2 1, g3 0, g4 .8    -> 2, 4, then the three zeros in index order
    # q2 sims: g0 0, g1 0, g2 -1, g3 0, g4 -.8  -> 0, 1, 3, 4, 2
    # q3 sims: g0 -1, g1 -1, g2 0, g3 1, g4 -.6 -> 3, 2, 4, 0, 1
    sims, idx = topk_neighbours(QUERIES, GALLERY, k=5)
    expected = [[0, 1, 4, 2, 3], [2, 4, 0, 1, 3], [0, 1, 3, 4, 2], [3, 2, 4, 0, 1]]
    assert idx.tolist() == expected
    assert torch.allclose(sims[0], torch.tensor([1.0, 1.0, 0.6, 0.0, -1.0]), atol=1e-6)
    assert (sims[:, :-1] >= sims[:, 1:]).all()


def test_recall_at_k_hand_computed_with_ties():
    # first same-class rank: q0 -> 2 (g0 is class 0, g1 class 1), q1 -> 2 (g4), q2 -> 1 (g0),
    # q3 -> 4 (g0 after g3, g2, g4)
    r = recall_at_k(QUERIES, QUERY_LABELS, GALLERY, GALLERY_LABELS, ks=(1, 2, 3, 4, 50))
    assert r == {1: 0.25, 2: 0.75, 3: 0.75, 4: 1.0, 50: 1.0}


def test_tie_order_decides_a_hit_deterministically():
    # q0 ties between g0 (class 0) and g1 (class 1): the lower index ranks first, so it misses;
    # after swapping g0 and g1 (same vector) the class-1 item ranks first and it hits
    q0, q0_label = QUERIES[:1], QUERY_LABELS[:1]
    assert recall_at_k(q0, q0_label, GALLERY, GALLERY_LABELS, ks=(1,)) == {1: 0.0}
    perm = torch.tensor([1, 0, 2, 3, 4])
    assert recall_at_k(q0, q0_label, GALLERY[perm], GALLERY_LABELS[perm], ks=(1,)) == {1: 1.0}


def _reference_recall(q, ql, g, gl, k):
    """Brute force: sort each query's gallery by (-sim, index) in Python."""
    sim = cosine_similarity(q, g)
    hits = 0
    for i in range(len(q)):
        order = sorted(range(len(g)), key=lambda j: (-sim[i, j].item(), j))
        hits += any(gl[j] == ql[i] for j in order[:k])
    return hits / len(q)


def test_recall_matches_brute_force_with_duplicates_and_chunks():
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(40, 8, generator=gen)
    g[20:30] = g[0:10]  # exact duplicates -> ties
    gl = torch.randint(0, 5, (40,), generator=gen)
    q = torch.randn(25, 8, generator=gen)
    q[:5] = g[:5] * 3.0  # scaled copies: cosine ignores the scale
    ql = torch.randint(0, 5, (25,), generator=gen)
    r = recall_at_k(q, ql, g, gl, ks=(1, 5, 10, 20, 50))
    for k in (1, 5, 10, 20):
        assert r[k] == pytest.approx(_reference_recall(q, ql, g, gl, k))
    assert r[50] == pytest.approx(_reference_recall(q, ql, g, gl, 40))  # k clamped to G = 40
    _, idx_small_chunks = topk_neighbours(q, g, 10, chunk_size=3)
    _, idx_one_chunk = topk_neighbours(q, g, 10)
    assert torch.equal(idx_small_chunks, idx_one_chunk)


def test_k_larger_than_gallery_is_clamped():
    r = recall_at_k(QUERIES, QUERY_LABELS, GALLERY[:2], GALLERY_LABELS[:2], ks=(1, 100))
    # gallery = {g0 class 0, g1 class 1}, the same vector: every query ranks g0 first.
    # q0 (class 1) hits at 2, q1 (class 2) never, q2 and q3 (class 0) hit at 1
    assert r == {1: 0.5, 100: 0.75}
    assert recall_metric_names(r) == {"R@1": 0.5, "R@100": 0.75}


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="query_labels"):
        recall_at_k(QUERIES, QUERY_LABELS[:2], GALLERY, GALLERY_LABELS)
    with pytest.raises(ValueError, match="dims differ"):
        recall_at_k(QUERIES, QUERY_LABELS, torch.zeros(5, 3), GALLERY_LABELS)
    with pytest.raises(ValueError, match="-1"):
        recall_at_k(QUERIES, torch.tensor([1, 2, -1, 0]), GALLERY, GALLERY_LABELS)


def test_retrieval_examples_round_trip(tmp_path):
    ex = RetrievalExamples(
        query_frames=torch.randint(0, 255, (2, 3, 8, 8, 3), dtype=torch.uint8),
        neighbour_frames=torch.randint(0, 255, (2, 3, 3, 8, 8, 3), dtype=torch.uint8),
        query_labels=torch.tensor([0, 1]),
        neighbour_labels=torch.tensor([[0, 1, 1], [1, 1, 0]]),
        sims=torch.rand(2, 3),
        class_names=["a", "b"],
    )
    loaded = RetrievalExamples.load(ex.save(tmp_path / "ex.pt"))
    assert torch.equal(loaded.neighbour_frames, ex.neighbour_frames)
    assert loaded.class_names == ["a", "b"]
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="bad.pt"):
        RetrievalExamples.load(tmp_path / "bad.pt")
