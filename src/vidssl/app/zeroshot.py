"""Text-matching evaluation of a language-video checkpoint (X-CLIP style, seed 004).

    vidssl eval closed-set --checkpoint runs/xclip/stage2/last.pt
    vidssl eval zeroshot --checkpoint runs/xclip_zs/stage2/last.pt num_clips=4 num_crops=3

Both protocols rebuild the trained method from the checkpoint (its saved config), encode every
test video with K = ``num_clips`` x ``num_crops`` views (4 x 3 = 12 in Sec. 4.2, as X-CLIP)
and score it by the cosine between its unit video embedding and the unit class text
embeddings (the contrastive branch only; the auxiliary head is not used at inference). A
video's prediction is the mean over its K views of the softmax of the scaled cosines.

- ``closed-set``: every test video against all classes' texts; top-1 / top-5.
- ``zeroshot``: only videos of the classes held out from training (``method.held_out_classes``
  / ``held_out_fraction`` of the checkpoint), scored against only the held-out classes' texts.
  Top-k is clamped to the number of held-out classes (top-5 over 2 classes is 1.0).

Settings (``--config FILE`` / ``key=value``, fields of :class:`vidssl.eval.text_match.TextSettings`) and dataset
overrides (``data.num_videos=64``) as for the other ``vidssl eval`` protocols; the dataset is
the checkpoint's training dataset (``data.dataset`` / ``data.root`` / ``data.args``). The
driver is :func:`vidssl.app.evaluate.evaluate`, which runs every protocol; this module holds
the text protocols' model and data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidssl.config import Config, ConfigError, config_from_dict
from vidssl.eval.protocols import PROTOCOLS, names
from vidssl.eval.stats import EvalResult
from vidssl.eval.text_match import TextSettings, VideoTextJob, text_match_metrics  # noqa: F401

if TYPE_CHECKING:
    from vidssl.data.datasets import VideoDataset
    from vidssl.methods.base import Method


# ---------------------------------------------------------------------------- model and data


def load_text_method(checkpoint: str | Path) -> tuple[Method, Config]:
    """The method of a ``vidssl pretrain`` checkpoint with its trained weights, in eval mode.

    Raises ``FileNotFoundError`` for a missing file and :class:`ConfigError` for a checkpoint
    whose method cannot match texts (``Method.matches_text`` is False).
    """
    from vidssl.app.train.build import build_method
    from vidssl.eval.weights import open_checkpoint

    path = Path(checkpoint)
    ckpt = open_checkpoint(path)
    if not isinstance(ckpt.get("config"), dict):
        raise ConfigError("--checkpoint", f"{path} records no config; was it written by pretrain?")
    cfg = config_from_dict(ckpt["config"])
    cfg.method.hparams.pop("init_checkpoint", None)  # the weights come from this file
    method = build_method(cfg)
    if not method.matches_text:
        raise ConfigError(
            "--checkpoint", f"{path}: method {cfg.method.name!r} has no text branch to match"
        )
    try:
        method.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ConfigError("--checkpoint", f"{path}: weights do not fit its config ({err})") from err
    return method.eval(), cfg


def _dataset(
    cfg: Config, method: torch.nn.Module, ecfg: TextSettings, extra: dict[str, Any]
) -> VideoDataset:
    """The checkpoint's dataset, subset ``ecfg.subset``, with K-view test clips."""
    from vidssl.data.datasets import VideoDataset, open_split
    from vidssl.data.recipes import RECIPES

    d = cfg.data
    d.args = {**d.args, **extra}
    index, opener = open_split(d.dataset, d.root, ecfg.subset, d.args)
    overrides = {k: v for k, v in method.recipe_overrides.items() if k in ("mean", "std")}
    recipe = RECIPES["multi_clip"](
        clip_len=ecfg.clip_len or d.clip_len,
        stride=ecfg.stride or d.stride,
        size=ecfg.size or d.size,
        train=False,
        num_clips=ecfg.num_clips,
        num_crops=ecfg.num_crops,
        **overrides,
    )
    return VideoDataset(index, recipe, seed=0, opener=opener)


# ---------------------------------------------------------------------------- protocols


def text_result_path(result: EvalResult, protocol: str, out: Path) -> Path:
    """``out/eval/<protocol>-<dataset>-<label set>.json`` (what ``vidssl report`` reads)."""
    dataset = result.info.get("dataset", "data")
    return out / "eval" / f"{protocol}-{dataset}-{result.label_set}.json"


def save_text_result(result: EvalResult, protocol: str, out: Path) -> Path:
    """Write ``result`` to :func:`text_result_path`; returns the path."""
    return result.save(text_result_path(result, protocol, out))


def evaluate_text(
    checkpoint: str | Path,
    protocol: str,
    ecfg: TextSettings | None = None,
    dataset_args: dict[str, Any] | None = None,
) -> EvalResult:
    """Run ``protocol`` (a text protocol of :data:`PROTOCOLS`) on ``checkpoint``."""
    if protocol not in names("text"):
        raise ConfigError("protocol", f"unknown text protocol {protocol!r}")
    ecfg = ecfg or TextSettings()
    method, cfg = load_text_method(checkpoint)
    cuda = torch.cuda.is_available() and ecfg.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    method.to(device)
    data = _dataset(cfg, method, ecfg, dict(dataset_args or {}))
    if method.class_tokens.shape[0] == 0:  # trained with the dataset's class names as texts
        method.set_class_texts(data.classes)
    held_out = list(method.held_out)
    job = VideoTextJob(method, held_out, str(checkpoint), device, data, ecfg)
    (outcome,) = PROTOCOLS[protocol].run(job, ecfg)
    names_ = method.class_names or list(data.classes)
    classes = outcome.info["scored"]
    return EvalResult(
        protocol=protocol,
        split="1",
        metrics=outcome.metrics,
        seed=0,
        label_set="motion" if cfg.data.dataset == "synthetic" else cfg.data.dataset,
        info={
            "checkpoint": str(checkpoint),
            "dataset": cfg.data.dataset,
            "subset": ecfg.subset,
            "num_videos": outcome.info["num_videos"],
            "classes": [names_[k] for k in classes],
            "chance_top1": 1.0 / len(classes),
            "num_clips": ecfg.num_clips,
            "num_crops": ecfg.num_crops,
            "prompt_mode": cfg.method.hparams.get("prompt_mode"),
        },
    )
