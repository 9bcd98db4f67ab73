"""Text encoders for the language-video model, chosen by name from ``TEXT_ENCODERS``.

- ``"clip"``: CLIP's text transformer with its byte-level BPE tokenizer
  (``vidssl.text.clip_text``, ``vidssl.text.bpe``), loaded from a user-supplied CLIP
  checkpoint (seed 004, Sec. 3.3);
- ``"minilm"``: the offline all-MiniLM-L6-v2 sentence encoder (``vidssl.text.minilm``), the
  default when no CLIP file is given.

Every encoder is an ``nn.Module`` with ``output_dim``, ``tokenize(texts) -> (K, L)`` int64 ids
(0 = padding) and ``forward(tokens) -> (K, output_dim)``; ``encode(texts)`` chains the two.
The factories import their modules on call, so ``import vidssl.text`` stays light (the
encoders pull in their models and, for MiniLM, the optional ``tokenizers`` package).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from torch import Tensor, nn


class TextEncoder(Protocol):
    output_dim: int

    def tokenize(self, texts: Sequence[str]) -> Tensor: ...
    def __call__(self, tokens: Tensor) -> Tensor: ...
    def encode(self, texts: Sequence[str]) -> Tensor: ...


def clip(**kwargs: Any) -> nn.Module:
    """``vidssl.text.clip_text.clip_text_encoder(checkpoint=..., config=..., merges_path=...)``."""
    from vidssl.text.clip_text import clip_text_encoder

    return clip_text_encoder(**kwargs)


def minilm(**kwargs: Any) -> nn.Module:
    """``vidssl.text.minilm.minilm_encoder(model_dir=...)``."""
    from vidssl.text.minilm import minilm_encoder

    return minilm_encoder(**kwargs)


TEXT_ENCODERS: dict[str, Callable[..., nn.Module]] = {"clip": clip, "minilm": minilm}


def create_text_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Text encoder ``name`` (a key of ``TEXT_ENCODERS``) built with ``kwargs``."""
    if name not in TEXT_ENCODERS:
        raise ValueError(
            f"unknown text encoder {name!r}; valid names: {', '.join(sorted(TEXT_ENCODERS))}"
        )
    return TEXT_ENCODERS[name](**kwargs)


__all__ = ["TEXT_ENCODERS", "TextEncoder", "create_text_encoder"]
