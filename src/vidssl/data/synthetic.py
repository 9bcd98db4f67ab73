"""Procedural synthetic videos with a *motion* label and an *appearance* label.

Every video shows one textured object on a static noise background:

- ``appearance`` (visible in a single frame, ``extra["appearance"]``): the kind of object, a
  shape with its own colour (red disc, green square, blue triangle, ...);
- ``motion`` (visible only across frames, the primary ``label``): how the object moves:
  right / left / down / up, rotate clockwise / counter-clockwise, expand / contract.

Motion is designed to be invisible in any single frame: for every motion class the object's
position is uniform over the frame (it moves on a torus, wrapping at the borders), its
orientation is uniform, and its log-scale is uniform over a fixed range (expansion and
contraction are sawtooths that wrap at the range ends). So the distribution of one frame is
the same for every motion class; only the change between frames tells them apart. The
appearance distribution is the same for every motion class and vice versa.

By default the set is also rotation-invariant (uniform orientation, isotropic motions and
noise), so a 90-degree rotation of a clip cannot be told from the clip: the rotation pretext
task is at chance by construction. ``upright=True`` gives the scene a canonical "up", as real
footage has: light from above, which shades every object brighter on its upper side, and a
background brighter at the top (a sky). Both are fixed in image coordinates and equal for
every class, so no label becomes visible, but rotations of a clip become recognisable. (With
the object's shading alone a rotation classifier did not leave chance in short trials; with
the sky it learns quickly: see the ``pretext-rotation`` row of docs/benchmarks.md.)

Deterministic from ``seed``: video ``i``'s nuisance parameters come from
``SeedSequence([seed, i])``; labels are balanced within the train and test subsets (video
ids ``0 .. n_train - 1`` and ``n_train .. num_videos - 1``).

In memory: items have paths ``synthetic://<id>/<motion>/<appearance>`` and
:class:`SyntheticOpener` renders their frames on request (a 16x64x64 clip in 1.4-2 ms,
16x32x32 in 0.4-0.5 ms, measured on a shared 2-core CPU). On disk: :func:`write_synthetic` writes ``<out>/<subset>/<motion>/<id>.mp4``
(class-folder layout) plus ``classes.json`` and ``labels.csv``; :func:`load_synthetic` reads
it back with the appearance labels.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vidssl.data.layouts import DatasetIndex, VideoItem, class_folders

SCHEME = "synthetic://"
_PATH_RE = re.compile(r"^synthetic://(?P<id>\d+)/(?P<motion>\d+)/(?P<appearance>\d+)$")

# per-frame motion: (dx, dy, dtheta, dlogscale) in (fractions of the frame side, radians)
# for unit speed; image y points down, so "down" is +dy and clockwise (as seen) is +theta
MOTIONS: dict[str, tuple[float, float, float, float]] = {
    "right": (1.0, 0.0, 0.0, 0.0),
    "left": (-1.0, 0.0, 0.0, 0.0),
    "down": (0.0, 1.0, 0.0, 0.0),
    "up": (0.0, -1.0, 0.0, 0.0),
    "rotate_cw": (0.0, 0.0, 1.0, 0.0),
    "rotate_ccw": (0.0, 0.0, -1.0, 0.0),
    "expand": (0.0, 0.0, 0.0, 1.0),
    "contract": (0.0, 0.0, 0.0, -1.0),
}
# unit speeds per frame: translation (fraction of the side), rotation (rad), log-scale
_SPEED = (0.035, 2.0 * math.pi / 36.0, 0.06)
_LOG_SCALE_RANGE = (math.log(0.5), math.log(1.6))  # sawtooth range of the object scale
_BASE_RADIUS = 0.2  # object radius at scale 1, as a fraction of the side
# upright scenes: object brightness 1 +/- _SHADE from its lower to its upper edge, background
# brightness +/- _SKY from the bottom row to the top row
_SHADE = 0.4
_SKY = 0.15


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.8


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # equilateral, circumradius 1, one vertex at -v
    return (v <= 0.5) & (math.sqrt(3) * u - v <= 1.0) & (-math.sqrt(3) * u - v <= 1.0)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.3)


def _bar(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.45)


# appearance class -> (shape test on object coordinates, RGB colour in [0, 1])
APPEARANCES: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], tuple[float, ...]]] = {
    "red_disc": (_disc, (0.9, 0.15, 0.1)),
    "green_square": (_square, (0.1, 0.8, 0.2)),
    "blue_triangle": (_triangle, (0.15, 0.3, 0.95)),
    "yellow_cross": (_cross, (0.95, 0.85, 0.1)),
    "magenta_ring": (_ring, (0.85, 0.15, 0.85)),
    "cyan_bar": (_bar, (0.1, 0.85, 0.9)),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of a synthetic set. ``num_motions``/``num_appearances`` take the first
    classes of :data:`MOTIONS` / :data:`APPEARANCES`."""

    num_videos: int = 24
    frames: int = 16
    size: int = 32
    num_motions: int = 8
    num_appearances: int = 4
    test_fraction: float = 0.25
    seed: int = 0
    fps: float = 25.0
    upright: bool = False  # light from above: a canonical "up" that makes rotations visible

    def __post_init__(self) -> None:
        checks = {
            "num_videos": self.num_videos >= 2,
            "frames": self.frames >= 2,
            "size": self.size >= 8,
            "num_motions": 1 <= self.num_motions <= len(MOTIONS),
            "num_appearances": 1 <= self.num_appearances <= len(APPEARANCES),
            "test_fraction": 0.0 <= self.test_fraction < 1.0,
            "seed": self.seed >= 0,
            "fps": self.fps > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SyntheticConfig.{name}={getattr(self, name)!r} is out of range")

    @property
    def motion_classes(self) -> list[str]:
        return list(MOTIONS)[: self.num_motions]

    @property
    def appearance_classes(self) -> list[str]:
        return list(APPEARANCES)[: self.num_appearances]

    @property
    def num_test(self) -> int:
        return min(self.num_videos - 1, round(self.num_videos * self.test_fraction))

    def subset_ids(self, subset: str) -> range:
        """Video ids of ``subset`` ("train", "test" or "all")."""
        n_train = self.num_videos - self.num_test
        ranges = {
            "train": range(0, n_train),
            "test": range(n_train, self.num_videos),
            "all": range(self.num_videos),
        }
        if subset not in ranges:
            raise ValueError(f"subset={subset!r}: expected one of {sorted(ranges)}")
        return ranges[subset]


def _balanced(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % k)  # each class n // k or n // k + 1 times


def synthetic_labels(cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(motion, appearance)`` labels of every video id: two ``(num_videos,)`` int64 arrays.

    Each subset (train, test) is balanced in both label sets on its own; the two label sets
    are drawn by independent permutations.
    """
    motion = np.zeros(cfg.num_videos, dtype=np.int64)
    appearance = np.zeros(cfg.num_videos, dtype=np.int64)
    for k, subset in enumerate(("train", "test")):
        ids = cfg.subset_ids(subset)
        rng = np.random.default_rng([cfg.seed, 1_000_003, k])
        motion[ids.start : ids.stop] = _balanced(len(ids), cfg.num_motions, rng)
        appearance[ids.start : ids.stop] = _balanced(len(ids), cfg.num_appearances, rng)
    return motion, appearance


def synthetic_index(cfg: SyntheticConfig, subset: str = "train") -> DatasetIndex:
    """In-memory index of ``subset``: paths ``synthetic://<id>/<motion>/<appearance>``."""
    motion, appearance = synthetic_labels(cfg)
    items = [
        VideoItem(
            f"{SCHEME}{i}/{motion[i]}/{appearance[i]}",
            int(motion[i]),
            {"appearance": int(appearance[i])},
        )
        for i in cfg.subset_ids(subset)
    ]
    return DatasetIndex(items, cfg.motion_classes)


@dataclass
class _VideoParams:
    x0: float  # object centre at frame 0, pixels
    y0: float
    theta0: float  # orientation, radians
    phase0: float  # position in the log-scale sawtooth, [0, 1)
    speed: float  # speed multiplier
    colour: np.ndarray  # (3,) uint8 main tone
    dark: np.ndarray  # (3,) uint8 second tone of the checker texture
    checker: float  # checker cell size in object units
    background: np.ndarray  # (H, W, 3) uint8 static noise background


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x) * 255.0 + 0.5).astype(np.uint8)


def _video_params(cfg: SyntheticConfig, video_id: int, appearance: int) -> _VideoParams:
    rng = np.random.default_rng([cfg.seed, video_id])
    s = cfg.size
    colour = np.asarray(list(APPEARANCES.values())[appearance][1]) * rng.uniform(0.8, 1.0)
    grey = rng.uniform(0.25, 0.55)
    noise = rng.uniform(-0.12, 0.12, size=(s, s, 1)) + rng.uniform(-0.03, 0.03, size=(s, s, 3))
    if cfg.upright:  # brighter towards the top row: (H, 1, 1)
        noise = noise + _SKY * np.linspace(1.0, -1.0, s)[:, None, None]
    return _VideoParams(
        x0=rng.uniform(0, s),
        y0=rng.uniform(0, s),
        theta0=rng.uniform(0, 2 * math.pi),
        phase0=rng.uniform(0, 1),
        speed=rng.uniform(0.8, 1.25),
        colour=_to_uint8(colour),
        dark=_to_uint8(colour * rng.uniform(0.35, 0.55)),
        checker=rng.uniform(0.45, 0.6),
        background=_to_uint8(np.clip(grey + noise, 0, 1)),
    )


def render_frames(
    cfg: SyntheticConfig, video_id: int, motion: int, appearance: int, indices: Sequence[int]
) -> np.ndarray:
    """Frames ``indices`` of one synthetic video: ``(T,) -> (T, H, W, 3)`` uint8."""
    p = _video_params(cfg, video_id, appearance)
    s = cfg.size
    t = np.asarray(indices, dtype=np.float32)  # (T,)
    dx, dy, dth, dls = list(MOTIONS.values())[motion]
    v_tr, v_rot, v_scale = (p.speed * sp for sp in _SPEED)
    cx = p.x0 + dx * v_tr * s * t  # (T,)
    cy = p.y0 + dy * v_tr * s * t
    theta = p.theta0 + dth * v_rot * t
    lo, hi = _LOG_SCALE_RANGE
    phase = np.mod(p.phase0 + dls * v_scale * t / (hi - lo), 1.0)  # sawtooth in [0, 1)
    radius = _BASE_RADIUS * s * np.exp(lo + phase * (hi - lo))  # (T,) pixels

    grid = np.arange(s, dtype=np.float32) + 0.5
    # offsets to the centre on the torus: (T, 1, W) and (T, H, 1)
    ox = np.mod(grid[None, None, :] - cx[:, None, None] + s / 2, s) - s / 2
    oy = np.mod(grid[None, :, None] - cy[:, None, None] + s / 2, s) - s / 2
    cos = (np.cos(theta) / radius)[:, None, None]
    sin = (np.sin(theta) / radius)[:, None, None]
    u = cos * ox + sin * oy  # (T, H, W) object coordinates, unit radius
    v = cos * oy - sin * ox
    shape = list(APPEARANCES.values())[appearance][0]
    inside = shape(u, v)  # (T, H, W) bool
    cells = np.floor(u * (1.0 / p.checker)) + np.floor(v * (1.0 / p.checker))
    light = np.mod(cells, 2.0) < 1.0  # (T, H, W) checker texture
    frames = np.repeat(p.background[None], t.shape[0], axis=0)  # (T, H, W, 3) uint8
    if not cfg.upright:
        frames[inside & light] = p.colour
        frames[inside & ~light] = p.dark
        return frames
    # light from above: brightness from the vertical image offset to the centre, (T, H, 1)
    shade = 1.0 - _SHADE * np.clip(oy / radius[:, None, None], -1.0, 1.0)
    shade = np.broadcast_to(shade, inside.shape)  # (T, H, W)
    for mask, tone in ((inside & light, p.colour), (inside & ~light, p.dark)):
        lit = tone[None, :].astype(np.float32) * shade[mask][:, None]  # (P, 3)
        frames[mask] = np.clip(lit + 0.5, 0, 255).astype(np.uint8)
    return frames


def parse_synthetic_path(path: str) -> tuple[int, int, int]:
    """``synthetic://<id>/<motion>/<appearance>`` -> ``(id, motion, appearance)``."""
    m = _PATH_RE.match(path)
    if m is None:
        raise ValueError(f"not a synthetic video path: {path!r} (expected {SCHEME}<id>/<m>/<a>)")
    return int(m["id"]), int(m["motion"]), int(m["appearance"])


class SyntheticVideo:
    """A ``VideoSource`` that renders the frames of one synthetic video on request."""

    def __init__(self, cfg: SyntheticConfig, path: str) -> None:
        self.path = path
        self.cfg = cfg
        self.video_id, self.motion, self.appearance = parse_synthetic_path(path)
        if not (0 <= self.motion < cfg.num_motions and 0 <= self.appearance < cfg.num_appearances):
            raise ValueError(f"{path}: label out of range for {cfg}")
        self.num_frames = cfg.frames
        self.fps = cfg.fps

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(T,)`` frame indices -> ``(T, H, W, 3)`` uint8."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_frames):
            raise IndexError(f"{self.path}: frame index out of range [0, {self.num_frames})")
        return render_frames(self.cfg, self.video_id, self.motion, self.appearance, idx)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class SyntheticOpener:
    """Picklable opener: ``SyntheticOpener(cfg)(path) -> SyntheticVideo``."""

    cfg: SyntheticConfig

    def __call__(self, path: str) -> SyntheticVideo:
        return SyntheticVideo(self.cfg, str(path))


# --- on disk ------------------------------------------------------------------------------------

# codec preference: (codec, pixel format, options); the first one PyAV's FFmpeg has is used
_CODECS: list[tuple[str, str, dict[str, str]]] = [
    ("libx264", "yuv444p", {"crf": "4", "preset": "medium"}),
    ("mpeg4", "yuv420p", {"qscale": "1"}),
]


def _pick_codec() -> tuple[str, str, dict[str, str]]:
    import av

    for codec, pix_fmt, options in _CODECS:
        if codec in av.codecs_available:
            return codec, pix_fmt, options
    raise RuntimeError(
        f"none of the video encoders {[c for c, _, _ in _CODECS]} is in PyAV's FFmpeg"
    )


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Encode ``frames: (T, H, W, 3)`` uint8 to ``path`` (H.264 4:4:4 near-lossless or MPEG-4)."""
    import av

    codec, pix_fmt, options = _pick_codec()
    _, h, w, _ = frames.shape
    if pix_fmt == "yuv420p" and (h % 2 or w % 2):
        raise ValueError(f"{path}: {codec} with {pix_fmt} needs an even frame size, got {h}x{w}")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.options = options
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_synthetic(out_dir: str | Path, cfg: SyntheticConfig, progress: bool = True) -> Path:
    """Write every video of ``cfg`` as ``out_dir/<subset>/<motion>/<id>.mp4``.

    Also writes ``classes.json`` (``{"motion": [...], "appearance": [...], "config": {...}}``)
    and ``labels.csv`` (``path,subset,motion,appearance``, paths relative to ``out_dir``).
    Returns ``out_dir``.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    motion, appearance = synthetic_labels(cfg)
    rows = []
    jobs = [(subset, i) for subset in ("train", "test") for i in cfg.subset_ids(subset)]
    for subset, i in tqdm(jobs, desc="synth", unit="video", disable=not progress):
        rel = Path(subset) / cfg.motion_classes[motion[i]] / f"{i:06d}.mp4"
        (out / rel.parent).mkdir(parents=True, exist_ok=True)
        frames = render_frames(cfg, i, int(motion[i]), int(appearance[i]), range(cfg.frames))
        write_video(out / rel, frames, cfg.fps)
        rows.append((rel.as_posix(), subset, int(motion[i]), int(appearance[i])))
    meta = {
        "motion": cfg.motion_classes,
        "appearance": cfg.appearance_classes,
        "config": asdict(cfg),
    }
    (out / "classes.json").write_text(json.dumps(meta, indent=2) + "\n")
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "subset", "motion", "appearance"])
        writer.writerows(rows)
    return out


def load_synthetic(root: str | Path, subset: str = "train") -> DatasetIndex:
    """Read a set written by :func:`write_synthetic`: class folders + appearance labels."""
    root = Path(root)
    labels_file = root / "labels.csv"
    if not labels_file.is_file():
        raise FileNotFoundError(
            f"synthetic labels not found: {labels_file} (write it with `vidssl synth`)"
        )
    with open(labels_file, newline="") as f:
        appearance = {row["path"]: int(row["appearance"]) for row in csv.DictReader(f)}
    index = class_folders(root / subset)
    items = []
    for item in index.items:
        rel = Path(item.path).relative_to(root).as_posix()
        if rel not in appearance:
            raise ValueError(f"{item.path} is not listed in {labels_file}")
        items.append(VideoItem(item.path, item.label, {"appearance": appearance[rel]}))
    classes = (
        json.loads((root / "classes.json").read_text())["motion"]
        if (root / "classes.json").is_file()
        else index.classes
    )
    if classes != index.classes:
        # class folders sort by name; relabel to the generator's motion order
        order = {name: k for k, name in enumerate(classes)}
        items = [VideoItem(it.path, order[index.classes[it.label]], it.extra) for it in items]
    return DatasetIndex(items, classes)
