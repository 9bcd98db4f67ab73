"""MoCo queues shorter than the training set: the paper configs, and the engine's warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from vidssl.app.cli import main
from vidssl.app.train.build import warn_long_queues
from vidssl.config import SECTIONS, load_config
from vidssl.methods import METHODS
from vidssl.methods.cstp import CSTP
from vidssl.methods.moco import MoCo
from vidssl.models.backbones import create_backbone

REPO = Path(__file__).resolve().parents[1]
BUILD_LOGGER = "vidssl.app.train.build"

# training videos of split 1 (official lists; split 2 / 3 differ by a few videos)
TRAIN_VIDEOS: dict[str, int] = {"ucf101": 9537, "hmdb51": 3570}


def tiny_backbone() -> object:
    return create_backbone("r3d_18", width=0.125)


def test_moco_and_cstp_declare_their_negative_queues() -> None:
    assert MoCo(tiny_backbone(), queue_size=40, hidden_dim=16).negative_queues() == {
        "queue_size": 40
    }
    cstp = CSTP(
        tiny_backbone(),
        contrastive="moco",
        contrastive_kwargs={"queue_size": 24, "hidden_dim": 16, "out_dim": 8},
    )
    assert cstp.negative_queues() == {"contrastive_kwargs.queue_size": 24}
    assert CSTP(tiny_backbone(), contrastive_kwargs={"hidden_dim": 16}).negative_queues() == {}
    no_ctr = CSTP(tiny_backbone(), contrastive="moco", lambda_ctr=0.0)
    assert no_ctr.negative_queues() == {}


def test_warning_names_the_field_and_both_numbers(caplog: pytest.LogCaptureFixture) -> None:
    cstp = CSTP(
        tiny_backbone(),
        contrastive="moco",
        contrastive_kwargs={"queue_size": 24, "hidden_dim": 16, "out_dim": 8},
    )
    with caplog.at_level(logging.WARNING, logger=BUILD_LOGGER):
        assert warn_long_queues(cstp, 24) == []  # equal: no stale copy of its own video yet
        (message,) = warn_long_queues(cstp, 12)
    assert "method.contrastive_kwargs.queue_size=24" in message and "12 training videos" in message
    assert [r.getMessage() for r in caplog.records] == [message]


def test_pretrain_warns_when_the_queue_exceeds_the_training_videos(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    args = ["pretrain", "method.name=moco", "method.queue_size=64", "method.hidden_dim=16"]
    args += ["method.out_dim=8", "data.args={num_videos: 16, frames: 8, size: 16}"]
    args += ["data.clip_len=2", "data.size=16", "data.batch_size=4", "data.workers=0"]
    args += ["model.width=0.125", "train.max_steps=1", "train.device=cpu", "train.amp=none"]
    args += ["train.channels_last=false", f"train.out_dir={out}"]
    with caplog.at_level(logging.WARNING, logger=BUILD_LOGGER):
        assert main(args) == 0
    cfg = load_config(str(out / "config.yaml"))
    from vidssl.app.train.build import build_dataset, build_method

    videos = len(build_dataset(cfg, build_method(cfg)))
    assert videos < 64
    messages = [r.getMessage() for r in caplog.records if r.name == BUILD_LOGGER]
    assert len(messages) == 1
    assert f"method.queue_size=64 exceeds the {videos} training videos" in messages[0]


def _pretrain_configs() -> list[Path]:
    """Every ``vidssl pretrain`` config under configs/ (not the bench / eval presets)."""
    paths = sorted((REPO / "configs").rglob("*.yaml"))
    return [p for p in paths if set(yaml.safe_load(p.read_text())) <= set(SECTIONS)]


@pytest.mark.parametrize("path", _pretrain_configs(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_configs_on_ucf101_or_hmdb51_keep_queues_below_one_epoch(path: Path) -> None:
    cfg = load_config(str(path), check=False)
    hp = cfg.method.hparams
    uses_moco = cfg.method.name == "moco" or hp.get("contrastive") == "moco"
    if cfg.data.dataset not in TRAIN_VIDEOS or not uses_moco:
        return
    method = METHODS[cfg.method.name](create_backbone(cfg.model.backbone, width=0.125), **hp)
    videos = TRAIN_VIDEOS[cfg.data.dataset]
    assert method.negative_queues(), path
    for size in method.negative_queues().values():
        assert size < videos, f"{path}: queue of {size} keys for {videos} training videos"
