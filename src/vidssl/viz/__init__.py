"""Figures for reports: training curves, retrieval grids, embedding maps, Grad-CAM overlays."""

from vidssl.viz.plots import (
    clip_to_frames,
    frame_indices,
    plot_cam_overlay,
    plot_embedding,
    plot_retrieval_grid,
    plot_training_curves,
    save_figure,
)

__all__ = [
    "clip_to_frames",
    "frame_indices",
    "plot_cam_overlay",
    "plot_embedding",
    "plot_retrieval_grid",
    "plot_training_curves",
    "save_figure",
]
