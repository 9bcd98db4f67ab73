"""The output side of ``vidssl bench`` (:mod:`vidssl.app.bench`): cell records, the table and
the documents.

Records: :func:`cell_record` is the JSON of one finished (or failed) cell, ``result.json``,
and :func:`collect_rows` groups such records (a multi-stream cell's by stream,
:func:`vidssl.app.bench_cells.stream_records`) into :class:`Row` objects in table order.
Table: :func:`bench_table` gives one column per (protocol, label set, metric) that some row
has (``columns`` of :data:`vidssl.eval.protocols.PROTOCOLS`), each cell the mean ± sample std over the row's seeds in %, then
the training resources (minutes, clips/s, peak RSS). Documents: :func:`write_outputs` writes
``OUT/bench.md`` and ``OUT/bench.html`` (the command, the budget in words from
:func:`budget_lines`, the machine, the table, then :data:`NOTES` and the notes of staged,
multi-stream and text rows) and ``OUT/bench.json`` (the table and every cell's record).
"""

from __future__ import annotations

import html
import json
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from vidssl.app.bench_cells import extra_notes, stream_records
from vidssl.app.bench_text import text_notes
from vidssl.eval.protocols import PROTOCOLS, names
from vidssl.eval.stats import EvalResult, Table, format_percent, mean_std, to_html, to_markdown

if TYPE_CHECKING:
    from vidssl.app.bench_plan import Bench, CellPlan

SCHEMA = "vidssl.bench/1"  # of bench.json and of every cell's result.json

METRIC_TITLES: dict[str, str] = {"top1": "top-1", "top5": "top-5"}

# ---------------------------------------------------------------------------------- records


def cell_record(
    bench: Bench,
    plan: CellPlan,
    train: dict[str, Any] | None,
    results: list[EvalResult],
    eval_s: float,
    by_stream: dict[str, list[EvalResult]] | None = None,
) -> dict[str, Any]:
    """The JSON of a finished (or failed: ``error``) cell; a cell with evaluation streams has
    its results per stream in ``streams`` (one table row each, :func:`stream_records`)."""
    model = plan.config.model if plan.config is not None else bench.base.model
    record = {
        "schema": SCHEMA,
        "row": plan.cell.row,
        "label": plan.cell.label,
        "kind": plan.cell.kind,
        "seed": plan.cell.seed,
        "spec_sha": plan.spec_sha,
        "backbone": model.backbone,
        "width": model.width,
        "train": train,
        "eval_s": eval_s,
        "results": [r.to_json() for r in results],
    }
    if plan.streams:
        by_stream = by_stream or {}
        record["streams"] = {s: [r.to_json() for r in by_stream.get(s, [])] for s in plan.streams}
    return record


# ---------------------------------------------------------------------------------- table


NOT_RUN = "not run"  # the error of a cell record that has no result yet (table-only)


@dataclass
class Row:
    """One table row: a method (or baseline) over its seeds."""

    label: str
    backbone: str
    results: list[EvalResult] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)
    clips_per_s: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    seeds: int = 0  # finished seeds
    resumed: bool = False
    errors: list[str] = field(default_factory=list)
    not_run: int = 0  # seeds not run yet (a resumable run spread over invocations)

    def status(self) -> str:
        """What the row's label says about seeds without results ("" when all finished)."""
        if self.errors:
            return " (failed)" if not self.seeds else " (some seeds failed)"
        if self.not_run:
            return " (not run)" if not self.seeds else " (some seeds not run)"
        return ""


def collect_rows(records: Sequence[dict[str, Any]]) -> list[Row]:
    """Group cell records into rows (first-seen order)."""
    rows: dict[str, Row] = {}
    for rec in (r for record in records for r in stream_records(record)):
        backbone = f"{rec['backbone']} ×{rec['width']:g}"
        row = rows.setdefault(rec["row"], Row(rec["label"], backbone))
        if rec.get("error") == NOT_RUN:
            row.not_run += 1
            continue
        if "error" in rec:
            row.errors.append(f"seed {rec['seed']}: {rec['error']}")
            continue
        row.seeds += 1
        row.results += [
            EvalResult.from_json(r, f"{rec['row']} seed {rec['seed']}") for r in rec["results"]
        ]
        train = rec.get("train")
        if train:
            row.train_s.append(train["wall_s"])
            row.resumed |= bool(train.get("resumed"))
            if train.get("clips_per_s") is not None:
                row.clips_per_s.append(train["clips_per_s"])
            if train.get("peak_rss_mb") is not None:
                row.peak_rss_mb.append(train["peak_rss_mb"])
    return list(rows.values())


def metric_columns(rows: Sequence[Row], protocols: Sequence[str]) -> list[tuple[str, str, str]]:
    """(protocol, label set, metric) of every column, in protocol then label-set order."""
    label_sets = list(dict.fromkeys(r.label_set for row in rows for r in row.results))
    columns = []
    for protocol in protocols:
        for label_set in label_sets:
            for metric in PROTOCOLS[protocol].columns if protocol in PROTOCOLS else ("top1",):
                present = any(
                    r.protocol == protocol and r.label_set == label_set and metric in r.metrics
                    for row in rows
                    for r in row.results
                )
                if present:
                    columns.append((protocol, label_set or "", metric))
    return columns


def _column_title(protocol: str, label_set: str, metric: str) -> str:
    prefix = PROTOCOLS[protocol].prefix if protocol in PROTOCOLS else protocol + " "
    title = f"{prefix}{METRIC_TITLES.get(metric, metric)}"
    return f"{title} {label_set}".strip()


def _metric_cell(row: Row, protocol: str, label_set: str, metric: str) -> str:
    values = [
        r.metrics[metric]
        for r in row.results
        if r.protocol == protocol and (r.label_set or "") == label_set and metric in r.metrics
    ]
    return format_percent(*mean_std(values), len(values)) if values else "–"


def _mean_text(
    values: Sequence[float], fmt: str, reduce: Callable[[Sequence[float]], float]
) -> str:
    return format(reduce(values), fmt) if values else "–"


def bench_table(rows: Sequence[Row], protocols: Sequence[str], resources: bool = True) -> Table:
    """Metrics (%, mean ± std over seeds) and, with ``resources``, training time (mean),
    clips/s (mean) and peak memory (max over seeds)."""
    columns = metric_columns(rows, protocols)
    header = ["method", "backbone", "seeds", *(_column_title(*c) for c in columns)]
    if resources:
        header += ["train (min)", "clips/s", "peak RSS (MB)"]
    body = []
    for row in rows:
        if not row.seeds:
            body.append([row.label + row.status(), row.backbone, "0", *["–"] * (len(header) - 3)])
            continue
        cells = [
            row.label + row.status(),
            row.backbone,
            str(row.seeds),
            *(_metric_cell(row, *c) for c in columns),
        ]
        if resources:
            minutes = _mean_text([s / 60 for s in row.train_s], ".1f", statistics.fmean)
            cells += [
                minutes + ("*" if row.resumed else ""),
                _mean_text(row.clips_per_s, ".0f", statistics.fmean),
                _mean_text(row.peak_rss_mb, ".0f", max),
            ]
        body.append(cells)
    return Table(title="vidssl bench", columns=header, rows=body)


# ---------------------------------------------------------------------------------- documents


def _flatten(sections: dict[str, Any], prefix: str = "", depth: int = 2) -> list[str]:
    """``section.field=value`` items, ``depth`` levels of keys (lists of mappings by index)."""
    out = []
    for key, value in sections.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth > 1:
            out += _flatten(value, f"{name}.", depth - 1)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):  # e.g. stages[0].method.stage=init
                out += _flatten(item, f"{name}[{i}].", depth)
        else:
            text = json.dumps(value) if not isinstance(value, str) else value
            out.append(f"{name}={text if len(text) <= 60 else text[:57] + '...'}")
    return out


def budget_lines(bench: Bench) -> list[str]:
    """What the table was run with, in words (shared budget, per-row overrides, eval)."""
    b, e = bench.base, bench.eval_cfg
    args = ", ".join(f"{k}={v}" for k, v in b.data.args.items())
    steps = f"{b.train.max_steps} steps" if b.train.max_steps else f"{b.train.epochs} epochs"
    subset = f", training subset {b.data.subset}" if b.data.subset else ""
    recipe = ", ".join(f"{k}={v}" for k, v in b.data.recipe.items())
    lines = [
        f"dataset: {b.data.dataset}" + (f" ({args})" if args else "") + subset,
        f"clips: {b.data.clip_len} frames, stride {b.data.stride:g}, {b.data.size} px"
        + (f", augmentation {recipe}" if recipe else "")
        + f"; batch {b.data.batch_size}, loader workers: {b.data.workers}",
        f"backbone: {b.model.backbone} at width {b.model.width:g}; optimiser {b.optim.name}, "
        f"lr {b.optim.lr:g}; {steps}; amp {b.train.amp} (auto = bf16 on CPU), channels_last "
        f"{b.train.channels_last}",
        f"evaluation: {', '.join(bench.protocols)} on split {bench.preset.split}, "
        f"{e.num_clips} clips x {e.num_crops} crop(s) per video, linear probe {e.linear_epochs} "
        f"epochs",
    ]
    for name in bench.preset.methods:
        over = bench.preset.overrides.get(name)
        if over:
            lines.append(f"{name} overrides: {', '.join(_flatten(over))}")
    if bench.preset.supervised:
        lines.append(f"supervised overrides: {', '.join(_flatten(bench.preset.supervised))}")
    return lines


NOTES = (
    "Metrics in %: mean ± sample std over the seeds when there is more than one. R@k: share "
    "of test videos with a same-class training video among their k nearest neighbours "
    "(cosine similarity of frozen features); linear: top-1 of a linear probe on frozen "
    "features. train (min): wall time of the training process, start-up included (* = resumed "
    "after an interruption: the last attempt only). clips/s: median throughput logged by the "
    "training loop. peak RSS: VmHWM (peak resident memory) of the training process, sampled "
    "from /proc every 20 ms (data loader workers not added). The random-init row is not "
    "trained; the supervised row is trained on the dataset's primary labels. Each trained row "
    "is evaluated at its own training clip length and crop size."
)


def machine_line(threads: int) -> str:
    import torch

    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), {threads} torch "
        f"thread(s) per process, Python {platform.python_version()}, torch {torch.__version__}"
    )


def cell_seconds(records: Sequence[dict[str, Any]]) -> float:
    """Training plus evaluation seconds summed over the finished cells (one training per cell,
    however many rows it gives). Robust to interrupted and resumed invocations, unlike one
    invocation's wall time; a resumed cell counts its last attempt only."""
    total = 0.0
    for record in records:
        train = record.get("train") or {}
        total += float(train.get("wall_s") or 0.0) + float(record.get("eval_s") or 0.0)
    return total


def write_outputs(
    bench: Bench,
    records: Sequence[dict[str, Any]],
    command: str,
    total_s: float | None,
    *,
    threads: int,
) -> Table:
    """``OUT/bench.md``, ``OUT/bench.html`` and ``OUT/bench.json``; ``threads``: the torch
    threads per process (shown on the machine line)."""
    rows = collect_rows(records)
    table = bench_table(rows, [*bench.protocols, *names("text")])  # columns: those with results
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = [f"command: `{command}`", f"preset: {bench.preset.path.name}", *budget_lines(bench)]
    facts += [f"machine: {machine_line(threads)}", f"written {stamp}"]
    summary_path = bench.out / "bench.json"
    cells_s = cell_seconds([r for r in records if "error" not in r])
    facts.append(f"training + evaluation time summed over the cells: {cells_s / 60:.1f} min")
    if total_s is not None:
        facts.append(f"wall time of this invocation: {total_s / 60:.1f} min")
    md = [f"# vidssl bench: {bench.preset.path.stem}", ""]
    if bench.preset.description:
        md += [bench.preset.description, ""]
    notes = NOTES + extra_notes(records) + text_notes(records)
    md += [f"- {f}" for f in facts] + ["", to_markdown(table), notes, ""]
    bench.out.mkdir(parents=True, exist_ok=True)
    (bench.out / "bench.md").write_text("\n".join(md))
    items = "".join(f"<li>{html.escape(f).replace('`', '')}</li>" for f in facts)
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>vidssl bench: {html.escape(bench.preset.path.stem)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem}"
        "table{border-collapse:collapse;font-size:.92rem}th,td{border:1px solid #d0d7de;"
        "padding:.3rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}"
        "thead{background:#f0f3f6}caption{text-align:left;font-weight:600}</style></head><body>"
        f"<h1>vidssl bench: {html.escape(bench.preset.path.stem)}</h1>"
        f"<p>{html.escape(bench.preset.description)}</p><ul>{items}</ul>"
        f"{to_html(table, caption='')}<p>{html.escape(notes)}</p></body></html>\n"
    )
    (bench.out / "bench.html").write_text(page)
    summary = {
        "schema": SCHEMA,
        "command": command,
        "preset": str(bench.preset.path),
        "wall_s": total_s,  # this invocation (None: it ran nothing)
        "cells_s": cells_s,
        "columns": table.columns,
        "rows": table.rows,
        "cells": list(records),
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return table
