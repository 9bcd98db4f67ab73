"""CLIP's text transformer (seed 004, Sec. 3.3, eq. 14; Radford et al. 2021).

GPT-2 style causal transformer (12 layers, width 512, 8 heads for ViT-B CLIP): token and
position embeddings, ``transformer.resblocks.N``, ``ln_final``, and the feature of the
end-of-text token (the highest id, so ``argmax`` finds it) projected by ``text_projection``.
Parameter names are OpenAI CLIP's top-level text keys, so a checkpoint's text part loads
strictly. ``tokenize`` uses the byte-level BPE tokenizer of ``vidssl.text.bpe``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from vidssl.models.clip_load import TextConfig, load_clip_checkpoint
from vidssl.models.transformer import LayerNorm, Transformer
from vidssl.text.bpe import ClipTokenizer


class CLIPTextEncoder(nn.Module):
    """tokens: (K, L) int64 (SOT ... EOT, 0-padded) -> text features (K, embed_dim)."""

    def __init__(self, config: TextConfig, merges_path: str | Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.output_dim = config.embed_dim
        self.merges_path = merges_path
        self._tokenizer: ClipTokenizer | None = None
        self.logit_scale_init: float | None = None  # set when loaded from a checkpoint
        w = config.width
        self.token_embedding = nn.Embedding(config.vocab_size, w)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, w))
        self.transformer = Transformer(w, config.layers, config.heads)
        self.ln_final = LayerNorm(w)
        self.text_projection = nn.Parameter(torch.empty(w, config.embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)  # CLIP's initialize_parameters
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=w**-0.5)

    @property
    def tokenizer(self) -> ClipTokenizer:
        """The BPE tokenizer, created on first use (reads the merges file)."""
        if self._tokenizer is None:
            self._tokenizer = ClipTokenizer(self.merges_path)
        return self._tokenizer

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """texts -> (K, context_length) int64 token ids (long texts truncated)."""
        return self.tokenizer.tokenize(texts, self.config.context_length, truncate=True)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens: (K, L), L <= context_length -> (K, embed_dim), the projected EOT feature."""
        if tokens.ndim != 2 or tokens.shape[1] > self.config.context_length:
            raise ValueError(
                f"CLIPTextEncoder expects (K, L <= {self.config.context_length}) token ids, "
                f"got {tuple(tokens.shape)}"
            )
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        x = self.ln_final(self.transformer(x, causal=True))  # (K, L, W)
        eot = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # (K, W)
        return eot @ self.text_projection

    def encode(self, texts: Sequence[str]) -> Tensor:
        """texts -> (K, embed_dim)."""
        device = self.text_projection.device
        return self(self.tokenize(texts).to(device))


def clip_text_encoder(
    checkpoint: str | Path | None = None,
    *,
    config: TextConfig | None = None,
    merges_path: str | Path | None = None,
) -> CLIPTextEncoder:
    """CLIP's text encoder loaded from a CLIP ``checkpoint``, or randomly initialised from
    ``config`` (small configs for tests; the paper always starts from CLIP, Sec. 4.2)."""
    if checkpoint is None:
        if config is None:
            raise ValueError(
                "text encoder 'clip' needs a CLIP checkpoint (clip_checkpoint=...) or an "
                "explicit TextConfig for random initialisation"
            )
        return CLIPTextEncoder(config, merges_path)
    ckpt = load_clip_checkpoint(checkpoint)
    encoder = CLIPTextEncoder(ckpt.text, merges_path)
    try:
        encoder.load_state_dict(ckpt.text_state(), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"CLIP checkpoint {ckpt.path}: text part does not load: {exc}") from exc
    encoder.logit_scale_init = ckpt.logit_scale
    return encoder
