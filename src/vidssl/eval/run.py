"""Running one protocol on a job and recording its results (``OUT/eval/*.json``)."""

from __future__ import annotations

import math
import sys
from typing import Any

from vidssl import dist
from vidssl.eval.artefacts import save_finetune_cam
from vidssl.eval.context import Context, Job
from vidssl.eval.protocol_base import Outcome
from vidssl.eval.protocols import PROTOCOLS, protocol_settings
from vidssl.eval.splits import SplitData, item_labels
from vidssl.eval.stats import EvalResult


def result_file_name(result: EvalResult, dataset: str) -> str:
    """``<protocol>-<dataset>-split<s>-seed<n>-<label set>.json``."""
    return (
        f"{result.protocol}-{dataset}-split{result.split}-seed{result.seed}-{result.label_set}.json"
    )


def run_protocol(job: Job, name: str, cam: bool = False) -> list[EvalResult]:
    """Protocol ``name`` on the job's split and seed; results recorded on rank 0."""
    ctx, protocol = job.ctx, PROTOCOLS[name]
    if protocol.needs == "features" and not job.is_main:
        return []
    outcomes: list[Outcome] = protocol.run(job, protocol_settings(name, ctx.cfg))
    results = []
    if job.is_main:
        for i, out in enumerate(outcomes):
            results.append(record(ctx, name, job.data, job.seed, out.key, out.metrics, out.info))
            if cam and i == 0 and out.model is not None and ctx.eval_dir is not None:
                labels = item_labels(job.data.test, out.key)
                save_finetune_cam(ctx, out.model, job.data, out.key, labels)
    if protocol.needs == "network":
        dist.barrier()
    return results


def record(
    ctx: Context,
    protocol: str,
    data: SplitData,
    seed: int,
    key: str,
    metrics: dict[str, float],
    extra: dict[str, Any],
) -> EvalResult:
    """One result, saved in ``eval_dir`` when there is one."""
    result = EvalResult(
        protocol=protocol,
        split=str(data.split),
        metrics={k: float(v) for k, v in metrics.items()},
        seed=seed,
        label_set=data.label_sets.get(key, key),
        info={**ctx.info(data), **extra},
    )
    if ctx.eval_dir is not None:
        result.save(ctx.eval_dir / result_file_name(result, ctx.dataset))
    if not all(math.isfinite(v) for v in result.metrics.values()):
        print(f"warning: non-finite metric in {protocol} {result.label_set}", file=sys.stderr)
    return result
