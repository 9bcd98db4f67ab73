"""open_split: the one path from a dataset name to its index and opener."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vidssl
from vidssl.config import ConfigError
from vidssl.data.datasets import DATASETS, DatasetArgError, open_split

SRC = Path(vidssl.__file__).resolve().parent
BENCHMARKS = SRC.parents[1] / "benchmarks"


def _python_files() -> list[Path]:
    files = [p for p in SRC.rglob("*.py") if "data" not in p.relative_to(SRC).parts[:1]]
    return files + sorted(BENCHMARKS.glob("*.py"))


def test_datasets_registry_is_read_only_in_the_data_layer():
    """Outside ``vidssl.data`` nobody indexes, imports or inspects ``DATASETS``: every site
    (training, evaluation, zero-shot, bench, supervised, embed) calls ``open_split``."""
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Name) and node.id in ("DATASETS", "LAYOUTS"):
                offenders.append(f"{path}:{node.lineno} {node.id}")
            elif isinstance(node, ast.alias) and node.name in ("DATASETS", "LAYOUTS"):
                offenders.append(f"{path} imports {node.name}")
            elif isinstance(node, ast.FunctionDef) and node.name == "dataset_kwargs":
                offenders.append(f"{path}:{node.lineno} defines dataset_kwargs")
    assert offenders == []
    assert not hasattr(vidssl.data.layouts, "LAYOUTS")  # one registry
    assert not hasattr(vidssl.data.datasets, "build_dataset")  # no dead builder


def test_open_split_equals_the_builder(tmp_path):
    built = open_split("synthetic", None, "test", {"num_videos": 12, "frames": 8, "size": 16})
    ref = DATASETS["synthetic"](subset="test", num_videos=12, frames=8, size=16)
    assert built.index == ref.index
    assert len(built.index) == 3  # test_fraction 0.25 of 12
    for rel in ("train/walk/a.mp4", "train/run/b.mp4", "test/run/c.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    test = open_split("folder", str(tmp_path), "test", {}).index
    assert [Path(it.path).name for it in test.items] == ["c.mp4"]
    whole = open_split("unlabelled", str(tmp_path), None, {}).index  # no subset: every video
    assert len(whole.items) == 3


def test_unknown_dataset_argument_names_the_field():
    with pytest.raises(DatasetArgError, match=r"args\.bogus: unknown argument for dataset "):
        open_split("synthetic", None, "train", {"bogus": 1})
    with pytest.raises(DatasetArgError) as err:
        open_split("folder", "/tmp", "train", {"root": "/elsewhere"})  # root has its own place
    assert err.value.field == "args.root"
    with pytest.raises(DatasetArgError, match="unknown dataset 'imagenet'") as err:
        open_split("imagenet", None, "train", {})
    assert err.value.field == "dataset"


def test_callers_turn_the_error_into_their_config_field():
    from vidssl.config import config_from_dict
    from vidssl.eval.splits import build_subset

    with pytest.raises(ConfigError) as err:
        build_subset("synthetic", None, {"bogus": 1}, "train")
    assert err.value.field == "data.bogus"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"data": {"dataset": "synthetic", "args": {"bogus": 1}}}, check=True)
    assert err.value.field == "data.args.bogus"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"data": {"dataset": "imagenet"}}, check=True)
    assert err.value.field == "data.dataset"
