"""`vidssl demo --quick`: pretrain -> evaluate (+ random-init baseline) -> report, resumable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vidssl.app import demo
from vidssl.app.cli import main
from vidssl.eval.stats import EvalResult

EXPECTED = {
    f"{protocol}-synthetic-split1-seed0-{labels}.json"
    for protocol in ("retrieval", "linear")
    for labels in ("motion", "appearance")
}


def test_quick_demo_writes_the_report_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out

    page = (out / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert {"report_files/curves.png", "report_files/retrieval.png"} <= set(images)
    assert any("embedding" in i for i in images) and any("gradcam" in i for i in images)
    for rel in images:
        assert (out / rel).is_file() and (out / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "not available" not in page

    for folder in (out / "eval", out / "baseline" / "eval"):
        files = {p.name for p in folder.glob("*.json")}
        assert files == EXPECTED
        for name in files:
            result = EvalResult.load(folder / name)
            assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    baseline = EvalResult.load(out / "baseline/eval/linear-synthetic-split1-seed0-motion.json")
    assert baseline.info["checkpoint"] == "random"

    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in steps) == demo.QUICK_OVERRIDES["train"]["max_steps"]
    for text in (printed, (out / "summary.md").read_text()):
        assert "| random init |" in text and f"| {demo.DEMO_METHOD} (pre-trained) |" in text
        assert "linear top-1 motion" in text and "linear top-1 appearance" in text
    assert str((out / "report.html").resolve()) in printed

    # a rerun resumes from last.pt: nothing is trained again
    checkpoint = (out / "last.pt").read_bytes()
    metrics = (out / "metrics.jsonl").read_text()
    monkeypatch.setattr(demo, "evaluate_both", lambda *a: pytest.fail("stop after pretraining"))
    with pytest.raises(pytest.fail.Exception, match="stop after pretraining"):
        main(["demo", "--out", str(out), "--quick"])
    assert (out / "last.pt").read_bytes() == checkpoint
    assert (out / "metrics.jsonl").read_text() == metrics


def test_demo_refuses_a_folder_of_the_other_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / demo.STATE_NAME).write_text(json.dumps({"quick": False, "method": "cvrl"}))
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 2
    assert "holds a full demo run" in capsys.readouterr().err
    assert not (tmp_path / "last.pt").exists()


def test_demo_settings_stay_cpu_sized() -> None:
    sections, _ = demo.demo_settings(quick=False)
    assert sections["model"]["width"] <= 0.5 and sections["data"]["size"] <= 64
    assert sections["data"]["args"]["size"] <= 64 and sections["train"]["amp"] == "auto"
    quick, quick_eval = demo.demo_settings(quick=True)
    assert quick["train"]["max_steps"] <= 5 and quick_eval["num_clips"] <= 2
    assert quick["method"]["name"] == sections["method"]["name"] == demo.DEMO_METHOD
