r"""Verdicts on the source papers' qualitative claims, from a ``vidssl bench`` output folder.

    python benchmarks/claims.py                        # reads runs/bench-cpu
    python benchmarks/claims.py --out runs/bench-cpu   # the table of docs/benchmarks.md, Claims

The rows that decide the claims are the CPU preset's, 3 seeds each (the command in
``src/vidssl/presets/bench/cpu.yaml``)::

    vidssl bench --preset cpu --out runs/bench-cpu --seeds 3 --methods simclr,moco,byol,\
simsiam,cvrl,cstp,mtcl,xclip,cvtcl,pretext-rotation,pretext-jigsaw,pretext-pace,\
pretext-order,cstp-stor,cstp-no-stor,cstp-no-ctr,cstp-ctr-only,cstp-simclr,\
cstp-simclr-ctr-only,cstp-moco,cstp-moco-ctr-only,cstp-simsiam,cstp-simsiam-ctr-only,\
mtcl-no-con,cvtcl-init,xclip-names,cvrl-same-time

The finished cells (``cells/<row>/seed<k>/result.json``) are grouped into table rows by the
bench's own :func:`vidssl.app.bench_table.collect_rows`, so a cell evaluated on several
streams gives the rows ``cvtcl (rgb)``, ``cvtcl (flow)``, ``cvtcl (rgb+flow)`` and text
protocols (closed-set, zero-shot) are results of their row like any other. A claim names its
rows as the bench table labels them. Every claim is one entry of :data:`CLAIMS`: the claimed
better row, the other row and the metric (protocol, label set, metric name).

Verdict (:func:`verdict`), the rule of docs/benchmarks.md: with at least :data:`MIN_SEEDS`
seeds in both rows, "holds" when the better row's mean exceeds the other's by more than the
larger of the two sample stds, "does not hold" when it is lower by more than that, else
"tie"; fewer seeds in either row: "not decided"; a row without finished cells: "not run"
(naming it); a row without that metric: "not measured". A claim whose rows share the
untrained network's architecture names it as its ``floor``: when both rows are within 2 stds
of it (the issue's test of "learned anything"), the verdict says so, since two rows that
learned nothing on the metric do not test the claim. Cells are not checked against the
preset's current settings (``vidssl bench`` does that when it runs or redraws the table).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

from vidssl.app.bench import RESULT_NAME
from vidssl.app.bench_plan import ROW_LABELS
from vidssl.app.bench_table import METRIC_TITLES, SCHEMA, Row, collect_rows
from vidssl.eval.protocols import PROTOCOLS
from vidssl.eval.stats import Table, format_percent, mean_std, to_markdown

DEFAULT_OUT = Path("runs/bench-cpu")
MIN_SEEDS = 3  # seeds a row needs in both rows for a verdict

HOLDS, FAILS, TIE = "holds", "does not hold", "tie"
NOT_RUN, NOT_MEASURED = "not run", "not measured"
RANDOM = ROW_LABELS["random"]  # the untrained network's row
FLOOR_STDS = 2.0  # a row within this many stds of the floor row learned nothing measurable
AT_FLOOR = "both rows at the random init's level: not tested"


@dataclass(frozen=True)
class Metric:
    """One column of the bench table: a metric of one protocol on one label set."""

    protocol: str  # key of vidssl.eval.protocols.PROTOCOLS
    label_set: str  # "motion" or "appearance"
    name: str  # key of the result's metrics: "top1", "R@1", ...

    @property
    def title(self) -> str:
        """The bench table's column title, e.g. ``linear top-1 motion``."""
        prefix = PROTOCOLS[self.protocol].prefix if self.protocol in PROTOCOLS else ""
        return f"{prefix}{METRIC_TITLES.get(self.name, self.name)} {self.label_set}"


@dataclass(frozen=True)
class Claim:
    """A paper's claim that ``better`` beats ``other`` on ``metric`` (rows: table labels)."""

    text: str
    paper: str
    better: str
    other: str
    metric: Metric
    floor: str | None = None  # the untrained row of the same architecture (None: not one)


LINEAR_MOTION = Metric("linear", "motion", "top1")
LINEAR_APPEARANCE = Metric("linear", "appearance", "top1")
R1_MOTION = Metric("retrieval", "motion", "R@1")
CLOSED_SET = Metric("closed-set", "motion", "top1")
ZERO_SHOT = Metric("zeroshot", "motion", "top1")

TEMPORAL = ("pretext-pace", "pretext-order")
SPATIAL = ("pretext-rotation", "pretext-jigsaw")
# CSTP's claimed parts: (claim, CSTP row, the row without that part). A framework's row
# without CSTP is the framework alone in CSTP's setting (CSTP's clip pairs and its Adam: the
# preset's "..-ctr-only" rows), not the SGD row of the framework alone
CSTP_PARTS = (
    ("CSTP improves SimCLR", "cstp-simclr", "cstp-simclr-ctr-only"),
    ("CSTP improves MoCo", "cstp-moco", "cstp-moco-ctr-only"),
    ("CSTP improves BYOL", "cstp", "cstp-ctr-only"),
    ("CSTP improves SimSiam", "cstp-simsiam", "cstp-simsiam-ctr-only"),
    ("STOR improves CSTP", "cstp", "cstp-no-stor"),
    ("the contrastive term improves CSTP", "cstp", "cstp-no-ctr"),
)

# Claim 1 is tested pair by pair (each temporal row against each spatial row), not on the
# means of the two groups: the rule compares two rows over their seeds. The pretext-alone
# rows train with another stem and optimiser than the random init, so they meet only each
# other.
CLAIMS: list[Claim] = [
    *(
        Claim("1. temporal pretext tasks improve motion", "MTCL", t, s, LINEAR_MOTION)
        for t, s in product(TEMPORAL, SPATIAL)
    ),
    *(
        Claim("1. spatial pretext tasks improve appearance", "MTCL", s, t, LINEAR_APPEARANCE)
        for s, t in product(SPATIAL, TEMPORAL)
    ),
    *(
        Claim("2. L_con improves MTCL", "MTCL", "mtcl", "mtcl-no-con", m)
        for m in (LINEAR_MOTION, LINEAR_APPEARANCE)
    ),
    *(
        Claim(f"3. {text}", "CSTP", better, other, m, RANDOM)
        for text, better, other in CSTP_PARTS
        for m in (LINEAR_MOTION, LINEAR_APPEARANCE)
    ),
    *(
        Claim(
            "4. temporal sampling beats same-time views",
            "CVRL",
            "cvrl",
            "cvrl-same-time",
            m,
            RANDOM,
        )
        for m in (LINEAR_MOTION, R1_MOTION)
    ),
    *(
        Claim("5. flow improves motion", "CVTCL", better, "cvtcl (rgb)", m)
        for better in ("cvtcl (flow)", "cvtcl (rgb+flow)")
        for m in (LINEAR_MOTION, R1_MOTION)
    ),
    *(
        Claim("5. co-training improves RGB", "CVTCL", "cvtcl (rgb)", "cvtcl-init (rgb)", m, RANDOM)
        for m in (LINEAR_MOTION, R1_MOTION)
    ),
    *(
        Claim("6. class descriptions beat class names", "X-CLIP", "xclip", "xclip-names", m)
        for m in (CLOSED_SET, ZERO_SHOT)
    ),
]

NOTES = (
    "Metrics in %: mean ± sample std over the seeds. Verdict: with >= {min} seeds in both "
    "rows, *holds* when the claimed better row's mean exceeds the other's by more than the "
    "larger of the two stds, *does not hold* when it is lower by more than that, else *tie*; "
    "fewer seeds in either row: *not decided*; not run: the row(s) without finished cells; "
    "difference: better minus other (points), margin: the larger std. Claim 1 compares each "
    "temporal row with each spatial row (not the groups' means); the pretext-alone rows use "
    "another stem and optimiser than the random init, so they are compared only with each "
    "other. Claim 3's appearance lines are reported next to the motion ones (CSTP claims "
    "action recognition). The cvtcl stream rows share one training per seed. Claims 3, 4 "
    "and 5's co-training lines (RGB rows of the random init's R3D-18): a verdict that adds "
    "*both rows at the random init's level* had neither row above the random init by more "
    "than {floor:g} stds (the larger of the two), so the pair learned nothing there to "
    "compare."
)


# ---------------------------------------------------------------------------------- reading


def load_records(out: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The finished cells' records (``cells/<row>/seed<k>/result.json``) and a warning per
    file skipped (unreadable, e.g. being written, or not a bench record)."""
    records, skipped = [], []
    for path in sorted((out / "cells").glob(f"*/seed*/{RESULT_NAME}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            skipped.append(f"{path}: unreadable ({err})")
            continue
        if not isinstance(record, dict) or record.get("schema") != SCHEMA:
            skipped.append(f"{path}: not a {SCHEMA} record")
            continue
        records.append(record)
    return records, skipped


def rows_by_label(records: Sequence[dict[str, Any]]) -> dict[str, Row]:
    """The bench table's rows (one per stream of a multi-stream cell), by their label."""
    return {row.label: row for row in collect_rows(records)}


# ---------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Figure:
    """A metric of one row over its seeds (fractions)."""

    mean: float
    std: float
    n: int

    def text(self) -> str:
        seeds = f"{self.n} seed" + ("s" if self.n != 1 else "")
        return f"{format_percent(self.mean, self.std, self.n)} ({seeds})"


def figure(row: Row | None, metric: Metric) -> Figure | None:
    """``metric`` of ``row`` over its seeds (None: no such row or no such result)."""
    if row is None:
        return None
    values = [
        r.metrics[metric.name]
        for r in row.results
        if r.protocol == metric.protocol
        and (r.label_set or "") == metric.label_set
        and metric.name in r.metrics
    ]
    return Figure(*mean_std(values), len(values)) if values else None


def verdict(better: Figure | None, other: Figure | None) -> str:
    """The rule of the module docstring for two rows that ran (None: the row has no result
    for the metric)."""
    if better is None or other is None:
        return NOT_MEASURED
    if min(better.n, other.n) < MIN_SEEDS:
        return f"not decided ({better.n} vs {other.n} seeds)"
    margin = max(better.std, other.std)
    difference = better.mean - other.mean
    if difference > margin:
        return HOLDS
    if difference < -margin:
        return FAILS
    return TIE


def at_floor(row: Figure, floor: Figure) -> bool:
    """``row`` is not above ``floor`` by more than :data:`FLOOR_STDS` of the larger std."""
    return row.mean - floor.mean <= FLOOR_STDS * max(row.std, floor.std)


def claims_table(rows: dict[str, Row], claims: Sequence[Claim] = CLAIMS) -> Table:
    """One line per claim: the rows, their figures and the verdict."""
    body = []
    for claim in claims:
        a, b = rows.get(claim.better), rows.get(claim.other)
        fa, fb = figure(a, claim.metric), figure(b, claim.metric)
        missing = [name for name, row in ((claim.better, a), (claim.other, b)) if row is None]
        result = f"{NOT_RUN} ({', '.join(missing)})" if missing else verdict(fa, fb)
        floor = figure(rows.get(claim.floor), claim.metric) if claim.floor else None
        if result in (HOLDS, FAILS, TIE) and floor is not None and floor.n >= MIN_SEEDS:
            assert fa is not None and fb is not None  # a decided verdict had both figures
            if at_floor(fa, floor) and at_floor(fb, floor):
                result = f"{result} ({AT_FLOOR})"
        if fa is not None and fb is not None:
            gap = f"{100 * (fa.mean - fb.mean):+.1f} ({100 * max(fa.std, fb.std):.1f})"
        else:
            gap = "–"
        body.append(
            [
                claim.text,
                claim.paper,
                claim.better,
                claim.other,
                claim.metric.title,
                fa.text() if fa else "–",
                fb.text() if fb else "–",
                gap,
                result,
            ]
        )
    columns = ["claim", "paper", "better row", "other row", "metric", "better", "other"]
    columns += ["difference (margin)", "verdict"]
    return Table(title="claims", columns=columns, rows=body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"a vidssl bench --out folder ({DEFAULT_OUT})"
    )
    args = p.parse_args(argv)
    if not (args.out / "cells").is_dir():
        print(f"claims: no cells/ folder in {args.out} (a vidssl bench --out)", file=sys.stderr)
        return 2
    records, skipped = load_records(args.out)
    for warning in skipped:
        print(f"claims: skipped {warning}", file=sys.stderr)
    table = claims_table(rows_by_label(records))
    print(f"Claims of the source papers on `{args.out}` ({len(records)} finished cells)\n")
    print(to_markdown(table))
    print(NOTES.format(min=MIN_SEEDS, floor=FLOOR_STDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
