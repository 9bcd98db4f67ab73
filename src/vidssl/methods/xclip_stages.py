"""Two-stage schedule of the language-video method (``vidssl.methods.xclip``, seed 004, Sec. 4.2).

Stage 1 trains only the parameters new to CLIP (:func:`freeze_clip_`); stage 2 starts from
stage 1 (:func:`load_init_checkpoint`) and trains everything with per-group learning-rate
multipliers (:func:`lr_multipliers`): TWS x1000, new modules x100, CLIP weights x1.
Pure functions of the model; ``group_of`` maps a parameter name to its group (:func:`lr_group`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from vidssl.models.backbones.clip_video import NEW_MODULE_KEYS

LR_GROUPS = ("tws", "new", "clip")


def lr_group(key: str, text_name: str) -> str:
    """Learning-rate group of parameter ``key``: ``"tws"`` (temporal weighted shift),
    ``"new"`` (message tokens, temporal modules, heads, text projection, temperature) or
    ``"clip"`` (pretrained CLIP weights; the text encoder's when ``text_name`` is ``"clip"``)."""
    if "message_temporal." in key:
        return "tws"
    if key.startswith("backbone.") and not any(k in key for k in NEW_MODULE_KEYS):
        return "clip" if not key.startswith("backbone.head.") else "new"
    if key.startswith("text_encoder."):
        return "clip" if text_name == "clip" else "new"
    return "new"


def param_groups(model: nn.Module, group_of: Callable[[str], str]) -> dict[str, list[nn.Parameter]]:
    """``model``'s trainable parameters split by ``group_of`` into ``LR_GROUPS``."""
    groups: dict[str, list[nn.Parameter]] = {g: [] for g in LR_GROUPS}
    for key, p in model.named_parameters():
        if p.requires_grad:
            groups[group_of(key)].append(p)
    return groups


def lr_multipliers(
    model: nn.Module, group_of: Callable[[str], str], tws_mult: float, new_mult: float
) -> dict[str, float]:
    """Parameter name -> learning-rate multiplier (TWS ``tws_mult``, new ``new_mult``, CLIP 1)."""
    mults = {"tws": tws_mult, "new": new_mult, "clip": 1.0}
    return {key: mults[group_of(key)] for key, _ in model.named_parameters()}


def freeze_clip_(model: nn.Module, group_of: Callable[[str], str]) -> None:
    """Stage 1: ``requires_grad=False`` on every ``"clip"`` parameter, in place."""
    for key, p in model.named_parameters():
        if group_of(key) == "clip":
            p.requires_grad_(False)


def load_init_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Initialise ``model`` from a vidssl checkpoint's ``"model"`` state (stage 1 for stage 2).

    Parameters of modules new in this stage (TWS / message tokens, ``NEW_MODULE_KEYS``) may be
    missing from the file; anything else missing or unexpected, or a shape mismatch, is an error.
    """
    name = type(model).__name__
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{name}: init_checkpoint not found: {file}")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
        state = ckpt["model"]
    except Exception as err:  # torn / foreign files
        raise ValueError(f"{name}: {file} is not a vidssl checkpoint ({err})") from err
    own = model.state_dict()
    shapes = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if shapes:
        raise ValueError(f"{name}: {file}: shapes differ for {shapes[:5]}")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not any(m in k for m in NEW_MODULE_KEYS)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{name}: {file} does not fit this model: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
