"""Pure loss functions (no ``torch.distributed``, no device moves)."""

from vidssl.losses.contrastive import info_nce, moco_logits, moco_loss, nt_xent
from vidssl.losses.similarity import byol_regression, negative_cosine, symmetrised

__all__ = [
    "byol_regression",
    "info_nce",
    "moco_logits",
    "moco_loss",
    "negative_cosine",
    "nt_xent",
    "symmetrised",
]
