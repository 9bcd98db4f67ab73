r"""How MTCL's L_con acts on the backbone: its gradient against lambda*L_task's, and view similarity.

A probe of claim 2 (docs/benchmarks.md, "Claims"), not of speed. For each finished cell
``cells/<row>/seed<k>`` of a bench folder it rebuilds the row's MTCL from the cell's
``config.yaml``, once freshly initialised with the cell's seed (``init``) and once with the
cell's final weights (``end``), and on ``--batches`` training batches of the row's own data
prints

- ``L_con``: eq. (9) on the batch (computed whether or not the row trains on it);
- ``|g_task|``, ``|g_con|``: the L2 norms of the gradients of lambda*L_task and of L_con with
  respect to the backbone's parameters, and ``cos``: the cosine between the two gradients;
- ``TP~TO``, ``SR~SJ``, ``T~S``: the mean cosine similarity between the pooled features of
  two views of the same video: the two temporal views (eq. 9's positive pair), the two spatial
  views (positive), and the four temporal-spatial pairs (negatives);

then mean +- std over the seeds for each row. Training mode (batch statistics), fp32, one
thread.

    python benchmarks/probe_lcon.py --out runs/bench-cpu --rows mtcl mtcl-no-con

Figures: docs/benchmarks.md, "Claims" (claim 2); the output of 2026-12-07 on the cells of
``benchmarks/results/bench-cpu`` is kept in ``benchmarks/results/probes/probe_lcon.txt``.
"""

from __future__ import annotations

import argparse
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from vidssl.app.train.build import build_dataset, build_method
from vidssl.app.train.checkpoint import CHECKPOINT_NAME, seed_all
from vidssl.config import load_config
from vidssl.eval.stats import mean_std
from vidssl.eval.weights import load_checkpoint
from vidssl.methods.mtcl import MTCL

COLUMNS = ("L_con", "|g_task|", "|g_con|", "cos", "TP~TO", "SR~SJ", "T~S")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench-cpu"), help="bench folder")
    p.add_argument("--rows", nargs="+", default=["mtcl", "mtcl-no-con"], help="MTCL rows")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--batches", type=int, default=3, help="training batches per cell")
    return p.parse_args(argv)


def loss_terms(method: MTCL, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """lambda*L_task (eq. 8), L_con (eq. 9) and h: (N, M, D), with their graphs."""
    loss_task, h, _ = method.task_loss(batch)
    return method.lambda_task * loss_task, method.con_loss(h), h


def view_similarity(h: Tensor) -> Tensor:
    """h: (N, M, D) -> (M, M): cosine similarity of views i and j of a video, mean over videos."""
    z = torch.nn.functional.normalize(h.float(), dim=-1)
    return torch.einsum("nid,njd->ij", z, z) / h.shape[0]


def probe_batch(method: MTCL, batch: dict[str, Any]) -> dict[str, float]:
    """The COLUMNS of one batch (method with tasks pace, order, rotation, jigsaw)."""
    params = [p for p in method.backbone.parameters() if p.requires_grad]
    task_term, con, h = loss_terms(method, batch)
    g_task = torch.cat(
        [g.flatten() for g in torch.autograd.grad(task_term, params, retain_graph=True)]
    )
    g_con = torch.cat([g.flatten() for g in torch.autograd.grad(con, params)])
    sim = view_similarity(h.detach())  # views in MTCL_TASKS order: TP, TO, SR, SJ
    values = (
        con.item(),
        g_task.norm().item(),
        g_con.norm().item(),
        torch.nn.functional.cosine_similarity(g_task, g_con, dim=0).item(),
        sim[0, 1].item(),
        sim[2, 3].item(),
        sim[:2, 2:].mean().item(),
    )
    return dict(zip(COLUMNS, values, strict=True))


def probe_cell(cell: Path, seed: int, trained: bool, batches: int) -> dict[str, float]:
    """The COLUMNS averaged over ``batches`` batches of the cell's data."""
    cfg = load_config(str(cell / "config.yaml"))
    seed_all(seed)
    method = build_method(cfg)
    if not isinstance(method, MTCL) or len(method.tasks) != 4:
        raise SystemExit(f"{cell}: not an MTCL row with its four tasks")
    if trained:
        method.load_state_dict(load_checkpoint(cell / "run" / CHECKPOINT_NAME)["model"])
    method.train()
    loader = DataLoader(
        build_dataset(cfg, method),
        batch_size=cfg.data.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    rows = [probe_batch(method, batch) for batch in islice(loader, batches)]
    return {k: sum(r[k] for r in rows) / len(rows) for k in COLUMNS}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    print("| row | weights | seed | " + " | ".join(COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    summary = []
    for row in args.rows:
        for trained in (False, True):
            when = "end" if trained else "init"
            per_seed = []
            for seed in args.seeds:
                cell = args.out / "cells" / row / f"seed{seed}"
                values = probe_cell(cell, seed, trained, args.batches)
                per_seed.append(values)
                cells = " | ".join(f"{values[k]:.3g}" for k in COLUMNS)
                print(f"| {row} | {when} | {seed} | {cells} |", flush=True)
            stats = []
            for k in COLUMNS:
                mean, std = mean_std([v[k] for v in per_seed])
                stats.append(f"{mean:.3g} ± {std:.2g}")
            summary.append(f"| {row} | {when} | {' | '.join(stats)} |")
    print(f"\nmean ± std over seeds {args.seeds}\n")
    print("| row | weights | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
