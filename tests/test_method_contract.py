"""The ``Method`` contract: optional hooks are declared on the base with safe defaults, and the
application reads them directly (never discovered with ``getattr`` / ``hasattr``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from vidssl.methods import METHODS, Method

APP = Path(__file__).resolve().parents[1] / "src" / "vidssl" / "app"
HOOKS = (
    "recipe_overrides",
    "negative_queues",
    "lr_multipliers",
    "constant_lr_prefixes",
    "train_item_filter",
    "matches_text",
    "set_class_texts",
    "zero_shot_logits",
    "held_out",
    "class_names",
)


class TinyBackbone(nn.Module):
    feature_dim = 4

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :4]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x


def test_base_hooks_have_safe_defaults() -> None:
    method = Method(TinyBackbone())
    assert method.recipe_overrides == {} and method.negative_queues() == {}
    assert method.lr_multipliers() == {} and method.train_item_filter() is None
    assert method.constant_lr_prefixes() == ()
    assert not method.matches_text and tuple(method.held_out) == ()
    assert method.class_names is None
    with pytest.raises(NotImplementedError, match=r"Method is not language-supervised"):
        method.set_class_texts(["a", "b"])
    with pytest.raises(NotImplementedError, match=r"cannot score videos against class texts"):
        method.zero_shot_logits(torch.zeros(1, 3, 2, 4, 4))


def test_every_hook_is_declared_on_the_base_and_methods_override_only_those() -> None:
    for name in HOOKS:
        assert hasattr(Method, name), name
    # a language-supervised method overrides both text hooks; no other method claims it
    for cls in METHODS.values():
        overrides = {"set_class_texts", "zero_shot_logits"} & set(vars(cls))
        assert bool(overrides) == cls.matches_text, cls.__name__
        assert not cls.matches_text or len(overrides) == 2, cls.__name__
    assert "default_backbone" not in {k for cls in METHODS.values() for k in vars(cls)}


def test_app_never_discovers_method_hooks_by_name() -> None:
    found = []
    for path in sorted(APP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"getattr", "hasattr"}
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in HOOKS
            ):
                found.append(f"{path.relative_to(APP)}:{node.lineno} {node.args[1].value}")
    assert found == []
