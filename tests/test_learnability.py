"""The temporal pretext tasks are learnable from the library's own clips.

A small 3D CNN learns pace (1x vs 2x) and segment order (MTCL's 6-way task) from the real
``pretext`` recipe over the in-memory synthetic set, to a held-out accuracy far above chance
in a fixed budget. Any change that destroys the temporal information on the way from the
renderer through the samplers, the recipes and the transforms fails here.

The set is the four translation classes (``num_motions=4``): their motion is 1.1 px per frame
at 1x in 32 px frames, so a tiny net learns it in 150 steps; rotation and scaling move the
object's rim by well under a pixel per frame at 1x (``vidssl.data.synthetic``) and need far
longer. Seeded and deterministic on one thread; each test takes 18-40 s on the shared, busy
2-core machine (1280 clips rendered and augmented, 250 steps). Held-out accuracy over seeds
0-2 and the thresholds: see each test; measured with ``held_out_accuracy(task, k, seed, ...)``
for seeds 0, 1, 2 (the tests' own arguments). With the renderer's motion switched off
(``synthetic._SPEED = (0, 0, 0)``) both stay at chance (see the report of the change).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from vidssl.data.datasets import VideoDataset, build_synthetic
from vidssl.data.pretext import ORDER_PERMUTATIONS, PretextClip
from vidssl.models.backbones import create_backbone

STEPS = 250  # Adam steps of BATCH clips
BATCH = 32
TRAIN_CLIPS = 1024  # a fixed bank of clips from the 192 training videos
TEST_CLIPS = 256  # from the 64 held-out videos


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: deterministic, and no OpenMP spin-waiting on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SpatialMax(nn.Module):
    """(N, C, T, H, W) -> (N, C * T): max over space, time kept (where a segment cut is)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.amax(dim=(3, 4)).flatten(1)


def tiny_cnn(num_classes: int, frames: int) -> nn.Sequential:
    """Grey input, three 3x3x3 conv layers (8, 16, 16 channels; the first two halve H, W)."""
    layers: list[nn.Module] = []
    for c_in, c_out, stride in ((1, 8, 2), (8, 16, 2), (16, 16, 1)):
        layers += [
            nn.Conv3d(c_in, c_out, 3, stride=(1, stride, stride), padding=1),
            nn.BatchNorm3d(c_out),
            nn.ReLU(),
        ]
    return nn.Sequential(*layers, SpatialMax(), nn.Linear(16 * frames, num_classes))


def pretext_clips(
    task: str,
    subset: str,
    n: int,
    seed: int,
    num_videos: int = 256,
    frame_size: int = 32,
    **recipe: object,
) -> tuple[Tensor, ...]:
    """``n`` clips of ``subset`` from the ``pretext`` recipe: ``(n, 3, T, 32, 32)``, ``(n,)``.

    Whole frames of ``frame_size`` px from a set of ``num_videos`` videos, resized to 32 px.
    """
    built = build_synthetic(
        num_videos=num_videos, frames=48, size=frame_size, num_motions=4, subset=subset
    )
    clip = PretextClip(
        tasks=(task,),
        stride=1,
        size=32,
        scale=(1.0, 1.0),  # whole frames: crops would rescale the apparent speed
        ratio=(1.0, 1.0),
        p_flip=0.0,
        jitter_strength=0.0,
        p_gray=0.0,
        **recipe,
    )
    ds = VideoDataset(built.index, clip, seed=seed, opener=built.opener)
    xs, ys = [], []
    for k in range(n):
        ds.set_epoch(k // len(ds))  # each pass over the videos draws new clips
        sample = ds[k % len(ds)]
        xs.append(sample["video"])
        ys.append(sample["pretext"][task])
    return torch.stack(xs), torch.tensor(ys)


def held_out_accuracy(task: str, num_classes: int, seed: int, **recipe: object) -> float:
    """Train ``tiny_cnn`` on training-video clips, return its accuracy on held-out videos."""
    x, y = pretext_clips(task, "train", TRAIN_CLIPS, seed, **recipe)
    x_test, y_test = pretext_clips(task, "test", TEST_CLIPS, seed + 1000, **recipe)
    torch.manual_seed(seed)
    net = tiny_cnn(num_classes, x.shape[2])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    batches = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        i = torch.randint(0, len(x), (BATCH,), generator=batches)
        loss = nn.functional.cross_entropy(net(x[i].mean(1, keepdim=True)), y[i])  # grey
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(x_test.mean(1, keepdim=True)).argmax(1)
    return (pred == y_test).float().mean().item()


def test_pace_1x_vs_2x_is_learnable():
    # held-out accuracy 0.914 +- 0.008 over seeds 0-2 (0.906, 0.914, 0.922); chance 0.5
    assert held_out_accuracy("pace", 2, seed=0, clip_len=8, paces=(1, 2)) > 0.8


def test_segment_order_is_learnable():
    # MTCL's task: three 3-frame segments shuffled by one of 6 permutations; chance 1/6.
    # Held-out accuracy 0.809 +- 0.022 over seeds 0-2 (0.785, 0.812, 0.828)
    acc = held_out_accuracy("order", len(ORDER_PERMUTATIONS), seed=0, clip_len=9)
    assert acc > 0.6


def test_cpu_pretext_backbone_learns_pace():
    """The CPU table's pretext backbone (src/vidssl/presets/bench/cpu.yaml: r3d_18 x0.25 with
    the small stem, Adam, bf16 + channels_last as the engine runs it) learns 1x vs 2x.

    The bench's set (48 frames of 64 px, resized to 32 px as whole frames), four translation
    classes. Held-out accuracy after 120 steps, seeds 0, 1, 2: 0.875, 0.988, 0.984 (0.949 +-
    0.064; ``python benchmarks/probe_pace.py --stems small --steps 120 --train-clips 1024
    --test-clips 256``, which also shows the default stem at 0.760 +- 0.234 after 200 steps).
    Chance 0.5. About 45 s on one thread of the shared 2-core machine.
    """
    bank = {"task": "pace", "num_videos": 512, "frame_size": 64, "clip_len": 8, "paces": (1, 2)}
    x, y = pretext_clips(subset="train", n=1024, seed=0, **bank)  # (1024, 3, 8, 32, 32)
    x_test, y_test = pretext_clips(subset="test", n=256, seed=1000, **bank)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    x_test = x_test.contiguous(memory_format=torch.channels_last_3d)
    torch.manual_seed(0)
    model = create_backbone("r3d_18", num_classes=2, width=0.25, stem="small")
    model = model.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = torch.Generator().manual_seed(0)
    for _ in range(120):
        i = torch.randint(0, len(x), (32,), generator=batches)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x[i]).float()
        loss = nn.functional.cross_entropy(logits, y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        pred = torch.cat([model(x_test[j : j + 64]).float().argmax(1) for j in range(0, 256, 64)])
    assert (pred == y_test).float().mean().item() > 0.75
