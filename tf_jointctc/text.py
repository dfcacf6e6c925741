"""Character vocabulary and transcript normalization (paper section 3.1).

The paper's attention model uses 32 labels: 26 letters, apostrophe, period, dash, space, a noise token and
one sos/eos token. CTC adds its blank. Ids are laid out as ESPnet does: blank is 0 (so that 0 can also pad
label matrices: a label sequence never contains the blank), the characters follow, sos/eos is last.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence

BLANK = "<blank>"
NOISE = "<noise>"
SOS_EOS = "<sos/eos>"

# Order matters: it fixes the ids, and the ids are baked into trained models.
PAPER_CHARACTERS: tuple[str, ...] = (
    " ",
    "'",
    ".",
    "-",
    NOISE,
    *"abcdefghijklmnopqrstuvwxyz",
)

# Characters that are mapped rather than dropped: typographic variants of characters in the vocabulary.
_CHAR_MAP = {
    "\u2018": "'",  # left single quote
    "\u2019": "'",  # right single quote / typographic apostrophe
    "\u02bc": "'",  # modifier letter apostrophe
    "`": "'",
    "\u00b4": "'",
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # ellipsis
}
# Spellings of a noise marker in corpora (WSJ/CHiME-4 use bracketed noise words).
_NOISE_RE = re.compile(r"<noise>|\[noise\]|\[[a-z_/\-]*noise[a-z_/\-]*\]|<[a-z_]*noise[a-z_]*>", re.IGNORECASE)
_NOISE_PLACEHOLDER = "\x00"
_SPACE_RE = re.compile(r"\s+")


@dataclasses.dataclass
class NormalizationReport:
    """Counts of what `normalize` changed, to be summed over a data set and logged."""

    mapped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def update(self, other: NormalizationReport) -> None:
        self.mapped.update(other.mapped)
        self.dropped.update(other.dropped)

    def summary(self, most_common: int = 10) -> str:
        dropped = ", ".join(f"{c!r}x{n}" for c, n in self.dropped.most_common(most_common))
        mapped = ", ".join(f"{c!r}x{n}" for c, n in self.mapped.most_common(most_common))
        return (
            f"dropped {sum(self.dropped.values())} out-of-vocabulary characters ({dropped or 'none'}); "
            f"mapped {sum(self.mapped.values())} ({mapped or 'none'})"
        )


def normalize(text: str, report: NormalizationReport | None = None) -> str:
    """Normalizes a transcript to the paper's character set.

    Lowercases; maps typographic quotes and dashes; keeps noise markers (`<noise>`, `[noise]`) as the noise
    token; drops every other character outside the vocabulary (digits included: transcripts are expected to
    spell numbers out) and counts it in `report`; collapses white space. Never raises on odd input.

    Args:
      text: a raw transcript.
      report: if given, receives counts of mapped and dropped characters.

    Returns:
      The normalized transcript, possibly empty.
    """
    report = report if report is not None else NormalizationReport()
    if _NOISE_PLACEHOLDER in text:  # a NUL in the input must not pose as a noise marker
        report.dropped[_NOISE_PLACEHOLDER] += text.count(_NOISE_PLACEHOLDER)
        text = text.replace(_NOISE_PLACEHOLDER, "")
    text = _NOISE_RE.sub(f" {_NOISE_PLACEHOLDER} ", text)
    text = unicodedata.normalize("NFKC", text).lower()
    allowed = set(PAPER_CHARACTERS) - {NOISE}
    out: list[str] = []
    for char in text:
        if char == _NOISE_PLACEHOLDER or char in allowed:
            out.append(char)
        elif char in _CHAR_MAP:
            report.mapped[char] += 1
            out.append(_CHAR_MAP[char])
        elif char.isspace():
            out.append(" ")
        else:
            # Accented letters lose their accent rather than the whole letter (café -> cafe).
            stripped = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            if stripped and all(c in allowed for c in stripped):
                report.mapped[char] += 1
                out.append(stripped)
            else:
                report.dropped[char] += 1
    text = _SPACE_RE.sub(" ", "".join(out)).strip()
    return text.replace(_NOISE_PLACEHOLDER, NOISE)


class Vocabulary:
    """Maps between normalized text and integer ids.

    Layout: id 0 is the CTC blank (also the label padding value), ids 1..K are the characters, id K+1 is
    sos/eos. `size` counts all of them and is the width of both output layers.
    """

    def __init__(self, characters: Sequence[str] = PAPER_CHARACTERS):
        if len(set(characters)) != len(characters):
            raise ValueError("vocabulary characters must be unique")
        if BLANK in characters or SOS_EOS in characters:
            raise ValueError("blank and sos/eos are added by Vocabulary itself")
        self.tokens: tuple[str, ...] = (BLANK, *characters, SOS_EOS)
        self._ids = {token: i for i, token in enumerate(self.tokens)}

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def blank_id(self) -> int:
        return 0

    @property
    def sos_id(self) -> int:
        return len(self.tokens) - 1

    @property
    def eos_id(self) -> int:
        return len(self.tokens) - 1

    def tokenize(self, normalized_text: str) -> list[str]:
        """Splits normalized text into tokens (the noise marker is one token)."""
        tokens: list[str] = []
        for i, piece in enumerate(normalized_text.split(NOISE)):
            if i:
                tokens.append(NOISE)
            tokens.extend(piece)
        return tokens

    def encode(self, normalized_text: str) -> list[int]:
        """Text (already normalized) -> ids in 1..K. Raises KeyError on a token outside the vocabulary."""
        try:
            return [self._ids[token] for token in self.tokenize(normalized_text)]
        except KeyError as error:
            raise KeyError(f"token {error.args[0]!r} is not in the vocabulary; normalize() the text first") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text. Blank, sos/eos and negative padding ids are skipped."""
        specials = {self.blank_id, self.sos_id}
        return "".join(self.tokens[i] for i in map(int, ids) if i >= 0 and i not in specials and i < self.size)

    def to_json(self) -> str:
        return json.dumps({"tokens": list(self.tokens)})

    @classmethod
    def from_json(cls, payload: str) -> Vocabulary:
        tokens = json.loads(payload)["tokens"]
        if tokens[0] != BLANK or tokens[-1] != SOS_EOS:
            raise ValueError("serialized vocabulary must start with the blank and end with sos/eos")
        return cls(tokens[1:-1])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.tokens == self.tokens

    def __hash__(self) -> int:
        return hash(self.tokens)


def ctc_min_frames(label_ids: Sequence[int]) -> int:
    """Fewest encoder frames a CTC alignment of `label_ids` needs: one per label plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(label_ids, label_ids[1:]) if a == b)
    return len(label_ids) + repeats
