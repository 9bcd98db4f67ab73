"""How ``vidssl bench`` trains a cell: measured child processes, stages run in order, and the
rows of a cell evaluated on several streams.

Three keys of a method's entry in a preset's ``overrides`` are read by the harness instead of
going into the run config (:data:`HARNESS_KEYS`, parsed by :func:`split_override`)::

    overrides:
      cvtcl:
        method: {...}                    # sections shared by every stage
        stages:                          # run in order, each a separate `vidssl pretrain`
          - {method: {stage: init}, train: {max_steps: 150}}
          - {method: {stage: cotrain}, train: {max_steps: 120}}
        eval_streams: [rgb, flow, both]  # one table row per stream, from one training
      xclip:
        method: {class_texts: [...], held_out_classes: [...]}
        text_protocols: [closed-set, zeroshot]  # text matching after eval.protocols

Text protocols (text protocols of ``vidssl.eval.protocols.PROTOCOLS``) are run by
:mod:`vidssl.app.bench_text`; a row cannot combine them with ``eval_streams``.

Stages. Stage ``k``'s sections are merged over the method's override (itself merged over the
shared ``pretrain`` sections). It runs as ``python -m vidssl pretrain --config
cell/config-stage<k>.yaml --resume auto`` in ``cell/run/stage<k>/``, and every later stage
gets ``method.init_checkpoint=cell/run/stage<k-1>/last.pt`` (a staged method takes an
``init_checkpoint`` keyword, as CVTCL's co-training stage does). Each stage has its own step
budget (its ``train.max_steps``) and its own done marker ``cell/train-stage<k>.json``: a rerun
skips finished stages and resumes an interrupted one from its ``last.pt``. The cell's
``train.json`` then holds the sum of the stages' wall times, the largest peak RSS, the median
of every stage's logged throughput and the per-stage records (``stages``). A stage that
resumed records ``resumed`` and the step its attempt began at (``start_step``, read from the
checkpoint): its wall time covers only the steps after it (a staged cell sums the stages'
``start_step``). The last stage's
checkpoint is evaluated, into the last stage's folder. A cell without ``stages`` is one stage
in ``cell/run/`` (``cell/config.yaml``, no per-stage marker).

Streams. Each name in ``eval_streams`` (a key of :data:`STREAM_LABELS`) is one evaluation of
the trained checkpoint read as that stream's backbone (``evaluate(read_weights(..., stream=name))``), and one table row (``cvtcl (rgb)``,
``cvtcl (flow)``, ``cvtcl (rgb+flow)``) that shares the cell's training figures. The RGB
results go to ``<run>/eval/`` (what ``vidssl report`` draws), the others to
``<run>/streams/<stream>/eval/``. The feature cache key includes the stream
(``vidssl.eval.context.features``), so streams never share cached features.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidssl.app.train.checkpoint import CHECKPOINT_NAME
from vidssl.app.train.logging import METRICS_NAME, read_metrics
from vidssl.config import Config, config_to_dict, save_config
from vidssl.eval.weights import load_checkpoint

# override keys the bench reads itself
HARNESS_KEYS = ("stages", "eval_streams", "text_protocols")
INIT_CHECKPOINT = "init_checkpoint"  # method keyword: a later stage gets the previous last.pt
# evaluation stream (vidssl.models.two_stream.STREAMS) -> row label ("{}" = the method)
STREAM_LABELS: dict[str, str] = {"rgb": "{} (rgb)", "flow": "{} (flow)", "both": "{} (rgb+flow)"}
# bytes in one unit of ru_maxrss: KiB on Linux, bytes on macOS
RSS_UNIT = 1 if sys.platform == "darwin" else 1024

STAGES_NOTE = (
    " A row trained in stages runs them one after the other, each later stage starting from "
    "the previous one's checkpoint: its train (min) is the sum over the stages, clips/s the "
    "median of every stage's logged throughput and peak RSS the largest of the stages'."
)
STREAMS_NOTE = (
    " A stream in brackets (rgb, flow, rgb+flow) is one evaluation of a two-stream network: "
    "its RGB stream, its flow stream, or both with their L2-normalised features averaged; "
    "these rows share one training and so its time, throughput and memory."
)


class BenchError(ValueError):
    """A bad preset, argument or out folder; the message names the file and field."""


class CellFailed(RuntimeError):
    """A cell's training or evaluation failed; the bench goes on with the other cells."""


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``: nested mappings merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ---------------------------------------------------------------------------------- plan


@dataclass
class Stage:
    """One child training run of a cell: its resolved config and where it writes."""

    config: Config
    run_dir: Path  # the run folder (train.out_dir)
    config_path: Path  # the config file the child reads
    done_path: Path | None  # this stage's marker; None: the cell's train.json marks it


@dataclass
class Harness:
    """A row's override split into run-config sections and the harness keys."""

    sections: dict[str, Any]  # config sections over `pretrain`
    stages: list[dict[str, Any]]  # []: one stage
    streams: tuple[str, ...]  # (): one row, the default stream
    text_protocols: tuple[str, ...]  # (): none after eval.protocols


def _names(
    override: dict[str, Any], key: str, known: Sequence[str], noun: str, where: str
) -> tuple[str, ...]:
    """``override[key]``: a non-empty list of distinct ``noun`` names from ``known`` (absent:
    ())."""
    names = override.get(key, [])
    if not isinstance(names, list) or (key in override and not names):
        raise BenchError(f"{where}.{key}: expected a non-empty list of {noun} names")
    for name in names:
        if name not in known:
            raise BenchError(f"{where}.{key}: unknown {noun} {name!r}; choose from {list(known)}")
    if len(set(names)) != len(names):
        raise BenchError(f"{where}.{key}: a {noun} is listed twice")
    return tuple(names)


def split_override(override: dict[str, Any], where: str) -> Harness:
    """The config sections and harness keys of a row's override.

    ``where`` (``"<preset>: overrides.<method>"``) prefixes the errors.
    """
    from vidssl.eval.protocols import names

    sections = {k: v for k, v in override.items() if k not in HARNESS_KEYS}
    stages = override.get("stages", [])
    good = isinstance(stages, list) and all(
        isinstance(s, dict) and all(isinstance(k, str) for k in s) for s in stages
    )
    if not good or ("stages" in override and not stages):
        raise BenchError(f"{where}.stages: expected a non-empty list of mappings of sections")
    streams = _names(override, "eval_streams", list(STREAM_LABELS), "stream", where)
    texts = _names(override, "text_protocols", list(names("text")), "text protocol", where)
    if streams and texts:  # text matching scores the video model: one row, not one per stream
        raise BenchError(f"{where}: text_protocols cannot be combined with eval_streams")
    return Harness(sections, [dict(s) for s in stages], streams, texts)


def plan_stages(
    cell_dir: Path,
    sections: dict[str, Any],
    stages: Sequence[dict[str, Any]],
    make_config: Callable[[dict[str, Any], str], Config],
) -> list[Stage]:
    """The cell's stages in order (one for ``stages=[]``), later ones chained to the previous
    checkpoint. ``make_config(sections, field)`` validates one stage's sections; ``field`` is
    ``""`` or ``".stages[k]"`` for its errors."""
    if not stages:
        config = make_config(sections, "")
        return [_placed(config, cell_dir / "run", cell_dir / "config.yaml", None)]
    out: list[Stage] = []
    for k, stage in enumerate(stages):
        merged = deep_merge(sections, stage)
        if out:
            previous = {INIT_CHECKPOINT: str(out[-1].run_dir / CHECKPOINT_NAME)}
            merged = deep_merge(merged, {"method": previous})
        run_dir = cell_dir / "run" / f"stage{k}"
        config = make_config(merged, f".stages[{k}]")
        marker = cell_dir / f"train-stage{k}.json"
        out.append(_placed(config, run_dir, cell_dir / f"config-stage{k}.yaml", marker))
    return out


def _placed(config: Config, run_dir: Path, config_path: Path, done: Path | None) -> Stage:
    config.train.out_dir = str(run_dir)
    config.train.resume = ""
    return Stage(config, run_dir, config_path, done)


# config settings left out of a cell's run spec, so that a cell run before they existed still
# counts: `train.threads` (the harness sets the training child's threads itself, through
# OMP_NUM_THREADS from the preset's `threads`, which the auto setting follows; recorded in
# train.json; the resolved count enters the cell's spec itself when it is not 1, see
# vidssl.app.bench.THREADS_IN_SPEC) and the synthetic set's frame cache (bitwise the rendered
# frames, tests/test_pipeline.py)
NEUTRAL_SETTINGS: tuple[tuple[str, ...], ...] = (("train", "threads"), ("data", "args", "cache"))

# settings added after cells were run, left out of the spec only while they hold the value
# that reproduces the behaviour from before they existed (any other value is decisive):
# SimSiam's / BYOL's `fix_predictor_lr` (off: one schedule for every parameter) and their
# `projector_layers` (2: the projector they always had)
LATER_DEFAULTS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("method", "fix_predictor_lr"), False),
    (("method", "projector_layers"), 2),
)


def _section(run: dict[str, Any], parents: Sequence[str]) -> Any:
    section: Any = run
    for name in parents:
        section = (section.get(name) or {}) if isinstance(section, dict) else {}
    return section


def decisive_settings(config: Config) -> dict[str, Any]:
    """``config`` as a dict without its out folder, without :data:`NEUTRAL_SETTINGS` and
    without :data:`LATER_DEFAULTS` that hold their old behaviour's value."""
    run = config_to_dict(config)
    run["train"].pop("out_dir")
    for *parents, key in NEUTRAL_SETTINGS:
        section = _section(run, parents)
        if isinstance(section, dict):
            section.pop(key, None)
    for (*parents, key), value in LATER_DEFAULTS:
        section = _section(run, parents)
        if isinstance(section, dict) and key in section and section[key] == value:
            section.pop(key)
    return run


def stage_spec(stages: Sequence[Stage], cell_dir: Path) -> dict[str, Any]:
    """The run settings of a cell for its spec: the run config without its out folder and
    neutral settings (one stage), or ``{"stages": [...]}`` with the chained checkpoints
    relative to the cell."""
    runs = []
    for stage in stages:
        run = decisive_settings(stage.config)
        init = run["method"].get(INIT_CHECKPOINT)
        if len(stages) > 1 and isinstance(init, str) and Path(init).is_relative_to(cell_dir):
            run["method"][INIT_CHECKPOINT] = str(Path(init).relative_to(cell_dir))
        runs.append(run)
    return runs[0] if len(runs) == 1 else {"stages": runs}


# ---------------------------------------------------------------------------------- training


@dataclass
class Measured:
    """A child process: exit code (negative = killed by that signal), wall time, peak RSS."""

    exit_code: int
    wall_s: float
    peak_rss_mb: float | None


def _vm_hwm_mb(pid: int) -> float | None:
    """``VmHWM`` (peak resident set of the process's current address space) in MB, if known."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MB
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd`` and measure its wall time and peak resident memory.

    Peak memory is the child's ``VmHWM`` from ``/proc``, sampled every 20 ms while it runs:
    that counter belongs to the address space the child ``exec``-ed, so, unlike ``ru_maxrss``
    from ``wait4`` (which Linux carries over from the parent's memory at fork/exec), it does not
    include this process's own memory. Without ``/proc`` it falls back to ``ru_maxrss``.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=env)
    hwm: float | None = None
    try:
        if hasattr(os, "wait4"):
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                sample = _vm_hwm_mb(proc.pid)
                if sample is not None:
                    hwm = max(hwm or 0.0, sample)
                time.sleep(0.02)
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            peak: float | None = hwm if hwm is not None else usage.ru_maxrss * RSS_UNIT / 2**20
        else:  # pragma: no cover - Windows
            code, peak = proc.wait(), None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Measured(code, time.perf_counter() - start, peak)


def read_rates(metrics_path: Path) -> tuple[list[float], int]:
    """Every logged ``clips_per_s`` of the step records (NaN dropped) and the last step."""
    records = [r for r in read_metrics(metrics_path)[0] if r.get("kind") == "step"]
    rates = [float(r.get("clips_per_s", float("nan"))) for r in records]
    step = max((int(r["step"]) for r in records), default=0)
    return [r for r in rates if r == r], step


def read_throughput(metrics_path: Path) -> tuple[float | None, int]:
    """Median logged ``clips_per_s`` of the step records and the last step (0 if none)."""
    rates, step = read_rates(metrics_path)
    return (statistics.median(rates) if rates else None), step


def train_stage(stage: Stage, command: str, threads: int) -> dict[str, Any]:
    """Run one stage in a child process (``--resume auto``), or reuse its finished record."""
    if stage.done_path is not None and stage.done_path.is_file():
        return json.loads(stage.done_path.read_text())
    save_config(stage.config, stage.config_path)
    checkpoint = stage.run_dir / CHECKPOINT_NAME
    resumed = checkpoint.is_file()
    start_step = int(load_checkpoint(checkpoint)["step"]) if resumed else 0
    cmd = [sys.executable, "-m", "vidssl", command, "--config", str(stage.config_path)]
    cmd += ["--resume", "auto"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    measured = run_measured(cmd, env)
    if measured.exit_code != 0:
        raise CellFailed(f"`{shlex.join(cmd)}` exited with code {measured.exit_code}")
    clips_per_s, steps = read_throughput(stage.run_dir / METRICS_NAME)
    record = {
        "command": shlex.join(["vidssl", *cmd[3:]]),
        "wall_s": measured.wall_s,
        "peak_rss_mb": measured.peak_rss_mb,
        "clips_per_s": clips_per_s,
        "steps": steps,
        "resumed": resumed,  # the wall time then covers only the last attempt...
        "start_step": start_step,  # ...which began at this step (0: from scratch)
        "threads": threads,
    }
    if stage.done_path is not None:
        stage.done_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def combine_stages(stages: Sequence[Stage], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One training record for stages run in order: wall time summed, peak RSS the largest,
    clips/s the median of every stage's logged throughput; the stage records in ``stages``."""
    rates = [r for stage in stages for r in read_rates(stage.run_dir / METRICS_NAME)[0]]
    peaks = [r["peak_rss_mb"] for r in records if r.get("peak_rss_mb") is not None]
    return {
        "command": " && ".join(r["command"] for r in records),
        "wall_s": sum(r["wall_s"] for r in records),
        "peak_rss_mb": max(peaks) if peaks else None,
        "clips_per_s": statistics.median(rates) if rates else None,
        "steps": sum(r["steps"] for r in records),
        "resumed": any(r.get("resumed") for r in records),
        "start_step": sum(r.get("start_step", 0) for r in records),  # steps no wall_s covers
        "threads": records[-1].get("threads"),
        "stages": list(records),
    }


def train_cell(stages: Sequence[Stage], command: str, threads: int, done: Path) -> dict[str, Any]:
    """Train the cell's stages in order (or reuse the finished training recorded in ``done``);
    a failing stage raises :class:`CellFailed` and the later ones do not run."""
    if done.is_file():
        return json.loads(done.read_text())
    records = [train_stage(stage, command, threads) for stage in stages]
    record = records[0] if len(stages) == 1 else combine_stages(stages, records)
    done.write_text(json.dumps(record, indent=2) + "\n")
    return record


# ---------------------------------------------------------------------------------- streams


def stream_out_dir(run_dir: Path, stream: str | None) -> Path:
    """Where one stream's evaluation is written (see the module docstring)."""
    return run_dir if stream in (None, "rgb") else run_dir / "streams" / stream


def stream_records(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per table row: a cell evaluated on several streams gives one per stream
    (row ``<row>/<stream>``, label from :data:`STREAM_LABELS`), the others themselves."""
    streams = record.get("streams")
    if not streams:
        return [record]
    return [
        {
            **record,
            "row": f"{record['row']}/{name}",
            "label": STREAM_LABELS[name].format(record["label"]),
            "results": results,
        }
        for name, results in streams.items()
    ]


def extra_notes(records: Sequence[dict[str, Any]]) -> str:
    """The table notes on staged and multi-stream rows, when there are such rows."""
    staged = any((r.get("train") or {}).get("stages") for r in records)
    streams = any(r.get("streams") for r in records)
    return (STAGES_NOTE if staged else "") + (STREAMS_NOTE if streams else "")
