"""UCF101 and HMDB51 "as distributed": a folder of videos plus the official split folder.

Miniature copies of both layouts are built from generated .avi videos (MPEG-4 Part 2, like the
distributed Xvid files) in class folders with official class names, and hand-written split
files in the exact official formats:

- UCF101 ``ucfTrainTestlist/``: ``classInd.txt`` (``"1 ApplyEyeMakeup"``), ``trainlist0{k}.txt``
  (``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"``), ``testlist0{k}.txt`` (path only),
  CRLF line endings; split k tests groups 7k-6 .. 7k.
- HMDB51 ``testTrainMulti_7030_splits/``: ``<class>_test_split{k}.txt`` lines
  ``"<video>.avi <0|1|2> "`` (1 train, 2 test, 0 unused; trailing space as distributed).

Then ``vidssl eval retrieval`` / ``linear`` run through ``main([...])`` with a random init, also
on a ``vidssl prepare``d copy (lossless PNG storage, so the features must be identical).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidssl.app.cli import main
from vidssl.data.synthetic import SyntheticConfig, render_frames
from vidssl.eval.features import load_features_file
from vidssl.eval.stats import load_eval_dir

av = pytest.importorskip("av")

UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "BabyCrawling"]
UCF_GROUPS = (1, 8, 15, 22)  # test group of split 1, 2, 3; group 22 is always training
HMDB_CLASSES = ["brush_hair", "cartwheel", "catch"]
HMDB_VIDEOS = 5  # per class: split k tests video k-1, video 4 is unused, the rest train

RANDOM = ["--checkpoint", "random", "--backbone", "r3d_18", "--width", "0.125"]
TINY = ["num_clips=2", "clip_len=4", "size=16", "workers=0", "amp=none", "progress=false"]
TINY += ["linear_epochs=10"]


def write_avi(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    """frames (T, H, W, 3) uint8 -> an MPEG-4 Part 2 .avi file (the codec family of Xvid)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"qscale": "2"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _frames(video_id: int, label: int) -> np.ndarray:
    """16 frames of 32 px whose motion and appearance depend on the class."""
    cfg = SyntheticConfig(num_videos=64, frames=16, size=32, num_motions=8, num_appearances=4)
    return render_frames(cfg, video_id, label % 8, label % 4, range(16))


def make_ucf101(base: Path) -> Path:
    """``base/UCF-101/<Class>/v_<Class>_g<GG>_c01.avi`` + ``base/ucfTrainTestlist/``."""
    videos, lists = base / "UCF-101", base / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes(
        "".join(f"{i + 1} {c}{crlf}" for i, c in enumerate(UCF_CLASSES)).encode()
    )
    for label, cls in enumerate(UCF_CLASSES):
        for g in UCF_GROUPS:
            write_avi(videos / cls / f"v_{cls}_g{g:02d}_c01.avi", _frames(10 * label + g, label))
    for k in (1, 2, 3):
        test_groups = range(7 * k - 6, 7 * k + 1)
        train, test = [], []
        for label, cls in enumerate(UCF_CLASSES):
            for g in UCF_GROUPS:
                rel = f"{cls}/v_{cls}_g{g:02d}_c01.avi"
                if g in test_groups:
                    test.append(rel)  # test lists hold the path only
                else:
                    train.append(f"{rel} {label + 1}")  # train lists add the 1-based class id
        (lists / f"trainlist0{k}.txt").write_bytes((crlf.join(train) + crlf).encode())
        (lists / f"testlist0{k}.txt").write_bytes((crlf.join(test) + crlf).encode())
    return videos


def make_hmdb51(base: Path) -> Path:
    """``base/hmdb51/<class>/<video>.avi`` + ``base/testTrainMulti_7030_splits/``."""
    videos, splits = base / "hmdb51", base / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for label, cls in enumerate(HMDB_CLASSES):
        names = [f"Clip_{cls}_f_cm_np1_fr_med_{i}.avi" for i in range(HMDB_VIDEOS)]
        for i, name in enumerate(names):
            write_avi(videos / cls / name, _frames(100 + 10 * label + i, label))
        for k in (1, 2, 3):
            tags = {k - 1: 2, HMDB_VIDEOS - 1: 0}
            lines = [f"{name} {tags.get(i, 1)} \n" for i, name in enumerate(names)]
            (splits / f"{cls}_test_split{k}.txt").write_text("".join(lines))
    return videos


def _features(eval_dir: Path) -> dict[int, object]:
    """Cached feature files by number of videos."""
    out = {}
    for path in (eval_dir / "cache").glob("feats-*.pt"):
        feats, _ = load_features_file(path)
        out[len(feats.feats)] = feats
    return out


@pytest.mark.parametrize(
    ("dataset", "make", "train_size", "test_size"),
    [("ucf101", make_ucf101, 9, 3), ("hmdb51", make_hmdb51, 9, 3)],
)
def test_retrieval_and_linear_on_the_distributed_layout(
    tmp_path, dataset, make, train_size, test_size
):
    root = make(tmp_path / "data")
    out = tmp_path / "run"
    common = ["--data", dataset, "--root", str(root), *RANDOM, "--out", str(out), *TINY]
    assert main(["eval", "retrieval", *common]) == 0
    assert main(["eval", "linear", *common]) == 0
    results = load_eval_dir(out / "eval")[0]
    assert {(r.protocol, r.label_set) for r in results} == {
        ("retrieval", dataset),
        ("linear", dataset),
    }
    for r in results:
        assert (r.info["num_train"], r.info["num_test"], r.info["num_classes"]) == (
            train_size,
            test_size,
            3,
        )
    # labels come from the class folders / split files: one test video per class in split 1
    feats = _features(out / "eval")
    assert sorted(feats[test_size].labels["label"].tolist()) == [0, 1, 2]
    assert sorted(feats[train_size].labels["label"].tolist()) == sorted(
        [0, 1, 2] * (train_size // 3)
    )


def test_ucf101_split_all_reads_the_three_official_splits(tmp_path, capsys):
    root = make_ucf101(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["eval", "retrieval", "--data", "ucf101", "--root", str(root), *RANDOM]
    assert main([*argv, "--out", str(out), "--split", "all", *TINY]) == 0
    results = load_eval_dir(out / "eval")[0]
    assert sorted(r.split for r in results) == ["1", "2", "3"]
    assert "| ucf101 | 3 |" in capsys.readouterr().out
    # three different test sets (groups 1, 8, 15): the test features of the splits differ
    tests = [load_features_file(p)[0] for p in (out / "eval" / "cache").glob("feats-*.pt")]
    tests = [f.feats for f in tests if len(f.feats) == 3]
    assert len(tests) == 3
    assert not torch.allclose(tests[0], tests[1]) and not torch.allclose(tests[1], tests[2])


def test_prepared_ucf101_gives_the_same_features(tmp_path):
    root = make_ucf101(tmp_path / "data")
    prepared = tmp_path / "data" / "UCF-101-prepared"  # the split folder stays next to it
    rc = main(["prepare", str(root), str(prepared), "--short-side", "0", "--codec", "png"])
    assert rc == 0 and len(list(prepared.rglob("*.vfs"))) == 12
    for name, video_root in (("raw", root), ("prepared", prepared)):
        argv = ["eval", "retrieval", "--data", "ucf101", "--root", str(video_root), *RANDOM]
        assert main([*argv, "--out", str(tmp_path / name), *TINY]) == 0
    raw, prep = _features(tmp_path / "raw" / "eval"), _features(tmp_path / "prepared" / "eval")
    for n in (9, 3):
        assert torch.equal(raw[n].labels["label"], prep[n].labels["label"])
        assert torch.allclose(raw[n].feats, prep[n].feats, atol=1e-5)
    metrics = [load_eval_dir(tmp_path / n / "eval")[0][0].metrics for n in ("raw", "prepared")]
    assert metrics[0] == metrics[1]
