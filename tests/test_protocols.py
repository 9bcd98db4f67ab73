"""The protocol registry: names defined once, settings made of the protocols' own, a protocol
added with one file and one dict line (the temporal-order probe)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from vidssl.app import bench_table
from vidssl.app import eval as eval_cmd
from vidssl.app.cli import main
from vidssl.eval.features import Features
from vidssl.eval.frozen import LinearSettings
from vidssl.eval.protocol_base import ArtefactSettings, ClipSettings, Outcome
from vidssl.eval.protocols import (
    ALL,
    PROTOCOLS,
    EvalConfig,
    eval_config_from_dict,
    names,
    protocol_settings,
)
from vidssl.eval.stats import EvalResult
from vidssl.eval.temporal_order import TemporalOrder, TimeReversed
from vidssl.models.backbones.base import pooled_features

MODEL = ["--checkpoint", "random", "--backbone", "r3d_18", "--width", "0.125"]
DATA = ["data.num_videos=16", "data.frames=8", "data.size=16", "data.num_motions=4"]
FAST = ["num_clips=2", "workers=0", "amp=none", "clip_len=4", "size=16", "progress=false"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_names_come_from_the_registry() -> None:
    assert list(PROTOCOLS) == [
        "retrieval", "linear", "knn", "finetune", "closed-set", "zeroshot", "temporal-order"
    ]  # fmt: skip
    assert ALL == ("retrieval", "linear", "knn", "finetune")
    assert names("text") == ("closed-set", "zeroshot")
    for name in PROTOCOLS:
        assert name in eval_cmd.PROTOCOL_CHOICES_HELP.split(" | ")
    assert all(p.name == n for n, p in PROTOCOLS.items())


def test_eval_config_is_the_union_of_the_protocols_settings() -> None:
    fields = [f.name for f in dataclasses.fields(EvalConfig)]
    parts = [ClipSettings, *dict.fromkeys(p.settings for p in PROTOCOLS.values()
                                          if p.needs != "text"), ArtefactSettings]  # fmt: skip
    assert fields == [f.name for part in parts for f in dataclasses.fields(part)]
    cfg = eval_config_from_dict({"linear_epochs": 7, "knn_k": 3})
    assert protocol_settings("temporal-order", cfg) == LinearSettings(linear_epochs=7)
    assert protocol_settings("knn", cfg).knn_k == 3


def test_a_new_protocols_title_and_columns_reach_the_bench_table() -> None:
    result = EvalResult("temporal-order", "1", {"top1": 0.75, "top5": 1.0}, label_set="order")
    record = {"row": "m", "label": "m", "kind": "pretrain", "seed": 0, "backbone": "r3d_18",
              "width": 0.25, "train": None, "results": [result.to_json()]}  # fmt: skip
    rows = bench_table.collect_rows([record])
    table = bench_table.bench_table(rows, ["temporal-order"], resources=False)
    assert "temporal-order top-1 order" in table.columns
    assert "75.0" in table.rows[0]


class _Job:
    """Features whose forwards / backwards rows are given, for the probe alone."""

    def __init__(self, fwd: dict[str, Tensor], bwd: dict[str, Tensor]) -> None:
        self.fwd, self.bwd = fwd, bwd
        self.seed, self.label_keys, self.progress = 0, ["label"], False

    def features(self, subset: str, *, reverse: bool = False) -> Features:
        x = (self.bwd if reverse else self.fwd)[subset]
        n = len(x)
        return Features(x, {"label": torch.zeros(n, dtype=torch.long)}, torch.arange(n))


def _separable(shift: float) -> _Job:
    g = torch.Generator().manual_seed(0)
    fwd = {s: torch.randn(n, 8, generator=g) for s, n in (("train", 40), ("test", 20))}
    direction = torch.zeros(8)
    direction[0] = shift
    bwd = {s: x + direction for s, x in fwd.items()}  # backwards = forwards moved along dim 0
    return _Job(fwd, bwd)


def test_temporal_order_probe_separates_an_arrow_of_time_and_not_a_bag_of_frames() -> None:
    probe, settings = TemporalOrder(), LinearSettings(linear_epochs=30, linear_batch_size=16)
    (arrow,) = probe.run(_separable(10.0), settings)
    assert isinstance(arrow, Outcome) and arrow.key == "order"
    assert arrow.metrics["top1"] == 1.0 and "top5" not in arrow.metrics
    (blind,) = probe.run(_separable(0.0), settings)  # backwards features == forwards features
    assert blind.metrics["top1"] == 0.5  # identical rows, one per class: always half wrong


def test_time_reversed_backbone_flips_the_time_axis() -> None:
    class Last(nn.Module):
        def forward_features(self, x: Tensor) -> Tensor:
            return x[:, :, -1]  # the last frame: (B, C, T, H, W) -> (B, C, H, W)

        def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
            return x.flatten(1)  # (B, C, H, W) -> (B, C*H*W)

    x = torch.randn(2, 3, 4, 2, 2)
    assert torch.equal(pooled_features(TimeReversed(Last()), x), x[:, :, 0].flatten(1))


def test_temporal_order_through_vidssl_eval(tmp_path: Path) -> None:
    args = ["eval", "temporal-order", *MODEL, "--out", str(tmp_path), *FAST, *DATA]
    assert main([*args, "linear_epochs=5"]) == 0
    files = sorted((tmp_path / "eval").glob("temporal-order-*.json"))
    assert [f.name for f in files] == ["temporal-order-synthetic-split1-seed0-order.json"]
    result: dict[str, Any] = json.loads(files[0].read_text())
    assert result["label_set"] == "order" and 0.0 <= result["metrics"]["top1"] <= 1.0
    assert result["info"]["linear"]["epochs"] == 5
    # forwards and backwards features are cached apart
    assert len(list((tmp_path / "eval" / "cache").glob("feats-*.pt"))) == 4
