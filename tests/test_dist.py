"""vidssl.dist in a real 2-process gloo group on CPU, compared with single-process references.

One spawn (module fixture) runs every distributed scenario; each rank saves what it saw and
the tests compare it with references computed here in a single process.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch import Tensor, nn

from vidssl import dist
from vidssl.losses import nt_xent
from vidssl.methods import MoCo, SimCLR
from vidssl.models.heads import ProjectionHead

pytestmark = pytest.mark.slow

WORLD = 2
SHAPE = (3, 2, 4, 4)  # (C, T, H, W)


class TinyBackbone(nn.Module):
    """Implements the Backbone contract: (N, C, T, H, W) -> (N, feature_dim) features (its
    "map"), ``forward_head`` the identity."""

    feature_dim = 16

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(math.prod(SHAPE), self.feature_dim)

    def forward_features(self, x: Tensor) -> Tensor:
        return torch.relu(self.fc(x.flatten(1)))  # (N, C, T, H, W) -> (N, C*T*H*W) -> (N, F)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x  # already pooled, no classifier


def fixed(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def build_simclr() -> SimCLR:
    """SimCLR whose head has no BN, so per-rank and full-batch forward passes agree."""
    torch.manual_seed(0)
    method = SimCLR(TinyBackbone(), temperature=0.2, hidden_dim=32, out_dim=8)
    method.projector = ProjectionHead(16, 32, 8, batch_norm=False)
    return method


def _mine(x: Tensor, rank: int) -> Tensor:
    n = x.shape[0] // WORLD
    return x[rank * n : (rank + 1) * n]


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    env = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": WORLD, "MASTER_PORT": port}
    os.environ.update({k: str(v) for k, v in env.items()} | {"MASTER_ADDR": "127.0.0.1"})
    info = dist.init_distributed()
    res: dict[str, Any] = {"info": (info.rank, info.world_size, dist.is_dist(), dist.get_rank())}

    # all_gather_with_grad: each rank's loss is sum(gathered * w_rank)
    x = _mine(fixed(4, 3, seed=0), rank).clone().requires_grad_(True)
    gathered = dist.all_gather_with_grad(x)
    (gathered * fixed(4, 3, seed=1) * (rank + 1)).sum().backward()
    res["gathered"], res["gather_grad"] = gathered.detach(), x.grad
    res["concat"] = dist.concat_all_gather(torch.full((2, 2), float(rank)))
    res["reduce_mean"] = dist.reduce_mean(torch.tensor(float(rank)))

    # nt_xent on gathered projections, each rank holding half of the batch
    z1 = _mine(fixed(8, 5, seed=2), rank).clone().requires_grad_(True)
    z2 = _mine(fixed(8, 5, seed=3), rank).clone().requires_grad_(True)
    loss = nt_xent(
        z1,
        z2,
        0.2,
        z1_all=dist.all_gather_with_grad(z1),
        z2_all=dist.all_gather_with_grad(z2),
        offset=rank * 4,
    )
    loss.backward()
    res["ntx_loss"], res["ntx_grads"] = loss.detach(), (z1.grad, z2.grad)

    # SimCLR end to end, with DDP's gradient averaging emulated by reduce_mean
    method = build_simclr()
    views = [_mine(fixed(8, *SHAPE, seed=s), rank) for s in (4, 5)]
    out = method.training_step({"views": views})
    out["loss"].backward()
    res["simclr_loss"] = dist.reduce_mean(out["loss"])
    res["simclr_grads"] = [dist.reduce_mean(p.grad) for p in method.parameters()]

    # MoCo: enqueue puts both ranks' keys in the queue; a full step keeps the queues equal
    torch.manual_seed(0)
    moco = MoCo(TinyBackbone(), queue_size=10, hidden_dim=32, out_dim=8)
    moco.enqueue(torch.full((2, 8), float(rank + 1)))
    res["moco_after_enqueue"] = (moco.queue.clone(), int(moco.queue_ptr))
    moco.training_step({"views": [_mine(fixed(4, *SHAPE, seed=s), rank) for s in (6, 7)]})
    res["moco_after_step"] = (moco.queue.clone(), int(moco.queue_ptr))

    # shuffle/unshuffle across ranks round-trips; mismatched shapes are refused
    local = _mine(torch.arange(8.0).unsqueeze(1), rank)
    shuffled, inverse = dist.shuffle_across_ranks(local)
    res["shuffled"] = shuffled
    res["unshuffled"] = dist.unshuffle_across_ranks(shuffled, inverse)
    try:
        dist.concat_all_gather(torch.zeros(2 + rank, 3))
        res["shape_error"] = ""
    except ValueError as err:
        res["shape_error"] = str(err)

    dist.barrier()
    torch.save(res, Path(out_dir) / f"rank{rank}.pt")
    dist.cleanup()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_init_from_torchrun_env(ranks: list[dict[str, Any]]) -> None:
    assert [r["info"] for r in ranks] == [(0, 2, True, 0), (1, 2, True, 1)]


def test_single_process_helpers_are_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    x = torch.randn(3, 2, requires_grad=True)
    assert not dist.is_dist() and dist.get_rank() == 0 and dist.get_world_size() == 1
    assert dist.all_gather_with_grad(x) is x
    torch.testing.assert_close(dist.concat_all_gather(x), x.detach())
    assert dist.reduce_mean(x) is x
    assert dist.init_distributed().world_size == 1


def test_all_gather_with_grad_values_and_grads(ranks: list[dict[str, Any]]) -> None:
    x, w = fixed(4, 3, seed=0), fixed(4, 3, seed=1)
    # single-process reference: d/dx of sum_r sum(x * w * (r + 1)) = 3 w
    for rank, res in enumerate(ranks):
        torch.testing.assert_close(res["gathered"], x)
        torch.testing.assert_close(res["gather_grad"], _mine(3 * w, rank))


def test_concat_all_gather_and_reduce_mean(ranks: list[dict[str, Any]]) -> None:
    expected = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    for res in ranks:
        torch.testing.assert_close(res["concat"], expected)
        assert res["reduce_mean"].item() == pytest.approx(0.5)


def test_gathered_nt_xent_equals_full_batch(ranks: list[dict[str, Any]]) -> None:
    z1, z2 = fixed(8, 5, seed=2).requires_grad_(True), fixed(8, 5, seed=3).requires_grad_(True)
    full = nt_xent(z1, z2, 0.2)
    full.backward()
    mean_loss = torch.stack([r["ntx_loss"] for r in ranks]).mean()
    torch.testing.assert_close(mean_loss, full.detach())
    # DDP averages gradients over ranks: rank grad / W equals the full-batch gradient slice
    for rank, res in enumerate(ranks):
        g1, g2 = res["ntx_grads"]
        torch.testing.assert_close(g1 / WORLD, _mine(z1.grad, rank))
        torch.testing.assert_close(g2 / WORLD, _mine(z2.grad, rank))


def test_simclr_across_two_ranks_equals_single_process(ranks: list[dict[str, Any]]) -> None:
    method = build_simclr()
    views = [fixed(8, *SHAPE, seed=s) for s in (4, 5)]
    out = method.training_step({"views": views})
    out["loss"].backward()
    for res in ranks:
        torch.testing.assert_close(res["simclr_loss"], out["loss"].detach())
        for got, p in zip(res["simclr_grads"], method.parameters()):
            torch.testing.assert_close(got, p.grad)


def test_moco_queue_identical_on_both_ranks(ranks: list[dict[str, Any]]) -> None:
    (q0, p0), (q1, p1) = (r["moco_after_enqueue"] for r in ranks)
    torch.testing.assert_close(q0, q1)
    assert p0 == p1 == 4
    assert q0[:4, 0].tolist() == [1.0, 1.0, 2.0, 2.0]  # rank 0's keys, then rank 1's
    (s0, t0), (s1, t1) = (r["moco_after_step"] for r in ranks)
    torch.testing.assert_close(s0, s1)
    assert t0 == t1 == 8
    assert not torch.equal(s0[4:8], q0[4:8])  # the step wrote 2 ranks x 2 new keys


def test_shuffle_across_ranks_round_trips(ranks: list[dict[str, Any]]) -> None:
    everything = torch.cat([r["shuffled"] for r in ranks]).flatten().sort().values
    assert everything.tolist() == [float(i) for i in range(8)]  # a permutation of the batch
    for rank, res in enumerate(ranks):
        torch.testing.assert_close(res["unshuffled"], _mine(torch.arange(8.0).unsqueeze(1), rank))
    assert all("same shape" in r["shape_error"] for r in ranks)
