"""Training accuracy of the pretext heads in a `vidssl bench` output folder.

For every finished cell (``cells/<row>/seed<k>/``) that logged pretext accuracies (``acc_*``
keys of the training loop's step records in ``run/metrics.jsonl``; for a staged row, its last
stage's), print the mean over the last ``--last`` logged steps of each task, then per row the
mean +- sample std over its seeds. This is the figure the issue's targets name ("pace training
accuracy >= 0.9"); the bench table itself reports the frozen-feature evaluation only.

    python benchmarks/pretext_accuracy.py runs/bench-cpu [--last 10] [--rows pretext-pace,...]

Chance: pace 1/4 (paces 1-4), order 1/6, rotation 1/4, jigsaw 1/24, overlap rates 1/5.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from vidssl.app.train.logging import METRICS_NAME, read_metrics


def step_records(cell: Path) -> list[dict[str, Any]]:
    """The step records of a cell's training log (its last stage's for a staged row)."""
    logs = sorted(cell.glob(f"run/stage*/{METRICS_NAME}")) or [cell / "run" / METRICS_NAME]
    return [r for r in read_metrics(logs[-1])[0] if r.get("kind") == "step"]


def last_accuracies(records: list[dict[str, Any]], last: int) -> dict[str, float]:
    """Task -> mean of its accuracy over the last ``last`` step records holding it."""
    tasks = sorted({k for r in records for k in r if k.startswith("acc_")})
    out = {}
    for task in tasks:
        values = [r[task] for r in records if task in r][-last:]
        out[task.removeprefix("acc_")] = sum(values) / len(values)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a vidssl bench --out folder")
    p.add_argument("--last", type=int, default=10, help="logged steps averaged (default 10)")
    p.add_argument("--rows", default="", help="comma-separated rows (default: all)")
    args = p.parse_args(argv)
    wanted = {r for r in args.rows.split(",") if r}
    by_row: dict[str, dict[str, list[float]]] = {}
    for cell in sorted((args.out / "cells").glob("*/seed*")):
        row = cell.parent.name
        if (wanted and row not in wanted) or not (cell / "result.json").is_file():
            continue
        records = step_records(cell)
        accs = last_accuracies(records, args.last)
        if not accs:
            continue
        step = int(records[-1]["step"])
        shown = ", ".join(f"{t} {a:.3f}" for t, a in accs.items())
        print(f"{row} {cell.name} (step {step}): {shown}")
        for task, acc in accs.items():
            by_row.setdefault(row, {}).setdefault(task, []).append(acc)
    print(f"\nmean +- std over seeds of the last {args.last} logged steps' training accuracy")
    for row, tasks in by_row.items():
        parts = []
        for task, accs in tasks.items():
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            parts.append(f"{task} {statistics.mean(accs):.3f} +- {std:.3f} ({len(accs)} seeds)")
        print(f"  {row}: {'; '.join(parts)}")


if __name__ == "__main__":
    main()
