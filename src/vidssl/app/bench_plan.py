"""The data types of a ``vidssl bench`` run: the parsed preset, the cells and their plans.

Shared by :mod:`vidssl.app.bench` (which builds and runs them) and :mod:`vidssl.app.bench_table`
(which draws the table), so that neither imports the other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidssl.app.bench_cells import Stage
from vidssl.app.bench_text import TextPlan
from vidssl.app.train.threads import auto_threads
from vidssl.config import Config

# row kind -> label in the table's first column ("{}" = the method name)
ROW_LABELS: dict[str, str] = {
    "random": "random init",
    "pretrain": "{}",
    "supervised": "supervised (from scratch)",
}


@dataclass
class Preset:
    """A parsed bench preset (the YAML layout: :mod:`vidssl.app.bench`'s docstring)."""

    path: Path
    description: str
    methods: list[str]
    seeds: int
    threads: int
    pretrain: dict[str, Any]
    overrides: dict[str, dict[str, Any]]
    supervised: dict[str, Any]
    protocols: list[str]
    split: int
    eval_settings: dict[str, Any]


@dataclass(frozen=True)
class Cell:
    """One (row, seed) of the table; ``kind`` is a key of :data:`ROW_LABELS`."""

    row: str
    seed: int
    kind: str

    @property
    def label(self) -> str:
        return ROW_LABELS[self.kind].format(self.row)


@dataclass
class CellPlan:
    """A cell, its folder, its resolved run config (``None``: not trained; the last stage's
    for a staged cell), its settings, its training stages and its evaluation streams."""

    cell: Cell
    dir: Path
    config: Config | None
    spec: dict[str, Any]  # everything that decides the cell's numbers
    stages: list[Stage] = field(default_factory=list)  # child runs in order ([]: not trained)
    streams: tuple[str, ...] = ()  # evaluation streams, one table row each (): one row
    text: TextPlan | None = None  # text protocols run after the others (None: none)

    @property
    def run_dir(self) -> Path:
        """The run folder whose ``last.pt`` is evaluated (the last stage's)."""
        return self.stages[-1].run_dir if self.stages else self.dir / "run"

    @property
    def spec_sha(self) -> str:
        text = json.dumps(self.spec, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Bench:
    """What every cell shares: the preset (after --methods / --seeds), out folder, eval."""

    preset: Preset
    out: Path
    protocols: list[str]
    eval_cfg: Any  # vidssl.app.evaluate.EvalConfig
    base: Config  # the shared budget (`pretrain` sections), types checked

    @property
    def threads(self) -> int:
        """Torch threads of every training and evaluation process: the preset's ``threads``,
        else ``$OMP_NUM_THREADS``, else the cores its loader processes leave (the training
        loop's own rule, :func:`vidssl.app.train.threads.auto_threads`)."""
        return auto_threads(self.preset.threads, self.base.data.workers)
