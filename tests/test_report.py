"""Report pictures and page: Grad-CAM, plots, result tables, and `vidssl report RUN_DIR`."""

import argparse
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vidssl.app import report
from vidssl.eval.features import Features, save_features
from vidssl.eval.gradcam import CamExamples, class_centroids, grad_cam
from vidssl.eval.retrieval import RetrievalExamples
from vidssl.eval.stats import (
    EvalResult,
    load_eval_dir,
    mean_std,
    results_tables,
    to_html,
    to_markdown,
)
from vidssl.viz import plots

# ---------------------------------------------------------------------- Grad-CAM


class TwoRegionNet(nn.Module):
    """Stride-2 per-channel average 'conv' + ReLU, then global average pooling; optional head.

    The feature is the mean of each colour channel, so a red region drives feature 0 and a
    green region feature 1.
    """

    feature_dim = 3

    def __init__(self, num_classes: int = 0) -> None:
        super().__init__()
        conv = nn.Conv3d(3, 3, kernel_size=(1, 2, 2), stride=(1, 2, 2), bias=False)
        with torch.no_grad():
            conv.weight.zero_()
            for c in range(3):
                conv.weight[c, c] = 0.25
        self.stage = nn.Sequential(conv, nn.ReLU())
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(3, num_classes, bias=False) if num_classes else nn.Identity()
        if num_classes:
            with torch.no_grad():
                self.head.weight.copy_(torch.eye(3)[:num_classes])

    def forward_features(self, x):
        return self.stage(x)  # the map (N, C, T, H', W')

    def forward_head(self, x, pre_logits=False):
        feats = self.pool(x).flatten(1)  # (N, C, 1, 1, 1) -> (N, C)
        return feats if pre_logits else self.head(feats)


def _two_region_clip():
    """(3, 2, 8, 8): red square top-left, green square bottom-right."""
    x = torch.zeros(3, 2, 8, 8)
    x[0, :, :4, :4] = 1.0
    x[1, :, 4:, 4:] = 1.0
    return x


def _quadrant_means(cam):
    return cam[:, :4, :4].mean().item(), cam[:, 4:, 4:].mean().item()


def test_grad_cam_highlights_the_region_that_drives_the_similarity():
    model = TwoRegionNet().requires_grad_(False)  # frozen weights are fine
    clip = _two_region_clip()
    cam_red = grad_cam(model, clip, reference=torch.tensor([1.0, 0.0, 0.0]))
    assert cam_red.shape == (2, 8, 8)
    assert cam_red.min() >= 0 and cam_red.max() == pytest.approx(1.0)
    red_tl, red_br = _quadrant_means(cam_red)
    assert red_tl > 0.5 and red_br < 0.1 * red_tl
    # the same clip against a "green" reference: the other region lights up
    cam_green = grad_cam(model, clip, reference=torch.tensor([0.0, 1.0, 0.0]))
    green_tl, green_br = _quadrant_means(cam_green)
    assert green_br > 0.5 and green_tl < 0.1 * green_br
    # explicit layer (module or name) == automatic last-conv-stage detection
    assert torch.allclose(
        grad_cam(model, clip, reference=torch.tensor([1.0, 0, 0]), layer="stage"), cam_red
    )
    assert torch.allclose(
        grad_cam(model, clip, reference=torch.tensor([1.0, 0, 0]), layer=model.stage), cam_red
    )


def test_grad_cam_batch_class_target_and_centroids():
    model = TwoRegionNet(num_classes=2).train()
    clips = torch.stack([_two_region_clip(), _two_region_clip()])
    cams = grad_cam(model, clips, class_index=torch.tensor([0, 1]))
    assert cams.shape == (2, 2, 8, 8) and model.training
    assert _quadrant_means(cams[0])[0] > 0.5 and _quadrant_means(cams[0])[1] < 0.1
    assert _quadrant_means(cams[1])[1] > 0.5 and _quadrant_means(cams[1])[0] < 0.1
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    centroids = class_centroids(feats, torch.tensor([0, 0, 1]), num_classes=3)
    assert torch.allclose(centroids, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="exactly one"):
        grad_cam(model, clips)


class _FeaturesOnly(nn.Module):
    """Hides that a module is a Backbone so Grad-CAM must find the stage by hooks."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward_features(self, x):
        return self.backbone.forward_features(x)

    def forward_head(self, x, pre_logits=False):
        return self.backbone.forward_head(x, pre_logits=pre_logits)


def test_grad_cam_on_every_registered_backbone():
    backbones = pytest.importorskip("vidssl.models.backbones")
    for name in backbones.list_backbones():
        model = backbones.create_backbone(name, width=0.125)
        t, h, w = (max(a, b) for a, b in zip(model.min_input_size, (4, 32, 32)))
        clip = torch.randn(3, t, h, w, generator=torch.Generator().manual_seed(0))
        ref = torch.randn(model.feature_dim, generator=torch.Generator().manual_seed(1))
        cam = grad_cam(model, clip, reference=ref)
        assert cam.shape == (t, h, w), name
        assert torch.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1, name
        if name == "vit_clip":
            continue  # no conv stage: its map is the per-frame class tokens, (N, E, T, 1, 1)
        # hook-based detection of the last conv stage agrees with the forward_features map
        assert torch.allclose(
            grad_cam(_FeaturesOnly(model), clip, reference=ref), cam, atol=1e-5
        ), name


# ---------------------------------------------------------------------- plots


def test_smooth_ema_hand_values_and_nan_gaps():
    out = plots.smooth_ema([1.0, float("nan"), 3.0], 0.5)
    # debiased EMA: 1, (gap keeps 1), (0.25 + 1.5) / 0.75
    assert np.allclose(out, [1.0, 1.0, 1.75 / 0.75])
    assert np.allclose(plots.smooth_ema([2.0, 5.0], 0.0), [2.0, 5.0])


def test_clip_to_frames_undoes_the_normalisation():
    frames = torch.randint(0, 256, (6, 4, 5, 3), dtype=torch.uint8)
    mean, std = (0.45, 0.4, 0.5), (0.225, 0.2, 0.25)
    clip = (
        frames.permute(3, 0, 1, 2).float() / 255 - torch.tensor(mean).view(3, 1, 1, 1)
    ) / torch.tensor(std).view(3, 1, 1, 1)
    out = plots.clip_to_frames(clip, mean, std, count=3)
    assert plots.frame_indices(6, 3) == [1, 3, 5]
    assert out.dtype == np.uint8 and out.shape == (3, 4, 5, 3)
    assert np.array_equal(out, frames[[1, 3, 5]].numpy())
    assert plots.frame_strip(out, gap=2).shape == (4, 3 * 5 + 2 * 2, 3)


def test_pca_2d_finds_the_main_axis():
    t = np.linspace(-1, 1, 50)
    feats = np.stack([t, 2 * t, np.zeros_like(t)], axis=1) + 1e-3 * np.random.default_rng(
        0
    ).standard_normal((50, 3))
    coords, explained = plots.pca_2d(feats)
    assert coords.shape == (50, 2) and explained[0] > 0.99
    assert np.allclose(np.abs(coords[:, 0]), np.abs(t) * np.sqrt(5), atol=0.01)


def _frames(n, s=3, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, s, size, size, 3), dtype=np.uint8)


def test_every_plot_renders_a_png(tmp_path):
    steps = np.arange(20)
    figs = {
        "curves": plots.plot_training_curves(
            steps, {"loss": np.linspace(3, 1, 20), "lr": np.full(20, 0.1)}, epochs=steps // 5
        ),
        "grid": plots.plot_retrieval_grid(
            _frames(2),
            _frames(6).reshape(2, 3, 3, 8, 8, 3),
            [0, 1],
            [[0, 1, 1], [0, 1, 0]],
            ["a", "b"],
        ),
        "embedding": plots.plot_embedding(
            np.random.default_rng(0).normal(size=(30, 5)), np.arange(30) % 3, ["a", "b", "c"]
        ),
        "cam": plots.plot_cam_overlay(
            _frames(2),
            np.random.default_rng(0).random((2, 3, 8, 8)),
            ["x", "y"],
            frame_ids=[0, 3, 6],
        ),
    }
    for name, fig in figs.items():
        path = plots.save_figure(fig, tmp_path / f"{name}.png")
        with Image.open(path) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200
    with pytest.raises(ValueError, match="disagree"):
        plots.plot_retrieval_grid(
            _frames(2), _frames(3).reshape(1, 3, 3, 8, 8, 3), [0, 1], [[0, 1, 1]], ["a", "b"]
        )
    with pytest.raises(ValueError, match="method"):
        plots.plot_embedding(np.zeros((4, 2)), [0, 0, 1, 1], ["a", "b"], method="umap")


# ---------------------------------------------------------------------- stats


def test_mean_std_and_tables():
    assert mean_std([0.4, 0.5]) == pytest.approx((0.45, 0.0707107), abs=1e-6)
    assert mean_std([0.3]) == (0.3, 0.0)
    results = [
        EvalResult("retrieval", "1", {"R@1": 0.40, "R@5": 0.60}, label_set="motion"),
        EvalResult("retrieval", "2", {"R@1": 0.50, "R@5": 0.70}, label_set="motion"),
        EvalResult("retrieval", "1", {"R@1": 0.20, "R@5": 0.30}, label_set="appearance"),
        EvalResult("linear", "1", {"top1": 0.8, "top5": 0.95}, seed=0),
    ]
    tables = results_tables(results)
    assert [t.title for t in tables] == ["retrieval", "linear"]
    assert tables[0].columns == ["labels", "runs", "R@1", "R@5"]
    assert tables[0].rows == [
        ["motion", "2", "45.0 ± 7.1", "65.0 ± 7.1"],
        ["appearance", "1", "20.0", "30.0"],
    ]
    assert tables[1].rows == [["label", "1", "80.0", "95.0"]]
    md = to_markdown(tables[0])
    assert md.splitlines()[0] == "| labels | runs | R@1 | R@5 |"
    assert "| motion | 2 | 45.0 ± 7.1 | 65.0 ± 7.1 |" in md
    assert "<td>45.0 ± 7.1</td>" in to_html(tables[0])


def test_eval_result_files_round_trip_and_validation(tmp_path):
    r = EvalResult("knn", "1", {"top1": 0.5}, seed=2, label_set="motion", info={"k": 20})
    loaded = EvalResult.load(r.save(tmp_path / "eval" / "knn.json"))
    assert loaded == r
    (tmp_path / "eval" / "bad.json").write_text(
        json.dumps(
            {"schema": "vidssl.eval/1", "protocol": "x", "split": "1", "metrics": {"a": "high"}}
        )
    )
    (tmp_path / "eval" / "broken.json").write_text("{not json")
    results, problems = load_eval_dir(tmp_path / "eval")
    assert results == [r]
    assert "metrics.a" in problems["bad.json"] and "broken.json" in problems["broken.json"]


# ---------------------------------------------------------------------- report


def _fake_run_dir(run):
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(
        "method:\n  name: simclr\nmodel:\n  backbone: r3d_18\n  width: 0.25\n"
    )
    lines = [
        json.dumps(
            {"step": s, "epoch": s // 10, "loss": 4 - s / 20, "lr": 0.1, "clips_per_s": 50 + s % 3}
        )
        for s in range(40)
    ]
    lines = [line.replace('{"step"', '{"kind": "step", "step"', 1) for line in lines]
    for epoch in range(4):  # epoch summaries, as the training logger writes them
        lines.append(
            json.dumps(
                {
                    "kind": "epoch",
                    "step": 10 * epoch + 10,
                    "epoch": epoch,
                    "loss": 9.0,
                    "skipped": 1,
                }
            )
        )
    lines.insert(5, "{truncated")
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    for split, r1 in (("1", 0.4), ("2", 0.5)):
        EvalResult("retrieval", split, {"R@1": r1, "R@5": r1 + 0.2}, label_set="motion").save(
            run / "eval" / f"retrieval-{split}.json"
        )
    EvalResult("linear", "1", {"top1": 0.8, "top5": 0.9}, label_set="motion").save(
        run / "eval" / "linear-1.json"
    )
    RetrievalExamples(
        query_frames=torch.from_numpy(_frames(2)),
        neighbour_frames=torch.from_numpy(_frames(6, seed=1).reshape(2, 3, 3, 8, 8, 3)),
        query_labels=torch.tensor([0, 1]),
        neighbour_labels=torch.tensor([[0, 1, 0], [1, 1, 0]]),
        sims=torch.tensor([[0.9, 0.8, 0.7], [0.95, 0.5, 0.4]]),
        class_names=["left", "right"],
    ).save(run / "eval" / "retrieval_examples.pt")
    feats = torch.nn.functional.normalize(
        torch.randn(24, 6, generator=torch.Generator().manual_seed(0)), dim=1
    )
    labels = {"label": torch.arange(24) % 2, "appearance": torch.arange(24) % 3}
    save_features(
        run / "eval" / "embedding.pt",
        Features(feats, labels, torch.arange(24)),
        {"label": ["left", "right"], "appearance": ["red", "green", "blue"]},
    )
    CamExamples(torch.from_numpy(_frames(1)), torch.rand(1, 3, 8, 8), ["query 0: left"]).save(
        run / "eval" / "cam_examples.pt"
    )
    return run


def _img_sources(page):
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_renders_every_part_and_links_every_png(tmp_path):
    run = _fake_run_dir(tmp_path / "run")
    rep = report.build_report(run)
    page = rep.html_path.read_text()
    assert rep.html_path == run / "report.html"
    assert rep.missing == {}
    sources = _img_sources(page)
    listed = [p.relative_to(run).as_posix() for p in rep.figures]
    assert sorted(sources) == sorted(listed)
    assert set(listed) == {
        "report_files/curves.png",
        "report_files/retrieval.png",
        "report_files/embedding-label.png",
        "report_files/embedding-appearance.png",
        "report_files/gradcam.png",
    }
    for src in sources:
        assert not src.startswith(("/", "http")) and (run / src).is_file()
    # self-contained: inline CSS only, nothing fetched
    assert (
        "<style>" in page and "<link" not in page and "<script" not in page and "http" not in page
    )
    assert "<td>45.0 ± 7.1</td>" in page  # retrieval R@1 over two splits
    assert "simclr" in page and "r3d_18" in page
    assert "40 logged steps (last step 39)" in page  # epoch summaries are not curve points
    assert "4 epochs, 4 unreadable videos replaced" in page
    assert "1 unreadable lines skipped" in page


def test_report_on_an_empty_or_broken_run_dir_says_not_available(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    rep = report.build_report(empty)
    page = rep.html_path.read_text()
    assert rep.figures == [] and _img_sources(page) == []
    assert set(rep.missing) == {
        "Configuration",
        "Training curves",
        "Evaluation",
        "Retrieval examples",
        "Embedding map",
        "Grad-CAM",
    }
    assert page.count("not available (") == 6
    assert "no metrics.jsonl" in page

    run = _fake_run_dir(tmp_path / "broken")
    (run / "eval" / "retrieval_examples.pt").write_bytes(b"garbage")
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    rep = report.build_report(run)
    assert set(rep.missing) == {"Training curves", "Retrieval examples"}
    assert "retrieval_examples.pt" in rep.missing["Retrieval examples"]
    assert sorted(_img_sources(rep.html_path.read_text())) == sorted(
        p.relative_to(run).as_posix() for p in rep.figures
    )


def test_report_command_module(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    run = _fake_run_dir(tmp_path / "run")
    assert report.run(parser.parse_args([str(run), "--smoothing", "0.3"])) == 0
    assert "report.html" in capsys.readouterr().out
    assert report.run(parser.parse_args([str(tmp_path / "nope")])) == 2
    assert "nope" in capsys.readouterr().err


def test_vidssl_report_through_the_cli(tmp_path):
    from vidssl.app.cli import COMMANDS, main

    if "report" not in COMMANDS:
        pytest.skip("`report` is not registered in vidssl.app.cli.COMMANDS yet")
    run = _fake_run_dir(tmp_path / "run")
    assert main(["report", str(run), "--embedding", "pca"]) == 0
    assert (run / "report.html").is_file() and (run / "report_files" / "curves.png").is_file()
