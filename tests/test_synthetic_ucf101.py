"""``vidssl synth --layout ucf101``: the synthetic set as UCF101 is distributed, read back by the
``ucf101`` dataset (raw and prepared) with the generator's motion labels, and the
``cpu-files`` bench preset planned on such a copy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from vidssl.app import bench
from vidssl.app.cli import main
from vidssl.data.datasets import default_opener, open_split
from vidssl.data.synthetic import MOTIONS, SyntheticConfig, render_frames, synthetic_labels
from vidssl.text.class_sets import resolve_class_names

pytest.importorskip("av")

# 8 motion classes, as the cpu-files preset's X-CLIP row names 8 class texts
CFG = SyntheticConfig(num_videos=16, frames=8, size=32, num_motions=8, seed=3, upright=True)
SYNTH = ["--videos", "16", "--frames", "8", "--size", "32", "--motions", "8", "--seed", "3"]


@pytest.fixture(scope="module")
def ucf_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "set"
    assert (
        main(["synth", str(out), *SYNTH, "--upright", "--layout", "ucf101", "--no-progress"]) == 0
    )
    return out


def _labels_by_rank(subset: str) -> list[int]:
    """The generator's motion labels of ``subset`` in id order."""
    motion, _ = synthetic_labels(CFG)
    return [int(motion[i]) for i in CFG.subset_ids(subset)]


def _read(root: Path, subset: str) -> tuple[list[int], list[str], list[str]]:
    index = open_split("ucf101", root, subset, {"split": 1}).index
    return [it.label for it in index.items], index.classes, [it.path for it in index.items]


@pytest.mark.parametrize("subset", ["train", "test"])
def test_ucf101_copy_reads_back_with_the_generators_motion_labels(
    ucf_copy: Path, subset: str
) -> None:
    labels, classes, paths = _read(ucf_copy / "videos", subset)
    assert classes == CFG.motion_classes == list(MOTIONS)  # classInd in the generator's order
    assert labels == _labels_by_rank(subset)  # list order = id order
    assert all(Path(p).parent.name == classes[k] for p, k in zip(paths, labels, strict=True))
    assert all(
        Path(p).name.startswith(f"v_{classes[k]}_g") for p, k in zip(paths, labels, strict=True)
    )


def test_ucf101_copy_has_only_split_1_and_the_official_line_formats(ucf_copy: Path) -> None:
    lists = ucf_copy / "ucfTrainTestlist"
    assert sorted(p.name for p in lists.iterdir()) == [
        "classInd.txt",
        "testlist01.txt",
        "trainlist01.txt",
    ]
    assert (lists / "classInd.txt").read_text().splitlines()[0] == "1 right"
    assert all(
        len(line.split()) == 2 for line in (lists / "trainlist01.txt").read_text().splitlines()
    )
    assert all(
        len(line.split()) == 1 for line in (lists / "testlist01.txt").read_text().splitlines()
    )
    with pytest.raises(FileNotFoundError, match="testlist02"):
        open_split("ucf101", ucf_copy / "videos", "test", {"split": 2})


def test_prepared_ucf101_copy_reads_the_same_labels_from_vfs_files(ucf_copy: Path) -> None:
    prepared = ucf_copy / "videos-prepared"  # the list folder stays next to it
    argv = ["prepare", str(ucf_copy / "videos"), str(prepared), "--short-side", "0"]
    assert main([*argv, "--codec", "png", "--workers", "1"]) == 0
    for subset in ("train", "test"):
        labels, _, paths = _read(prepared, subset)
        assert labels == _labels_by_rank(subset)
        assert all(p.endswith(".mp4.vfs") and Path(p).is_relative_to(prepared) for p in paths)
    # the stored frames are the generator's (near-lossless H.264, then lossless PNG): ~1 grey
    # level off on average; another video of the set is tens of levels off
    motion, appearance = synthetic_labels(CFG)
    paths = _read(prepared, "train")[2]
    for i, path in enumerate(paths[:2]):
        frames = default_opener(path).get_frames(range(CFG.frames)).astype(np.float32)
        for j in range(2):
            want = render_frames(CFG, j, int(motion[j]), int(appearance[j]), range(CFG.frames))
            error = float(np.abs(frames - want).mean())
            assert error < 3.0 if i == j else error > 10.0


def test_cpu_files_preset_plans_on_a_prepared_copy(
    ucf_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = ucf_copy / "videos-prepared"
    if not prepared.is_dir():
        assert main(["prepare", str(ucf_copy / "videos"), str(prepared), "--workers", "1"]) == 0
    files = bench.load_preset(bench.PRESET_DIR / "cpu-files.yaml")
    cpu = bench.load_preset(bench.PRESET_DIR / "cpu.yaml")
    data = files.pretrain["data"]
    # cpu.yaml (its `base`) but for the dataset fields (and the description)
    assert data["dataset"] == "ucf101" and data["args"] == {"split": 1}
    assert {k: v for k, v in data.items() if k not in bench.SHARED_DATA_FIELDS} == {
        k: v for k, v in cpu.pretrain["data"].items() if k not in bench.SHARED_DATA_FIELDS
    }
    for key in ("methods", "overrides", "seeds", "threads", "supervised", "protocols"):
        assert getattr(files, key) == getattr(cpu, key)
    assert (files.split, files.eval_settings) == (cpu.split, cpu.eval_settings)
    for key in ("model", "optim", "train", "method"):
        assert files.pretrain.get(key) == cpu.pretrain.get(key)
    # the preset's relative root, resolved against the current folder
    (tmp_path / Path(data["root"]).parent).mkdir(parents=True)
    (tmp_path / data["root"]).symlink_to(prepared)
    (tmp_path / Path(data["root"]).parent / "ucfTrainTestlist").symlink_to(
        ucf_copy / "ucfTrainTestlist"
    )
    monkeypatch.chdir(tmp_path)
    plans = bench.plan_cells(
        bench.make_bench(bench.load_preset(bench.PRESET_DIR / "cpu-files.yaml"), tmp_path / "out")
    )
    rows = [p.cell.row for p in plans]
    assert rows == ["random", *files.methods, "supervised"]
    supervised = next(p for p in plans if p.cell.row == "supervised")
    assert supervised.config.method.hparams["num_classes"] == 8  # the copy's motion classes
    # X-CLIP's class texts follow the generator's class order, which classInd.txt keeps
    xclip = next(p for p in plans if p.cell.row == "xclip")
    names = resolve_class_names(xclip.config.method.hparams["class_texts"])
    copy = open_split("ucf101", str(prepared), "train", {"split": 1}).index.classes
    assert names == list(CFG.motion_classes) == copy
    assert {p.config.data.dataset for p in plans if p.config} == {"ucf101"}


def test_cpu_files_preset_without_its_copy_names_the_data_and_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing written here: runs/synth-files/ is missing
    preset = bench.load_preset(bench.PRESET_DIR / "cpu-files.yaml")
    with pytest.raises(
        bench.BenchError, match=f"pretrain.data .*relative to {re.escape(str(tmp_path))}"
    ):
        bench.plan_cells(bench.make_bench(preset, tmp_path / "out"))
