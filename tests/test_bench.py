"""`vidssl bench`: presets, the plan, measured child processes, the table, resuming."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from vidssl.app import bench, bench_cells, bench_table
from vidssl.app.cli import main
from vidssl.eval.stats import EvalResult


def _result(protocol: str, label_set: str, metrics: dict[str, float], seed: int = 0) -> dict:
    return EvalResult(protocol, "1", metrics, seed=seed, label_set=label_set).to_json()


def _record(row: str, kind: str, seed: int, results: list[dict], **extra: Any) -> dict:
    return {
        "row": row,
        "label": bench.ROW_LABELS[kind].format(row),
        "kind": kind,
        "seed": seed,
        "backbone": "r3d_18",
        "width": 0.25,
        "train": None,
        "results": results,
        **extra,
    }


# ---------------------------------------------------------------------------------- units


def test_table_means_and_stds_over_seeds_by_hand() -> None:
    train = {"wall_s": 120.0, "clips_per_s": 50.0, "peak_rss_mb": 500.0}
    records = [
        _record("random", "random", 0, [_result("retrieval", "motion", {"R@1": 0.1, "R@5": 0.3})]),
        _record(
            "simclr",
            "pretrain",
            0,
            [
                _result("retrieval", "motion", {"R@1": 0.40, "R@5": 0.70}),
                _result("linear", "motion", {"top1": 0.50, "top5": 0.9}),
                _result("linear", "appearance", {"top1": 0.90, "top5": 1.0}),
            ],
            train=train,
        ),
        _record(
            "simclr",
            "pretrain",
            1,
            [
                _result("retrieval", "motion", {"R@1": 0.60, "R@5": 0.80}, seed=0),
                _result("linear", "motion", {"top1": 0.70, "top5": 0.9}),
                _result("linear", "appearance", {"top1": 0.80, "top5": 1.0}),
            ],
            train={**train, "wall_s": 240.0, "peak_rss_mb": 700.0, "resumed": True},
        ),
        _record("supervised", "supervised", 0, [], error="CellFailed: exited with code 1"),
    ]
    table = bench_table.bench_table(bench_table.collect_rows(records), ["retrieval", "linear"])
    assert table.columns == [
        "method",
        "backbone",
        "seeds",
        "R@1 motion",
        "R@5 motion",
        "linear top-1 motion",
        "linear top-1 appearance",
        "train (min)",
        "clips/s",
        "peak RSS (MB)",
    ]
    random, simclr, supervised = table.rows
    assert random == ["random init", "r3d_18 ×0.25", "1", "10.0", "30.0", "–", "–", "–", "–", "–"]
    # R@1: mean 50, sample std of (40, 60) = 14.14; time: mean of 2 and 4 min, resumed -> *
    assert simclr == [
        "simclr",
        "r3d_18 ×0.25",
        "2",
        "50.0 ± 14.1",
        "75.0 ± 7.1",
        "60.0 ± 14.1",
        "85.0 ± 7.1",
        "3.0*",
        "50",
        "700",
    ]
    assert supervised[0] == "supervised (from scratch) (failed)" and supervised[2] == "0"
    assert set(supervised[3:]) == {"–"}


def test_read_throughput_is_the_median_of_step_records(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [
        {"kind": "step", "step": 10, "clips_per_s": 5.0},
        {"kind": "epoch", "step": 12, "clips_per_s": 1000.0},
        {"kind": "step", "step": 20, "clips_per_s": 30.0},
        {"kind": "step", "step": 30, "clips_per_s": 20.0},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + "not json\n")
    assert bench.read_throughput(path) == (20.0, 30)
    assert bench.read_throughput(tmp_path / "missing.jsonl") == (None, 0)


def test_run_measured_reports_exit_code_and_the_childs_peak_memory() -> None:
    # hold the peak for a moment: memory is sampled every 20 ms (a training run holds it for minutes)
    grow = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)"
    big = bench_cells.run_measured([sys.executable, "-c", grow])
    small = bench_cells.run_measured([sys.executable, "-c", "raise SystemExit(3)"])
    assert big.exit_code == 0 and small.exit_code == 3
    assert big.peak_rss_mb is not None and small.peak_rss_mb is not None
    assert big.peak_rss_mb >= 300 > small.peak_rss_mb
    # the parent's own memory is not counted: hold 400 MB here and measure a small child again
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])
    sleep = [sys.executable, "-c", "import time; time.sleep(0.2)"]
    assert bench_cells.run_measured(sleep).peak_rss_mb < 300
    del ballast
    assert big.wall_s > 0


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"data": {"size": 32, "args": {"a": 1}}, "method": {"tasks": [1, 2]}}
    out = bench.deep_merge(base, {"data": {"args": {"b": 2}}, "method": {"tasks": [3]}})
    assert out == {"data": {"size": 32, "args": {"a": 1, "b": 2}}, "method": {"tasks": [3]}}
    assert base["data"]["args"] == {"a": 1}  # not modified


# ---------------------------------------------------------------------------------- plan


def _tiny(tmp_path: Path, **changes: Any) -> Path:
    raw = yaml.safe_load((bench.PRESET_DIR / "tiny.yaml").read_text())
    raw.update(changes)
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_bench_threads_follow_the_training_loops_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    pretrain = yaml.safe_load((bench.PRESET_DIR / "tiny.yaml").read_text())["pretrain"]
    pretrain["data"]["workers"] = 3
    made = bench.make_bench(bench.load_preset(_tiny(tmp_path, pretrain=pretrain)), tmp_path)
    assert made.threads == 5  # 8 cores - 3 loader processes
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert made.threads == 2
    made = bench.make_bench(bench.load_preset(_tiny(tmp_path, threads=4)), tmp_path)
    assert made.threads == 4  # the preset's own count wins


def test_a_thread_count_other_than_one_changes_every_cells_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def plans(threads: int) -> list[Any]:
        monkeypatch.setenv("OMP_NUM_THREADS", str(threads))
        return bench.plan_cells(bench.make_bench(bench.load_preset(_tiny(tmp_path)), tmp_path))

    one, two = plans(1), plans(2)
    assert all("threads" not in p.spec for p in one)  # the cells run so far: one thread
    assert all(p.spec["threads"] == 2 for p in two)
    assert all(a.spec_sha != b.spec_sha for a, b in zip(one, two, strict=True))


def test_a_new_method_joins_the_table_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidssl.methods import METHODS

    monkeypatch.setitem(METHODS, "newmethod", METHODS["simclr"])
    path = _tiny(tmp_path, methods=["simclr", "newmethod"], seeds=2)
    preset = bench.load_preset(path)
    plans = bench.plan_cells(bench.make_bench(preset, tmp_path / "out"))
    rows = [(p.cell.row, p.cell.seed) for p in plans]
    assert rows == [(r, s) for r in ("random", "simclr", "newmethod", "supervised") for s in (0, 1)]
    new = next(p for p in plans if p.cell.row == "newmethod" and p.cell.seed == 1)
    assert new.config is not None and new.config.method.name == "newmethod"
    assert new.config.train.seed == 1
    assert new.config.train.out_dir == str(tmp_path / "out/cells/newmethod/seed1/run")
    supervised = next(p for p in plans if p.cell.row == "supervised")
    assert supervised.config is not None and supervised.config.method.name == "supervised"
    assert supervised.config.method.hparams["num_classes"] == 8  # the synthetic motions


def test_a_variant_row_trains_its_method_with_its_own_settings(tmp_path: Path) -> None:
    variant = {"method": {"name": "pretext", "tasks": ["rotation"]}}
    overrides = yaml.safe_load((bench.PRESET_DIR / "tiny.yaml").read_text())["overrides"]
    overrides["pretext-rotation"] = variant
    path = _tiny(tmp_path, methods=["simclr", "pretext-rotation"], overrides=overrides)
    plans = bench.plan_cells(bench.make_bench(bench.load_preset(path), tmp_path / "out"))
    rows = [p.cell.row for p in plans]
    assert rows == ["random", "simclr", "pretext-rotation", "supervised"]
    plan = plans[2]
    assert plan.config is not None and plan.config.method.name == "pretext"
    assert plan.config.method.hparams["tasks"] == ["rotation"]
    assert plan.cell.label == "pretext-rotation"
    assert plan.dir == tmp_path / "out/cells/pretext-rotation/seed0"
    # a method's own override keeps the settings (and hash) it had without the variant key
    plain = bench.plan_cells(
        bench.make_bench(bench.load_preset(_tiny(tmp_path, methods=["simclr"])), tmp_path / "o")
    )
    assert plain[1].cell.row == "simclr" and plain[1].spec_sha == plans[1].spec_sha


@pytest.mark.parametrize(
    "key, old, new", [("fix_predictor_lr", False, True), ("projector_layers", 2, 1)]
)
def test_a_later_setting_at_its_old_behaviour_keeps_the_cells_hash(
    tmp_path: Path, key: str, old: object, new: object
) -> None:
    # settings that came after the CPU table's SimSiam cells: at the old behaviour they are
    # left out of the spec (the cells still count); at another value they decide the numbers
    # and change the hash
    base = {"method": {"name": "simsiam", "hidden_dim": 16, "out_dim": 8}}
    shas = {}
    for label, extra in {"absent": {}, "off": {key: old}, "on": {key: new}}.items():
        overrides = {"simsiam": {"method": {**base["method"], **extra}}}
        (tmp_path / label).mkdir()
        path = _tiny(tmp_path / label, methods=["simsiam"], overrides=overrides)
        plans = bench.plan_cells(bench.make_bench(bench.load_preset(path), tmp_path / label / "o"))
        plan = next(p for p in plans if p.cell.row == "simsiam")
        shas[label] = plan.spec_sha
        assert (key in json.dumps(plan.spec)) == (label == "on")
    assert shas["absent"] == shas["off"] != shas["on"]


def test_per_method_overrides_apply_to_that_method_only(tmp_path: Path) -> None:
    preset = bench.load_preset(bench.PRESET_DIR / "cpu.yaml")
    plans = {p.cell.row: p for p in bench.plan_cells(bench.make_bench(preset, tmp_path))}
    assert plans["mtcl"].config.model.backbone == "r2plus1d_18_sta"
    assert plans["mtcl"].config.data.clip_len == 9
    assert plans["simclr"].config.model.backbone == "r3d_18"
    assert plans["simclr"].config.data.clip_len == 8
    assert plans["xclip"].config.train.channels_last is False
    assert plans["xclip"].config.optim.name == "adamw" and plans["byol"].config.optim.name == "sgd"
    assert plans["moco"].config.optim.lr == 0.03 and plans["simclr"].config.optim.lr == 0.05
    # one budget: every one-stage method without its own train.max_steps runs the shared
    # number of steps on the same data, and so does the supervised row; a staged method's
    # budget is per stage
    methods = [p.config for p in plans.values() if p.cell.kind == "pretrain"]
    own = {m for m, o in preset.overrides.items() if "max_steps" in o.get("train", {})}
    one_stage = [
        p.config
        for name, p in plans.items()
        if p.cell.kind == "pretrain" and len(p.stages) < 2 and name not in own
    ]
    assert len(one_stage) >= 7
    assert {c.train.max_steps for c in one_stage} == {preset.pretrain["train"]["max_steps"]}
    init, cotrain = (s.config for s in plans["cvtcl"].stages)
    stages = preset.overrides["cvtcl"]["stages"]
    assert [c.train.max_steps for c in (init, cotrain)] == [s["train"]["max_steps"] for s in stages]
    assert (init.method.hparams["stage"], cotrain.method.hparams["stage"]) == ("init", "cotrain")
    assert cotrain.method.hparams["init_checkpoint"] == str(
        tmp_path / "cells/cvtcl/seed0/run/stage0/last.pt"
    )
    assert init.optim.name == cotrain.optim.name == "adam" and init.optim.lr == 1.0e-3
    assert init.method.hparams["queue_size"] <= 384 and init.model.backbone == "r3d_18"
    assert plans["cvtcl"].streams == ("rgb", "flow", "both")
    assert plans["cvtcl"].config is cotrain  # the last stage's checkpoint is evaluated
    supervised = plans["supervised"].config
    assert supervised.train.max_steps == preset.pretrain["train"]["max_steps"]
    assert len({json.dumps(c.data.args, sort_keys=True) for c in [*methods, supervised]}) == 1


def test_a_preset_builds_on_its_base(tmp_path: Path) -> None:
    """`base:` merges the file over the named preset next to it; a new dataset replaces the
    base's dataset fields (its builder args mean nothing to another dataset)."""
    base = _tiny(tmp_path)
    tiny = bench.load_preset(base)
    child = tmp_path / "child.yaml"
    data = {"dataset": "ucf101", "root": "videos", "args": {"split": 2}}
    child.write_text(yaml.safe_dump({"base": "preset", "seeds": 3, "pretrain": {"data": data}}))
    got = bench.load_preset(child)
    assert got.seeds == 3 and got.methods == tiny.methods and got.overrides == tiny.overrides
    assert got.pretrain["data"] == {
        **{k: v for k, v in tiny.pretrain["data"].items() if k not in bench.SHARED_DATA_FIELDS},
        **data,
    }
    assert got.pretrain["model"] == tiny.pretrain["model"]
    # a change of anything else merges over the base's section
    child.write_text(yaml.safe_dump({"base": "preset", "pretrain": {"data": {"clip_len": 3}}}))
    got = bench.load_preset(child)
    assert got.pretrain["data"] == {**tiny.pretrain["data"], "clip_len": 3}
    # a shipped preset is found from any folder
    child.write_text(yaml.safe_dump({"base": "tiny", "seeds": 2}))
    assert bench.load_preset(child).methods == bench.load_preset(bench.preset_path("tiny")).methods
    for base_name, message in [("nosuch", "base: no preset 'nosuch'"), ("child", "deep")]:
        child.write_text(yaml.safe_dump({"base": base_name}))  # "child": itself, a cycle
        with pytest.raises(bench.BenchError, match=message):
            bench.load_preset(child)


@pytest.mark.parametrize(
    ("changes", "argv", "message"),
    [
        ({}, ["--methods", "simclr,nosuch"], "--methods: unknown method 'nosuch'"),
        ({}, ["--methods", "simclr,supervised"], "always in the table"),
        ({"colour": 1}, [], "unknown key(s) ['colour']"),
        ({"overrides": {"simclr": {"data": {"args": {"num_videos": 8}}}}}, [], "data.args"),
        ({"overrides": {"simclr": {"method": {"temprature": 0.2}}}}, [], "method.temprature"),
        ({"eval": {"protocols": ["retrieval", "zero"]}}, [], "unknown protocol 'zero'"),
        ({"eval": {"settings": {"num_clip": 2}}}, [], "eval.settings.num_clip"),
        ({"overrides": {"rot": {"method": {"tasks": ["rotation"]}}}}, [], "overrides.rot"),
        ({"overrides": {"rot": {"method": {"name": "pretxt"}}}}, [], "unknown method 'pretxt'"),
        (
            {"overrides": {"simclr": {"method": {"name": "moco"}}}},
            [],
            "overrides.simclr.method.name: 'moco' differs",
        ),
    ],
)
def test_bad_presets_are_reported_before_any_work(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
    argv: list[str],
    message: str,
) -> None:
    path = _tiny(tmp_path, **changes)
    out = tmp_path / "out"
    assert main(["bench", "--config", str(path), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not out.exists()


def test_unknown_preset_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--preset", "nosuch"]) == 2
    assert "choose from" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- stages


def _fake_child(exit_codes: list[int], ran: list[str]) -> Any:
    """A stand-in for `run_measured`: logs a step and writes last.pt in the stage's run folder
    (what a killed child leaves behind too), then exits with the next code of ``exit_codes``."""

    def run(cmd: list[str], env: dict[str, str] | None = None) -> bench_cells.Measured:
        config = yaml.safe_load(Path(cmd[cmd.index("--config") + 1]).read_text())
        run_dir = Path(config["train"]["out_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        step = {
            "kind": "step",
            "step": config["train"]["max_steps"],
            "clips_per_s": 10.0 * (1 + len(ran)),
        }
        (run_dir / "metrics.jsonl").write_text(json.dumps(step) + "\n")
        torch.save({"model": {}, "step": step["step"]}, run_dir / "last.pt")
        ran.append(run_dir.name)
        return bench_cells.Measured(exit_codes.pop(0), 60.0, 100.0 * len(ran))

    return run


def test_a_killed_stage_reruns_alone_and_stage_figures_combine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset = bench.load_preset(bench.PRESET_DIR / "tiny.yaml")
    plans = bench.plan_cells(bench.make_bench(preset, tmp_path, methods=["cvtcl"]))
    plan = next(p for p in plans if p.cell.row == "cvtcl")
    plan.dir.mkdir(parents=True)
    done = plan.dir / bench.TRAIN_NAME
    ran: list[str] = []
    monkeypatch.setattr(bench_cells, "run_measured", _fake_child([0, -9, 0], ran))
    with pytest.raises(bench_cells.CellFailed, match="code -9"):  # stage 1 killed
        bench_cells.train_cell(plan.stages, "pretrain", 1, done)
    assert ran == ["stage0", "stage1"] and not done.exists()
    assert (plan.dir / "train-stage0.json").is_file()
    assert not (plan.dir / "train-stage1.json").exists()
    # the rerun runs stage 1 only, resuming from the last.pt the killed attempt left
    record = bench_cells.train_cell(plan.stages, "pretrain", 1, done)
    assert ran == ["stage0", "stage1", "stage1"]
    first, second = record["stages"]
    assert (first["resumed"], second["resumed"]) == (False, True)
    assert (first["start_step"], second["start_step"]) == (0, 3)  # the killed attempt's last.pt
    assert record["resumed"] is True and record["start_step"] == 3
    assert record["wall_s"] == 120.0 and record["peak_rss_mb"] == 300.0  # sum, max
    assert record["steps"] == 2 + 3  # each stage's own train.max_steps (tiny: 2 and 3)
    assert record["clips_per_s"] == 20.0  # median of both stages' logged rates (10, 30)
    assert json.loads(done.read_text()) == record
    assert bench_cells.train_cell(plan.stages, "pretrain", 1, done) == record  # done: no run
    assert len(ran) == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"stages": []}, "overrides.cvtcl.stages: expected a non-empty list"),
        ({"stages": [{"mehtod": {}}]}, "overrides.cvtcl.stages[0]"),
        ({"eval_streams": ["rgb", "depth"]}, "unknown stream 'depth'"),
        ({"eval_streams": ["rgb", "rgb"]}, "listed twice"),
    ],
)
def test_bad_stages_and_streams_name_the_field(
    tmp_path: Path, override: dict[str, Any], message: str
) -> None:
    raw = yaml.safe_load((bench.PRESET_DIR / "tiny.yaml").read_text())
    raw["overrides"]["cvtcl"].update(override)
    path = _tiny(tmp_path, overrides=raw["overrides"])
    with pytest.raises(bench.BenchError, match=re.escape(message)):
        bench.plan_cells(bench.make_bench(bench.load_preset(path), tmp_path, methods=["cvtcl"]))


# ---------------------------------------------------------------------------------- end to end

TINY_ROWS = [
    "random init",
    "simclr",
    "cvtcl (rgb)",
    "cvtcl (flow)",
    "cvtcl (rgb+flow)",
    "supervised (from scratch)",
]


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict]:
    """The tiny preset with a one-stage method and CVTCL (two stages, three streams)."""
    out = tmp_path_factory.mktemp("bench") / "bench"
    argv = ["bench", "--preset", "tiny", "--methods", "simclr,cvtcl", "--seeds", "1"]
    argv += ["--out", str(out)]
    assert main(argv) == 0
    return out, argv, json.loads((out / "bench.json").read_text())


def test_tiny_bench_writes_the_table_and_a_rerun_skips_finished_cells(
    tiny_bench: tuple[Path, list[str], dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, argv, summary = tiny_bench
    labels = [row[0] for row in summary["rows"]]
    assert labels == TINY_ROWS
    columns = summary["columns"]
    for name in ("R@1 motion", "R@5 motion", "linear top-1 motion", "linear top-1 appearance"):
        assert name in columns
    assert columns[-3:] == ["train (min)", "clips/s", "peak RSS (MB)"]
    for row in summary["rows"]:
        metrics = row[3:-3]
        assert all(0.0 <= float(cell) <= 100.0 for cell in metrics), row
        trained = row[0] != "random init"
        assert all((cell != "–") == trained for cell in row[-3:]), row
    md, page = (out / "bench.md").read_text(), (out / "bench.html").read_text()
    for label in labels:
        assert f"| {label} |" in md and f"<td>{label}</td>" in page
    assert "vidssl bench --preset tiny --methods simclr,cvtcl --seeds 1" in md
    assert bench_cells.STAGES_NOTE.strip() in md and bench_cells.STREAMS_NOTE.strip() in md
    eval_dirs = [f"cells/{row}/seed0/run/eval" for row in ("random", "simclr", "supervised")]
    cvtcl = "cells/cvtcl/seed0/run/stage1"
    eval_dirs += [f"{cvtcl}/eval", f"{cvtcl}/streams/flow/eval", f"{cvtcl}/streams/both/eval"]
    for folder in eval_dirs:
        assert len(list((out / folder).glob("*.json"))) == 4  # 2 protocols x 2 label sets
    for row in ("random", "simclr", "cvtcl", "supervised"):
        assert (out / "cells" / row / "seed0/result.json").is_file()
    sup = yaml.safe_load((out / "cells/supervised/seed0/run/config.yaml").read_text())
    assert sup["method"]["name"] == "supervised"

    # a rerun trains and evaluates nothing: every cell is finished
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(bench_cells, "run_measured", forbidden)
    monkeypatch.setattr(bench, "evaluate_cell", forbidden)
    before = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/seed0/result.json")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before
    rerun = json.loads((out / "bench.json").read_text())
    assert rerun["rows"] == summary["rows"]
    # the summed cell time survives reruns; a rerun that ran nothing has no wall time
    assert rerun["cells_s"] == summary["cells_s"] > 0 and summary["wall_s"] > 0
    assert rerun["wall_s"] is None

    # a cell whose training finished but whose evaluation did not is evaluated, not retrained
    monkeypatch.undo()
    monkeypatch.setattr(bench_cells, "run_measured", forbidden)
    (out / "cells/cvtcl/seed0/result.json").unlink()
    assert main(argv) == 0
    assert json.loads((out / "bench.json").read_text())["rows"] == summary["rows"]

    # other settings in the same folder are refused
    assert main([*argv[:-2], "--out", str(out), "--finetune"]) == 2


def test_stages_run_in_order_each_from_the_previous_checkpoint(
    tiny_bench: tuple[Path, list[str], dict],
) -> None:
    out = tiny_bench[0]
    cell = out / "cells/cvtcl/seed0"
    init = yaml.safe_load((cell / "run/stage0/config.yaml").read_text())
    cotrain = yaml.safe_load((cell / "run/stage1/config.yaml").read_text())
    assert (init["method"]["stage"], cotrain["method"]["stage"]) == ("init", "cotrain")
    assert init["method"]["init_checkpoint"] is None
    assert cotrain["method"]["init_checkpoint"] == str(cell / "run/stage0/last.pt")
    first, second = (cell / f"run/stage{k}/last.pt" for k in (0, 1))
    assert first.stat().st_mtime_ns < second.stat().st_mtime_ns
    # each stage's own step budget (tiny: 2, then 3), the figures combined in train.json
    stages = [json.loads((cell / f"train-stage{k}.json").read_text()) for k in (0, 1)]
    assert [s["steps"] for s in stages] == [2, 3]
    train = json.loads((cell / "train.json").read_text())
    assert train["stages"] == stages and train["steps"] == 5
    assert train["wall_s"] == pytest.approx(sum(s["wall_s"] for s in stages))
    assert train["peak_rss_mb"] == max(s["peak_rss_mb"] for s in stages)
    assert (
        json.loads((cell / "cell.json").read_text())["spec"]["run"]["stages"][1]["method"][
            "init_checkpoint"
        ]
        == "run/stage0/last.pt"
    )  # the settings do not depend on the out folder


def test_eval_streams_give_one_row_each_from_their_own_features(
    tiny_bench: tuple[Path, list[str], dict],
) -> None:
    from vidssl.eval.features import file_sha256, load_features

    out, _, summary = tiny_bench
    rows = {row[0]: row for row in summary["rows"]}
    streams = [rows[f"cvtcl ({s})"] for s in ("rgb", "flow", "rgb+flow")]
    assert all(row[-3:] == streams[0][-3:] for row in streams)  # one training
    digest = file_sha256(out / "cells/cvtcl/seed0/run/stage1/last.pt")
    files = sorted((out / "cache").glob(f"feats-sha256-{digest[:16]}-*.pt"))
    assert len(files) == 6  # 3 streams x (train, test): no stream reads another's cache
    train = [f.feats for f in map(load_features, files) if f.feats.shape[0] == 24]
    assert len(train) == 3
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(train[i], train[j], atol=1e-3)


def test_a_partial_second_stage_resumes_without_rerunning_the_first(
    tiny_bench: tuple[Path, list[str], dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, argv, summary = tiny_bench
    cell = out / "cells/cvtcl/seed0"
    # stage 1 stopped after its last checkpoint, before its marker (and the cell's) was written
    for name in ("train.json", "train-stage1.json", "result.json"):
        (cell / name).unlink()
    stage0 = (cell / "train-stage0.json").read_text()
    ran: list[list[str]] = []
    real = bench_cells.run_measured

    def recording(cmd: list[str], env: dict[str, str] | None = None) -> bench_cells.Measured:
        ran.append(cmd)
        return real(cmd, env)

    monkeypatch.setattr(bench_cells, "run_measured", recording)
    assert main(argv) == 0
    assert len(ran) == 1 and str(cell / "config-stage1.yaml") in ran[0]
    assert ran[0][-2:] == ["--resume", "auto"]
    assert (cell / "train-stage0.json").read_text() == stage0
    train = json.loads((cell / "train.json").read_text())
    assert [s["resumed"] for s in train["stages"]] == [False, True] and train["steps"] == 5
    assert [s["start_step"] for s in train["stages"]] == [0, 3] and train["start_step"] == 3
    rows = json.loads((out / "bench.json").read_text())["rows"]
    assert [row[0] for row in rows] == TINY_ROWS


def test_cell_seconds_add_training_and_evaluation_of_every_cell() -> None:
    records = [
        {"train": None, "eval_s": 3.0},  # random init: evaluated only
        {"train": {"wall_s": 120.0}, "eval_s": 5.0},
        {"train": {"wall_s": 60.0, "stages": [{}, {}]}, "eval_s": 7.5},  # one staged cell
    ]
    assert bench_table.cell_seconds(records) == 195.5
    assert bench_table.cell_seconds([]) == 0.0


def test_cells_not_run_yet_are_not_called_failed() -> None:
    """A study spread over invocations: cells without a result yet say "not run"."""
    done = _record("simclr", "pretrain", 0, [_result("linear", "motion", {"top1": 0.5, "top5": 1})])
    records = [
        done,
        _record("simclr", "pretrain", 1, [], error=bench_table.NOT_RUN),
        _record("byol", "pretrain", 0, [], error=bench_table.NOT_RUN),
        _record("moco", "pretrain", 0, [], error="CellFailed: exited with code 1"),
        _record("moco", "pretrain", 1, [], error=bench_table.NOT_RUN),
    ]
    table = bench_table.bench_table(bench_table.collect_rows(records), ["linear"], resources=False)
    labels = [row[0] for row in table.rows]
    assert labels == ["simclr (some seeds not run)", "byol (not run)", "moco (failed)"]
