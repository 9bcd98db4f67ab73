"""Two-stream checkpoints as backbones: the stream is chosen when the backbone is built, and
the evaluation data path asks the backbone which inputs it consumes."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from vidssl.app.evaluate import evaluate
from vidssl.eval.context import Context, Job
from vidssl.eval.embed import eval_recipe
from vidssl.models.backbones import create_backbone
from vidssl.models.backbones.base import MODALITY_CHANNELS, pooled_features
from vidssl.models.two_stream import STREAMS, select_stream, stream_of


@pytest.mark.parametrize("stream", list(STREAMS))
def test_selected_stream_names_its_inputs_and_the_recipe_follows(stream: str) -> None:
    torch.manual_seed(0)
    rgb = create_backbone("r3d_18", num_classes=0, width=0.125)
    flow = create_backbone("r3d_18", num_classes=0, width=0.125, in_channels=2)
    model = select_stream(rgb, flow, stream).eval()
    assert model.modalities == STREAMS[stream]
    assert stream_of(model.modalities) == stream
    channels = sum(MODALITY_CHANNELS[m] for m in model.modalities)
    x = torch.randn(2, channels, 4, 32, 32)
    with torch.no_grad():
        got = pooled_features(model, x)
        torch.testing.assert_close(model(x), got)
        if stream == "both":  # mean of the L2-normalised stream features (GAP of their maps)
            want = (
                F.normalize(rgb.forward_features(x[:, :3]).mean(dim=(2, 3, 4)), dim=1)
                + F.normalize(flow.forward_features(x[:, 3:]).mean(dim=(2, 3, 4)), dim=1)
            ) / 2
            torch.testing.assert_close(got, want)
    assert got.shape == (2, rgb.feature_dim)
    recipe = eval_recipe(model.modalities, {"clip_len": 4, "stride": 1.0, "size": 32}, 2)
    assert getattr(recipe, "stream", "rgb") == stream


def test_unknown_stream_and_modalities_are_named() -> None:
    rgb = create_backbone("r3d_18", num_classes=0, width=0.125)
    with pytest.raises(ValueError, match="depth"):
        select_stream(rgb, rgb, "depth")
    with pytest.raises(ValueError, match="no stream consumes"):
        stream_of(("flow", "rgb"))


def test_generic_evaluation_path_takes_no_stream() -> None:
    assert not {"stream", "flow_root"} & set(inspect.signature(evaluate).parameters)
    for cls in (Context, Job):
        assert not {"stream", "flow_root"} & set(inspect.signature(cls).parameters)
