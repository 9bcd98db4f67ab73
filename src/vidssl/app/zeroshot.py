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

Settings (``--config FILE`` / ``key=value``, fields of :class:`TextEvalConfig`) and dataset
overrides (``data.num_videos=64``) as for the other ``vidssl eval`` protocols; the dataset is
the checkpoint's training dataset (``data.dataset`` / ``data.root`` / ``data.args``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidssl.config import Config, ConfigError, check_type, config_from_dict
from vidssl.eval.linear import topk_accuracy
from vidssl.eval.stats import EvalResult

if TYPE_CHECKING:
    from vidssl.data.datasets import VideoDataset
    from vidssl.methods.base import Method


@dataclass
class TextEvalConfig:
    """Settings of the ``closed-set`` / ``zeroshot`` protocols."""

    num_clips: int = 4  # clips uniformly spaced in time per video (4 in Sec. 4.2)
    num_crops: int = 3  # 1 = centre crop, 3 = three crops along the long side (Sec. 4.2)
    clip_len: int = 0  # frames per clip; 0 = the checkpoint's data.clip_len
    stride: float = 0.0  # source frames per clip frame; 0 = the checkpoint's data.stride
    size: int = 0  # crop side in pixels; 0 = the checkpoint's data.size
    subset: str = "test"  # subset of the dataset that is evaluated
    batch_size: int = 8  # videos per forward
    workers: int = 0  # DataLoader worker processes
    ks: tuple[int, ...] = (1, 5)  # top-k accuracies reported
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True  # tqdm progress bar


def text_eval_config(values: dict[str, Any]) -> TextEvalConfig:
    """A checked :class:`TextEvalConfig`; :class:`ConfigError` names a bad field."""
    hints = typing.get_type_hints(TextEvalConfig)
    known = {f.name for f in dataclasses.fields(TextEvalConfig)}
    checked = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"eval.{name}", f"unknown field; expected one of {sorted(known)}")
        checked[name] = check_type(value, hints[name], f"eval.{name}")
    cfg = TextEvalConfig(**checked)
    if cfg.num_clips < 1 or cfg.batch_size < 1 or cfg.workers < 0:
        raise ConfigError("eval", "num_clips and batch_size must be >= 1, workers >= 0")
    if cfg.num_crops not in (1, 3):
        raise ConfigError("eval.num_crops", f"must be 1 or 3, got {cfg.num_crops}")
    if not cfg.ks or min(cfg.ks) < 1:
        raise ConfigError("eval.ks", f"must list k >= 1, got {cfg.ks}")
    return cfg


# ---------------------------------------------------------------------------- model and data


def load_text_method(checkpoint: str | Path) -> tuple[Method, Config]:
    """The method of a ``vidssl pretrain`` checkpoint with its trained weights, in eval mode.

    Raises ``FileNotFoundError`` for a missing file and :class:`ConfigError` for a checkpoint
    whose method cannot match texts (``Method.matches_text`` is False).
    """
    from vidssl.app.train.build import build_method
    from vidssl.app.train.checkpoint import CheckpointError, load_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as err:
        raise ConfigError("--checkpoint", str(err)) from err
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
    cfg: Config, method: torch.nn.Module, ecfg: TextEvalConfig, extra: dict[str, Any]
) -> VideoDataset:
    """The checkpoint's dataset, subset ``ecfg.subset``, with K-view test clips."""
    from vidssl.app.train.build import dataset_kwargs
    from vidssl.config import keyword_params
    from vidssl.data.datasets import DATASETS, VideoDataset
    from vidssl.data.recipes import RECIPES

    d = cfg.data
    d.args = {**d.args, **extra}
    kwargs = dataset_kwargs(cfg)
    if "subset" in keyword_params(DATASETS[d.dataset]):
        kwargs["subset"] = ecfg.subset
    index, opener = DATASETS[d.dataset](**kwargs)
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


@torch.no_grad()
def view_probabilities(
    method: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """Per-video class probabilities averaged over views, and labels: (N, K), (N,).

    Each batch's ``"clips"`` (B, V, C, T, H, W) is scored view by view with
    ``zero_shot_logits`` (B*V, K); softmax, then the mean over the V views.
    """
    probs, labels = [], []
    for batch in tqdm(loader, desc="text matching", unit="batch", disable=not progress):
        clips = batch["clips"].to(device)
        b, v = clips.shape[:2]
        logits = method.zero_shot_logits(clips.flatten(0, 1))  # (B, V, ...) -> (B*V, K)
        probs.append(logits.softmax(-1).view(b, v, -1).mean(1).cpu())  # (B*V, K) -> (B, K)
        labels.append(batch["label"])
    return torch.cat(probs), torch.cat(labels)


def text_match_metrics(
    probs: Tensor, labels: Tensor, classes: list[int], ks: tuple[int, ...]
) -> dict[str, float]:
    """Top-k over the class columns ``classes`` only, for the videos of those classes.

    probs: (N, K) over all classes; labels: (N,). Rows whose label is not in ``classes`` are
    dropped; the remaining labels are re-indexed to positions in ``classes``.
    """
    cols = torch.tensor(classes, dtype=torch.long)
    remap = torch.full((probs.shape[1],), -1, dtype=torch.long)
    remap[cols] = torch.arange(len(classes))
    target = remap[labels]  # (N,) position in `classes`, -1 outside
    keep = target >= 0
    if not keep.any():
        raise ValueError(f"no evaluated video belongs to the classes {classes}")
    acc = topk_accuracy(probs[keep][:, cols], target[keep], ks)
    return {f"top{k}": v for k, v in acc.items()}


# ---------------------------------------------------------------------------- protocols


def save_text_result(result: EvalResult, protocol: str, out: Path) -> Path:
    """Write ``result`` to ``out/eval/<protocol>-<dataset>-<label set>.json`` (what
    ``vidssl report`` reads); returns the path."""
    dataset = result.info.get("dataset", "data")
    return result.save(out / "eval" / f"{protocol}-{dataset}-{result.label_set}.json")


def evaluate_text(
    checkpoint: str | Path,
    protocol: str,
    ecfg: TextEvalConfig | None = None,
    dataset_args: dict[str, Any] | None = None,
) -> EvalResult:
    """Run ``protocol`` (``"closed-set"`` or ``"zeroshot"``) on ``checkpoint``."""
    if protocol not in TEXT_PROTOCOLS:
        raise ConfigError("protocol", f"unknown text protocol {protocol!r}")
    ecfg = ecfg or TextEvalConfig()
    method, cfg = load_text_method(checkpoint)
    cuda = torch.cuda.is_available() and ecfg.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    method.to(device)
    data = _dataset(cfg, method, ecfg, dict(dataset_args or {}))
    if method.class_tokens.shape[0] == 0:  # trained with the dataset's class names as texts
        method.set_class_texts(data.classes)
    num_classes = method.class_tokens.shape[0]
    held_out = list(method.held_out)
    classes = TEXT_PROTOCOLS[protocol](num_classes, held_out, str(checkpoint))
    if protocol == "zeroshot":  # only the held-out videos are decoded
        keep = set(classes)
        data.index.items = [it for it in data.index.items if it.label in keep]
    if not data.index.items:
        raise ValueError(f"{checkpoint}: no {ecfg.subset!r} videos of classes {classes}")
    loader = DataLoader(data, batch_size=ecfg.batch_size, shuffle=False, num_workers=ecfg.workers)
    probs, labels = view_probabilities(method, loader, device, ecfg.progress)
    names = method.class_names or list(data.classes)
    return EvalResult(
        protocol=protocol,
        split="1",
        metrics=text_match_metrics(probs, labels, classes, ecfg.ks),
        seed=0,
        label_set="motion" if cfg.data.dataset == "synthetic" else cfg.data.dataset,
        info={
            "checkpoint": str(checkpoint),
            "dataset": cfg.data.dataset,
            "subset": ecfg.subset,
            "num_videos": int(labels.numel()),
            "classes": [names[k] for k in classes],
            "chance_top1": 1.0 / len(classes),
            "num_clips": ecfg.num_clips,
            "num_crops": ecfg.num_crops,
            "prompt_mode": cfg.method.hparams.get("prompt_mode"),
        },
    )


def _all_classes(num_classes: int, held_out: list[int], source: str) -> list[int]:
    return list(range(num_classes))


def _held_out_classes(num_classes: int, held_out: list[int], source: str) -> list[int]:
    if not held_out:
        raise ConfigError(
            "--checkpoint",
            f"{source} was trained without held-out classes; set method.held_out_classes "
            "or method.held_out_fraction when pre-training for the zeroshot protocol",
        )
    return held_out


# protocol -> (num classes, held-out labels, checkpoint) -> the class labels it scores against
TEXT_PROTOCOLS: dict[str, Callable[[int, list[int], str], list[int]]] = {
    "closed-set": _all_classes,
    "zeroshot": _held_out_classes,
}


def run_protocol(args: argparse.Namespace) -> int:
    """``vidssl eval closed-set|zeroshot``: the arguments of ``vidssl.app.eval``."""
    from vidssl.app.eval import parse_settings
    from vidssl.eval.stats import results_tables, to_markdown

    try:
        fields, data_args = parse_settings(args.config, list(args.overrides))
        result = evaluate_text(args.checkpoint, args.protocol, text_eval_config(fields), data_args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"vidssl eval: {err}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as err:
        print(f"vidssl eval: failed: {err}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    path = save_text_result(result, args.protocol, out)
    for table in results_tables([result]):
        print(f"\n{args.protocol}: {table.title} (%)")
        print(to_markdown(table), end="")
    print(f"\nclasses: {', '.join(result.info['classes'])}; wrote {path}")
    return 0
