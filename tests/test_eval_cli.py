"""`vidssl eval` and `vidssl train-supervised` end to end on the synthetic set (tiny settings).

Covers: random-init baseline with motion + appearance label sets, R@k checked against a
brute-force reference on the cached features, feature-cache reuse across protocols, --split all
and --seeds (mean ± std), eval of a `vidssl pretrain` checkpoint + `vidssl report`, fine-tuning
through the engine's Trainer (init from the checkpoint, resume, multi-clip softmax test),
the supervised baseline, and bad input.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vidssl.eval.context as eval_data
from vidssl.app.cli import main
from vidssl.app.eval_settings import parse_settings
from vidssl.app.evaluate import evaluate
from vidssl.app.train.checkpoint import backbone_state_dict, load_checkpoint
from vidssl.config import load_config
from vidssl.data.synthetic import SyntheticConfig
from vidssl.eval.features import load_features_file
from vidssl.eval.finetune import multi_clip_scores
from vidssl.eval.gradcam import CamExamples
from vidssl.eval.protocols import EvalConfig, eval_config_from_dict
from vidssl.eval.retrieval import RetrievalExamples
from vidssl.eval.stats import format_percent, load_eval_dir, mean_std
from vidssl.eval.weights import read_weights
from vidssl.methods import METHODS
from vidssl.methods.supervised import Supervised
from vidssl.models.backbones import create_backbone
from vidssl.models.backbones.base import pooled_features

MODEL = ["--backbone", "r3d_18", "--width", "0.125"]
# 16 synthetic videos (12 train, 4 test), 4 motion and 2 appearance classes, 8 frames of 16 px
DATA = ["data.num_videos=16", "data.frames=8", "data.size=16", "data.num_motions=4"]
DATA += ["data.num_appearances=2"]
FAST = ["num_clips=2", "workers=0", "amp=none", "linear_epochs=10", "progress=false"]
TINY = [*FAST, "clip_len=4", "size=16", *DATA]
KS = ("R@1", "R@5", "R@10", "R@20", "R@50")


def _eval(protocol: str, *args: str) -> int:
    return main(["eval", protocol, "--data", "synthetic", *args])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step `vidssl pretrain` run (SimCLR, r3d_18 at width 0.125, 4 x 16 px clips)."""
    run = tmp_path_factory.mktemp("pretrain")
    rc = main(
        [
            "pretrain",
            f"train.out_dir={run}",
            "train.max_steps=2",
            "train.amp=none",
            "data.args.num_videos=16",
            "data.args.frames=8",
            "data.args.size=16",
            "data.clip_len=4",
            "data.size=16",
            "data.batch_size=4",
            "data.workers=0",
            "model.width=0.125",
            "method.hidden_dim=64",
        ]
    )
    assert rc == 0
    return run


def _count_extractions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = eval_data.extract_features

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(eval_data, "extract_features", counting)
    return calls


def test_random_baseline_motion_appearance_and_cache_reuse(tmp_path, monkeypatch):
    calls = _count_extractions(monkeypatch)
    out = tmp_path / "run"
    assert _eval("retrieval", "--checkpoint", "random", *MODEL, "--out", str(out), *TINY) == 0
    eval_dir = out / "eval"
    results = {r.label_set: r for r in load_eval_dir(eval_dir)[0]}
    assert set(results) == {"motion", "appearance"}
    assert len(calls) == 2  # train + test features, extracted once

    # R@k against a brute-force reference on the cached features
    caches = sorted((eval_dir / "cache").glob("feats-random-r3d_18-0.125-0-*.pt"))
    assert len(caches) == 2
    parts = sorted((load_features_file(p)[0] for p in caches), key=lambda f: len(f.feats))
    test, train = parts  # 4 test videos, 12 training videos
    assert (len(test.feats), len(train.feats)) == (4, 12)
    for key, name in (("label", "motion"), ("appearance", "appearance")):
        sims = F.normalize(test.feats, dim=1) @ F.normalize(train.feats, dim=1).T  # (4, 12)
        order = sims.argsort(dim=1, descending=True)
        for k in (1, 5, 10):
            hits = (train.labels[key][order[:, :k]] == test.labels[key][:, None]).any(dim=1)
            assert results[name].metrics[f"R@{k}"] == pytest.approx(hits.float().mean().item())
        assert results[name].metrics["R@20"] == 1.0  # the gallery (12) holds every class
        assert list(results[name].metrics) == list(KS)
    assert results["motion"].info["num_train"] == 12 and results["motion"].info["num_test"] == 4

    # the report's artefacts
    examples = RetrievalExamples.load(eval_dir / "retrieval_examples.pt")
    assert examples.query_frames.shape == (4, 4, 16, 16, 3)
    assert examples.neighbour_frames.shape == (4, 3, 4, 16, 16, 3)
    assert examples.class_names == SyntheticConfig(num_motions=4).motion_classes
    assert len(set(examples.query_labels.tolist())) == len(set(test.labels["label"].tolist()))
    cams = CamExamples.load(eval_dir / "cam_examples.pt")
    assert cams.cams.shape == (4, 4, 16, 16) and 0.0 <= cams.cams.min() <= cams.cams.max() <= 1.0
    embedding, names = load_features_file(eval_dir / "embedding.pt")
    assert embedding.feats.shape[0] == 16
    assert names["appearance"] == SyntheticConfig(num_appearances=2).appearance_classes

    # a second protocol (another command) reuses the cached features
    assert _eval("linear", "--checkpoint", "random", *MODEL, "--out", str(out), *TINY) == 0
    assert len(calls) == 2
    linear = [r for r in load_eval_dir(eval_dir)[0] if r.protocol == "linear"]
    assert {r.label_set for r in linear} == {"motion", "appearance"}
    for r in linear:
        assert set(r.metrics) == {"top1", "top5"}
        assert 0.0 <= r.metrics["top1"] <= r.metrics["top5"] <= 1.0


def test_split_all_and_seeds_give_mean_and_std(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--checkpoint", "random", *MODEL, "--out", str(out), "--split", "all"]
    assert _eval("knn", *args, "--seeds", "2", "knn_k=3", *TINY) == 0
    results, problems = load_eval_dir(out / "eval")
    assert not problems and len(results) == 3 * 2 * 2  # splits x seeds x label sets
    assert {(r.split, r.seed) for r in results} == {(s, n) for s in "123" for n in (0, 1)}
    # a different draw per split and a different random init per seed: 12 extractions
    assert len(list((out / "eval" / "cache").glob("feats-*.pt"))) == 12
    motion = [r.metrics["top1"] for r in results if r.label_set == "motion"]
    printed = capsys.readouterr().out
    assert f"| motion | 6 | {format_percent(*mean_std(motion), 6)} |" in printed
    assert "±" in printed


def test_first_seed_selects_the_random_init(tmp_path):
    cfg = EvalConfig(num_clips=1, clip_len=4, size=16, workers=0, amp="none", progress=False)
    data = {"num_videos": 8, "frames": 8, "size": 16, "num_motions": 2, "num_appearances": 2}
    common = dict(protocols=("knn",), dataset_args=data, eval_cfg=cfg, backbone="r3d_18")
    results = evaluate("random", **common, width=0.125, first_seed=1, out_dir=tmp_path)
    assert {r.seed for r in results} == {1}
    caches = list((tmp_path / "eval" / "cache").glob("feats-*.pt"))
    assert len(caches) == 2 and all("random-r3d_18-0.125-1-" in p.name for p in caches)


def test_eval_pretrained_checkpoint_then_report(pretrained, monkeypatch):
    ckpt = pretrained / "last.pt"
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    weights = read_weights(str(ckpt))
    backbone, key = weights.build(0), weights.key(0)
    assert key == digest
    expected = backbone_state_dict(load_checkpoint(ckpt))
    for name, value in backbone.state_dict().items():
        assert torch.equal(value, expected[name]), name

    # no clip_len / size given: the checkpoint's data settings (4 frames, 16 px) are used
    assert _eval("retrieval", "--checkpoint", str(ckpt), *FAST, *DATA) == 0  # --out: ckpt folder
    results = load_eval_dir(pretrained / "eval")[0]
    assert {r.label_set for r in results} == {"motion", "appearance"}
    info = results[0].info
    assert (info["weights_sha256"], info["clip_len"], info["size"]) == (digest, 4, 16)
    assert list((pretrained / "eval" / "cache").glob(f"feats-sha256-{digest[:16]}-*.pt"))

    assert main(["report", str(pretrained)]) == 0
    figures = {p.name for p in (pretrained / "report_files").glob("*.png")}
    want = {"curves.png", "retrieval.png", "gradcam.png", "embedding-label.png"}
    assert want | {"embedding-appearance.png"} <= figures
    assert "retrieval" in (pretrained / "report.html").read_text()


def test_finetune_through_trainer_from_checkpoint(pretrained, tmp_path):
    ckpt = pretrained / "last.pt"
    cfg = EvalConfig(
        num_clips=2,
        workers=0,
        amp="none",
        progress=False,
        finetune_max_steps=2,
        finetune_batch_size=4,
        finetune_lr=0.0,  # the weights stay those of the checkpoint: checks the init
    )
    data = {"num_videos": 16, "frames": 8, "size": 16, "num_motions": 4, "num_appearances": 2}
    kwargs = dict(protocols=("finetune",), dataset_args=data, out_dir=tmp_path, eval_cfg=cfg)
    results = evaluate(str(ckpt), **kwargs)
    assert {r.label_set for r in results} == {"motion", "appearance"}
    for r in results:
        assert r.protocol == "finetune" and r.info["steps"] == 2
        assert 0.0 <= r.metrics["top1"] <= r.metrics["top5"] <= 1.0
    run_dir = Path(results[0].info["run_dir"])
    trained = load_checkpoint(run_dir / "last.pt")
    assert trained["step"] == 2 and trained["config"]["method"]["name"] == "supervised"
    assert trained["model"]["head.weight"].shape[0] == (4 if "motion" in run_dir.name else 2)
    pre = backbone_state_dict(load_checkpoint(ckpt))
    tuned = backbone_state_dict(trained)
    convs = [k for k, v in pre.items() if v.ndim == 5]
    assert convs and all(torch.equal(pre[k], tuned[k]) for k in convs)
    assert (tmp_path / "eval" / "cam_examples.pt").is_file()  # classifier Grad-CAM

    # a second run resumes the finished fine-tunes: no training, the same results
    stamp = (run_dir / "last.pt").stat().st_mtime_ns
    again = evaluate(str(ckpt), **kwargs)
    assert [r.metrics for r in again] == [r.metrics for r in results]
    assert (run_dir / "last.pt").stat().st_mtime_ns == stamp


class _PerClipLogits(nn.Module):
    """logits(x) = a fixed row per clip, picked by the clip's constant pixel value."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.flatten(1)[:, 0].long()]


def test_multi_clip_test_averages_the_softmax():
    table = torch.tensor([[20.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    # video 0: clips 0, 1, 1 (one over-confident clip); video 1: clip 2 three times
    ids = torch.tensor([[0, 1, 1], [2, 2, 2]]).float()
    clips = ids.view(2, 3, 1, 1, 1, 1).expand(2, 3, 3, 2, 4, 4)  # (B, K, C, T, H, W)
    loader = [{"clips": clips, "label": torch.tensor([1, 2])}]
    model = _PerClipLogits(table)
    scores, labels = multi_clip_scores(model, loader, torch.device("cpu"), None, "label", False)
    expected = table.softmax(dim=1)[ids.long()].mean(dim=1)  # (2, 3)
    assert torch.allclose(scores, expected) and labels.tolist() == [1, 2]
    assert torch.allclose(scores.sum(dim=1), torch.ones(2))
    # averaging the logits would pick class 0 for video 0; the softmax average picks class 1
    assert table[[0, 1, 1]].mean(dim=0).argmax() == 0 and scores[0].argmax() == 1


def test_supervised_method_loss_is_cross_entropy_and_falls():
    torch.manual_seed(0)
    model = Supervised(create_backbone("r3d_18", width=0.125), num_classes=3)
    video = torch.randn(6, 3, 4, 16, 16)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    model.eval()
    out = model.training_step({"video": video, "label": labels})
    reference = F.cross_entropy(model.head(pooled_features(model.backbone, video)), labels)
    assert torch.allclose(out["loss"], reference) and 0.0 <= out["acc"].item() <= 1.0
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model.training_step({"video": video, "label": labels})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(KeyError, match="appearance"):
        Supervised(create_backbone("r3d_18", width=0.125), num_classes=3, label_key="appearance")(
            {"video": video, "label": labels}
        )
    with pytest.raises(ValueError, match="num_classes"):
        Supervised(create_backbone("r3d_18", width=0.125))


def test_train_supervised_then_eval(tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "supervised", Supervised)
    run = tmp_path / "sup"
    rc = main(
        [
            "train-supervised",
            f"train.out_dir={run}",
            "train.max_steps=2",
            "train.amp=none",
            "data.args.num_videos=16",
            "data.args.frames=8",
            "data.args.size=16",
            "data.args.num_motions=4",
            "data.clip_len=4",
            "data.size=16",
            "data.batch_size=4",
            "data.workers=0",
            "model.width=0.125",
        ]
    )
    assert rc == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["config"]["method"]["name"] == "supervised"
    assert ckpt["config"]["method"]["num_classes"] == 4  # read from the dataset
    assert ckpt["model"]["head.weight"].shape == (4, 64)
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("acc" in s for s in steps if s.get("kind") == "step")
    assert _eval("linear", "--checkpoint", str(run / "last.pt"), *FAST, *DATA) == 0
    results = load_eval_dir(run / "eval")[0]
    assert {r.label_set for r in results} == {"motion", "appearance"}
    assert all(r.info["checkpoint"] == str(run / "last.pt") for r in results)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["retrieval", "--checkpoint", "MISSING"], "missing.pt"),
        (["bogus", "--checkpoint", "random", *MODEL], "bogus"),
        (["retrieval", "--checkpoint", "random", *MODEL, "--data", "nope"], "nope"),
        (["retrieval", "--checkpoint", "random"], "--backbone"),
        (["retrieval", "--checkpoint", "random", *MODEL, "num_clipz=2"], "num_clipz"),
        (["retrieval", "--checkpoint", "random", *MODEL, "--split", "4"], "--split"),
        (["retrieval", "--checkpoint", "random", *MODEL, "--data", "ucf101"], "--root"),
        (["retrieval", "--checkpoint", "GARBAGE"], "garbage.pt"),
        (["retrieval", "--checkpoint", "random", *MODEL, "data.nonsense=1"], "data.nonsense"),
    ],
)
def test_bad_input_is_reported_with_exit_2(tmp_path, capsys, argv, needle):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    paths = {"MISSING": str(tmp_path / "missing.pt"), "GARBAGE": str(tmp_path / "garbage.pt")}
    argv = [paths.get(a, a) for a in argv]
    assert main(["eval", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "out" / "eval").exists()  # nothing ran


def test_bad_supervised_config_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(METHODS, "supervised", Supervised)
    assert main(["train-supervised", "method.label_key=colour", "data.args.num_videos=8"]) == 2
    assert "colour" in capsys.readouterr().err


CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "eval"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_eval_configs_load(path, tmp_path, monkeypatch):
    if path.name.startswith("train_supervised"):
        monkeypatch.setitem(METHODS, "supervised", Supervised)
        cfg = load_config(str(path), [f"data.root={tmp_path}"])
        assert cfg.method.name == "supervised" and cfg.method.hparams["num_classes"] == 0
    else:
        fields, data = parse_settings(str(path), [])
        cfg = eval_config_from_dict(fields)
        assert not data and cfg.num_clips >= 1


def test_one_driver_runs_text_protocols_and_rejects_them_on_bare_weights(monkeypatch, tmp_path):
    """evaluate() drives text protocols too (through vidssl.app.zeroshot.evaluate_text); a text
    protocol needs the method's checkpoint file, not backbone weights."""
    import vidssl.app.zeroshot as zeroshot
    from vidssl.config import ConfigError
    from vidssl.eval.stats import EvalResult

    weights = read_weights("random", backbone="r3d_18", width=0.125)
    with pytest.raises(ConfigError, match="method checkpoint"):
        evaluate(weights, protocols=["closed-set"])
    calls = []

    def fake(checkpoint, protocol, settings, dataset_args):
        calls.append((checkpoint, protocol, dataset_args))
        info = {"dataset": "synthetic", "classes": ["a"]}
        return EvalResult(protocol, "1", {"top1": 0.5}, 0, "motion", info)

    monkeypatch.setattr(zeroshot, "evaluate_text", fake)
    out = evaluate(
        "x.pt", protocols=["closed-set", "zeroshot"], dataset_args={"n": 1}, out_dir=tmp_path
    )
    assert [r.protocol for r in out] == ["closed-set", "zeroshot"]
    assert calls == [("x.pt", "closed-set", {"n": 1}), ("x.pt", "zeroshot", {"n": 1})]
    assert (tmp_path / "eval" / "zeroshot-synthetic-motion.json").is_file()


def test_a_collapsed_network_is_named_in_a_warning(tmp_path, caplog):
    """Features equal for every video (a dead network: every BN scale and shift at 0) are
    reported, naming the checkpoint; a healthy random init is not."""
    cfg = EvalConfig(num_clips=1, clip_len=4, size=16, workers=0, amp="none", progress=False)
    data = {"num_videos": 8, "frames": 8, "size": 16, "num_motions": 2, "num_appearances": 2}
    common = dict(protocols=("knn",), dataset_args=data, eval_cfg=cfg)
    alive = read_weights("random", backbone="r3d_18", width=0.125)
    state = {
        k: torch.zeros_like(v) if ".bn" in k or k.startswith("stem.1.") else v
        for k, v in alive.build(0).state_dict().items()
    }
    dead = dataclasses.replace(alive, checkpoint="dead.pt", state=state, digest="0" * 64)
    with caplog.at_level(logging.WARNING, logger="vidssl.eval.context"):
        evaluate(alive, **common, out_dir=tmp_path / "alive")
        assert "collapsed" not in caplog.text
        results = evaluate(dead, **common, out_dir=tmp_path / "dead")
    assert "dead.pt: the train features of synthetic are the same for every video" in caplog.text
    assert results and all(r.metrics["top1"] <= 0.75 for r in results)
