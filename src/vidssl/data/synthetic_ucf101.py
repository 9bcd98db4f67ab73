"""The synthetic set on disk as UCF101 is distributed (``vidssl synth OUT --layout ucf101``).

``OUT/videos/<motion>/v_<motion>_g<GG>_c<CC>.mp4`` plus ``OUT/ucfTrainTestlist/`` with
``classInd.txt`` (the motion classes in the generator's order, so label ``k`` is
``SyntheticConfig.motion_classes[k]``), ``trainlist01.txt`` (``"<motion>/<file> <id>"``) and
``testlist01.txt`` (path only): split 1 is the set's own train / test subsets. Only split 1 is
written (the ``ucf101`` layout reads one split at a time; asking for split 2 or 3 names the
missing list file). A video's ``g<GG>_c<CC>`` numbers its rank within its motion class in id
order, four clips per group; the names carry no label beyond the class folder.

Read it back with the ``ucf101`` dataset (``root=OUT/videos``: the list folder is found next
to it), also after ``vidssl prepare OUT/videos OUT/videos-prepared``. The layout has one label
set: the appearance labels are not written (use the default layout for them).
"""

from __future__ import annotations

from pathlib import Path

from vidssl.data.synthetic import SyntheticConfig, render_frames, synthetic_labels, write_video

VIDEOS_DIR = "videos"
LISTS_DIR = "ucfTrainTestlist"
CLIPS_PER_GROUP = 4  # UCF101 has 4-7 clips per group


def ucf101_name(motion: str, rank: int) -> str:
    """File name of the ``rank``-th video (0-based) of class ``motion``."""
    group, clip = divmod(rank, CLIPS_PER_GROUP)
    return f"v_{motion}_g{group + 1:02d}_c{clip + 1:02d}.mp4"


def write_synthetic_ucf101(
    out_dir: str | Path, cfg: SyntheticConfig, progress: bool = True
) -> Path:
    """Write every video of ``cfg`` in the UCF101 layout (module docstring); returns ``out_dir``."""
    from vidssl.bars import ProgressBar

    out = Path(out_dir)
    lists = out / LISTS_DIR
    lists.mkdir(parents=True, exist_ok=True)
    motion, appearance = synthetic_labels(cfg)
    classes = cfg.motion_classes
    ranks = [0] * len(classes)
    lines: dict[str, list[str]] = {"train": [], "test": []}
    jobs = [(subset, i) for subset in ("train", "test") for i in cfg.subset_ids(subset)]
    for subset, i in ProgressBar(jobs, desc="synth", unit="video", disable=not progress):
        m = int(motion[i])
        rel = f"{classes[m]}/{ucf101_name(classes[m], ranks[m])}"
        ranks[m] += 1
        (out / VIDEOS_DIR / classes[m]).mkdir(parents=True, exist_ok=True)
        frames = render_frames(cfg, i, m, int(appearance[i]), range(cfg.frames))
        write_video(out / VIDEOS_DIR / rel, frames, cfg.fps)
        # train lines add the 1-based class id, test lines hold the path only (as distributed)
        lines[subset].append(f"{rel} {m + 1}" if subset == "train" else rel)
    (lists / "classInd.txt").write_text("".join(f"{k + 1} {c}\n" for k, c in enumerate(classes)))
    (lists / "trainlist01.txt").write_text("".join(f"{line}\n" for line in lines["train"]))
    (lists / "testlist01.txt").write_text("".join(f"{line}\n" for line in lines["test"]))
    return out
