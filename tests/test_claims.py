"""benchmarks/claims.py: the papers' claims judged from a bench folder's finished cells."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vidssl.app import bench_table
from vidssl.app.bench_plan import Bench, Cell, CellPlan
from vidssl.config import Config
from vidssl.eval.stats import EvalResult

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "claims.py"


@pytest.fixture(scope="module")
def claims() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_claims", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _linear(motion: float, appearance: float) -> list[EvalResult]:
    return [
        EvalResult("linear", "1", {"top1": motion, "top5": 1.0}, seed=0, label_set="motion"),
        EvalResult(
            "linear", "1", {"top1": appearance, "top5": 1.0}, seed=0, label_set="appearance"
        ),
    ]


def _retrieval(r1: float) -> EvalResult:
    return EvalResult("retrieval", "1", {"R@1": r1, "R@5": 0.9}, seed=0, label_set="motion")


def _text(protocol: str, top1: float) -> EvalResult:
    info = {"classes": ["a", "b"], "chance_top1": 0.5, "num_clips": 5, "num_crops": 3}
    return EvalResult(protocol, "1", {"top1": top1}, seed=0, label_set="motion", info=info)


def _write(
    out: Path,
    row: str,
    seed: int,
    results: Sequence[EvalResult] = (),
    by_stream: dict[str, list[EvalResult]] | None = None,
    kind: str = "pretrain",
) -> None:
    """A finished cell's result.json, as `vidssl bench` writes it (bench_table.cell_record)."""
    cell_dir = out / "cells" / row / f"seed{seed}"
    plan = CellPlan(
        Cell(row, seed, kind),
        cell_dir,
        Config(),
        {"row": row, "seed": seed},
        streams=tuple(by_stream or ()),
    )
    bench = Bench(None, out, ["retrieval", "linear"], None, Config())  # type: ignore[arg-type]
    train = {"wall_s": 60.0, "peak_rss_mb": 400.0, "clips_per_s": 100.0, "steps": 10}
    record = bench_table.cell_record(bench, plan, train, list(results), 1.0, by_stream)
    cell_dir.mkdir(parents=True)
    (cell_dir / "result.json").write_text(json.dumps(record, indent=2) + "\n")


def _rows(out: Path, name: str, values: Sequence[Any], make: Any) -> None:
    for seed, value in enumerate(values):
        _write(out, name, seed, make(value))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "bench"
    # (motion, appearance) linear top-1 per seed
    _rows(out, "cstp-simclr", [(0.60, 0.70), (0.62, 0.75), (0.64, 0.80)], lambda v: _linear(*v))
    _rows(
        out,
        "cstp-simclr-ctr-only",
        [(0.40, 0.72), (0.42, 0.74), (0.44, 0.76)],
        lambda v: _linear(*v),
    )
    _rows(out, "cvrl-same-time", [(0.40, 0.72)], lambda v: _linear(*v))  # claim 4
    _rows(out, "cstp", [(0.30, 0.5), (0.32, 0.5), (0.34, 0.5)], lambda v: _linear(*v))
    _rows(out, "cstp-ctr-only", [(0.50, 0.5), (0.52, 0.5), (0.54, 0.5)], lambda v: _linear(*v))
    _rows(out, "cstp-moco", [(0.5, 0.5)] * 3, lambda v: _linear(*v))
    _rows(out, "cstp-moco-ctr-only", [(0.2, 0.5)], lambda v: _linear(*v))  # one seed only
    # the untrained network (motion 30.0 +- 2.0), and a CSTP part within 2 stds of it like cstp
    for seed, motion in enumerate((0.28, 0.30, 0.32)):
        _write(out, "random", seed, _linear(motion, 0.5), kind="random")
    _rows(out, "cstp-no-stor", [(0.31, 0.5), (0.33, 0.5), (0.35, 0.5)], lambda v: _linear(*v))
    # a two-stream row: one cell per seed, evaluated per stream
    for seed in range(3):
        by_stream = {
            "rgb": [*_linear(0.30 + 0.01 * seed, 0.7), _retrieval(0.35)],
            "flow": [*_linear(0.80 + 0.02 * seed, 0.4), _retrieval(0.75)],
            "both": [*_linear(0.31 + 0.01 * seed, 0.6), _retrieval(0.36)],
        }
        _write(out, "cvtcl", seed, by_stream=by_stream)
    # text protocols after the usual ones; xclip-names has no zero-shot result
    for seed in range(3):
        xclip = [*_linear(0.2, 0.9), _text("closed-set", 0.30 + 0.01 * seed)]
        _write(out, "xclip", seed, [*xclip, _text("zeroshot", 0.55 + 0.05 * seed)])
        _write(out, "xclip-names", seed, [*_linear(0.2, 0.9), _text("closed-set", 0.20)])
    return out


def _verdicts(claims: ModuleType, out: Path) -> dict[tuple[str, str, str], list[str]]:
    """(better row, other row, metric title) -> [better, other, difference, verdict]."""
    records, skipped = claims.load_records(out)
    assert not skipped
    table = claims.claims_table(claims.rows_by_label(records))
    assert table.columns[2:5] == ["better row", "other row", "metric"]
    return {(r[2], r[3], r[4]): r[5:] for r in table.rows}


def test_each_verdict_where_it_belongs(claims: ModuleType, folder: Path) -> None:
    got = _verdicts(claims, folder)
    holds = got[("cstp-simclr", "cstp-simclr-ctr-only", "linear top-1 motion")]
    assert holds == ["62.0 ± 2.0 (3 seeds)", "42.0 ± 2.0 (3 seeds)", "+20.0 (2.0)", "holds"]
    fails = got[("cstp", "cstp-ctr-only", "linear top-1 motion")]
    assert fails[2:] == ["-20.0 (2.0)", "does not hold"]
    # +1.0 within std 5.0
    tie = got[("cstp-simclr", "cstp-simclr-ctr-only", "linear top-1 appearance")]
    assert tie == ["75.0 ± 5.0 (3 seeds)", "74.0 ± 2.0 (3 seeds)", "+1.0 (5.0)", "tie"]
    undecided = got[("cstp-moco", "cstp-moco-ctr-only", "linear top-1 motion")]
    assert undecided[1] == "20.0 (1 seed)" and undecided[3] == "not decided (3 vs 1 seeds)"
    assert got[("cstp-simsiam", "cstp-simsiam-ctr-only", "linear top-1 motion")][3] == (
        "not run (cstp-simsiam, cstp-simsiam-ctr-only)"
    )
    assert got[("cvrl", "cvrl-same-time", "R@1 motion")] == ["–", "–", "–", "not run (cvrl)"]
    # both within 2 stds of the random init (30.0 +- 2.0): the verdict says the pair is no test
    floor = got[("cstp", "cstp-no-stor", "linear top-1 motion")]
    assert floor[3] == "tie (both rows at the random init's level: not tested)"
    # (cstp vs cstp-ctr-only above is an ordinary verdict: cstp-ctr-only, 52.0, is above it)
    # appearance: the random init has 50.0 +- 0.0 there, and so do cstp and cstp-no-stor
    assert got[("cstp", "cstp-no-stor", "linear top-1 appearance")][3] == (
        "tie (both rows at the random init's level: not tested)"
    )
    # every claim has a line; none the table cannot judge
    assert len(got) == len(claims.CLAIMS)


def test_stream_rows_are_read_per_stream(claims: ModuleType, folder: Path) -> None:
    got = _verdicts(claims, folder)
    flow = got[("cvtcl (flow)", "cvtcl (rgb)", "linear top-1 motion")]
    assert flow == ["82.0 ± 2.0 (3 seeds)", "31.0 ± 1.0 (3 seeds)", "+51.0 (2.0)", "holds"]
    both = got[("cvtcl (rgb+flow)", "cvtcl (rgb)", "R@1 motion")]
    assert both == ["36.0 ± 0.0 (3 seeds)", "35.0 ± 0.0 (3 seeds)", "+1.0 (0.0)", "holds"]
    assert got[("cvtcl (rgb)", "cvtcl-init (rgb)", "R@1 motion")][3] == "not run (cvtcl-init (rgb))"


def test_text_protocol_rows_are_read(claims: ModuleType, folder: Path) -> None:
    got = _verdicts(claims, folder)
    closed = got[("xclip", "xclip-names", "closed-set top-1 motion")]
    assert closed == ["31.0 ± 1.0 (3 seeds)", "20.0 ± 0.0 (3 seeds)", "+11.0 (1.0)", "holds"]
    zeroshot = got[("xclip", "xclip-names", "zero-shot top-1 motion")]
    assert zeroshot == ["60.0 ± 5.0 (3 seeds)", "–", "–", "not measured"]


def test_main_prints_the_table_and_skips_a_cell_being_written(
    claims: ModuleType, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    partial = folder / "cells" / "cvrl" / "seed0"
    partial.mkdir(parents=True)
    (partial / "result.json").write_text('{"schema": "vidssl.bench/1", "row"')
    assert claims.main(["--out", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "cvrl/seed0/result.json: unreadable" in err
    assert "(32 finished cells)" in out
    assert (
        "| 3. CSTP improves SimCLR | CSTP | cstp-simclr | cstp-simclr-ctr-only | linear top-1 motion |"
        in out
    )
    assert "not run (cvrl)" in out
    assert claims.main(["--out", str(folder / "nothing")]) == 2
