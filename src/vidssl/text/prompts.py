"""Class lists, LLM-style class descriptions and the class texts fed to a text encoder.

The language-video paper (seed 004, section 3.3) replaces each bare class name with the
answer of a large language model to ``"What are useful visual features for distinguishing
{class} in a video?"``. vidssl ships such descriptions for UCF101, HMDB51 and Kinetics-400 as
package data (``vidssl/assets/descriptions/<name>.json``), next to the official class lists
(``vidssl/assets/classes/<name>.txt``). Nothing here calls a model or the network: for a new
class list, :func:`write_template` writes a JSON file with one empty string per class and the
question to ask, to be filled by hand or with any LLM, then loaded with
:func:`load_descriptions`.

Class texts come in three modes (``TEXT_MODES``): ``"name"`` (the class name as words),
``"template"`` (a hand template such as ``"a video of a person {}"``) and ``"description"``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources.abc is Python >= 3.11; only needed for annotations
    from importlib.resources.abc import Traversable

PROMPT_QUESTION = "What are useful visual features for distinguishing {} in a video?"
DEFAULT_TEMPLATE = "a video of a person {}"

# keys starting with this prefix in a description file are metadata (question, help), not classes
META_PREFIX = "_"

_CLASS_INDEX_LINE = re.compile(r"^\d+\s+(\S.*)$")  # "1 ApplyEyeMakeup" (UCF101 classInd.txt)
# word boundaries inside CamelCase: "eyeM", "y3", "TVS|how" ("TVShow" -> "TV", "Show")
_CAMEL_BOUNDARY = re.compile(
    r"(?<=[a-z])(?=[A-Z0-9])|(?<=[0-9])(?=[A-Z][a-z])|(?<=[A-Z])(?=[A-Z][a-z])"
)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


class MissingDescriptionsError(KeyError):
    """Raised by ``class_texts(..., mode="description")``; ``missing`` lists the classes."""

    def __init__(self, missing: Sequence[str], source: str) -> None:
        self.missing = list(missing)
        self.source = source
        super().__init__(
            f"{len(self.missing)} class(es) have no description in {source}: "
            + ", ".join(repr(c) for c in self.missing)
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


# ---------------------------------------------------------------------------------------------
# shipped assets


def _assets(kind: str) -> Traversable:
    return resources.files("vidssl") / "assets" / kind


def _shipped(kind: str, suffix: str) -> dict[str, Traversable]:
    """Shipped asset files of one kind by name, e.g. ``{"ucf101": <.../ucf101.txt>}``."""
    folder = _assets(kind)
    if not folder.is_dir():
        return {}
    return {
        f.name[: -len(suffix)]: f
        for f in folder.iterdir()
        if f.is_file() and f.name.endswith(suffix) and not f.name.startswith(".")
    }


def available_class_lists() -> list[str]:
    """Names of the shipped class lists (``"hmdb51"``, ``"kinetics400"``, ``"ucf101"``)."""
    return sorted(_shipped("classes", ".txt"))


def available_descriptions() -> list[str]:
    """Names of the shipped description sets."""
    return sorted(_shipped("descriptions", ".json"))


def _resolve(name_or_path: str | Path, kind: str, suffix: str) -> tuple[str, str]:
    """(text, source label) of a shipped asset name or a file path."""
    shipped = _shipped(kind, suffix)
    if isinstance(name_or_path, str) and name_or_path in shipped:
        return shipped[name_or_path].read_text(encoding="utf-8"), f"shipped {kind} {name_or_path!r}"
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{kind} file not found: {path} (shipped {kind}: {', '.join(sorted(shipped)) or 'none'})"
        )
    return path.read_text(encoding="utf-8"), str(path)


# ---------------------------------------------------------------------------------------------
# loading


def parse_class_list(text: str, source: str = "<text>") -> list[str]:
    """Class names from text: one per line; blank lines and ``#`` comments skipped.

    When every line reads ``<index> <name>`` (UCF101 ``classInd.txt``) the index is dropped.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError(f"{source}: no class names found")
    indexed = [_CLASS_INDEX_LINE.match(ln) for ln in lines]
    if all(indexed):
        lines = [m.group(1).strip() for m in indexed if m]
    dups = [c for c, n in Counter(lines).items() if n > 1]
    if dups:
        raise ValueError(f"{source}: duplicate class names: {', '.join(map(repr, dups))}")
    return lines


def load_class_list(name_or_path: str | Path) -> list[str]:
    """A shipped class list by name (``"ucf101"``, ``"hmdb51"``, ``"kinetics400"``) or a file.

    The order is the label order (index = label).
    """
    text, source = _resolve(name_or_path, "classes", ".txt")
    return parse_class_list(text, source)


def load_descriptions(name_or_path: str | Path) -> dict[str, str]:
    """Class -> description from a shipped set by name or a JSON file.

    The file is one JSON object; keys starting with ``"_"`` (the question and help written by
    :func:`write_template`) are skipped. Empty strings are kept; ``class_texts`` reports them as
    missing.
    """
    text, source = _resolve(name_or_path, "descriptions", ".json")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object mapping class name -> description")
    out: dict[str, str] = {}
    for key, value in data.items():
        if key.startswith(META_PREFIX):
            continue
        if not isinstance(value, str):
            raise ValueError(
                f"{source}: description of {key!r} must be a string, got {type(value).__name__}"
            )
        out[key] = value.strip()
    return out


def count_sentences(text: str) -> int:
    """Sentences in ``text``, counted by terminal punctuation (``.``, ``!``, ``?``)."""
    return len(_SENTENCE_END.findall(text.strip()))


# ---------------------------------------------------------------------------------------------
# class texts


def humanize(name: str) -> str:
    """A class name as words.

    Identifier-style names (no spaces) are split at underscores, hyphens and CamelCase and
    lower-cased, keeping acronyms: ``"ApplyEyeMakeup" -> "apply eye makeup"``,
    ``"climb_stairs" -> "climb stairs"``, ``"TVShow" -> "TV show"``. Names already written
    as words are kept as they are (``"passing American football (in game)"``).
    """
    if any(ch.isspace() for ch in name.strip()):
        return " ".join(name.split())
    parts = [p for tok in re.split(r"[_\-]+", name) for p in _CAMEL_BOUNDARY.split(tok) if p]
    return " ".join(p if len(p) > 1 and p.isupper() else p.lower() for p in parts)


def _name_texts(
    classes: Sequence[str], descriptions: Mapping[str, str] | None, template: str, source: str
) -> list[str]:
    return [humanize(c) for c in classes]


def _template_texts(
    classes: Sequence[str], descriptions: Mapping[str, str] | None, template: str, source: str
) -> list[str]:
    if "{}" not in template:
        raise ValueError(f"template must contain '{{}}' for the class name, got {template!r}")
    return [template.format(humanize(c)) for c in classes]


def _description_texts(
    classes: Sequence[str], descriptions: Mapping[str, str] | None, template: str, source: str
) -> list[str]:
    assert descriptions is not None
    missing = [c for c in classes if not descriptions.get(c, "").strip()]
    if missing:
        raise MissingDescriptionsError(missing, source)
    return [descriptions[c].strip() for c in classes]


TextFn = Callable[[Sequence[str], Mapping[str, str] | None, str, str], list[str]]

# mode name -> (function, needs descriptions)
TEXT_MODES: dict[str, tuple[TextFn, bool]] = {
    "name": (_name_texts, False),
    "template": (_template_texts, False),
    "description": (_description_texts, True),
}


def _best_shipped(classes: Sequence[str]) -> tuple[dict[str, str], str]:
    """The shipped description set covering most of ``classes`` (ties: first by name)."""
    best: tuple[int, dict[str, str], str] = (-1, {}, "shipped descriptions (none found)")
    for name in available_descriptions():
        desc = load_descriptions(name)
        covered = sum(1 for c in classes if desc.get(c))
        if covered > best[0]:
            best = (covered, desc, f"shipped descriptions {name!r}")
    return best[1], best[2]


def class_texts(
    classes: Sequence[str],
    mode: str,
    descriptions: Mapping[str, str] | str | Path | None = None,
    template: str = DEFAULT_TEMPLATE,
) -> list[str]:
    """One text per class, in class order, for the text encoder.

    Args:
        classes: class names (index = label).
        mode: a key of ``TEXT_MODES``: ``"name"``, ``"template"`` or ``"description"``.
        descriptions: for ``"description"``: a class -> text mapping, or a shipped set name /
            JSON path for :func:`load_descriptions`; ``None`` picks the shipped set that covers
            the most classes.
        template: for ``"template"``: a format string with one ``{}`` for the class name.

    Raises:
        MissingDescriptionsError: in ``"description"`` mode, naming every class without a
            (non-empty) description.
    """
    if mode not in TEXT_MODES:
        raise ValueError(f"unknown class text mode {mode!r}; choose from {', '.join(TEXT_MODES)}")
    fn, needs_descriptions = TEXT_MODES[mode]
    desc: Mapping[str, str] | None = None
    source = "descriptions"
    if needs_descriptions:
        if descriptions is None:
            desc, source = _best_shipped(classes)
        elif isinstance(descriptions, (str, Path)):
            desc, source = load_descriptions(descriptions), str(descriptions)
        else:
            desc, source = descriptions, "the given descriptions"
    return fn(classes, desc, template, source)


# ---------------------------------------------------------------------------------------------
# templates for new class lists


def template_dict(
    classes: Sequence[str],
    question: str = PROMPT_QUESTION,
    prefill: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """The JSON object :func:`write_template` writes: metadata keys, then one entry per class.

    ``"_question"`` maps every class to its LLM question; each class maps to ``""`` (or its
    ``prefill`` text when given).
    """
    if "{}" not in question:
        raise ValueError(f"question must contain '{{}}' for the class name, got {question!r}")
    prefill = prefill or {}
    out: dict[str, object] = {
        "_help": (
            "Replace each empty string with 1-3 sentences answering the class's question in "
            "'_question' (visual cues: objects, body pose, motion, setting). Keys starting with "
            "'_' are ignored when loading."
        ),
        "_question": {c: question.format(humanize(c)) for c in classes},
    }
    out.update({c: prefill.get(c, "") for c in classes})
    return out


def write_template(
    classes: Sequence[str],
    out_path: str | Path,
    *,
    question: str = PROMPT_QUESTION,
    prefill: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a description template for ``classes`` to ``out_path`` (JSON) and return the path.

    Fill it by hand or with any LLM, then pass it to :func:`load_descriptions` or
    ``class_texts(..., descriptions=out_path)``.
    """
    classes = list(classes)
    if not classes:
        raise ValueError("write_template: the class list is empty")
    if any(c.startswith(META_PREFIX) for c in classes):
        bad = [c for c in classes if c.startswith(META_PREFIX)]
        raise ValueError(f"class names must not start with {META_PREFIX!r}: {bad}")
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    data = template_dict(classes, question=question, prefill=prefill)
    out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
