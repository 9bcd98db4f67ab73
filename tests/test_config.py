"""Config: defaults <- YAML <- overrides, type checks, registry / path / signature validation."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Literal

import pytest
import yaml

from vidssl.app.cli import main
from vidssl.config import (
    ConfigError,
    check_type,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _write(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_defaults_are_a_cpu_sized_synthetic_run() -> None:
    cfg = load_config(None, [])
    assert cfg.data.dataset == "synthetic" and cfg.data.root == ""
    assert cfg.model.backbone == "r3d_18" and 0.25 <= cfg.model.width <= 0.5
    assert cfg.data.clip_len <= 8 and cfg.data.size <= 64 and 8 <= cfg.data.batch_size <= 16
    assert cfg.train.amp == "auto" and cfg.train.channels_last and not cfg.train.compile
    # the resolved config records the method's own defaults and the dataset builder's
    from vidssl.methods import METHODS

    default = inspect.signature(METHODS["simclr"].__init__).parameters["temperature"].default
    assert cfg.method.hparams["temperature"] == default
    assert "num_videos" in cfg.data.args


def test_precedence_defaults_then_file_then_overrides(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "optim": {"lr": 0.2, "name": "lars"},
            "data": {"batch_size": 4, "args": {"num_videos": 40, "frames": 8}},
            "method": {"name": "simclr", "temperature": 0.5},
        },
    )
    cfg = load_config(path, ["optim.lr=0.3", "method.temperature=0.25", "data.args.frames=12"])
    assert cfg.optim.lr == 0.3  # override beats file
    assert cfg.optim.name == "lars" and cfg.data.batch_size == 4  # file beats default
    assert cfg.optim.momentum == 0.9 and cfg.data.clip_len == 8  # defaults kept
    assert cfg.method.hparams["temperature"] == 0.25
    assert cfg.data.args["num_videos"] == 40 and cfg.data.args["frames"] == 12  # mappings merge


def test_override_values_are_parsed_and_widened() -> None:
    assert parse_override("data.args.split=2") == {"data": {"args": {"split": 2}}}
    cfg = load_config(
        None, ["optim.lr=1e-3", "optim.weight_decay=0", "train.compile=true", "train.resume="]
    )
    assert cfg.optim.lr == 0.001 and isinstance(cfg.optim.weight_decay, float)
    assert cfg.train.compile is True and cfg.train.resume == ""


def test_backbone_stem_is_chosen_from_model_args() -> None:
    from vidssl.app.train.build import build_method

    cfg = load_config(None, ["model.args.stem=small", "model.width=0.125"])
    assert cfg.model.args == {"stem": "small"}
    stem_conv = build_method(cfg).backbone.stem[0]
    assert stem_conv.kernel_size == (3, 3, 3) and stem_conv.stride == (1, 1, 1)


def test_check_type_rules() -> None:
    assert check_type(3, float, "x") == 3.0
    assert check_type([0.1, 1], tuple[float, float], "x") == (0.1, 1.0)
    assert check_type(None, float | None, "x") is None
    assert check_type("bf16", Literal["bf16", "none"], "x") == "bf16"
    for value, hint in [
        (True, int),
        (1, bool),
        ("fp8", Literal["bf16"]),
        ([1, 2, 3], tuple[float, float]),
    ]:
        with pytest.raises(ConfigError, match="^x: expected"):
            check_type(value, hint, "x")


def test_saved_config_reloads_identically(tmp_path: Path) -> None:
    cfg = load_config(None, ["method.name=byol", "data.recipe.p_blur=0.5", "optim.name=adamw"])
    save_config(cfg, tmp_path / "config.yaml")
    assert config_to_dict(load_config(str(tmp_path / "config.yaml"), [])) == config_to_dict(cfg)


@pytest.mark.parametrize("name", ["simclr", "moco", "byol", "simsiam", "cvrl"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(str(CONFIGS / f"{name}.yaml"), [])
    assert cfg.method.name == name and cfg.data.dataset == "synthetic"


# Each bad config stops before any work (no run folder), exit code 2, and names the field.
BAD = {
    "unknown method": (["method.name=nosuch"], "method.name: unknown method 'nosuch'"),
    "unknown field": (["optim.learning_rate=0.1"], "optim.learning_rate: unknown field"),
    "unknown section": (["trainer.epochs=1"], "trainer: unknown section"),
    "wrong type": (["data.batch_size=many"], "data.batch_size: expected int, got 'many'"),
    "wrong literal": (["train.amp=fp8"], "train.amp: expected"),
    "out of range": (["optim.accumulate=0"], "optim.accumulate: must be >= 1"),
    "unknown method argument": (["method.temprature=0.2"], "method.temprature: unknown argument"),
    "ill-typed method argument": (["method.temperature=hot"], "method.temperature: expected float"),
    "unknown backbone": (["model.backbone=resnet9000"], "model.backbone: unknown backbone"),
    "unknown stem": (["model.args.stem=tiny"], "model.args.stem: expected"),
    "unknown dataset": (["data.dataset=imagenet"], "data.dataset: unknown dataset"),
    "missing data folder": (
        ["data.dataset=folder"],
        "data.root: dataset 'folder' needs a data folder",
    ),
    "missing data path": (
        ["data.dataset=folder", "data.root=/no/such/videos"],
        "data.root: path does not exist",
    ),
    "missing split file": (
        ["data.dataset=ucf101", "data.root=.", "data.args.splits_dir=/no/such/lists"],
        "data.args.splits_dir: path does not exist",
    ),
    "unknown recipe argument": (["data.recipe.zoom=2"], "data.recipe.zoom: unknown argument"),
    "fp16 on CPU": (["train.amp=fp16", "train.device=cpu"], "train.amp: fp16 needs a CUDA device"),
    "missing resume file": (
        ["train.resume=/no/such.pt"],
        "train.resume: checkpoint file not found",
    ),
    "malformed override": (["optim.lr"], "optim.lr: expected an override of the form"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_naming_the_field(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides, message = BAD[case]
    out = tmp_path / "run"
    assert main(["pretrain", f"train.out_dir={out}", *overrides]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and message in err, err
    assert not out.exists()


def test_bad_yaml_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    assert main(["pretrain", "--config", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err
    assert main(["pretrain", "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err
