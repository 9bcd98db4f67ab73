"""Dataset layouts on hand-written split files (empty placeholder videos in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidssl.data import layouts as L


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def rel_items(index: L.DatasetIndex, root: Path) -> list[tuple[str, int]]:
    return [(Path(it.path).relative_to(root).as_posix(), it.label) for it in index.items]


def test_prepared_suffix_matches_storage():
    from vidssl.data.storage import STORE_SUFFIX

    assert L.STORE_SUFFIX is STORE_SUFFIX  # one definition (vidssl.data.extensions)


def test_class_folders(tmp_path):
    touch(tmp_path, "walk/b.mp4", "walk/a.avi", "run/x/c.mkv", "run/notes.txt", "jump/.hidden.mp4")
    (tmp_path / "empty").mkdir()
    index = L.class_folders(tmp_path)
    assert index.classes == ["empty", "jump", "run", "walk"]
    assert rel_items(index, tmp_path) == [("run/x/c.mkv", 2), ("walk/a.avi", 3), ("walk/b.mp4", 3)]
    assert all(it.extra == {} for it in index.items)
    with pytest.raises(FileNotFoundError, match="nope"):
        L.class_folders(tmp_path / "nope")


def test_unlabelled_recursive_sorted(tmp_path):
    touch(tmp_path, "b.mp4", "a/z.webm", "a/y.MOV", "readme.md", "c/d/e.avi")
    index = L.unlabelled(tmp_path)
    assert rel_items(index, tmp_path) == [
        ("a/y.MOV", -1),
        ("a/z.webm", -1),
        ("b.mp4", -1),
        ("c/d/e.avi", -1),
    ]
    assert index.classes == []
    (tmp_path / "none").mkdir()
    with pytest.raises(FileNotFoundError, match="no video files under .*none"):
        L.unlabelled(tmp_path / "none")


def test_unlabelled_prefers_prepared_twin(tmp_path):
    touch(tmp_path, "a.mp4", "a.mp4.vfs", "b.avi", "c.vfs", "c.avi")
    names = [Path(it.path).name for it in L.unlabelled(tmp_path).items]
    assert names == ["a.mp4.vfs", "b.avi", "c.vfs"]


def write_ucf(tmp_path: Path) -> tuple[Path, Path]:
    videos, splits = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 Archery\r\n3 HandstandPushups\r\n")
    (splits / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
        "Archery/v_Archery_g08_c02.avi 2\n"
        "HandstandPushups/v_HandStandPushups_g08_c01.avi 3\n"
    )
    (splits / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
        "HandStandPushups/v_HandStandPushups_g01_c01.avi\r\n"
        "\r\n"
    )
    touch(
        videos,
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "Archery/v_Archery_g08_c02.avi",
        "HandstandPushups/v_HandStandPushups_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "HandStandPushups/v_HandStandPushups_g01_c01.avi",
    )
    return videos, splits


def test_ucf101_train_and_test(tmp_path):
    videos, splits = write_ucf(tmp_path)
    train = L.ucf101(videos, splits, split=1, subset="train")
    assert train.classes == ["ApplyEyeMakeup", "Archery", "HandstandPushups"]
    assert rel_items(train, videos) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0),
        ("Archery/v_Archery_g08_c02.avi", 1),
        ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 2),
    ]
    test = L.ucf101(videos, splits, split=1, subset="test")
    assert rel_items(test, videos) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 0),
        ("HandStandPushups/v_HandStandPushups_g01_c01.avi", 2),  # class matched case-insensitively
    ]
    with pytest.raises(FileNotFoundError, match="trainlist02.txt"):
        L.ucf101(videos, splits, split=2)
    with pytest.raises(ValueError, match="split=4"):
        L.ucf101(videos, splits, split=4)


def test_ucf101_missing_video_is_named(tmp_path):
    videos, splits = write_ucf(tmp_path)
    (videos / "Archery/v_Archery_g08_c02.avi").unlink()
    with pytest.raises(FileNotFoundError, match="v_Archery_g08_c02.avi"):
        L.ucf101(videos, splits, 1, "train")


def test_ucf101_on_a_prepared_root(tmp_path):
    _, splits = write_ucf(tmp_path)
    prepared = tmp_path / "prepared"
    touch(
        prepared,
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi.vfs",  # `vidssl prepare` naming
        "Archery/v_Archery_g08_c02.vfs",  # suffix replaced
        "HandstandPushups/v_HandStandPushups_g08_c01.avi.vfs",
    )
    names = [Path(it.path).name for it in L.ucf101(prepared, splits, 1, "train").items]
    assert names == [
        "v_ApplyEyeMakeup_g08_c01.avi.vfs",
        "v_Archery_g08_c02.vfs",
        "v_HandStandPushups_g08_c01.avi.vfs",
    ]


def test_hmdb51_subsets(tmp_path):
    videos, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    (splits / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    (splits / "cartwheel_test_split1.txt").write_text("d.avi 2 \ne.avi 1 \n")
    (splits / "cartwheel_test_split2.txt").write_text("d.avi 1 \ne.avi 2 \n")
    touch(videos, "brush_hair/a.avi", "brush_hair/b.avi", "brush_hair/c.avi")
    touch(videos, "cartwheel/d.avi", "cartwheel/e.avi")
    train = L.hmdb51(videos, splits, split=1, subset="train")
    assert train.classes == ["brush_hair", "cartwheel"]
    assert rel_items(train, videos) == [("brush_hair/a.avi", 0), ("cartwheel/e.avi", 1)]
    test = L.hmdb51(videos, splits, split=1, subset="test")
    assert rel_items(test, videos) == [("brush_hair/b.avi", 0), ("cartwheel/d.avi", 1)]
    assert rel_items(L.hmdb51(videos, splits, 1, "unused"), videos) == [("brush_hair/c.avi", 0)]
    split2 = L.hmdb51(videos, splits, split=2, subset="train")
    assert split2.classes == ["cartwheel"] and rel_items(split2, videos) == [("cartwheel/d.avi", 0)]
    with pytest.raises(FileNotFoundError, match="_test_split3.txt"):
        L.hmdb51(videos, splits, split=3)
    (splits / "brush_hair_test_split1.txt").write_text("a.avi x\n")
    with pytest.raises(ValueError, match="brush_hair_test_split1.txt:1"):
        L.hmdb51(videos, splits, split=1)


KINETICS_CSV = (
    "label,youtube_id,time_start,time_end,split,is_cc\n"
    "abseiling,---QUuC4vJs,3,13,train,0\n"
    "air drumming,--nQbRBEz2s,104,114,train,0\n"
    "abseiling,--33Lscn6sk,4,14,val,0\n"
    "zumba,xyz,0,10,val,0\n"
)


def test_kinetics_nested_layout(tmp_path):
    csv_path = tmp_path / "kinetics400.csv"
    csv_path.write_text(KINETICS_CSV)
    root = tmp_path / "k400"
    touch(
        root,
        "train/abseiling/---QUuC4vJs_000003_000013.mp4",
        "train/air_drumming/--nQbRBEz2s_000104_000114.mp4",
        "val/abseiling/--33Lscn6sk_000004_000014.mp4",
        "val/zumba/xyz_000000_000010.mkv",
    )
    train = L.kinetics(root, csv_path, "train")
    assert train.classes == ["abseiling", "air drumming", "zumba"]  # whole-CSV classes
    assert rel_items(train, root) == [
        ("train/abseiling/---QUuC4vJs_000003_000013.mp4", 0),
        ("train/air_drumming/--nQbRBEz2s_000104_000114.mp4", 1),
    ]
    val = L.kinetics(root, csv_path, "val")
    assert rel_items(val, root) == [
        ("val/abseiling/--33Lscn6sk_000004_000014.mp4", 0),
        ("val/zumba/xyz_000000_000010.mkv", 2),
    ]


def test_kinetics_flat_and_split_folders_and_missing(tmp_path):
    csv_path = tmp_path / "k.csv"
    csv_path.write_text(KINETICS_CSV)
    flat = tmp_path / "flat"
    touch(flat, "---QUuC4vJs_000003_000013.mp4", "--nQbRBEz2s.mp4")  # second: youtube id only
    assert rel_items(L.kinetics(flat, csv_path, "train"), flat) == [
        ("---QUuC4vJs_000003_000013.mp4", 0),
        ("--nQbRBEz2s.mp4", 1),
    ]
    split_dirs = tmp_path / "cvdf"
    touch(split_dirs, "val/--33Lscn6sk_000004_000014.mp4", "val/xyz_000000_000010.mp4.vfs")
    assert rel_items(L.kinetics(split_dirs, csv_path, "val"), split_dirs) == [
        ("val/--33Lscn6sk_000004_000014.mp4", 0),
        ("val/xyz_000000_000010.mp4.vfs", 2),
    ]
    (split_dirs / "val/xyz_000000_000010.mp4.vfs").unlink()
    with pytest.raises(FileNotFoundError, match="xyz_000000_000010"):
        L.kinetics(split_dirs, csv_path, "val")
    kept = L.kinetics(split_dirs, csv_path, "val", skip_missing=True)
    assert len(kept) == 1
    with pytest.raises(ValueError, match="no rows with split == 'test'"):
        L.kinetics(split_dirs, csv_path, "test")
    bad = tmp_path / "bad.csv"
    bad.write_text("label,id\nx,y\n")
    with pytest.raises(ValueError, match="bad.csv: missing column 'youtube_id'"):
        L.kinetics(split_dirs, bad, "val")


def test_subset_keeps_classes(tmp_path):
    touch(tmp_path, "a/1.mp4", "a/2.mp4", "b/3.mp4")
    index = L.class_folders(tmp_path)
    sub = index.subset([2, 0])
    assert [Path(it.path).name for it in sub.items] == ["3.mp4", "1.mp4"]
    assert sub.classes == index.classes
