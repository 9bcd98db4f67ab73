"""A wheel built from this checkout ships the bench presets: installed (not editable) into a
fresh venv, ``vidssl bench`` finds them from a folder outside the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from vidssl.app import bench

REPO = Path(__file__).resolve().parents[1]
# the wheel needs only these (pyproject.toml's readme, the package sources and data)
SOURCES = ("pyproject.toml", "README.md", "src")


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out


@pytest.mark.slow
def test_wheel_ships_the_presets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env.update(PIP_NO_INDEX="1", PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    src = tmp_path / "checkout"  # a copy: the build leaves build/ and egg-info behind
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."], src, env)
    (wheel,) = tmp_path.glob("vidssl-*.whl")

    # a venv without pip; the running interpreter's packages (torch, ...) stay importable through
    # a .pth line, which (unlike a site dir) does not run their .pth files: this checkout's
    # editable install, if any, stays invisible
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).stdout.strip())  # fmt: skip
    parents = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_parent_site.pth").write_text("\n".join(sorted(parents)) + "\n")
    run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], tmp_path, env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([str(python), "-c", "import vidssl; print(vidssl.__file__)"], elsewhere, env)
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the installed copy, not src/
    listed = run([str(venv / "bin" / "vidssl"), "bench", "--list-presets"], elsewhere, env)
    rows = {line.split("\t")[0]: line.split("\t")[-1] for line in listed.stdout.splitlines()}
    assert set(rows) == {p.stem for p in bench.PRESET_DIR.glob("*.yaml")} and "cpu" in rows
    assert Path(rows["cpu"]).is_relative_to(venv) and Path(rows["cpu"]).is_file()
    assert Path(rows["cpu"]).read_text() == (bench.PRESET_DIR / "cpu.yaml").read_text()
    # --preset cpu resolves and plans (no cell has run: the table is written, nothing trains)
    out = tmp_path / "bench-out"
    table = subprocess.run(
        [str(venv / "bin" / "vidssl"), "bench", "--preset", "cpu", "--table-only", "--out", str(out)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "no preset" not in table.stderr, table.stderr
    assert (out / "bench.md").is_file(), table.stdout + table.stderr


def test_list_presets_reads_every_shipped_preset(capsys: pytest.CaptureFixture[str]) -> None:
    from vidssl.app.cli import main

    assert main(["bench", "--list-presets"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == sorted(p.stem for p in bench.PRESET_DIR.glob("*.yaml"))
    assert {"cpu", "tiny"} <= {r[0] for r in rows}
    assert bench.PRESET_DIR.is_relative_to(Path(bench.__file__).resolve().parents[1])
