"""The Python API: vidssl.load_backbone / embed_videos / read_clip, library-only imports."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vidssl
from test_extensions import write_ts
from vidssl.config import ConfigError
from vidssl.data.sources import open_video
from vidssl.data.transforms import EvalTransform
from vidssl.models.backbones import create_backbone
from vidssl.models.backbones.base import pooled_features

SRC = Path(__file__).resolve().parents[1] / "src"


def fake_checkpoint(path: Path, width: float = 0.125) -> dict[str, torch.Tensor]:
    """A checkpoint as `vidssl pretrain` writes it: method state + resolved config."""
    torch.manual_seed(3)
    backbone = create_backbone("r3d_18", width=width)
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["head.weight"] = torch.ones(2, 2)  # method parts are not the backbone's
    config = {
        "model": {"backbone": "r3d_18", "width": width},
        "data": {"clip_len": 4, "stride": 2.0, "size": 32},
    }
    torch.save({"model": state, "config": config, "step": 5}, path)
    return backbone.state_dict()


def test_public_names_and_lazy_import():
    assert set(vidssl.__all__) >= {"load_backbone", "embed_videos", "read_clip"}
    for name in vidssl.__all__:
        assert getattr(vidssl, name) is not None
    with pytest.raises(AttributeError, match="no_such_thing"):
        vidssl.no_such_thing  # noqa: B018
    # `import vidssl` stays light, and the API never imports the application
    code = (
        "import sys, vidssl\n"
        "assert 'torch' not in sys.modules, 'import vidssl pulled torch in'\n"
        "vidssl.embed_videos, vidssl.load_backbone, vidssl.read_clip\n"
        "app = [m for m in sys.modules if m.startswith('vidssl.app')]\n"
        "assert not app, app\n"
    )
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_load_backbone_reads_the_checkpoint(tmp_path):
    want = fake_checkpoint(tmp_path / "last.pt")
    model = vidssl.load_backbone(tmp_path / "last.pt")
    assert isinstance(model, torch.nn.Module) and not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, want[key]), key
    assert pooled_features(model, torch.randn(2, 3, 4, 32, 32)).shape == (2, 64)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        vidssl.load_backbone(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="junk.pt"):
        vidssl.load_backbone(tmp_path / "junk.pt")
    with pytest.raises(ConfigError, match="--backbone/--width"):
        vidssl.load_backbone("random")


def test_read_clip_matches_hand_indexing(tmp_path):
    path = write_ts(tmp_path / "a.ts", frames=12)
    clip = vidssl.read_clip(path, start=0.2, clip_len=4, stride=2, size=16)  # 25 fps: frame 5
    assert clip.shape == (3, 4, 16, 16) and clip.dtype == torch.float32
    with open_video(path) as video:
        frames = video.get_frames([5, 7, 9, 11])
    torch.testing.assert_close(clip, EvalTransform(size=16)(frames))
    looped = vidssl.read_clip(path, start=0.4, clip_len=3, stride=2, size=16)  # 10, 12->0, 14->2
    with open_video(path) as video:
        torch.testing.assert_close(looped, EvalTransform(size=16)(video.get_frames([10, 0, 2])))
    with pytest.raises(ValueError, match="past the end"):
        vidssl.read_clip(path, start=5.0)


def test_embed_videos_equals_hand_computed_features(tmp_path):
    fake_checkpoint(tmp_path / "last.pt")
    paths = [write_ts(tmp_path / f"v{i}.ts", frames=10 + 3 * i) for i in range(3)]
    emb = vidssl.embed_videos(paths, tmp_path / "last.pt", num_clips=2, batch_size=2)
    assert emb.shape == (3, 64)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    model = vidssl.load_backbone(tmp_path / "last.pt")
    for i, path in enumerate(paths):  # the checkpoint's clip settings: 4 frames, stride 2, 32 px
        with open_video(path) as video:
            n = video.num_frames
        last = n - 8  # two clips: frame 0 and the one ending at the last frame
        clips = torch.stack(
            [vidssl.read_clip(path, s / 25, clip_len=4, stride=2, size=32) for s in (0, last)]
        )
        with torch.no_grad():
            z = F.normalize(pooled_features(model, clips), dim=1).mean(0)
        torch.testing.assert_close(emb[i], F.normalize(z, dim=0), atol=1e-5, rtol=0)
    (tmp_path / "bad.mp4").write_bytes(b"nothing")
    with pytest.raises(ValueError, match="bad.mp4"):
        vidssl.embed_videos([paths[0], tmp_path / "bad.mp4"], tmp_path / "last.pt", num_clips=1)
    assert np.isfinite(emb.numpy()).all()
