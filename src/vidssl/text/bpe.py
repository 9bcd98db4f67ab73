"""CLIP's byte-level BPE tokenizer (Radford et al. 2021; Sennrich et al. 2016, seed 004 ref. [8]).

Text is cleaned (HTML entities unescaped twice, Unicode NFC, whitespace collapsed, lower-cased),
split by CLIP's pre-tokenisation pattern

    <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d | \\p{L}+ | \\p{N} | [^\\s\\p{L}\\p{N}]+

then every piece's UTF-8 bytes are mapped to printable characters (GPT-2's byte-to-unicode
table) and merged by the ranked merges of ``bpe_simple_vocab_16e6.txt.gz``; the last symbol of
a word carries ``</w>``. ``tokenize`` wraps each text as ``<|startoftext|>`` (49406) ... ``<|endoftext|>``
(49407) in a context of 77 ids padded with 0.

The merges file is read from the installed ``open_clip_torch`` package (located with
``importlib.util.find_spec``, without importing ``open_clip``) or from a path the user passes.

Departures from OpenAI's ``SimpleTokenizer`` (no ``regex`` / ``ftfy`` dependency): the standard
``re`` module replaces ``regex``, with ``\\p{L}`` and ``\\p{N}`` spelt out as character classes
built from ``unicodedata`` categories (same split up to Unicode-version differences);
``ftfy.fix_text`` is replaced by its character-level fixes (``fix_text`` below: ligatures,
character width, curly quotes, control characters, NFC) without its mojibake repair, which
only changes text that was decoded with the wrong encoding.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import re
import sys
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
NUM_MERGES = 49152 - 256 - 2  # CLIP uses the first 48894 merges (vocabulary of 49408)
CONTEXT_LENGTH = 77


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (no whitespace/control chars)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _char_class(prefix: str) -> str:
    """A ``[...]`` body with every code point whose Unicode category starts with ``prefix``."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith(prefix):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


@lru_cache(maxsize=1)
def pretokenize_pattern() -> re.Pattern[str]:
    """CLIP's split pattern with ``\\p{L}`` / ``\\p{N}`` spelt out for the standard ``re``."""
    letters, numbers = _char_class("L"), _char_class("N")
    return re.compile(
        rf"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
        rf"|[{letters}]+|[{numbers}]|[^\s{letters}{numbers}]+"
    )  # CLIP's re.IGNORECASE is moot on lower-cased text, and with the standard ``re`` it
    # would let caseless marks such as U+0345 (which folds to a letter) join letter runs


TERMINAL_ESCAPE = re.compile(r"\033\[((?:\d|;)*)([a-zA-Z])")
LIGATURES = {
    "Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǳ": "DZ", "ǲ": "Dz", "ǳ": "dz", "Ǆ": "DŽ", "ǅ": "Dž",
    "ǆ": "dž", "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj", "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj",
    "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt", "ﬆ": "st",
}  # fmt: skip
CONTROL_CHARS = [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x206A, 0x2070)]
CONTROL_CHARS += [0xFEFF, *range(0xFFF9, 0xFFFD)]


@lru_cache(maxsize=1)
def _fix_table() -> dict[int, str | None]:
    """One ``str.translate`` table: ligatures, full/half-width forms, curly quotes, controls."""
    table: dict[int, str | None] = {ord(k): v for k, v in LIGATURES.items()}
    table[0x3000] = " "  # ideographic space
    for cp in range(0xFF01, 0xFFF0):  # full-width / half-width forms -> standard width
        alt = unicodedata.normalize("NFKC", chr(cp))
        if alt != chr(cp):
            table[cp] = alt
    table.update({cp: "'" for cp in (0x02BC, *range(0x2018, 0x201C))})
    table.update({cp: '"' for cp in range(0x201C, 0x2020)})
    table.update({cp: None for cp in CONTROL_CHARS})
    return table


def fix_text(text: str) -> str:
    """The character-level fixes of ``ftfy.fix_text`` that CLIP applies, then NFC.

    Terminal escapes removed, Latin ligatures split, full-width forms narrowed, curly quotes
    straightened, stray control characters dropped. ftfy's mojibake repair is not reproduced.
    """
    text = TERMINAL_ESCAPE.sub("", text)
    text = text.replace("\r\n", "\n").translate(_fix_table())
    return unicodedata.normalize("NFC", text)


def clean_text(text: str) -> str:
    """``fix_text``, HTML-unescape twice, collapse whitespace, strip, lower-case."""
    text = html.unescape(html.unescape(fix_text(text)))
    return re.sub(r"\s+", " ", text).strip().lower()


def default_merges_path() -> Path:
    """``bpe_simple_vocab_16e6.txt.gz`` inside the installed ``open_clip_torch`` package."""
    spec = importlib.util.find_spec("open_clip")  # locates the package, does not import it
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"CLIP BPE merges file {MERGES_FILE} not found: install open_clip_torch "
            "(pip install --no-deps open_clip_torch) or pass merges_path="
        )
    path = Path(spec.origin).parent / MERGES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"CLIP BPE merges file not found: {path}")
    return path


def read_merges(path: str | Path) -> list[tuple[str, str]]:
    """The first ``NUM_MERGES`` merge rules of a CLIP merges file (``.gz`` or plain text)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"CLIP BPE merges file not found: {p}")
    raw = p.read_bytes()
    text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
    lines = text.split("\n")[1 : NUM_MERGES + 1]  # line 0 is a version header
    merges = [tuple(line.split()) for line in lines]
    bad = [i + 2 for i, m in enumerate(merges) if len(m) != 2]
    if bad or len(merges) != NUM_MERGES:
        raise ValueError(
            f"CLIP BPE merges file {p}: expected {NUM_MERGES} lines of two symbols after the "
            f"header, got {len(merges)} (malformed lines: {bad[:5]})"
        )
    return merges  # type: ignore[return-value]


class ClipTokenizer:
    """Byte-level BPE with CLIP's vocabulary: ``encode``, ``decode``, ``tokenize``."""

    def __init__(self, merges_path: str | Path | None = None) -> None:
        self.merges_path = Path(merges_path) if merges_path is not None else default_merges_path()
        merges = read_merges(self.merges_path)
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        chars = list(self.byte_encoder.values())
        vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.cache: dict[str, list[str]] = {SOT: [SOT], EOT: [EOT]}
        self.sot_id, self.eot_id = self.encoder[SOT], self.encoder[EOT]
        self.vocab_size = len(vocab)

    def bpe(self, piece: str) -> list[str]:
        """One pre-token (byte-mapped) -> its BPE symbols, the last ending in ``</w>``."""
        if piece in self.cache:
            return self.cache[piece]
        word = [*piece[:-1], piece[-1] + "</w>"]
        while len(word) > 1:
            pairs = set(zip(word[:-1], word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, len(self.ranks)))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[piece] = word
        return word

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start / end tokens."""
        ids: list[int] = []
        for piece in pretokenize_pattern().findall(clean_text(text)):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[sym] for sym in self.bpe(mapped))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text (``</w>`` becomes a space); start, end and padding ids are dropped."""
        skip = {0, self.sot_id, self.eot_id}
        text = "".join(self.decoder[i] for i in ids if i not in skip)
        raw = bytes(self.byte_decoder[c] for c in text)
        return raw.decode("utf-8", errors="replace").replace("</w>", " ").strip()

    def tokenize(
        self,
        texts: str | Sequence[str],
        context_length: int = CONTEXT_LENGTH,
        truncate: bool = True,
    ) -> Tensor:
        """texts -> (K, context_length) int64: SOT, ids, EOT, then 0 padding.

        Longer texts are cut to ``context_length`` with EOT kept last (``truncate=True``, as
        needed for long LLM class descriptions, Sec. 3.3) or raise ``ValueError``.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > context_length:
                if not truncate:
                    raise ValueError(
                        f"text {row} has {len(ids)} tokens > context_length {context_length}: "
                        f"{text[:60]!r}"
                    )
                ids = ids[:context_length]
                ids[-1] = self.eot_id
            out[row, : len(ids)] = torch.tensor(ids)
        return out
