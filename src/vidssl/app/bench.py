"""``vidssl bench``: every method on one table, on one dataset with one budget.

    vidssl bench --preset cpu --out runs/bench-cpu            # the table of docs/benchmarks.md
    vidssl bench --preset tiny --methods simclr,cvrl --seeds 2 --out /tmp/bench
    vidssl bench --config my_preset.yaml --finetune
    vidssl bench --preset cpu --out runs/bench-cpu --table-only   # redraw from finished cells
    vidssl bench --list-presets                                 # the shipped presets, checked

A preset (``src/vidssl/presets/bench/<name>.yaml``, shipped as package data so an installed
``vidssl`` finds it from any folder) is data, so a method added later joins the table by
name with no change here::

    base: cpu                           # optional: build on cpu.yaml (next to this file,
                                        # else shipped); keys here merge over it
                                        # (read_preset_file)
    description: text shown above the table
    methods: [simclr, moco, ...]        # names in vidssl.methods.METHODS, or variants
    seeds: 1                            # seeds per row (mean ± sample std over them)
    threads: 0                          # torch intra-op threads per process; 0 = the cores
                                        # the loader processes leave (Bench.threads)
    pretrain: {data: ..., model: ..., optim: ..., train: ...}   # the shared budget: sections
                                        # of a `vidssl pretrain` config (vidssl.config)
    overrides:                          # per method: sections merged over `pretrain`;
                                        # a key that is not a method name is a variant row,
                                        # whose method.name says what it trains:
      pretext-rotation: {method: {name: pretext, tasks: [rotation]}}
      xclip:                            # and three harness keys (vidssl.app.bench_cells):
        model: {backbone: vit_clip}
        method: {class_texts: [...], held_out_classes: [...]}
        text_protocols: [closed-set, zeroshot]  # text matching after eval.protocols
      cvtcl:
        method: {...}
        stages: [{method: {stage: init}}, {method: {stage: cotrain}}]  # runs in order
        eval_streams: [rgb, flow, both] # one row per evaluated stream
    supervised: {optim: {lr: 0.1}}      # sections merged over `pretrain` for that row
    eval:
      protocols: [retrieval, linear]    # names in vidssl.eval.protocols.PROTOCOLS
      split: 1
      settings: {num_clips: 5, ...}     # vidssl.eval.protocols.EvalConfig fields

Rows: ``random init`` (the shared backbone untrained, as ``vidssl eval --checkpoint random``),
one per method, and ``supervised (from scratch)`` (``vidssl train-supervised`` on the primary
labels). A method whose override gives ``stages`` trains them in order, each a child run
starting from the previous stage's ``last.pt`` (``method.init_checkpoint``), and is evaluated
from the last one; one with ``eval_streams`` gives one row per stream (``cvtcl (rgb)``,
``cvtcl (flow)``, ``cvtcl (rgb+flow)``) from one training (details in
:mod:`vidssl.app.bench_cells`). Every row is evaluated on the same dataset (``pretrain.data``;
overrides may not change it) by :func:`vidssl.app.evaluate.evaluate` with the same protocols
and settings; one with ``text_protocols`` then also by text matching (closed-set, zero-shot
on held-out classes: :mod:`vidssl.app.bench_text`), columns shown only when a row has them.
Seed ``k`` of a trained row seeds its training (the probe uses seed 0); seed ``k`` of the
random row seeds the initialisation and the probe.

Each (row, seed) is a *cell* in ``OUT/cells/<row>/seed<k>/``: ``cell.json`` (its settings),
``config.yaml`` (the resolved run config), ``run/`` (the run folder: ``last.pt``,
``metrics.jsonl``, ``eval/``; ``vidssl report OUT/cells/<row>/seed<k>/run`` draws it),
``train.json`` (timing, once training finished) and ``result.json`` (the cell is finished).
A staged cell has ``config-stage<k>.yaml``, ``run/stage<k>/`` and ``train-stage<k>.json``
(stage ``k`` finished) instead, and its last stage's run folder holds ``eval/``; the streams
other than RGB are evaluated into ``<run>/streams/<stream>/eval/``. A rerun skips finished
cells and stages, does not retrain a cell with ``train.json`` and resumes an interrupted
training (stage) from its ``last.pt``. A cell whose settings changed since it ran is an
error (use another ``--out``). Features are cached in ``OUT/cache``.

Training runs in a child process, ``python -m vidssl pretrain --config cell/config.yaml
--resume auto`` (exactly the ``vidssl pretrain`` code path; ``train-supervised`` for the
supervised row), so that its memory can be measured on its own: peak memory is the child's
``VmHWM`` (peak resident set of its own address space, sampled from ``/proc`` every 20 ms;
``ru_maxrss`` from ``os.wait4`` would include this process's memory, which Linux carries over
fork/exec). DataLoader worker processes are not added (the presets use one loader process,
which holds only the rendering and augmentation of a few batches). Wall time is measured around
the child (so it includes ~3-5 s of Python / torch start-up and model building); clips/s is
the median of the throughput the training loop logs to ``metrics.jsonl``. A staged cell sums
its stages' wall times, takes the largest peak memory and the median of every stage's logged
throughput (the table's notes say so).

Outputs: ``OUT/bench.md``, ``OUT/bench.html`` (the table with the command and the budget) and
``OUT/bench.json`` (every row's figures), written by :mod:`vidssl.app.bench_table` (cell
records, rows, the table and the documents). Exit codes: 0 done, 1 a cell failed (the table
shows it; a rerun retries it), 2 bad preset or arguments (reported before any work, naming the
file and field).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vidssl.app.bench_cells import (
    BenchError,
    Stage,
    decisive_settings,
    deep_merge,
    plan_stages,
    split_override,
    stage_spec,
    stream_out_dir,
    train_cell,
)
from vidssl.app.bench_cells import read_throughput as read_throughput  # demo.py's import
from vidssl.app.bench_plan import ROW_LABELS as ROW_LABELS
from vidssl.app.bench_plan import Bench, Cell, CellPlan, Preset
from vidssl.app.bench_table import NOT_RUN, cell_record, write_outputs
from vidssl.app.bench_text import evaluate_text_protocols, plan_text
from vidssl.app.train.checkpoint import CHECKPOINT_NAME
from vidssl.bars import ProgressBar
from vidssl.config import Config, ConfigError, config_from_dict
from vidssl.eval.stats import EvalResult, to_markdown

# the shipped presets: package data (pyproject.toml [tool.setuptools.package-data]); the
# package is installed unzipped, so the folder is a real path
PRESET_DIR = Path(str(resources.files("vidssl") / "presets" / "bench"))
DEFAULT_PRESET = "cpu"
CELL_NAME = "cell.json"  # the settings of a started cell
TRAIN_NAME = "train.json"  # a cell whose training finished
RESULT_NAME = "result.json"  # a finished cell
PRESET_KEYS = frozenset(
    {
        "base",
        "description",
        "methods",
        "seeds",
        "threads",
        "pretrain",
        "overrides",
        "supervised",
        "eval",
    }
)
MAX_BASE_DEPTH = 4  # presets built on presets built on ...: deeper is a cycle or a mistake
EVAL_KEYS = frozenset({"protocols", "split", "settings"})
# one dataset for the whole table: per-row overrides may not change these data fields
SHARED_DATA_FIELDS = ("dataset", "root", "subset", "args")

RANDOM_ROW = "random"
SUPERVISED_ROW = "supervised"
# row kind -> the `vidssl` command that trains it (a kind without one is evaluated untrained)
TRAIN_COMMANDS: dict[str, str] = {"pretrain": "pretrain", "supervised": "train-supervised"}

# ---------------------------------------------------------------------------------- preset


def preset_path(name: str) -> Path:
    """The shipped preset ``vidssl/presets/bench/<name>.yaml``; the error lists them."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml")) if PRESET_DIR.is_dir() else []
        raise BenchError(f"--preset: no preset {name!r} in {PRESET_DIR}; choose from {known}")
    return path


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise BenchError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def read_preset_file(path: Path, depth: int = 0) -> dict[str, Any]:
    """The preset's mapping with its ``base:`` applied.

    ``base: NAME`` builds on ``NAME.yaml`` in the same folder, else on the shipped preset
    ``NAME`` (so a user's preset can start from ``cpu``): this file's keys merge over
    the base's (nested mappings merge, anything else replaces), except that a
    ``pretrain.data.dataset`` given here replaces the base's dataset fields (``dataset``,
    ``root``, ``subset``, ``args``: the builder arguments of one dataset mean nothing to
    another)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise BenchError(f"{path}: not valid YAML: {err}") from err
    raw = _mapping(raw, str(path))
    if set(raw) - PRESET_KEYS:
        raise BenchError(
            f"{path}: unknown key(s) {sorted(set(raw) - PRESET_KEYS)}; expected "
            f"{sorted(PRESET_KEYS)}"
        )
    if "base" not in raw:
        return raw
    name = raw.pop("base")
    if not isinstance(name, str) or not name or "/" in name:
        raise BenchError(f"{path}: base: expected a preset name, got {name!r}")
    found = [p for p in (path.parent / f"{name}.yaml", PRESET_DIR / f"{name}.yaml") if p.is_file()]
    if not found:
        raise BenchError(
            f"{path}: base: no preset {name!r} next to it or among the shipped ({PRESET_DIR})"
        )
    base_path = found[0]
    if depth >= MAX_BASE_DEPTH:
        raise BenchError(f"{path}: base: more than {MAX_BASE_DEPTH} presets deep (a cycle?)")
    base = read_preset_file(base_path, depth + 1)
    data = _mapping(_mapping(raw.get("pretrain"), f"{path}: pretrain").get("data"), "data")
    if "dataset" in data and isinstance(base.get("pretrain"), dict):
        base_data = _mapping(base["pretrain"].get("data"), f"{base_path}: pretrain.data")
        base["pretrain"]["data"] = {
            k: v for k, v in base_data.items() if k not in SHARED_DATA_FIELDS
        }
    return deep_merge(base, raw)


def load_preset(path: str | Path) -> Preset:
    """Read and shape-check a preset file (run configs are validated per cell by the plan)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"--config: file not found: {path}")
    raw = read_preset_file(path)
    methods = raw.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise BenchError(f"{path}: methods: expected a non-empty list of method names")
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise BenchError(f"{path}: seeds: expected an integer >= 1, got {seeds!r}")
    overrides = _mapping(raw.get("overrides"), f"{path}: overrides")
    ev = _mapping(raw.get("eval"), f"{path}: eval")
    if set(ev) - EVAL_KEYS:
        raise BenchError(
            f"{path}: eval: unknown key(s) {sorted(set(ev) - EVAL_KEYS)}; expected "
            f"{sorted(EVAL_KEYS)}"
        )
    protocols = ev.get("protocols", ["retrieval", "linear"])
    if not isinstance(protocols, list) or not all(isinstance(p, str) for p in protocols):
        raise BenchError(f"{path}: eval.protocols: expected a list of protocol names")
    threads = raw.get("threads", 0)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise BenchError(f"{path}: threads: expected an integer >= 0, got {threads!r}")
    split = ev.get("split", 1)
    if isinstance(split, bool) or split not in (1, 2, 3):
        raise BenchError(f"{path}: eval.split: expected 1, 2 or 3, got {split!r}")
    return Preset(
        path=path,
        description=str(raw.get("description", "")).strip(),
        methods=list(methods),
        seeds=seeds,
        threads=threads,
        pretrain=_mapping(raw.get("pretrain"), f"{path}: pretrain"),
        overrides={k: _mapping(v, f"{path}: overrides.{k}") for k, v in overrides.items()},
        supervised=_mapping(raw.get("supervised"), f"{path}: supervised"),
        protocols=list(protocols),
        split=split,
        eval_settings=_mapping(ev.get("settings"), f"{path}: eval.settings"),
    )


# ---------------------------------------------------------------------------------- plan


def _row_config(preset: Preset, sections: dict[str, Any], where: str) -> Config:
    """Validated run config ``pretrain`` <- ``sections``; errors name the preset field."""
    for name in SHARED_DATA_FIELDS:
        if name in sections.get("data", {}):
            raise BenchError(
                f"{preset.path}: {where}.data.{name}: every row is evaluated on one dataset; "
                "set it in pretrain.data"
            )
    try:
        return config_from_dict(deep_merge(preset.pretrain, sections), check=True)
    except ConfigError as err:
        raise BenchError(f"{preset.path}: {where}: {err}") from err


def row_method(row: str, override: dict[str, Any]) -> str:
    """The method a row trains: its override's ``method.name`` (a variant such as
    ``pretext-rotation: {method: {name: pretext, tasks: [rotation]}}``), else the row's name."""
    method = override.get("method")
    name = method.get("name") if isinstance(method, dict) else None
    return str(name) if name is not None else row


def _seeded_config(
    preset: Preset, where: str, seed: int, sections: dict[str, Any], at: str
) -> Config:
    """:func:`_row_config` of ``sections`` trained with ``seed``; ``at`` extends ``where``."""
    return _row_config(preset, deep_merge(sections, {"train": {"seed": seed}}), where + at)


def make_bench(
    preset: Preset,
    out: Path,
    *,
    methods: Sequence[str] | None = None,
    seeds: int | None = None,
    finetune: bool = False,
) -> Bench:
    """Apply the command-line choices and check everything shared (before any work)."""
    from vidssl.app.evaluate import check_protocols, eval_config_from_dict
    from vidssl.methods import METHODS
    from vidssl.models.backbones import BACKBONES

    preset = dataclasses.replace(preset)
    if methods is not None:
        if not methods:
            raise BenchError("--methods: give at least one method name")
        preset.methods = list(methods)
    if seeds is not None:
        if seeds < 1:
            raise BenchError(f"--seeds: must be >= 1, got {seeds}")
        preset.seeds = seeds
    where = "--methods" if methods is not None else f"{preset.path}: methods"
    for key, override in preset.overrides.items():  # variants name their method
        base = row_method(key, override)
        if base not in METHODS:
            raise BenchError(
                f"{preset.path}: overrides.{key}: unknown method {base!r} (a row that is not "
                f"a method name sets method.name); choose from {sorted(METHODS)}"
            )
        if key in METHODS and base != key:
            raise BenchError(
                f"{preset.path}: overrides.{key}.method.name: {base!r} differs from the "
                "method's own name; give the variant a row name of its own"
            )
    for name in preset.methods:
        if name in (RANDOM_ROW, SUPERVISED_ROW):
            raise BenchError(f"{where}: {name!r} is always in the table as its own row")
        if name not in METHODS and name not in preset.overrides:
            raise BenchError(
                f"{where}: unknown method {name!r}; choose from {sorted(METHODS)} or a variant "
                f"in overrides ({sorted(set(preset.overrides) - set(METHODS))})"
            )
    if len(set(preset.methods)) != len(preset.methods):
        raise BenchError(f"{where}: a method is listed twice")
    try:
        protocols = check_protocols([*preset.protocols, *(["finetune"] if finetune else [])])
        eval_cfg = eval_config_from_dict(preset.eval_settings, "eval.settings")
        base = config_from_dict(deep_merge(preset.pretrain, {"method": {}}), check=False)
    except ConfigError as err:
        raise BenchError(f"{preset.path}: {err}") from err
    if base.model.backbone not in BACKBONES:  # the random-init row's backbone
        raise BenchError(
            f"{preset.path}: pretrain.model.backbone: unknown backbone {base.model.backbone!r}; "
            f"choose from {sorted(BACKBONES)}"
        )
    eval_cfg = dataclasses.replace(eval_cfg, cache_dir=eval_cfg.cache_dir or str(out / "cache"))
    return Bench(preset, out, protocols, eval_cfg, base)


def _num_classes(bench: Bench) -> int:
    """Classes of the shared training data's primary labels (the supervised row's head). Data
    that cannot be read (e.g. a file copy not written yet) is a :class:`BenchError`."""
    from vidssl.data.datasets import open_split

    d = bench.base.data
    try:
        index = open_split(d.dataset, d.root, d.subset, d.args).index
    except (OSError, ValueError) as err:
        raise BenchError(
            f"{bench.preset.path}: pretrain.data ({d.dataset} in {d.root or 'memory'!r}, "
            f"relative to {Path.cwd()}): {err}"
        ) from err
    return max(len(index.classes), max((item.label for item in index.items), default=-1) + 1)


def _row_sections(bench: Bench) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(row, kind, override or None, preset field) in table order; an override holds config
    sections over `pretrain` and the harness keys of :func:`bench_cells.split_override`."""
    preset = bench.preset
    rows: list[tuple[str, str, dict[str, Any] | None, str]] = [(RANDOM_ROW, "random", None, "")]
    for name in preset.methods:
        override = preset.overrides.get(name, {})
        sections = deep_merge(override, {"method": {"name": row_method(name, override)}})
        rows.append((name, "pretrain", sections, f"overrides.{name}"))
    supervised = deep_merge(preset.supervised, {"method": {"name": "supervised"}})
    supervised["method"].setdefault("num_classes", _num_classes(bench))
    rows.append((SUPERVISED_ROW, "supervised", supervised, "supervised"))
    return rows


# THREADS_IN_SPEC: the torch thread count changes a cell's numbers, not only its speed (the
# oneDNN kernels split their reductions by thread, so a run's trajectory differs bitwise from
# step 1: the CPU table's rows at two threads gave other figures than at one,
# docs/benchmarks.md "Time"). It enters the spec when it is not 1, the count every cell before
# this rule ran with, so those cells still count and a rerun at another count never mixes
# with them.


def plan_cells(bench: Bench) -> list[CellPlan]:
    """Every cell in table order (random, methods, supervised); run configs validated."""
    shared = {
        "data": decisive_settings(bench.base)["data"],
        "protocols": bench.protocols,
        "split": bench.preset.split,
        "eval": {k: v for k, v in dataclasses.asdict(bench.eval_cfg).items() if k != "cache_dir"},
    }
    plans = []
    for row, kind, override, where in _row_sections(bench):
        for seed in range(bench.preset.seeds):
            cell_dir = bench.out / "cells" / row / f"seed{seed}"
            stages: list[Stage] = []
            streams: tuple[str, ...] = ()
            text = None
            if override is None:
                model = bench.base.model
                run = {"backbone": model.backbone, "width": model.width, "seed": seed}
            else:
                field_of = f"{bench.preset.path}: {where}"
                harness = split_override(override, field_of)
                make = functools.partial(_seeded_config, bench.preset, where, seed)
                stages = plan_stages(cell_dir, harness.sections, harness.stages, make)
                streams, run = harness.streams, stage_spec(stages, cell_dir)
                settings = bench.preset.eval_settings
                text = plan_text(harness.text_protocols, settings, stages[-1].config, field_of)
            spec = {"kind": kind, "run": run, **shared}
            if bench.threads != 1:  # see THREADS_IN_SPEC
                spec["threads"] = bench.threads
            if streams:
                spec["streams"] = list(streams)
            if text:  # only cells with text protocols: the others' settings stay as they were
                spec["text"] = text.spec()
            config = stages[-1].config if stages else None
            cell = Cell(row, seed, kind)
            plans.append(CellPlan(cell, cell_dir, config, spec, stages, streams, text))
    return plans


def check_out_dir(plans: Sequence[CellPlan]) -> None:
    """Cells started before with other settings make the folder unusable: say which."""
    changed = []
    for plan in plans:
        path = plan.dir / CELL_NAME
        if path.is_file():
            try:
                old = json.loads(path.read_text()).get("spec_sha")
            except (OSError, json.JSONDecodeError):
                old = None
            if old != plan.spec_sha:
                changed.append(f"{plan.cell.row} seed {plan.cell.seed}")
    if changed:
        raise BenchError(
            f"--out: cells {', '.join(changed)} in {plans[0].dir.parents[2]} were run with other "
            "settings; use another --out folder (or delete those cells)"
        )


# ---------------------------------------------------------------------------------- running


def evaluate_cell(bench: Bench, plan: CellPlan, stream: str | None = None) -> list[EvalResult]:
    """The cell's results: its checkpoint (on ``stream`` of a two-stream checkpoint, when
    given), or a random init drawn from the cell's seed."""
    from vidssl.app.evaluate import evaluate
    from vidssl.eval.weights import Weights, read_weights

    data, seed, eval_cfg = bench.base.data, plan.cell.seed, bench.eval_cfg
    kwargs: dict[str, Any] = {"seeds": 1}
    checkpoint: str | Weights = str(plan.run_dir / CHECKPOINT_NAME)
    if stream:  # one stream of a two-stream checkpoint, read as a backbone of its own
        checkpoint = read_weights(checkpoint, stream=stream)
    if plan.config is None:  # random init: the shared backbone and clip settings
        checkpoint = "random"
        kwargs = {
            "seeds": seed + 1,  # evaluate() runs seeds 0..n-1; earlier ones hit the cache
            "backbone": bench.base.model.backbone,
            "width": bench.base.model.width,
        }
        eval_cfg = dataclasses.replace(
            eval_cfg,
            clip_len=eval_cfg.clip_len or data.clip_len,
            stride=eval_cfg.stride or data.stride,
            size=eval_cfg.size or data.size,
        )
    results = evaluate(
        checkpoint,
        protocols=bench.protocols,
        dataset=data.dataset,
        root=data.root or None,
        dataset_args=dict(data.args),
        split=bench.preset.split,
        out_dir=stream_out_dir(plan.run_dir, stream),
        eval_cfg=eval_cfg,
        **kwargs,
    )
    keep = seed if plan.config is None else 0
    return [r for r in results if r.seed == keep]


def run_cell(bench: Bench, plan: CellPlan) -> dict[str, Any]:
    """Train (if the row trains), evaluate, write ``result.json``; returns the record."""
    plan.dir.mkdir(parents=True, exist_ok=True)
    cell_file = plan.dir / CELL_NAME
    cell_file.write_text(json.dumps({"spec_sha": plan.spec_sha, "spec": plan.spec}, indent=2))
    command = TRAIN_COMMANDS.get(plan.cell.kind)
    threads = bench.threads
    train = None
    if command:
        train = train_cell(plan.stages, command, threads, plan.dir / TRAIN_NAME)
    start = time.perf_counter()
    by_stream = {s: evaluate_cell(bench, plan, s) for s in plan.streams}
    results = [] if plan.streams else evaluate_cell(bench, plan)
    if plan.text:
        results += evaluate_text_protocols(plan.text, plan.run_dir)
    record = cell_record(bench, plan, train, results, time.perf_counter() - start, by_stream)
    (plan.dir / RESULT_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return record


def load_record(plan: CellPlan) -> dict[str, Any] | None:
    """The finished cell's record, or None (not finished, other settings, unreadable)."""
    path = plan.dir / RESULT_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("spec_sha") == plan.spec_sha else None


def run_bench(bench: Bench, plans: Sequence[CellPlan], *, run: bool = True) -> list[dict[str, Any]]:
    """Run every unfinished cell (``run=False``: only collect finished ones); a failing cell
    gets a record with ``error`` and the others go on."""
    import torch

    records: list[dict[str, Any] | None] = [load_record(p) for p in plans]
    todo = [i for i, r in enumerate(records) if r is None] if run else []
    threads_before = torch.get_num_threads()
    torch.set_num_threads(bench.threads)  # for the evaluations
    bar = ProgressBar(
        total=len(plans), initial=len(plans) - len(todo), desc="bench", unit="cell",
        dynamic_ncols=True, disable=not todo,
    )  # fmt: skip
    try:
        for i in todo:
            plan = plans[i]
            what = "training + evaluating" if plan.config is not None else "evaluating"
            ProgressBar.write(
                f"bench: [{i + 1}/{len(plans)}] {plan.cell.label}, seed {plan.cell.seed}: {what}"
            )
            try:
                records[i] = run_cell(bench, plan)
            except Exception as err:  # one broken cell must not stop the table
                traceback.print_exc()
                message = f"{type(err).__name__}: {err}"
                ProgressBar.write(
                    f"bench: {plan.cell.label}, seed {plan.cell.seed} FAILED: {message}"
                )
                records[i] = {**cell_record(bench, plan, None, [], 0.0), "error": message}
            bar.update(1)
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
    return [
        r if r is not None else {**cell_record(bench, p, None, [], 0.0), "error": NOT_RUN}
        for p, r in zip(plans, records)
    ]


# ---------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--preset",
        default=None,
        metavar="NAME",
        help=f"preset shipped in vidssl/presets/bench/ (tiny: tests, cpu: the real table; "
        f"default {DEFAULT_PRESET}; see --list-presets)",
    )
    which.add_argument(
        "--list-presets",
        action="store_true",
        help="list the shipped presets (each one read and checked) and exit",
    )
    which.add_argument("--config", default=None, metavar="FILE", help="a preset YAML file")
    parser.add_argument(
        "--methods", default=None, metavar="A,B,C", help="methods to run (default: the preset's)"
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default: preset)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default runs/bench-<preset>)"
    )
    parser.add_argument(
        "--finetune", action="store_true", help="also fine-tune every row end to end"
    )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="write the table from the finished cells without running anything",
    )


def command_line(args: argparse.Namespace) -> str:
    """The `vidssl bench` invocation that reproduces this run."""
    parts = ["vidssl", "bench"]
    parts += (
        ["--config", args.config] if args.config else ["--preset", args.preset or DEFAULT_PRESET]
    )
    if args.methods:
        parts += ["--methods", args.methods]
    if args.seeds is not None:
        parts += ["--seeds", str(args.seeds)]
    if args.out is not None:
        parts += ["--out", str(args.out)]
    if args.finetune:
        parts.append("--finetune")
    return shlex.join(parts)


def list_presets() -> int:
    """Print every shipped preset (name, methods, seeds, file), each read and shape-checked."""
    paths = sorted(PRESET_DIR.glob("*.yaml"), key=lambda p: p.stem)  # by name: cpu before cpu-files
    if not paths:
        print(f"vidssl bench: no presets in {PRESET_DIR}", file=sys.stderr)
        return 2
    try:
        for path in paths:
            preset = load_preset(path)
            print(f"{path.stem}\t{len(preset.methods)} methods x {preset.seeds} seed(s)\t{path}")
    except BenchError as err:
        print(f"vidssl bench: {err}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_presets:
        return list_presets()
    start = time.perf_counter()
    try:
        path = Path(args.config) if args.config else preset_path(args.preset or DEFAULT_PRESET)
        preset = load_preset(path)
        out = args.out or Path("runs") / f"bench-{path.stem}"
        methods = (
            [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
        )
        bench = make_bench(preset, out, methods=methods, seeds=args.seeds, finetune=args.finetune)
        plans = plan_cells(bench)
        check_out_dir(plans)
    except BenchError as err:
        print(f"vidssl bench: {err}", file=sys.stderr)
        return 2
    finished_before = sum(load_record(p) is not None for p in plans)
    records = run_bench(bench, plans, run=not args.table_only)
    ran = sum("error" not in r for r in records) > finished_before or any(
        r.get("error") not in (None, NOT_RUN) for r in records
    )
    total_s = time.perf_counter() - start if ran else None
    threads = bench.threads
    table = write_outputs(bench, records, command_line(args), total_s, threads=threads)
    print(to_markdown(table))
    print(f"vidssl bench: wrote {out / 'bench.md'} and {out / 'bench.html'}")
    failed = [r for r in records if "error" in r]
    if failed:
        print(
            f"vidssl bench: {len(failed)} cell(s) did not finish; rerun to retry", file=sys.stderr
        )
    return 1 if failed else 0
