"""Saved outputs of the tiny preset, normalised so that two runs can be compared.

The fixtures in ``tests/fixtures/tiny_outputs/`` were written by the evaluation code as it was
before protocols moved into the library (issue 13), with::

    vidssl bench --preset tiny --out B
    vidssl eval all --checkpoint random --backbone r3d_18 --width 0.125 --out E <EVAL_ARGS>
    vidssl report E
    python tests/tiny_outputs.py B E tests/fixtures/tiny_outputs

``test_tiny_outputs.py`` regenerates a subset and compares it with them. Normalising drops what
changes from run to run or folder to folder and is no result: timings, memory, commands, the
folders (replaced by ``<OUT>``), the checkpoint digests (the checkpoint records its folder),
the report's date; in ``bench.md`` only the table (minus its timing columns) and the notes.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

# `vidssl eval` settings of the saved `eval all` run (a random init of the tiny preset's backbone)
EVAL_ARGS: tuple[str, ...] = (
    "num_clips=2",
    "batch_size=8",
    "workers=0",
    "ks=[1,5]",
    "linear_epochs=5",
    "linear_batch_size=8",
    "num_examples=2",
    "finetune_max_steps=2",
    "finetune_batch_size=4",
    "progress=false",
    "data.num_videos=32",
    "data.frames=40",
    "data.size=32",
)
RANDOM_ARGS: tuple[str, ...] = (
    "--checkpoint",
    "random",
    "--backbone",
    "r3d_18",
    "--width",
    "0.125",
)
DROPPED_KEYS = frozenset(
    {"eval_s", "wall_s", "cells_s", "train", "command", "preset", "run_dir", "weights_sha256"}
)
TIMING_COLUMNS = frozenset({"train (min)", "clips/s", "peak RSS (MB)"})


def normalise(value: Any, out: str) -> Any:
    """``value`` (parsed JSON) without run-dependent keys, with ``out`` replaced by ``<OUT>``."""
    if isinstance(value, dict):
        return {k: normalise(v, out) for k, v in value.items() if k not in DROPPED_KEYS}
    if isinstance(value, list):
        return [normalise(v, out) for v in value]
    if isinstance(value, str):
        return value.replace(out, "<OUT>")
    return value


def bench_json(path: Path, out: str) -> dict[str, Any]:
    """``bench.json`` normalised; the rows' timing columns removed."""
    data = normalise(json.loads(path.read_text()), out)
    keep = [i for i, c in enumerate(data["columns"]) if c not in TIMING_COLUMNS]
    data["columns"] = [data["columns"][i] for i in keep]
    data["rows"] = [[row[i] for i in keep] for row in data["rows"]]
    return data


def bench_md(path: Path) -> list[str]:
    """The table of ``bench.md`` without its timing columns, and the notes paragraph."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ")]
    cells = [line.strip("|").split(" | ") for line in lines]
    keep = [i for i, c in enumerate(cells[0]) if c.strip() not in TIMING_COLUMNS]
    table = ["|".join(row[i].strip() for i in keep) for row in cells]
    notes = [line for line in path.read_text().splitlines() if line.startswith("Metrics in %")]
    return table + notes


def report_html(path: Path, out: str) -> str:
    """``report.html`` without the date it was generated and with ``out`` -> ``<OUT>``."""
    text = path.read_text().replace(out, "<OUT>")
    return re.sub(r" · generated [^<]*", "", text)


def eval_dir(folder: Path, out: str) -> dict[str, Any]:
    """Every result file of ``folder/eval`` by name, normalised."""
    return {
        p.name: normalise(json.loads(p.read_text()), out)
        for p in sorted((folder / "eval").glob("*.json"))
    }


def assert_close(got: Any, want: Any, where: str = "") -> None:
    """Equal, floats to 1e-6."""
    if isinstance(want, float) or isinstance(got, float):
        assert isinstance(got, (int, float)) and math.isclose(got, want, abs_tol=1e-6), (
            f"{where}: {got} != {want}"
        )
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), f"{where}: keys {list(got)}"
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def save(bench: Path, evaluated: Path, target: Path) -> None:
    """Write the fixtures from a finished bench folder and an `eval all` + report folder."""
    target.mkdir(parents=True, exist_ok=True)
    dump = {"ensure_ascii": False, "indent": 1, "sort_keys": False}
    (target / "bench.json").write_text(
        json.dumps(bench_json(bench / "bench.json", str(bench)), **dump)
    )
    (target / "bench.md").write_text("\n".join(bench_md(bench / "bench.md")) + "\n")
    evals = eval_dir(evaluated, str(evaluated))
    (target / "eval_random.json").write_text(json.dumps(evals, **dump))
    (target / "report_random.html").write_text(
        report_html(evaluated / "report.html", str(evaluated))
    )


if __name__ == "__main__":
    save(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
