"""Procedural synthetic videos with a *motion* label and an *appearance* label.

Every video shows one textured object on a static noise background:

- ``appearance`` (visible in a single frame, ``extra["appearance"]``): the kind of object, a
  shape with its own colour (red disc, green square, blue triangle, ...);
- ``motion`` (visible only across frames, the primary ``label``): how the object moves:
  right / left / down / up, rotate clockwise / counter-clockwise, expand / contract.

Each video keeps its own appearance, as real videos do: its own background noise and grey
level, colour shade, checker size, start position, orientation and size.

Motion is invisible in any single frame: at every frame index ``t`` and for every motion class
the object's position is uniform over the frame (it moves on a torus, wrapping at the
borders), its orientation is uniform, and its log-scale phase is uniform on a circle
(:func:`object_track`). Expansion and contraction move that phase around the circle; the
object fades out at the large end of the scale range and fades back in at the small end
(``_FADE``), so the wrap is seamless (no jump in size) and the opacity is a function of the
phase alone. So the distribution of one frame (object position, orientation, size, opacity,
the per-video appearance) is the same for every motion class, at every frame index; only the
change between frames tells the classes apart. The appearance distribution is the same for
every motion class and vice versa.

Nuisances are kept narrower than the steps of the pretext labels built on the motion
(``vidssl.data.pretext``: pace 1x-4x of the stride, ratios 2, 1.5 and 1.33 between adjacent
paces; 8-9 frame clips, so the longest clip spans 4 x 9 = 36 frames):

- speed: each video's speed multiplier is log-uniform in ``[1 / 1.07, 1.07]``
  (``_SPEED_SPREAD``), a total spread of x1.145, less than half the smallest pace step x1.33
  in log terms (log 1.145 = 0.135 < log 1.33 / 2 = 0.144): the speed ranges of adjacent paces
  are separated by a gap at least as wide as each range. (Until 2026-12 it was uniform in
  [0.8, 1.25], x1.56: one pace class then spanned more than its distance to the next.) Random
  resized crops rescale the apparent speed too; that is the recipe's ``scale`` / ``ratio``,
  not the set's.
- rotation: 5 degrees per frame at unit speed, at most 4 x 1.07 x 5 = 21.4 degrees per frame
  at pace 4, below half the alias limit of the 90-degree-symmetric shapes (squares, crosses,
  and the checker texture up to a colour swap: a step of 45 degrees looks the same turned
  either way). Was 10 degrees (32-50 degrees per frame at pace 4: aliased, it could look like
  a slow rotation the other way).
- scale: a cycle over the log-scale range ``[log 0.45, log 1.6]`` (x3.6) at 0.03 per frame at
  unit speed: it lasts 42 frames at unit speed and >= 39.5 frames at the fastest, longer than
  the longest clip span (36 frames), so a clip sees at most one wrap and never a full cycle.
  The wrap is seamless: the object fades out over the last 20 % of the cycle (large) and in
  over the first 5 % (small), so the size never jumps (75 % of frames are fully opaque).
  Was a sawtooth over [log 0.5, log 1.6] at 0.06 per frame: a 19-frame period that jumped
  from large to small every 4-6 frames of a 4x clip. A non-wrapping scale was considered and
  rejected: on a bounded range it makes the size distribution depend on the frame index
  (expanding objects are small early, large late), so one frame at a known time (e.g. a
  centre clip) would reveal the class, and it limits the rate to range / (frames - 1), 0.027
  per frame for 48 frames.

By default the set is also rotation-invariant (uniform orientation, isotropic motions and
noise), so a 90-degree rotation of a clip cannot be told from the clip: the rotation pretext
task is at chance by construction. ``upright=True`` gives the objects a canonical "up", as
real footage has: light from above, which shades every object brighter on its upper side
(brightness x1.4 at the top edge to x0.6 at the bottom) and casts its shadow below it (the
shape moved down by half its radius, darkening the background to 40 %). The background is
the same as without the option, with no global gradient: the only rotation cue is on and
beside the object, and moves with it. (Until 2026-12 ``upright`` also made the background
brighter towards the top, a "sky" that alone revealed a clip's rotation.) Light and shadow
are fixed in image coordinates and equal for every class, so no label becomes visible.

Deterministic from ``seed``: video ``i``'s nuisance parameters come from
``SeedSequence([seed, i])``; labels are balanced within the train and test subsets (video
ids ``0 .. n_train - 1`` and ``n_train .. num_videos - 1``).

In memory: items have paths ``synthetic://<id>/<motion>/<appearance>`` and
:class:`SyntheticOpener` renders their frames on request: a 16x64x64 clip in 5.5 ms (9.2 ms
upright), 16x32x32 in 1.2 ms (1.8 ms upright), best of 5 on the shared 2-core CPU under load,
by ``python -m timeit -s "from vidssl.data import synthetic as SY; c =
SY.SyntheticConfig(size=64, upright=False)" "SY.render_frames(c, 3, 6, 1, range(16))"``. On
disk: :func:`write_synthetic` writes ``<out>/<subset>/<motion>/<id>.mp4`` (class-folder
layout) plus ``classes.json`` and ``labels.csv``; :func:`load_synthetic` reads it back with
the appearance labels.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

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
# unit speeds per frame: translation (fraction of the side), rotation (rad), log-scale; see the
# module docstring for why (pace 4 must not alias, the scale cycle must outlast a 4x clip)
_SPEED = (0.035, math.radians(5.0), 0.03)
_SPEED_SPREAD = 1.07  # a video's speed multiplier is log-uniform in [1 / 1.07, 1.07]
_LOG_SCALE_RANGE = (math.log(0.45), math.log(1.6))  # the scale cycle's range (x3.6)
# opacity ramps 0 -> 1 over the first 5 % of the scale cycle (small objects) and 1 -> 0 over
# the last 20 % (large objects: a slower fade, as they cover more pixels)
_FADE = (0.05, 0.2)
_BASE_RADIUS = 0.2  # object radius at scale 1, as a fraction of the side
# upright scenes: object brightness 1 +/- _SHADE from its lower to its upper edge; a shadow,
# the object's shape moved down by _SHADOW_SHIFT radii, darkens the background by _SHADOW
_SHADE = 0.4
_SHADOW_SHIFT = 0.5
_SHADOW = 0.6


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
    upright: bool = False  # objects lit from above (shading, shadow below): rotations visible

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
    phase0: float  # position in the log-scale cycle, [0, 1)
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
    spread = math.log(_SPEED_SPREAD)
    return _VideoParams(
        x0=rng.uniform(0, s),
        y0=rng.uniform(0, s),
        theta0=rng.uniform(0, 2 * math.pi),
        phase0=rng.uniform(0, 1),
        speed=math.exp(rng.uniform(-spread, spread)),
        colour=_to_uint8(colour),
        dark=_to_uint8(colour * rng.uniform(0.35, 0.55)),
        checker=rng.uniform(0.45, 0.6),
        background=_to_uint8(np.clip(grey + noise, 0, 1)),
    )


class ObjectTrack(NamedTuple):
    """The object's state at each requested frame, every field ``(T,)``."""

    cx: np.ndarray  # centre, pixels in [0, size) (torus)
    cy: np.ndarray
    theta: np.ndarray  # orientation, radians (unwrapped)
    phase: np.ndarray  # log-scale phase in [0, 1): log-scale = lo + phase * (hi - lo)
    radius: np.ndarray  # pixels
    alpha: np.ndarray  # opacity in [0, 1], a function of the phase alone


def _object_track(p: _VideoParams, size: int, motion: int, t: np.ndarray) -> ObjectTrack:
    dx, dy, dth, dls = list(MOTIONS.values())[motion]
    v_tr, v_rot, v_scale = (p.speed * sp for sp in _SPEED)
    lo, hi = _LOG_SCALE_RANGE
    phase = np.mod(p.phase0 + dls * v_scale * t / (hi - lo), 1.0)  # cycle position, [0, 1)
    fade_in, fade_out = _FADE
    return ObjectTrack(
        cx=np.mod(p.x0 + dx * v_tr * size * t, size),
        cy=np.mod(p.y0 + dy * v_tr * size * t, size),
        theta=p.theta0 + dth * v_rot * t,
        phase=phase,
        radius=_BASE_RADIUS * size * np.exp(lo + phase * (hi - lo)),
        alpha=np.clip(np.minimum(phase / fade_in, (1.0 - phase) / fade_out), 0.0, 1.0),
    )


def object_track(
    cfg: SyntheticConfig, video_id: int, motion: int, appearance: int, indices: Sequence[int]
) -> ObjectTrack:
    """The object's centre, orientation, size and opacity at frames ``indices``: ``(T,)`` each."""
    p = _video_params(cfg, video_id, appearance)
    return _object_track(p, cfg.size, motion, np.asarray(indices, dtype=np.float32))


def _object_coords(
    ox: np.ndarray, oy: np.ndarray, theta: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets to the centre ``(T, 1, W)``, ``(T, H, 1)`` -> object coordinates ``(T, H, W)``
    (unit radius, rotated by ``theta: (T,)``)."""
    cos = (np.cos(theta) / radius)[:, None, None]
    sin = (np.sin(theta) / radius)[:, None, None]
    return cos * ox + sin * oy, cos * oy - sin * ox


def render_frames(
    cfg: SyntheticConfig, video_id: int, motion: int, appearance: int, indices: Sequence[int]
) -> np.ndarray:
    """Frames ``indices`` of one synthetic video: ``(T,) -> (T, H, W, 3)`` uint8."""
    p = _video_params(cfg, video_id, appearance)
    s = cfg.size
    track = _object_track(p, s, motion, np.asarray(indices, dtype=np.float32))
    grid = np.arange(s, dtype=np.float32) + 0.5
    # offsets to the centre on the torus: (T, 1, W) and (T, H, 1)
    ox = np.mod(grid[None, None, :] - track.cx[:, None, None] + s / 2, s) - s / 2
    oy = np.mod(grid[None, :, None] - track.cy[:, None, None] + s / 2, s) - s / 2
    u, v = _object_coords(ox, oy, track.theta, track.radius)  # (T, H, W)
    shape = list(APPEARANCES.values())[appearance][0]
    alpha = np.broadcast_to(track.alpha[:, None, None], u.shape)  # (T, H, W)
    frames = np.repeat(p.background[None], len(track.cx), axis=0)  # (T, H, W, 3) uint8
    if cfg.upright:  # the shadow: the shape moved down by _SHADOW_SHIFT radii
        oy_shadow = np.mod(oy - _SHADOW_SHIFT * track.radius[:, None, None] + s / 2, s) - s / 2
        shadow = shape(*_object_coords(ox, oy_shadow, track.theta, track.radius))  # (T, H, W)
        dim = 1.0 - _SHADOW * alpha[shadow][:, None]  # (P, 1)
        frames[shadow] = (frames[shadow] * dim + 0.5).astype(np.uint8)
    inside = shape(u, v)  # (T, H, W) bool
    u, v = u[inside], v[inside]  # (P,) object pixels only from here on
    cells = np.floor(u * (1.0 / p.checker)) + np.floor(v * (1.0 / p.checker))
    light = (np.mod(cells, 2.0) < 1.0)[:, None]  # (P, 1) checker texture
    tone = np.where(light, p.colour.astype(np.float32), p.dark.astype(np.float32))  # (P, 3)
    if cfg.upright:  # light from above: brightness from the vertical offset to the centre
        oy_px = np.broadcast_to(oy / track.radius[:, None, None], inside.shape)[inside]  # (P,)
        tone = tone * (1.0 - _SHADE * np.clip(oy_px, -1.0, 1.0))[:, None]
    cover = alpha[inside][:, None]  # (P, 1) opacity
    mixed = frames[inside].astype(np.float32) * (1.0 - cover) + tone * cover  # (P, 3)
    frames[inside] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
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
    from vidssl.bars import ProgressBar

    out = Path(out_dir)
    motion, appearance = synthetic_labels(cfg)
    rows = []
    jobs = [(subset, i) for subset in ("train", "test") for i in cfg.subset_ids(subset)]
    for subset, i in ProgressBar(jobs, desc="synth", unit="video", disable=not progress):
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
