"""Text for the character language model: text files and manifests -> label id sequences.

A source is a plain text file (`.txt`, one sentence per line), a gzipped one (`.gz`, e.g. `.txt.gz`), or a
JSONL manifest (`.jsonl`, or `.jsonl.gz`; a folder holding `manifest.jsonl` also works) whose entries' `text`
fields are read: the manifests `tf_jointctc.data.manifest` reads, but only `text` is needed (`id` and `audio`
may be missing), so that a transcript-only manifest works too. Every line is normalized with
`tf_jointctc.text.normalize` and encoded with the vocabulary.

Bad lines never stop the reading: each is skipped and counted per reason (`SKIP_REASONS`), and one summary
line is logged. Only a missing or unreadable file raises.

`DEMO_LM_TEXT` is the committed text of the demo language model (see `lm_corpus/SOURCES.md`).
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import os
import zlib
from collections.abc import Iterator, Sequence

from absl import logging

from tf_jointctc.data import skips
from tf_jointctc.text import NormalizationReport, Vocabulary, normalize

DEMO_LM_TEXT: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lm_corpus", "demo_lm.txt.gz")

# Skip reasons (keys of `LMText.skipped`).
EMPTY_LINE = "empty_line"  # nothing but white space (a manifest entry with an empty `text` too)
NO_VOCABULARY_CHARACTER = "no_vocabulary_character"  # normalizes to the empty string
NOT_UTF8 = "not_utf8"  # the line's bytes are not valid UTF-8
BAD_MANIFEST_LINE = skips.BAD_MANIFEST_LINE  # not JSON, not an object, or no string `text`
TEXT_NOT_IN_VOCABULARY = skips.TEXT_NOT_IN_VOCABULARY  # only with a vocabulary narrower than normalize()'s output
SKIP_REASONS = (EMPTY_LINE, NO_VOCABULARY_CHARACTER, NOT_UTF8, BAD_MANIFEST_LINE, TEXT_NOT_IN_VOCABULARY)

MANIFEST_NAME = "manifest.jsonl"
_BOM = "\ufeff"


@dataclasses.dataclass
class LMText:
    """The sentences of a language model's text, and what was left out.

    Attributes:
      sentences: one list of label ids (in 1..K of the vocabulary, no sos/eos) per kept line, [N][L_i], in
        the order of the sources and of their lines.
      skipped: number of lines left out per reason (`SKIP_REASONS`); reasons that never occurred are absent.
      num_lines: lines read, kept or skipped: `len(sentences) + sum(skipped.values())`.
      num_characters: labels kept, `sum(len(s) for s in sentences)`.
      normalization: characters `normalize` mapped or dropped in the kept and the skipped lines.
    """

    sentences: list[list[int]]
    skipped: collections.Counter
    num_lines: int
    num_characters: int
    normalization: NormalizationReport = dataclasses.field(default_factory=NormalizationReport)


def read_lm_text(sources: Sequence[str], vocab: Vocabulary) -> LMText:
    """Reads and encodes the lines of text files and manifests.

    Args:
      sources: paths of `.txt`, `.gz` (`.txt.gz`, `.jsonl.gz`) or `.jsonl` files, or folders holding a
        `manifest.jsonl`. A single path is accepted as well.
      vocab: the vocabulary to encode with (the recognizer's).

    Returns:
      The encoded sentences and the counts of skipped lines per reason.

    Raises:
      FileNotFoundError: a source does not exist (checked for all sources before any is read).
      ValueError: a source has another extension, is a folder without `manifest.jsonl`, or is not a valid
        gzip file.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    paths = [_resolve(os.fspath(source)) for source in sources]
    sentences: list[list[int]] = []
    skipped: collections.Counter = collections.Counter()
    first_skip: dict[str, str] = {}  # reason -> where it first happened, for the log
    normalization = NormalizationReport()
    num_lines = 0
    for path in paths:
        for where, text, reason in _texts(path):
            num_lines += 1
            if reason is None and not text.strip():
                reason = EMPTY_LINE
            if reason is None:
                normalized = normalize(text, normalization)
                if not normalized:
                    reason = NO_VOCABULARY_CHARACTER
                else:
                    try:
                        sentences.append(vocab.encode(normalized))
                    except KeyError:
                        reason = TEXT_NOT_IN_VOCABULARY
            if reason is not None:
                skipped[reason] += 1
                first_skip.setdefault(reason, where)
    num_characters = sum(len(sentence) for sentence in sentences)
    counts = ", ".join(f"{reason} {count} (first at {first_skip[reason]})" for reason, count in sorted(skipped.items()))
    (logging.warning if skipped else logging.info)(
        "LM text: %d lines from %d file(s), kept %d sentences of %d labels; skipped %s; normalization %s",
        num_lines,
        len(paths),
        len(sentences),
        num_characters,
        counts or "none",
        normalization.summary(most_common=5),
    )
    return LMText(sentences, skipped, num_lines, num_characters, normalization)


def vocabulary_mismatch_message(lm_vocab: Vocabulary, asr_vocab: Vocabulary) -> str | None:
    """Why a language model cannot score a recognizer's labels, or None when their vocabularies are equal.

    Equal means the same tokens with the same ids. The message names both vocabularies (sizes, the tokens
    only one of them has, or the first id they disagree on), for callers to refuse the pair with.
    """
    if lm_vocab == asr_vocab:
        return None
    lm_tokens, asr_tokens = list(lm_vocab.tokens), list(asr_vocab.tokens)
    lm_set, asr_set = set(lm_tokens), set(asr_tokens)
    only_lm = [t for t in lm_tokens if t not in asr_set]
    only_asr = [t for t in asr_tokens if t not in lm_set]
    parts = []
    if only_lm:
        parts.append(f"only the language model has {_tokens(only_lm)}")
    if only_asr:
        parts.append(f"only the recognizer has {_tokens(only_asr)}")
    if not parts:
        index = next(i for i, (a, b) in enumerate(zip(lm_tokens, asr_tokens)) if a != b)
        parts.append(
            f"same tokens in another order: id {index} is {lm_tokens[index]!r} for the language model and "
            f"{asr_tokens[index]!r} for the recognizer"
        )
    return (
        f"the language model's vocabulary ({lm_vocab.size} tokens: {_tokens(lm_tokens)}) differs from the "
        f"recognizer's ({asr_vocab.size} tokens: {_tokens(asr_tokens)}): {'; '.join(parts)}. "
        "Train the language model with the recognizer's vocabulary."
    )


def _tokens(tokens: Sequence[str]) -> str:
    return "".join(t if len(t) == 1 and t != " " else f"[{t if t != ' ' else 'space'}]" for t in tokens)


def _resolve(path: str) -> str:
    """The file to read for a source; raises as `read_lm_text` documents."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"language model text {path!r} does not exist")
    if os.path.isdir(path):
        manifest = os.path.join(path, MANIFEST_NAME)
        if not os.path.isfile(manifest):
            raise ValueError(f"{path!r} is a folder without {MANIFEST_NAME}; give a .txt, .gz or .jsonl file")
        return manifest
    if not _kind(path):
        raise ValueError(f"{path!r}: expected a .txt, .gz (gzipped text or manifest) or .jsonl (manifest) file")
    return path


def _kind(path: str) -> str | None:
    name = path.lower()
    name = name[: -len(".gz")] if name.endswith(".gz") else name
    if name.endswith(".jsonl"):
        return "manifest"
    if name.endswith(".txt") or path.lower().endswith(".gz"):
        return "text"
    return None


def _texts(path: str) -> Iterator[tuple[str, str, str | None]]:
    """(where, text, skip reason or None) per line of a file: the line itself, or a manifest entry's text."""
    manifest = _kind(path) == "manifest"
    for line_number, raw in enumerate(_raw_lines(path), start=1):
        where = f"{os.path.basename(path)}:{line_number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield where, "", NOT_UTF8
            continue
        if line_number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        if not manifest or not line.strip():
            yield where, line, None
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            yield where, "", BAD_MANIFEST_LINE
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            yield where, "", BAD_MANIFEST_LINE
            continue
        yield where, entry["text"], None


def _raw_lines(path: str) -> Iterator[bytes]:
    """The lines of a file (gunzipped if it ends in .gz) as bytes, without decoding them."""
    if not path.lower().endswith(".gz"):
        with open(path, "rb") as handle:
            yield from handle
        return
    try:
        with gzip.open(path, "rb") as handle:
            yield from handle
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path!r} is not a valid gzip file: {error}") from error
