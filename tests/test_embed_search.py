"""`vidssl embed` and `vidssl search`: real footage end to end, resume, shards, backends."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_VIDEOS as VIDEOS
from test_extensions import write_ts
from vidssl.app import embed as embed_cmd
from vidssl.app.cli import main
from vidssl.data.extensions import find_video_files
from vidssl.data.recipes import RECIPES
from vidssl.data.sources import open_video
from vidssl.eval import collection as coll
from vidssl.eval.search import FaissSearch, TorchSearch, faiss_available
from vidssl.eval.weights import read_weights
from vidssl.models.backbones.base import pooled_features

RANDOM = ["--checkpoint", "random", "--backbone", "r3d_18", "--width", "0.125"]
TINY = ["num_clips=2", "clip_len=4", "stride=2", "size=32", "progress=false", "amp=none"]


def manifest(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "manifest.tsv", newline="") as f:
        return {Path(m["path"]).name: m for m in csv.DictReader(f, delimiter="\t")}


def reference_embedding(path: Path, num_clips: int = 2) -> torch.Tensor:
    """By hand: K uniform clips through the backbone, normalise, average, normalise."""
    model = read_weights("random", backbone="r3d_18", width=0.125).build(0)
    recipe = RECIPES["multi_clip"](clip_len=4, stride=2, size=32, train=False, num_clips=num_clips)
    with open_video(path) as video:
        clips = recipe(video, np.random.default_rng(0))["clips"]  # (K, C, T, H, W)
    with torch.no_grad():
        z = F.normalize(pooled_features(model, clips), dim=1)  # (K, D)
    return F.normalize(z.mean(0), dim=0)


@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"real test videos not found at {VIDEOS}")
def test_embed_and_search_real_footage(tmp_path, capsys):
    out = tmp_path / "emb"
    argv = ["embed", str(VIDEOS), *RANDOM, "--out", str(out), *TINY, "workers=2"]
    assert main(argv) == 0
    rows = manifest(out)
    files = find_video_files(VIDEOS)
    assert len(rows) == len(files) and len(files) >= 40  # every video file is listed
    bad = {name for name, m in rows.items() if int(m["row"]) < 0}
    assert bad == {"corrupted.mp4"}
    assert "InvalidDataError" in rows["corrupted.mp4"]["error"]
    assert capsys.readouterr().out.count("corrupted.mp4") == 1  # and reported
    # rotation metadata applied: video_90.mov is shown portrait, video_0.mov landscape
    assert (rows["video_90.mov"]["height"], rows["video_90.mov"]["width"]) == ("568", "320")
    assert (rows["video_0.mov"]["height"], rows["video_0.mov"]["width"]) == ("320", "568")
    assert rows["vtest.avi"]["frames"] == "795" and rows["vtest.avi"]["clips"] == "2"
    assert float(rows["vtest.avi"]["duration"]) == pytest.approx(79.5)
    emb = np.load(out / "embeddings.npy")
    assert emb.shape == (len(files) - 1, 64)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    for name in ("demo.mp4", "video_90.mov"):
        want = reference_embedding(VIDEOS / name)
        np.testing.assert_allclose(emb[int(rows[name]["row"])], want.numpy(), atol=1e-5)

    # a finished run is not recomputed
    parts = sorted((out / "parts").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in parts]
    assert main(argv) == 0
    assert "0 to do" in capsys.readouterr().err
    assert [p.stat().st_mtime_ns for p in sorted((out / "parts").iterdir())] == mtimes

    # search by file: the table lists k neighbours, never the query itself
    page = tmp_path / "search.html"
    query = str(VIDEOS / "video_0.mov")
    assert main(["search", str(out), "--query", query, "--k", "3", "--html", str(page)]) == 0
    text = capsys.readouterr().out
    table = [line for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert len(table) == 3 and not any(line.endswith("video_0.mov") for line in table)
    row0 = int(rows["video_0.mov"]["row"])
    sims = emb @ emb[row0]
    sims[row0] = -2
    best = int(np.argmax(sims))
    assert table[0].split()[2] == str(best)  # exact nearest neighbour by cosine
    assert page.read_text().count("<img") == 4  # query + 3 neighbours


def test_embed_resumes_after_a_kill_and_merges_shards(tmp_path, monkeypatch, capsys):
    src = tmp_path / "videos"
    src.mkdir()
    for i in range(5):
        write_ts(src / f"v{i}.ts", frames=8 + i)
    (src / "broken.mp4").write_bytes(b"not a video at all")
    settings = [*RANDOM, *TINY, "batch_size=1", "workers=0"]
    whole = tmp_path / "whole"
    assert main(["embed", str(src), "--out", str(whole), *settings]) == 0
    want = np.load(whole / "embeddings.npy")
    assert want.shape == (5, 64) and manifest(whole)["broken.mp4"]["row"] == "-1"

    # killed after the second stored part: the re-run does only the rest
    monkeypatch.setattr(embed_cmd, "CHUNK_VIDEOS", 1)
    saved = []
    real_save = coll.save_part

    def save_then_die(root, name, chunk):
        real_save(root, name, chunk)
        saved.append(name)
        if len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(coll, "save_part", save_then_die)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        main(["embed", str(src), "--out", str(killed), *settings])
    assert not (killed / "embeddings.npy").exists()
    monkeypatch.setattr(coll, "save_part", real_save)
    capsys.readouterr()
    assert main(["embed", str(src), "--out", str(killed), *settings]) == 0
    # parts: [broken.mp4, v0] (an unreadable file rides with the next readable one), [v1]
    assert "3 already embedded, 3 to do" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(killed / "embeddings.npy"), want, atol=1e-6)

    # two shards into one folder; the last one to finish merges
    sharded = tmp_path / "sharded"
    assert main(["embed", str(src), "--out", str(sharded), "--shard", "1/2", *settings]) == 0
    assert not (sharded / "embeddings.npy").exists()
    assert main(["embed", str(src), "--out", str(sharded), "--merge", *settings]) == 1
    assert main(["embed", str(src), "--out", str(sharded), "--shard", "2/2", *settings]) == 0
    np.testing.assert_allclose(np.load(sharded / "embeddings.npy"), want, atol=1e-6)
    assert manifest(sharded) == manifest(whole)  # same manifest, same rows

    # other settings into the same folder are refused before any work
    assert main(["embed", str(src), "--out", str(whole), *settings, "num_clips=3"]) == 2


def test_search_bad_queries_exit_2(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    write_ts(src / "a.ts")
    write_ts(src / "b.ts", frames=10)
    out = tmp_path / "emb"
    assert main(["embed", str(src), "--out", str(out), *RANDOM, *TINY, "workers=0"]) == 0
    assert main(["search", str(out), "--query", "7"]) == 2
    assert main(["search", str(out), "--query", str(tmp_path / "nope.mp4")]) == 2
    assert main(["search", str(tmp_path), "--query", "0"]) == 2
    # a video outside the collection is embedded with the collection's settings
    write_ts(tmp_path / "c.ts", frames=9)
    assert main(["search", str(out), "--query", str(tmp_path / "c.ts"), "--k", "1"]) == 0


@pytest.mark.skipif(
    not faiss_available(), reason="faiss-cpu not installed (pip install 'vidssl[search]')"
)
def test_torch_and_faiss_return_the_same_neighbours():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[:20]
    s_torch, r_torch = TorchSearch(x).search(queries, 10)
    flat = FaissSearch(x)
    assert flat.kind == "flat"
    s_flat, r_flat = flat.search(queries, 10)
    np.testing.assert_array_equal(r_flat, r_torch)
    np.testing.assert_allclose(s_flat, s_torch, atol=1e-5)
    # the IVF index visiting every list is exact too
    ivf = FaissSearch(x, ivf_min_rows=100, nprobe=10_000)
    assert ivf.kind == "ivf"
    np.testing.assert_array_equal(ivf.search(queries, 10)[1], r_torch)
    # hand reference: brute force cosine
    np.testing.assert_array_equal(r_torch[:, 0], np.arange(20))
    np.testing.assert_array_equal(r_torch[3], np.argsort(-(x @ x[3]), kind="stable")[:10])


def two_stream_checkpoint(path: Path) -> None:
    """A checkpoint laid out as CVTCL's: RGB backbone, flow backbone (2 channels), config."""
    from vidssl.models.backbones import create_backbone

    torch.manual_seed(0)
    rgb = create_backbone("r3d_18", width=0.125)
    flow = create_backbone("r3d_18", width=0.125, in_channels=2)
    state = {f"backbone.{k}": v for k, v in rgb.state_dict().items()}
    state |= {f"flow_backbone.{k}": v for k, v in flow.state_dict().items()}
    config = {
        "model": {"backbone": "r3d_18", "width": 0.125},
        "method": {"name": "cvtcl", "flow_backbone": "r3d_18", "flow_width": 0.125},
        "data": {"clip_len": 4, "size": 32, "recipe": {"flow_method": "farneback"}},
    }
    torch.save({"model": state, "config": config}, path)


def test_embed_two_stream_checkpoint_streams(tmp_path):
    import vidssl

    src = tmp_path / "videos"
    src.mkdir()
    paths = [write_ts(src / f"v{i}.ts", frames=10 + i) for i in range(3)]
    ckpt = tmp_path / "cvtcl.pt"
    two_stream_checkpoint(ckpt)
    got = {}
    for stream in ("rgb", "flow", "both"):
        out = tmp_path / stream
        argv = ["embed", str(src), "--checkpoint", str(ckpt), "--stream", stream, "--out", str(out)]
        assert main([*argv, "num_clips=2", "workers=0", "progress=false", "amp=none"]) == 0
        got[stream] = np.load(out / "embeddings.npy")
        want = vidssl.embed_videos(paths, ckpt, stream=stream, num_clips=2)  # the same path
        np.testing.assert_allclose(got[stream], want.numpy(), atol=1e-5)
    assert got["rgb"].shape == got["flow"].shape == got["both"].shape == (3, 64)
    assert not np.allclose(got["rgb"], got["flow"], atol=1e-2)
    # "both" averages the normalised stream features: it lies between the two
    cos = (got["both"] * got["rgb"]).sum(1), (got["both"] * got["flow"]).sum(1)
    assert (cos[0] > (got["rgb"] * got["flow"]).sum(1)).all() and (cos[1] > 0).all()
    # a collection of one stream is not extended with another
    argv = ["embed", str(src), "--checkpoint", str(ckpt), "--stream", "flow"]
    assert main([*argv, "--out", str(tmp_path / "rgb"), "num_clips=2"]) == 2


def test_embed_prepared_storage_and_a_dataset_layout(tmp_path):
    src = tmp_path / "videos"
    for i, cls in enumerate(["jump", "jump", "run"]):
        (src / cls).mkdir(parents=True, exist_ok=True)
        write_ts(src / cls / f"v{i}.ts", frames=9 + i)
    tiny = [*RANDOM, *TINY, "workers=0"]
    assert main(["embed", str(src), "--out", str(tmp_path / "raw"), *tiny]) == 0
    raw = np.load(tmp_path / "raw" / "embeddings.npy")
    # lossless prepared storage gives the same frames, hence the same embeddings
    prepared = tmp_path / "prepared"
    argv = ["prepare", str(src), str(prepared), "--codec", "raw", "--short-side", "0"]
    assert main([*argv, "--workers", "1"]) == 0
    assert main(["embed", str(prepared), "--out", str(tmp_path / "vfs"), *tiny]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "vfs" / "embeddings.npy"), raw, atol=1e-5)
    assert sorted(manifest(tmp_path / "vfs")) == ["v0.ts.vfs", "v1.ts.vfs", "v2.ts.vfs"]
    # a dataset layout (class folders; train and test are the same folder here: listed once)
    out = tmp_path / "layout"
    assert main(["embed", str(src), "--data", "folder", "--out", str(out), *tiny]) == 0
    np.testing.assert_allclose(np.load(out / "embeddings.npy"), raw, atol=1e-6)
    assert main(["embed", str(src), "--data", "nope", "--out", str(tmp_path / "x"), *tiny]) == 2
