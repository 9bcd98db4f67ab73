"""Optical flow: estimators on known translations, tvl1-torch vs OpenCV, uint8 storage,
RGB/flow alignment, and `vidssl flow` (resume, corrupt files, shards, missing OpenCV)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_VIDEOS as VIDEOS
from vidssl.app import cli
from vidssl.data.flow_extract import extract_flow, flow_bound, read_aligned
from vidssl.data.sources import open_video
from vidssl.data.storage import FrameStore, write_frames
from vidssl.data.video import VideoReader
from vidssl.flow import FLOW_METHODS, create_flow, to_gray
from vidssl.flow import tvl1_torch as tv
from vidssl.flow.opencv import OpenCVUnavailableError, import_cv2
from vidssl.flow.quantize import dequantize_flow, hflip_flow, quantize_flow

cv2 = pytest.importorskip("cv2", reason="OpenCV is the optional 'flow' extra")

needs_videos = pytest.mark.skipif(
    not VIDEOS.is_dir(), reason=f"shared test videos not found at {VIDEOS}"
)


def texture(h: int, w: int, shift: tuple[float, float] = (0.0, 0.0), seed: int = 0) -> np.ndarray:
    """A smooth random texture (sum of 16 plane waves) moved by ``shift`` = (dx, dy) pixels:
    (h, w) uint8. ``texture(.., d)`` is ``texture(..)`` with its content moved by +d, so the
    flow from the first to the second is d everywhere."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.full((h, w), 128.0)
    for _ in range(16):
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.2, 0.7)
        phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(10, 25)
        xs, ys = x - shift[0], y - shift[1]
        img += amp * np.sin(freq * (np.cos(angle) * xs + np.sin(angle) * ys) + phase)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def moving_clip(t: int, step: tuple[float, float], h: int = 24, w: int = 32) -> np.ndarray:
    """(t, h, w, 3) uint8 RGB frames of a texture moving by ``step`` pixels per frame."""
    grey = [texture(h, w, (i * step[0], i * step[1])) for i in range(t)]
    return np.repeat(np.stack(grey)[..., None], 3, axis=-1)


SHIFTS = [(1.5, -0.75), (-0.4, 0.3)]


# -- estimators -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(FLOW_METHODS))
def test_each_method_recovers_a_translation(method: str) -> None:
    """Sub-pixel shifts of a 24x32 texture. Tolerance 0.15 px on the mean interior flow: the
    observed errors are <= 0.06 px (TV-L1's regularisation shrinks the flow slightly; the
    frames are rounded to uint8), the shifts differ from each other by > 1 px."""
    prev = np.stack([texture(24, 32) for _ in SHIFTS])
    nxt = np.stack([texture(24, 32, s) for s in SHIFTS])
    flow = create_flow(method, device="cpu")(prev, nxt)
    assert flow.shape == (len(SHIFTS), 24, 32, 2) and flow.dtype == np.float32
    for f, shift in zip(flow, SHIFTS):
        interior = f[4:-4, 4:-4]  # (16, 24, 2): away from the borders
        np.testing.assert_allclose(interior.mean(axis=(0, 1)), shift, atol=0.15)
        epe = np.linalg.norm(interior - np.asarray(shift), axis=-1).mean()
        assert epe < 0.15, f"{method}: end-point error {epe:.3f} px for shift {shift}"


@needs_videos
def test_tvl1_torch_matches_opencv_on_real_frames() -> None:
    """Two real pairs (bikes.mp4, frames 0->2->4 at short side 32, ~1 px of motion).

    Same scheme, same parameters: the mean end-point error between ours and OpenCV's is
    0.02-0.05 px here (0.01-0.1 px at 112 px in benchmarks/bench_flow.py). 0.15 px leaves
    room for OpenCV's 1/32-px rounding of remap positions and its float32 error sums, which
    can end a pair's iterations one step earlier or later than ours.
    """
    with VideoReader(VIDEOS / "bikes.mp4", short_side=32) as reader:
        grey = to_gray(reader.get_frames([0, 2, 4]))
    ref = create_flow("tvl1")(grey[:-1], grey[1:])
    ours = create_flow("tvl1-torch")(grey[:-1], grey[1:])
    epe = np.linalg.norm(ours - ref, axis=-1).mean(axis=(1, 2))
    assert np.linalg.norm(ref, axis=-1).mean() > 0.5  # there is motion to get wrong
    assert (epe < 0.15).all(), f"mean EPE vs OpenCV TV-L1: {epe}"


def test_tvl1_torch_pair_does_not_depend_on_its_batch() -> None:
    a0, a1 = texture(24, 32), texture(24, 32, (1.5, -0.75))
    b0, b1 = texture(24, 32, seed=3), texture(24, 32, (-0.5, 2.0), seed=3)
    alone = tv.tvl1_flow(torch.from_numpy(a0[None]), torch.from_numpy(a1[None]))
    both = tv.tvl1_flow(torch.from_numpy(np.stack([b0, a0])), torch.from_numpy(np.stack([b1, a1])))
    torch.testing.assert_close(both[1:], alone, atol=1e-4, rtol=0)


def test_median_filter_matches_torch_and_opencv() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (2, 2, 11, 14), generator=gen).float()  # many ties
    x[1] = torch.randn(2, 11, 14, generator=gen)
    for size in (3, 5):
        xp = F.pad(x, (size // 2,) * 4, mode="replicate")
        ref = xp.unfold(2, size, 1).unfold(3, size, 1).flatten(-2).median(dim=-1).values
        torch.testing.assert_close(tv.median_filter(x, size), ref, atol=0, rtol=0)
    ours = tv.median_filter(x, 5)
    for n in range(2):
        for c in range(2):
            expected = cv2.medianBlur(x[n, c].numpy(), 5)
            np.testing.assert_array_equal(ours[n, c].numpy(), expected)


def test_divergence_is_the_negative_adjoint_of_the_forward_gradient() -> None:
    gen = torch.Generator().manual_seed(1)
    u = torch.randn(2, 2, 7, 9, generator=gen, dtype=torch.float64)
    px, py = torch.randn(2, 2, 2, 7, 9, generator=gen, dtype=torch.float64)
    px[..., -1], py[..., -1, :] = 0.0, 0.0  # as in the solver: p starts at 0, grad u is 0 there
    ux, uy = tv.forward_gradient(u)
    lhs = (ux * px + uy * py).sum()
    rhs = -(u * tv.divergence(px.clone(), py.clone())).sum()
    torch.testing.assert_close(lhs, rhs)


def test_resize_linear_matches_cv2_resize_with_a_scale_factor() -> None:
    img = np.random.default_rng(2).uniform(0, 255, (23, 31)).astype(np.float32)
    ref = cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    size = tv.pyramid_sizes(23, 31, tv.TVL1Params())[1]
    assert size == ref.shape  # OpenCV rounds the size: 18 x 25
    ours = tv.resize_linear(torch.from_numpy(img)[None, None], size, (0.8, 0.8))[0, 0]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-3)


def test_to_gray_is_opencv_rgb2gray() -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    expected = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])
    np.testing.assert_array_equal(to_gray(rgb), expected)


# -- uint8 storage --------------------------------------------------------------------------


def test_quantisation_round_trip_within_half_a_step() -> None:
    bound = 20.0
    flow = np.random.default_rng(4).uniform(-bound, bound, (50, 40, 2)).astype(np.float32)
    q = quantize_flow(flow, bound)
    assert q.dtype == np.uint8
    err = np.abs(dequantize_flow(q, bound) - flow)
    assert err.max() <= bound / 255 + 1e-5  # half of one step of 2 * bound / 255
    # the documented mapping: -bound -> 0, +bound -> 255, 0 -> 128, beyond the bound clips
    edges = np.array([-bound, bound, 0.0, -55.0, 55.0, np.nan], np.float32)
    np.testing.assert_array_equal(quantize_flow(edges, bound), [0, 255, 128, 0, 255, 128])
    np.testing.assert_array_equal(quantize_flow(np.array([10.0]), bound), [191])  # rint(191.25)
    # a flip negates exactly in read-back space
    np.testing.assert_array_equal(dequantize_flow(255 - q, bound), -dequantize_flow(q, bound))


def test_hflip_flow_mirrors_pixels_and_negates_x() -> None:
    flow = np.zeros((1, 4, 6, 2), np.float32)
    flow[0, :, 0] = (3.0, 1.0)  # left column moves right and down
    flipped = dequantize_flow(hflip_flow(quantize_flow(flow)))
    np.testing.assert_allclose(flipped[0, :, -1], np.tile([-3.0, 1.0], (4, 1)), atol=0.08)


# -- extraction, alignment ------------------------------------------------------------------


def test_extract_flow_aligns_with_rgb_frames(tmp_path: Path) -> None:
    step = (1.5, -0.75)
    rgb = tmp_path / "clip.mp4.vfs"
    write_frames(rgb, moving_clip(5, step), fps=10.0, codec="png")
    out = tmp_path / "flow" / "clip.mp4.vfs"
    flow_fn = create_flow("tvl1-torch", device="cpu")
    # batch=2: 4 pairs in two calls, so the chunk boundary (frame 2) is exercised
    header = extract_flow(rgb, out, flow_fn, method="tvl1-torch", short_side=None, batch=2)
    assert (header.num_frames, header.channels, header.codec) == (5, 2, "png")
    assert header.extra["kind"] == "flow" and header.extra["bound"] == 20.0
    with open_video(rgb) as video, open_video(out) as flow:
        assert isinstance(flow, FrameStore) and flow_bound(flow) == 20.0
        frames, flows = read_aligned(video, flow, [0, 3, 4])
        assert frames.shape == (3, 24, 32, 3) and flows.shape == (3, 24, 32, 2)
        every = flow.get_frames(range(5))
        np.testing.assert_array_equal(flows, every[[0, 3, 4]])
        # frame i = flow i -> i+1, computed pairwise on the same grey frames
        grey = to_gray(video.get_frames(range(5)))
    direct = quantize_flow(flow_fn(grey[:-1], grey[1:]))
    np.testing.assert_array_equal(every[:4], direct)
    np.testing.assert_array_equal(every[4], every[3])  # last frame repeats the last flow
    motion = dequantize_flow(every)[:, 4:-4, 4:-4].mean(axis=(1, 2))
    np.testing.assert_allclose(motion, np.tile(step, (5, 1)), atol=0.15)


def test_single_frame_video_stores_zero_flow(tmp_path: Path) -> None:
    rgb = tmp_path / "still.vfs"
    write_frames(rgb, moving_clip(1, (0, 0)), fps=5.0, codec="raw")
    header = extract_flow(rgb, tmp_path / "f.vfs", create_flow("dis"), method="dis", short_side=16)
    assert (header.num_frames, header.height, header.width) == (1, 16, 21)
    with open_video(tmp_path / "f.vfs") as flow:
        assert (flow.get_frames([0]) == 128).all()  # 0 px -> 127.5 -> 128


def test_read_aligned_rejects_the_flow_of_another_video(tmp_path: Path) -> None:
    write_frames(tmp_path / "long.vfs", moving_clip(12, (1, 0), 8, 8), fps=5.0, codec="raw")
    write_frames(tmp_path / "short.vfs", np.zeros((4, 8, 8, 2), np.uint8), fps=5.0, codec="raw")
    with open_video(tmp_path / "long.vfs") as rgb, open_video(tmp_path / "short.vfs") as flow:
        with pytest.raises(ValueError, match="short.vfs"):
            read_aligned(rgb, flow, [0])
        with pytest.raises(ValueError, match="not an optical-flow store"):
            flow_bound(flow)  # written without the flow header


# -- `vidssl flow` ----------------------------------------------------------------------------


def flow_cli(*argv: str) -> int:
    assert "flow" in cli.COMMANDS, "the lead registers `flow` in vidssl.app.cli.COMMANDS"
    return cli.main(["flow", *argv])


def make_sources(root: Path) -> None:
    """root/raw/a.mp4 (a real encoded video) and root/b.mp4.vfs (prepared RGB)."""
    from vidssl.data.synthetic import write_video

    (root / "raw").mkdir(parents=True)
    write_video(root / "raw" / "a.mp4", moving_clip(6, (1.0, 0.5), 32, 32), fps=10.0)
    write_frames(root / "b.mp4.vfs", moving_clip(4, (-1.0, 0.0)), fps=10.0, codec="jpeg")


def test_flow_command_writes_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_sources(src)
    args = (str(src), str(dst), "--method", "dis", "--workers", "1", "--short-side", "0")
    assert flow_cli(*args) == 0
    outs = [dst / "raw" / "a.mp4.vfs", dst / "b.mp4.vfs"]
    with VideoReader(src / "raw" / "a.mp4") as raw, open_video(outs[0]) as flow:
        assert flow.num_frames == raw.num_frames == 6
        assert flow.header.extra["method"] == "dis"
        motion = dequantize_flow(flow.get_frames(range(5)))[:, 6:-6, 6:-6].mean(axis=(0, 1, 2))
        np.testing.assert_allclose(motion, (1.0, 0.5), atol=0.3)  # through H.264 4:4:4
    assert FrameStore(outs[1]).num_frames == 4
    assert "2 videos, 0 already done, 2 to do" in capsys.readouterr().err
    stamps = [p.stat().st_mtime_ns for p in outs]
    assert flow_cli(*args) == 0  # second run: nothing left to do
    captured = capsys.readouterr()
    assert "2 already done, 0 to do" in captured.err and "computed 0" in captured.out
    assert [p.stat().st_mtime_ns for p in outs] == stamps


def test_flow_command_reports_a_corrupt_video_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_sources(src)
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    rc = flow_cli(str(src), str(dst), "--method", "farneback", "--workers", "1")
    out = capsys.readouterr().out
    assert rc == 1
    assert "failed 1" in out and "Failed videos:" in out and "broken.mp4" in out
    assert (dst / "raw" / "a.mp4.vfs").exists() and (dst / "b.mp4.vfs").exists()
    assert sorted(p.name for p in dst.rglob("*") if p.is_file()) == ["a.mp4.vfs", "b.mp4.vfs"]


def test_flow_command_shards_split_the_videos(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_sources(src)
    common = (str(src), str(dst), "--method", "dis", "--workers", "1")
    assert flow_cli(*common, "--shard", "1/2") == 0
    first = sorted(p.name for p in dst.rglob("*.vfs"))
    assert len(first) == 1
    assert flow_cli(*common, "--shard", "2/2") == 0
    assert sorted(p.name for p in dst.rglob("*.vfs")) == ["a.mp4.vfs", "b.mp4.vfs"]


def test_missing_opencv_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from vidssl.app import flow as flow_app

    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` raises ImportError
    with pytest.raises(OpenCVUnavailableError, match=r"pip install 'vidssl\[flow\]'"):
        import_cv2()
    plain = types.ModuleType("cv2")  # an OpenCV build without the contrib modules
    plain.__version__ = "4.10.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cv2", plain)
    with pytest.raises(OpenCVUnavailableError, match=r"contrib.*vidssl\[flow\]"):
        create_flow("tvl1")
    monkeypatch.setattr(flow_app, "_FLOW_FNS", {})
    assert flow_cli(str(tmp_path), str(tmp_path / "out"), "--method", "tvl1") == 2
    assert "pip install 'vidssl[flow]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
