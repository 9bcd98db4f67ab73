"""`vidssl report RUN_DIR`: one self-contained HTML page about a run.

Reads what the run folder holds and writes ``RUN_DIR/report.html`` plus the PNG figures it
shows in ``RUN_DIR/report_files/`` (relative links, inline CSS, no external resources):

==================================  ==========================================================
``config.yaml``                     the resolved config, shown verbatim
``metrics.jsonl``                   training curves: loss, lr, clips/s against the step
``eval/*.json``                     evaluation tables, mean ± std over splits / seeds
                                    (schema: :mod:`vidssl.eval.stats`)
``eval/retrieval_examples.pt``      retrieval grid (:class:`vidssl.eval.RetrievalExamples`)
``eval/embedding.pt``               embedding maps, one per label set
                                    (:func:`vidssl.eval.features.save_features`)
``eval/cam_examples.pt``            Grad-CAM overlays (:class:`vidssl.eval.CamExamples`)
==================================  ==========================================================

The evaluation step saves those array files; this module only reads them and calls the
plotting functions of :mod:`vidssl.viz.plots`. A missing or unreadable part becomes a
"not available (reason)" line in the page, never a crash.
"""

from __future__ import annotations

import argparse
import html
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vidssl.app.train.logging import METRICS_NAME, read_metrics
from vidssl.eval.features import load_features_file
from vidssl.eval.gradcam import CamExamples
from vidssl.eval.protocols import PROTOCOLS
from vidssl.eval.retrieval import RetrievalExamples
from vidssl.eval.stats import EvalResult, load_eval_dir, results_tables, to_html
from vidssl.viz import plots

FIGURES_DIR = "report_files"
REPORT_NAME = "report.html"
CURVE_KEYS: tuple[str, ...] = ("loss", "lr", "clips_per_s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vidssl report``."""
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run folder (pretrain OUT)")
    parser.add_argument(
        "--smoothing", type=float, default=0.6, help="EMA weight of the curves, in [0, 1)"
    )
    parser.add_argument(
        "--embedding",
        choices=("pca", "tsne", "auto"),
        default="pca",
        help="2-D projection of the embedding map (tsne needs scikit-learn)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the report; returns 2 when RUN_DIR is not a folder."""
    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        print(f"vidssl report: RUN_DIR {run_dir} is not a folder", file=sys.stderr)
        return 2
    report = build_report(run_dir, smoothing=args.smoothing, embedding_method=args.embedding)
    print(f"wrote {report.html_path} ({len(report.figures)} figures)")
    for name, reason in report.missing.items():
        print(f"  {name}: not available ({reason})")
    return 0


# ---------------------------------------------------------------------- sections


class NotAvailable(Exception):
    """A report part cannot be shown; the message is the reason written in the page."""


@dataclass
class Section:
    """One part of the page: its HTML body and the PNG files (relative to RUN_DIR) it shows."""

    title: str
    body: str
    figures: list[str] = field(default_factory=list)


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    html_path: Path
    figures: list[Path]  # absolute paths of every PNG the page shows
    missing: dict[str, str]  # section title -> reason it is not available


def _esc(text: object) -> str:
    return html.escape(str(text))


def _figure_html(rel_path: str, alt: str, caption: str = "") -> str:
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{_esc(rel_path)}" alt="{_esc(alt)}">{cap}</figure>\n'


def _save(fig: Any, run_dir: Path, name: str) -> str:
    """Save a figure under RUN_DIR/report_files; returns its path relative to RUN_DIR."""
    rel = f"{FIGURES_DIR}/{name}"
    plots.save_figure(fig, run_dir / rel)
    return rel


def _number(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else math.nan


def config_section(run_dir: Path) -> Section:
    """The resolved config, verbatim, and a one-line summary when it parses."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise NotAvailable("no config.yaml in the run folder")
    text = path.read_text()
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        note = f"<p class='na'>config.yaml does not parse as YAML: {_esc(exc)}</p>"
        return Section("Configuration", note + f"<pre>{_esc(text)}</pre>")
    summary = ""
    if isinstance(cfg, dict):
        picks = {
            "method": ("method", "name"),
            "backbone": ("model", "backbone"),
            "dataset": ("data", "dataset"),
            "epochs": ("train", "epochs"),
        }
        parts = []
        for label, (section, key) in picks.items():
            value = cfg.get(section, {}).get(key) if isinstance(cfg.get(section), dict) else None
            if value is not None:
                parts.append(f"<b>{_esc(label)}</b> {_esc(value)}")
        summary = f"<p>{' · '.join(parts)}</p>" if parts else ""
    return Section("Configuration", summary + f"<pre>{_esc(text)}</pre>")


def curves_section(run_dir: Path, smoothing: float) -> Section:
    """Loss, lr and clips/s against the optimiser step."""
    path = run_dir / METRICS_NAME
    if not path.is_file():
        raise NotAvailable(f"no {METRICS_NAME} in the run folder")
    records, bad = read_metrics(path)
    if not records:
        raise NotAvailable(f"{METRICS_NAME} has no records with a 'step' ({bad} other lines)")
    # per-step records ("kind": "step", or no kind) draw the curves; "kind": "epoch" summaries
    # only feed the facts line (unless there is nothing else)
    epoch_records = [r for r in records if r.get("kind") == "epoch"]
    step_records = [r for r in records if r.get("kind") != "epoch"] or epoch_records
    records = sorted(step_records, key=lambda r: r["step"])
    steps = np.array([r["step"] for r in records], dtype=np.float64)
    series = {}
    for key in CURVE_KEYS:
        values = np.array([_number(r.get(key)) for r in records])
        if np.isfinite(values).any():
            series[key] = values
    if not series:
        raise NotAvailable(f"metrics.jsonl records carry none of {', '.join(CURVE_KEYS)}")
    epochs = np.array([_number(r.get("epoch")) for r in records])
    fig = plots.plot_training_curves(
        steps, series, smoothing=smoothing, epochs=epochs if np.isfinite(epochs).all() else None
    )
    rel = _save(fig, run_dir, "curves.png")
    facts = [f"{len(records)} logged steps (last step {int(steps[-1])})"]
    if "loss" in series:
        finite = series["loss"][np.isfinite(series["loss"])]
        facts.append(f"loss {finite[0]:.4g} → {finite[-1]:.4g}")
    if "clips_per_s" in series:
        facts.append(f"median throughput {np.nanmedian(series['clips_per_s']):.1f} clips/s")
    if epoch_records:
        skipped = sum(int(r["skipped"]) for r in epoch_records if isinstance(r.get("skipped"), int))
        facts.append(f"{len(epoch_records)} epochs, {skipped} unreadable videos replaced")
    if bad:
        facts.append(f"{bad} unreadable lines skipped")
    body = f"<p>{_esc('; '.join(facts))}.</p>" + _figure_html(rel, "training curves")
    return Section("Training curves", body, [rel])


def _result_rows(results: list[EvalResult]) -> str:
    rows = "".join(
        f"<tr><td>{_esc(r.protocol)}</td><td>{_esc(r.label_set or 'label')}</td>"
        f"<td>{_esc(r.split)}</td><td>{_esc('' if r.seed is None else r.seed)}</td>"
        f"<td>{_esc(', '.join(f'{k} {100 * v:.1f}' for k, v in r.metrics.items()))}</td></tr>\n"
        for r in results
    )
    head = (
        "<tr><th>protocol</th><th>labels</th><th>split</th><th>seed</th><th>metrics (%)</th></tr>"
    )
    return f"<details><summary>every result file</summary><table><thead>{head}</thead><tbody>{rows}</tbody></table></details>\n"


def eval_section(run_dir: Path) -> Section:
    """Result tables (mean ± std in %) from ``eval/*.json``."""
    eval_dir = run_dir / "eval"
    if not eval_dir.is_dir():
        raise NotAvailable("no eval/ folder in the run folder (run the evaluation first)")
    results, problems = load_eval_dir(eval_dir)
    notes = "".join(
        f"<p class='na'>skipped {_esc(name)}: {_esc(reason)}</p>\n"
        for name, reason in problems.items()
    )
    if not results:
        reason = (
            "no eval result files in eval/" if not problems else "no readable eval result files"
        )
        if not problems:
            raise NotAvailable(reason)
        return Section("Evaluation", f"<p class='na'>not available ({_esc(reason)})</p>\n" + notes)
    intro = (
        "<p>Percentages; <i>mean ± sample std</i> over the runs (splits × seeds) when there is "
        "more than one. R@k: share of test videos with a same-class training video among their "
        "k nearest neighbours (cosine similarity).</p>\n"
    )
    tables = "".join(
        to_html(t, caption=PROTOCOLS[t.title].title if t.title in PROTOCOLS else t.title)
        for t in results_tables(results)
    )
    return Section("Evaluation", intro + tables + _result_rows(results) + notes)


def retrieval_section(run_dir: Path) -> Section:
    """The retrieval grid from ``eval/retrieval_examples.pt``."""
    path = run_dir / "eval" / "retrieval_examples.pt"
    if not path.is_file():
        raise NotAvailable("the evaluation saved no eval/retrieval_examples.pt")
    ex = RetrievalExamples.load(path)
    fig = plots.plot_retrieval_grid(
        ex.query_frames,
        ex.neighbour_frames,
        ex.query_labels,
        ex.neighbour_labels,
        ex.class_names,
        ex.sims,
    )
    rel = _save(fig, run_dir, "retrieval.png")
    return Section("Retrieval examples", _figure_html(rel, "retrieval grid"), [rel])


def embedding_section(run_dir: Path, method: str) -> Section:
    """One embedding map per label set from ``eval/embedding.pt``."""
    path = run_dir / "eval" / "embedding.pt"
    if not path.is_file():
        raise NotAvailable("the evaluation saved no eval/embedding.pt")
    features, class_names = load_features_file(path)
    if not features.labels:
        raise NotAvailable(f"{path.name} holds no labels to colour the map by")
    body, figures = "", []
    order = sorted(features.labels, key=lambda k: (k != "label", k))  # primary labels first
    for label_set in order:
        labels = features.labels[label_set]
        if (labels < 0).all():
            continue
        keep = labels >= 0
        names = class_names.get(label_set, [])
        shown = "motion" if label_set == "label" and "appearance" in features.labels else label_set
        fig = plots.plot_embedding(
            features.feats[keep],
            labels[keep],
            names,
            method=method,
            title=f"Embedding map, coloured by {shown} class",
        )
        rel = _save(fig, run_dir, f"embedding-{label_set}.png")
        body += _figure_html(rel, f"embedding map by {shown}")
        figures.append(rel)
    if not figures:
        raise NotAvailable(f"{path.name}: every sample is unlabelled")
    return Section("Embedding map", body, figures)


def cam_section(run_dir: Path) -> Section:
    """Grad-CAM overlays from ``eval/cam_examples.pt``."""
    path = run_dir / "eval" / "cam_examples.pt"
    if not path.is_file():
        raise NotAvailable("the evaluation saved no eval/cam_examples.pt")
    ex = CamExamples.load(path)
    fig = plots.plot_cam_overlay(ex.frames, ex.cams, ex.titles)
    rel = _save(fig, run_dir, "gradcam.png")
    caption = "Where the last conv stage's evidence for the target score lies (Grad-CAM)."
    return Section("Grad-CAM", _figure_html(rel, "Grad-CAM overlays", caption), [rel])


# ---------------------------------------------------------------------- page

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd;
     padding-bottom: 0.2rem; margin-top: 2rem; }
.meta { color: #666; font-size: 0.9rem; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem;
      border: 1px solid #e1e4e8; border-radius: 4px; max-height: 28rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } thead { background: #f0f3f6; }
figure { margin: 1rem 0; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
.na { color: #9a6700; background: #fff8c5; padding: 0.3rem 0.6rem; border-radius: 4px; }
"""


def _page(title: str, meta: str, sections: list[Section]) -> str:
    toc = " · ".join(f'<a href="#s{i}">{_esc(s.title)}</a>' for i, s in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{_esc(s.title)}</h2>\n{s.body}' for i, s in enumerate(sections))
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n<p class='meta'>{meta}</p>\n<p>{toc}</p>\n{body}"
        "</body>\n</html>\n"
    )


def build_report(run_dir: Path, smoothing: float = 0.6, embedding_method: str = "pca") -> Report:
    """Render every section (a failing one becomes "not available") and write the page."""
    run_dir = Path(run_dir)
    builders: list[tuple[str, Callable[[], Section]]] = [
        ("Configuration", lambda: config_section(run_dir)),
        ("Training curves", lambda: curves_section(run_dir, smoothing)),
        ("Evaluation", lambda: eval_section(run_dir)),
        ("Retrieval examples", lambda: retrieval_section(run_dir)),
        ("Embedding map", lambda: embedding_section(run_dir, embedding_method)),
        ("Grad-CAM", lambda: cam_section(run_dir)),
    ]
    sections, missing = [], {}
    for title, build in builders:
        try:
            sections.append(build())
        except NotAvailable as exc:
            missing[title] = str(exc)
        except Exception as exc:  # a broken artifact must not stop the rest of the report
            missing[title] = f"error: {type(exc).__name__}: {exc}"
        if title in missing:
            sections.append(
                Section(title, f"<p class='na'>not available ({_esc(missing[title])})</p>\n")
            )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = f"run folder <code>{_esc(run_dir.resolve())}</code> · generated {stamp}"
    html_path = run_dir / REPORT_NAME
    html_path.write_text(_page(f"vidssl run report: {run_dir.resolve().name}", meta, sections))
    figures = [run_dir / rel for s in sections for rel in s.figures]
    return Report(html_path=html_path, figures=figures, missing=missing)
