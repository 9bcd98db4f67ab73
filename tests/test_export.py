"""`vidssl export`: torchvision state dicts (checked against the dumped torchvision keys) and
ONNX graphs (checked under onnxruntime). torchvision itself is never imported."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidssl.app.cli import main
from vidssl.eval.weights import read_weights
from vidssl.models.backbones.base import pooled_features

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "torchvision_video_models.json"
TORCHVISION = json.loads(FIXTURE.read_text())["models"]
HEAD = {"r3d_18": "fc.", "r2plus1d_18": "fc.", "s3d": "classifier."}
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))


def shapes(state):
    return {k: list(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("name", ["r3d_18", "s3d"])
def test_torchvision_export_has_torchvision_keys(tmp_path, name):
    ref = TORCHVISION[name]["state_dict"]  # key -> shape, dumped from torchvision (400 classes)
    out = tmp_path / "tv.pth"
    argv = ["export", "random", "--backbone", name, "--width", "1", "--format", "torchvision"]
    assert main([*argv, "--out", str(out)]) == 0
    state = torch.load(out, weights_only=True)
    # no head: torchvision's model with its head set to Identity loads it with strict=True
    assert shapes(state) == {k: s for k, s in ref.items() if not k.startswith(HEAD[name])}
    assert list(state) == [k for k in ref if not k.startswith(HEAD[name])]  # same order
    want = read_weights("random", backbone=name, width=1.0).build(0).state_dict()
    for key, value in state.items():
        assert torch.equal(value, want[key]), key
    # with the 400-class head: exactly torchvision's default model
    assert main([*argv, "--out", str(out), "--num-classes", "400"]) == 0
    state = torch.load(out, weights_only=True)
    assert list(state) == list(ref) and shapes(state) == ref
    assert all(not state[k].any() for k in state if k.startswith(HEAD[name]))  # zero head
    assert "torchvision" not in sys.modules


def test_torchvision_export_refuses_other_layouts(tmp_path):
    out = str(tmp_path / "x.pth")
    base = ["export", "random", "--format", "torchvision", "--out", out]
    assert main([*base, "--backbone", "r3d_18", "--width", "0.5"]) == 2
    assert main([*base, "--backbone", "c3d", "--width", "1"]) == 2
    assert main(["export", str(tmp_path / "missing.pt"), "--format", "onnx", "--out", out]) == 2
    assert not Path(out).exists()


@pytest.mark.skipif(
    not HAS_ONNX, reason="onnx/onnxscript/onnxruntime not installed (pip install 'vidssl[export]')"
)
# torch's own ONNX exporter (torch.export's graph decomposition, torch 2.13) still tests
# `isinstance(treespec, LeafSpec)` and warns about it; no vidssl code is involved
@pytest.mark.filterwarnings(
    "ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning"
)
def test_onnx_export_matches_pytorch_under_onnxruntime(tmp_path, capsys):
    import onnxruntime

    out = tmp_path / "model.onnx"
    argv = ["export", "random", "--backbone", "r3d_18", "--width", "0.125", "--format", "onnx"]
    assert main([*argv, "--out", str(out), "--clip-len", "4", "--size", "32"]) == 0
    assert "max abs difference" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["clips"]
    model = read_weights("random", backbone="r3d_18", width=0.125).build(0)
    x = torch.randn(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))  # batch 3 != 2
    (got,) = session.run(None, {"clips": x.numpy()})
    with torch.no_grad():
        want = pooled_features(model, x).numpy()
    assert got.shape == (3, 64)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
