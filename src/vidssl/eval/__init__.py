"""Evaluation on frozen features: extraction + cache, retrieval R@k, linear probe, kNN,
mean ± std tables and Grad-CAM."""

from vidssl.eval.features import (
    Features,
    cached_features,
    checkpoint_fingerprint,
    extract_features,
    load_features,
    load_or_extract,
    merge_features,
    save_features,
    shard_range,
)
from vidssl.eval.gradcam import CamExamples, class_centroids, grad_cam
from vidssl.eval.linear import (
    LinearProbeConfig,
    LinearProbeResult,
    knn_classify,
    topk_accuracy,
    train_linear_probe,
)
from vidssl.eval.retrieval import RetrievalExamples, recall_at_k, topk_neighbours
from vidssl.eval.stats import (
    EvalResult,
    load_eval_dir,
    mean_std,
    results_tables,
    to_html,
    to_markdown,
)

__all__ = [
    "CamExamples",
    "EvalResult",
    "Features",
    "LinearProbeConfig",
    "LinearProbeResult",
    "RetrievalExamples",
    "cached_features",
    "checkpoint_fingerprint",
    "class_centroids",
    "extract_features",
    "grad_cam",
    "knn_classify",
    "load_eval_dir",
    "load_features",
    "load_or_extract",
    "mean_std",
    "merge_features",
    "recall_at_k",
    "results_tables",
    "save_features",
    "shard_range",
    "to_html",
    "to_markdown",
    "topk_accuracy",
    "topk_neighbours",
    "train_linear_probe",
]
