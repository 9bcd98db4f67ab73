"""The tiny preset's result files, tables and report equal those saved before the evaluation
redesign (issue 13): ``tests/fixtures/tiny_outputs/``, written as ``tests/tiny_outputs.py`` says.

The full tiny bench takes minutes; these tests regenerate a subset of its rows (random init,
simclr and the supervised row; xclip with its text protocols in the slow test) and compare
them, floats to 1e-6, with the same rows of the saved outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import tiny_outputs as saved
from vidssl.app.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "src" / "vidssl" / "presets" / "bench" / "tiny.yaml"
FIXTURES = Path(__file__).parent / "fixtures" / "tiny_outputs"


# one thread, also for the engine's train.threads auto rule: the saved outputs were made so,
# and fine-tuning's result depends on the thread count (float reduction order)
pytestmark = pytest.mark.usefixtures("one_thread")


def _bench(tmp_path: Path, methods: list[str]) -> Path:
    preset = yaml.safe_load(TINY.read_text())
    preset["methods"] = methods
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(preset))
    out = tmp_path / "bench"
    assert main(["bench", "--config", str(config), "--out", str(out)]) == 0
    return out


def _compare_bench(out: Path, labels: list[str]) -> None:
    """Rows ``labels`` of the regenerated bench equal the saved rows, column by column."""
    want = json.loads((FIXTURES / "bench.json").read_text())
    got = saved.bench_json(out / "bench.json", str(out))
    want_rows = {row[0]: dict(zip(want["columns"], row)) for row in want["rows"]}
    got_rows = {row[0]: dict(zip(got["columns"], row)) for row in got["rows"]}
    assert list(got_rows) == labels
    for label, row in got_rows.items():
        assert row == {c: want_rows[label][c] for c in got["columns"]}, label
    want_cells = {(c["row"], c["seed"]): c for c in want["cells"]}
    for cell in got["cells"]:
        saved.assert_close(cell, want_cells[cell["row"], cell["seed"]], cell["row"])
    # bench.md: the same rows in the same columns
    want_md = [line.split("|") for line in (FIXTURES / "bench.md").read_text().splitlines()[:-1]]
    got_md = [line.split("|") for line in saved.bench_md(out / "bench.md")[:-1]]
    want_by_label = {row[0]: dict(zip(want_md[0], row)) for row in want_md[1:]}
    for row in got_md[1:]:
        assert dict(zip(got_md[0], row)) == {c: want_by_label[row[0]][c] for c in got_md[0]}


def test_random_simclr_and_supervised_rows_and_eval_all_equal_the_saved_outputs(
    tmp_path: Path,
) -> None:
    out = _bench(tmp_path, ["simclr"])
    _compare_bench(out, ["random init", "simclr", "supervised (from scratch)"])

    # every backbone protocol (retrieval, linear, kNN, fine-tune) of `vidssl eval all`, and
    # the report drawn from its folder
    run = tmp_path / "ev-random"  # the saved report shows the folder name
    assert main(["eval", "all", *saved.RANDOM_ARGS, "--out", str(run), *saved.EVAL_ARGS]) == 0
    assert main(["report", str(run)]) == 0
    want = json.loads((FIXTURES / "eval_random.json").read_text())
    saved.assert_close(saved.eval_dir(run, str(run)), want, "eval")
    report = saved.report_html(run / "report.html", str(run))
    assert report == (FIXTURES / "report_random.html").read_text()


@pytest.mark.slow
def test_xclip_row_with_text_protocols_equals_the_saved_outputs(tmp_path: Path) -> None:
    out = _bench(tmp_path, ["xclip"])
    _compare_bench(out, ["random init", "xclip", "supervised (from scratch)"])
    # the notes' sentence on the text columns (classes, chance level, views)
    notes = saved.bench_md(out / "bench.md")[-1]
    want = (FIXTURES / "bench.md").read_text().splitlines()[-1]
    assert notes[notes.index("xclip: ") :] == want[want.index("xclip: ") :]
