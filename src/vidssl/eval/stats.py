"""Evaluation result files, mean ± std across splits / seeds, and result tables.

Eval result file (``RUN_DIR/eval/<name>.json``, one per protocol x split x seed x label set)::

    {
      "schema": "vidssl.eval/1",
      "protocol": "retrieval",          # "retrieval" | "linear" | "knn" | "finetune" | ...
      "split": "1",                     # dataset split (str), e.g. UCF101 split "1"
      "seed": 0,                        # optional int
      "label_set": "motion",            # optional: which labels were used ("motion", "appearance")
      "metrics": {"R@1": 0.41, "R@5": 0.62},   # fractions in [0, 1]
      "info": {...}                     # optional free-form details (checkpoint, sizes, settings)
    }

Every metric is a fraction in [0, 1] (accuracy, recall); tables show them as percentages.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "vidssl.eval/1"


@dataclass
class EvalResult:
    """One evaluation: ``metrics`` maps a metric name to a fraction in [0, 1]."""

    protocol: str
    split: str
    metrics: dict[str, float]
    seed: int | None = None
    label_set: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of an eval result file (``schema`` first)."""
        return {"schema": SCHEMA, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write the result file (parent folders created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, data: Any, source: str = "<json>") -> EvalResult:
        """Validate one parsed result object; errors name ``source`` and the field."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: an eval result must be a JSON object")
        if data.get("schema") != SCHEMA:
            raise ValueError(
                f"{source}: field 'schema' must be {SCHEMA!r}, got {data.get('schema')!r}"
            )
        for name in ("protocol", "split"):
            if not isinstance(data.get(name), (str, int)) or isinstance(data.get(name), bool):
                raise ValueError(f"{source}: field {name!r} must be a string")
        metrics = data.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            raise ValueError(f"{source}: field 'metrics' must be a non-empty object")
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{source}: metrics.{key} must be a number, got {value!r}")
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{source}: field 'seed' must be an integer or null")
        label_set = data.get("label_set")
        if label_set is not None and not isinstance(label_set, str):
            raise ValueError(f"{source}: field 'label_set' must be a string or null")
        info = data.get("info", {})
        if not isinstance(info, dict):
            raise ValueError(f"{source}: field 'info' must be an object")
        return cls(
            protocol=str(data["protocol"]),
            split=str(data["split"]),
            metrics={str(k): float(v) for k, v in metrics.items()},
            seed=seed,
            label_set=label_set,
            info=info,
        )

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        """Read and validate one result file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not readable as JSON: {exc}") from exc
        return cls.from_json(data, source=str(path))


def load_eval_dir(eval_dir: str | Path) -> tuple[list[EvalResult], dict[str, str]]:
    """All ``*.json`` result files of a folder: ``(results, {file name: why it was skipped})``."""
    results, problems = [], {}
    for path in sorted(Path(eval_dir).glob("*.json")):
        try:
            results.append(EvalResult.load(path))
        except ValueError as exc:
            problems[path.name] = str(exc)
    return results, problems


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value)."""
    if not values:
        raise ValueError("mean_std of no values")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


@dataclass
class Aggregate:
    """A metric over the runs (splits x seeds) of one protocol and label set."""

    protocol: str
    label_set: str | None
    metric: str
    mean: float
    std: float
    n: int


def aggregate(results: Iterable[EvalResult]) -> list[Aggregate]:
    """Group by (protocol, label_set, metric) and reduce over splits and seeds.

    Groups keep the order in which they first appear.
    """
    groups: dict[tuple[str, str | None, str], list[float]] = {}
    for result in results:
        for metric, value in result.metrics.items():
            groups.setdefault((result.protocol, result.label_set, metric), []).append(value)
    return [
        Aggregate(protocol, label_set, metric, *mean_std(values), n=len(values))
        for (protocol, label_set, metric), values in groups.items()
    ]


def format_percent(mean: float, std: float, n: int, digits: int = 1) -> str:
    """0.4123, 0.0131, 3 -> '41.2 ± 1.3'; a single run shows no ± part."""
    text = f"{100 * mean:.{digits}f}"
    return text if n < 2 else f"{text} ± {100 * std:.{digits}f}"


@dataclass
class Table:
    """A plain table: ``rows`` are lists of cell strings aligned with ``columns``."""

    title: str
    columns: list[str]
    rows: list[list[str]]


def results_tables(results: Sequence[EvalResult]) -> list[Table]:
    """One table per protocol: a row per label set, a column per metric, cells mean ± std (%)."""
    by_protocol: dict[str, list[Aggregate]] = {}
    for agg in aggregate(results):
        by_protocol.setdefault(agg.protocol, []).append(agg)
    tables = []
    for protocol, aggs in by_protocol.items():
        metrics = list(dict.fromkeys(a.metric for a in aggs))
        label_sets = list(dict.fromkeys(a.label_set for a in aggs))
        cells = {(a.label_set, a.metric): a for a in aggs}
        rows = []
        for label_set in label_sets:
            row_aggs = [cells.get((label_set, m)) for m in metrics]
            runs = max(a.n for a in row_aggs if a is not None)
            rows.append(
                [label_set or "label", str(runs)]
                + [format_percent(a.mean, a.std, a.n) if a else "–" for a in row_aggs]
            )
        tables.append(Table(title=protocol, columns=["labels", "runs", *metrics], rows=rows))
    return tables


def to_markdown(table: Table) -> str:
    """GitHub-flavoured markdown (``|`` inside cells escaped)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(table.columns), "|" + "|".join("---" for _ in table.columns) + "|"]
    out += [line(row) for row in table.rows]
    return "\n".join(out) + "\n"


def to_html(
    table: Table, caption: str | None = None, attrs: Mapping[str, str] | None = None
) -> str:
    """An HTML ``<table>`` (every cell escaped); ``caption`` defaults to the table's title."""
    attr_text = "".join(f' {k}="{html.escape(v)}"' for k, v in (attrs or {}).items())
    cap = table.title if caption is None else caption
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n"
        for row in table.rows
    )
    caption_html = f"<caption>{html.escape(cap)}</caption>" if cap else ""
    return f"<table{attr_text}>{caption_html}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>\n"
