"""Text-matching protocols of a bench cell: closed-set and zero-shot accuracy of a
language-video checkpoint, after the preset's ``eval.protocols``.

    overrides:
      xclip:
        method: {class_texts: [...], held_out_classes: [turning counter-clockwise, shrinking]}
        text_protocols: [closed-set, zeroshot]

Each name in ``text_protocols`` (a text protocol of ``vidssl.eval.protocols.PROTOCOLS``) runs
:func:`vidssl.app.evaluate.evaluate` (text protocols) on the cell's evaluated checkpoint (the last
stage's ``last.pt``), exactly as ``vidssl eval closed-set|zeroshot`` does: every test video
(``zeroshot``: only those of the held-out classes) is scored against the class texts
(``zeroshot``: only the held-out ones), averaging the softmax over K = clips x crops views.
Its result is saved to ``<run>/eval/<protocol>-<dataset>-<label set>.json`` (what ``vidssl
report`` draws) and joins the cell's ``result.json`` with the other results, so the table gets
the columns ``closed-set top-1 <label set>`` and ``zero-shot top-1 <label set>`` (``–`` for
rows without them) and the notes give each row's classes and chance level.

Settings: the fields of :class:`vidssl.eval.text_match.TextSettings` that mean the same as a
field the preset's ``eval.settings`` sets (:data:`SHARED_SETTINGS`, e.g. ``num_clips``,
``num_crops``, ``batch_size``) are taken from there; the others keep the zeroshot defaults
(3 crops, top-1 and top-5, as X-CLIP's Sec. 4.2). They are part of the cell's settings
(``spec["text"]``), which cells without ``text_protocols`` do not have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidssl.app.bench_cells import BenchError
from vidssl.app.train.checkpoint import CHECKPOINT_NAME
from vidssl.config import Config, ConfigError
from vidssl.eval.protocols import PROTOCOLS, names

if TYPE_CHECKING:
    from vidssl.eval.stats import EvalResult
    from vidssl.eval.text_match import TextSettings

# preset eval.settings field (vidssl.eval.protocols.EvalConfig) -> the TextSettings field
# with the same meaning
SHARED_SETTINGS: dict[str, str] = {
    "num_clips": "num_clips",
    "num_crops": "num_crops",
    "clip_len": "clip_len",
    "stride": "stride",
    "size": "size",
    "batch_size": "batch_size",
    "workers": "workers",
    "device": "device",
    "progress": "progress",
    "test_subset": "subset",
}
# text protocol -> method keywords of which the evaluated config must set one
NEEDS_METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "zeroshot": ("held_out_classes", "held_out_fraction"),
}
TEXT_NOTE = (
    " Closed-set / zero-shot top-1: each test video is matched against class texts (cosine "
    "of its video and text embeddings, softmax averaged over its clips x crops views); "
    "zero-shot scores only the videos of the classes held out from training, against the "
    "held-out classes' texts only."
)


@dataclass(frozen=True)
class TextPlan:
    """The text protocols of a cell and their settings."""

    protocols: tuple[str, ...]
    settings: TextSettings

    def spec(self) -> dict[str, Any]:
        """What decides the numbers, for the cell's settings."""
        return {"protocols": list(self.protocols), "settings": dataclasses.asdict(self.settings)}


def plan_text(
    protocols: Sequence[str], eval_settings: dict[str, Any], config: Config, where: str
) -> TextPlan | None:
    """The cell's :class:`TextPlan` (None without protocols). ``eval_settings`` is the
    preset's ``eval.settings``, ``config`` the evaluated run config, ``where``
    (``"<preset>: overrides.<method>"``) prefixes the errors."""
    from vidssl.eval.protocols import text_settings_from_dict

    if not protocols:
        return None
    for protocol in protocols:
        keys = NEEDS_METHOD_KEYS.get(protocol, ())
        if keys and not any(config.method.hparams.get(k) for k in keys):
            raise BenchError(
                f"{where}.method: text protocol {protocol!r} needs one of {list(keys)}"
            )
    values = {SHARED_SETTINGS[k]: v for k, v in eval_settings.items() if k in SHARED_SETTINGS}
    try:
        settings = text_settings_from_dict(values)
    except ConfigError as err:
        raise BenchError(f"{where}.text_protocols: eval.settings: {err}") from err
    return TextPlan(tuple(protocols), settings)


def evaluate_text_protocols(text: TextPlan, run_dir: Path) -> list[EvalResult]:
    """Run every text protocol on ``run_dir/last.pt``; results saved in ``run_dir/eval/``."""
    from vidssl.app.evaluate import evaluate

    return evaluate(
        str(run_dir / CHECKPOINT_NAME),
        protocols=text.protocols,
        out_dir=run_dir,
        text_cfg=text.settings,
    )


def text_notes(records: Sequence[dict[str, Any]]) -> str:
    """The notes on the text-protocol columns, with each row's classes and chance level
    (from the results' ``info``), when some row has them."""
    rows: dict[str, list[str]] = {}
    for record in records:
        for result in record.get("results") or []:
            if result.get("protocol") not in names("text"):
                continue
            info = result.get("info") or {}
            classes, chance = info.get("classes") or [], info.get("chance_top1")
            what = f"{PROTOCOLS[result['protocol']].prefix.strip()} over {len(classes)} classes"
            if result["protocol"] != "closed-set":
                what += f" ({', '.join(classes)})"
            if chance is not None:
                what += f", chance {100 * chance:.1f} %"
            views = f"{info.get('num_clips')} x {info.get('num_crops')} views"
            parts = rows.setdefault(record["label"], [views])
            if what not in parts:
                parts.append(what)
    if not rows:
        return ""
    lines = [f"{label}: {'; '.join([*parts[1:], parts[0]])}" for label, parts in rows.items()]
    return TEXT_NOTE + " " + ". ".join(lines) + "."
