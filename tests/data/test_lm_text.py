"""Reading the language model's text (real files in tmp_path) and the committed demo text."""

from __future__ import annotations

import gzip
import json
import logging
import os

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from tf_jointctc.data import lm_text
from tf_jointctc.data.lm_text import (
    BAD_MANIFEST_LINE,
    DEMO_LM_TEXT,
    EMPTY_LINE,
    NO_VOCABULARY_CHARACTER,
    NOT_UTF8,
    TEXT_NOT_IN_VOCABULARY,
    read_lm_text,
    vocabulary_mismatch_message,
)
from tf_jointctc.data.synth import extract_sentences
from tf_jointctc.data.synth import sentences as sentences_lib
from tf_jointctc.text import NOISE, PAPER_CHARACTERS, Vocabulary, normalize

VOCAB = Vocabulary()

# Lines that are kept, with their normalized text.
GOOD = [
    ("The cat sat.", "the cat sat."),
    ("  Mr. Darcy\u2019s  friend ", "mr. darcy's friend"),
    ("[noise] ok", f"{NOISE} ok"),
]
BAD_UTF8 = "caf\u00e9 au lait".encode("latin-1")  # a lone 0xe9 byte: not UTF-8


def _write(path, lines: list[str | bytes], compress: bool = False) -> str:
    data = b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines)
    with open(path, "wb") as handle:
        handle.write(gzip.compress(data) if compress else data)
    return os.fspath(path)


def _decoded(result: lm_text.LMText) -> list[str]:
    return [VOCAB.decode(sentence) for sentence in result.sentences]


def _text_lines() -> list[str | bytes]:
    """Good lines with every plain-text skip reason between them: 3 kept, 2 empty, 1 no-vocabulary, 1 not UTF-8."""
    return [GOOD[0][0], "", "   \t", GOOD[1][0], "1234 !!! \u4e2d\u6587", BAD_UTF8, GOOD[2][0]]


TEXT_SKIPS = {EMPTY_LINE: 2, NO_VOCABULARY_CHARACTER: 1, NOT_UTF8: 1}


@pytest.mark.parametrize("name", ["lines.txt", "lines.txt.gz", "lines.gz"])
def test_plain_and_gzipped_text_each_skip_reason_counted(tmp_path, name):
    path = _write(tmp_path / name, _text_lines(), compress=name.endswith(".gz"))
    result = read_lm_text([path], VOCAB)
    assert _decoded(result) == [expected for _, expected in GOOD]
    assert result.sentences[0] == VOCAB.encode("the cat sat.")
    assert dict(result.skipped) == TEXT_SKIPS
    assert result.num_lines == 7 == len(result.sentences) + sum(result.skipped.values())
    assert result.num_characters == sum(len(expected) - 6 * expected.count(NOISE) for _, expected in GOOD)
    assert result.num_characters == sum(len(s) for s in result.sentences)


def test_manifest_texts_and_bad_lines(tmp_path):
    lines = [
        json.dumps({"id": "a", "audio": "a.wav", "text": GOOD[0][0], "duration": 1.0}),
        "not json {",
        json.dumps(["a", "list"]),
        json.dumps({"id": "b", "audio": "b.wav"}),  # no text
        json.dumps({"id": "c", "text": 42}),  # text not a string
        json.dumps({"text": GOOD[1][0]}),  # id and audio are not needed
        "",
        json.dumps({"id": "d", "text": "  "}),  # empty text
        json.dumps({"id": "e", "text": "123 456"}),  # no in-vocabulary character
        BAD_UTF8,
        json.dumps({"id": "f", "audio": "f.wav", "text": GOOD[2][0]}),
    ]
    path = _write(tmp_path / "manifest.jsonl", lines)
    result = read_lm_text([path], VOCAB)
    assert _decoded(result) == [expected for _, expected in GOOD]
    assert dict(result.skipped) == {BAD_MANIFEST_LINE: 4, EMPTY_LINE: 2, NO_VOCABULARY_CHARACTER: 1, NOT_UTF8: 1}
    assert result.num_lines == len(lines)
    # A gzipped manifest and a folder holding manifest.jsonl are read the same way.
    gzipped = _write(tmp_path / "m.jsonl.gz", lines, compress=True)
    for source in (gzipped, os.fspath(tmp_path)):
        again = read_lm_text([source], VOCAB)
        assert again.sentences == result.sentences and again.skipped == result.skipped


def test_sources_are_read_in_order_and_counts_summed(tmp_path, caplog):
    first = _write(tmp_path / "a.txt", _text_lines())
    second = _write(tmp_path / "b.txt.gz", ["second file", "", BAD_UTF8], compress=True)
    third = _write(tmp_path / "c.jsonl", [json.dumps({"text": "third"}), "{bad"])
    with caplog.at_level(logging.INFO):
        result = read_lm_text([first, second, third], VOCAB)
    assert _decoded(result) == [expected for _, expected in GOOD] + ["second file", "third"]
    assert dict(result.skipped) == {EMPTY_LINE: 3, NO_VOCABULARY_CHARACTER: 1, NOT_UTF8: 2, BAD_MANIFEST_LINE: 1}
    assert result.num_lines == 12
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("LM text:")]
    assert len(summary) == 1
    assert "not_utf8 2 (first at a.txt:6)" in summary[0] and "bad_manifest_line 1 (first at c.jsonl:2)" in summary[0]


def test_windows_line_ends_and_byte_order_mark(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes("\ufeffFirst line\r\nsecond\r\n\r\n".encode())
    result = read_lm_text([os.fspath(path)], VOCAB)
    assert _decoded(result) == ["first line", "second"]
    assert dict(result.skipped) == {EMPTY_LINE: 1}


def test_empty_file_gives_no_sentences(tmp_path):
    result = read_lm_text([_write(tmp_path / "empty.txt", [])], VOCAB)
    assert result.sentences == [] and result.num_lines == 0 and result.num_characters == 0 and not result.skipped


def test_vocabulary_narrower_than_normalize_skips_the_line(tmp_path):
    no_period = Vocabulary([c for c in PAPER_CHARACTERS if c != "."])
    result = read_lm_text([_write(tmp_path / "a.txt", ["mr. smith", "mister smith"])], no_period)
    assert [no_period.decode(s) for s in result.sentences] == ["mister smith"]
    assert dict(result.skipped) == {TEXT_NOT_IN_VOCABULARY: 1}


def test_missing_file_raises_with_its_path_before_reading_anything(tmp_path):
    good = _write(tmp_path / "good.txt", ["hello"])
    missing = os.fspath(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_lm_text([good, missing], VOCAB)


def test_unknown_extension_folder_without_manifest_and_broken_gzip_raise(tmp_path):
    kaldi_text = _write(tmp_path / "text", ["utt1 hello"])
    with pytest.raises(ValueError, match="expected a .txt"):
        read_lm_text([kaldi_text], VOCAB)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="manifest.jsonl"):
        read_lm_text([os.fspath(tmp_path / "folder")], VOCAB)
    whole = gzip.compress(("a fairly long line of text\n" * 2000).encode())
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="broken.txt.gz"):
        read_lm_text([os.fspath(broken)], VOCAB)
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(b"plain text\n")
    with pytest.raises(ValueError, match="plain.gz"):
        read_lm_text([os.fspath(not_gzip)], VOCAB)


def test_a_single_path_is_accepted(tmp_path):
    path = _write(tmp_path / "a.txt", ["one", "two"])
    assert read_lm_text(path, VOCAB).sentences == read_lm_text([path], VOCAB).sentences


_IN_VOCAB = st.lists(
    st.one_of(st.text(alphabet="abcdefghijklmnopqrstuvwxyz'.-", min_size=1, max_size=8), st.just(NOISE)),
    min_size=1,
    max_size=8,
).map(" ".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_IN_VOCAB, min_size=0, max_size=20), compress=st.booleans())
def test_in_vocabulary_lines_round_trip(tmp_path, lines, compress):
    path = _write(tmp_path / ("r.txt.gz" if compress else "r.txt"), lines, compress=compress)
    result = read_lm_text([path], VOCAB)
    assert _decoded(result) == lines
    assert result.sentences == [VOCAB.encode(line) for line in lines]
    assert not result.skipped and result.num_lines == len(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Lone surrogates (category Cs) are left out: no UTF-8 file can hold them (bad bytes are BAD_UTF8's case).
@given(lines=st.lists(st.text(st.characters(blacklist_characters="\n\r\ufeff", blacklist_categories=("Cs",)),
                              max_size=30), max_size=15))
def test_any_text_is_normalized_then_encoded_or_counted(tmp_path, lines):
    path = _write(tmp_path / "any.txt", lines)
    result = read_lm_text([path], VOCAB)
    kept = [normalize(line) for line in lines if normalize(line)]
    assert _decoded(result) == kept
    assert result.skipped[EMPTY_LINE] == sum(1 for line in lines if not line.strip())
    assert result.skipped[NO_VOCABULARY_CHARACTER] == sum(1 for line in lines if line.strip() and not normalize(line))
    assert result.num_lines == len(lines) == len(kept) + sum(result.skipped.values())


def test_vocabulary_mismatch_message():
    assert vocabulary_mismatch_message(Vocabulary(), Vocabulary()) is None
    wider = Vocabulary([*PAPER_CHARACTERS, "!"])
    message = vocabulary_mismatch_message(Vocabulary(), wider)
    assert message is not None
    assert "language model's vocabulary (33 tokens" in message and "recognizer's (34 tokens" in message
    assert "only the recognizer has !" in message
    swapped = list(PAPER_CHARACTERS)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    message = vocabulary_mismatch_message(Vocabulary(swapped), Vocabulary())
    assert message is not None and "another order" in message and "id 2" in message


# The committed demo text.


@pytest.fixture(scope="module")
def demo_lines() -> list[str]:
    with gzip.open(DEMO_LM_TEXT, "rt", encoding="ascii") as handle:
        return handle.read().splitlines()


def _transcripts(pool: str) -> list[str]:
    return [sentences_lib.transcript(sentence) for sentence in sentences_lib.load_pool(pool)]


def test_demo_text_holds_no_held_out_sentence(demo_lines):
    held_out = {t for pool in ("dev", "test", "babble") for t in _transcripts(pool)}
    assert len(held_out) == 932 + 974 + 557
    assert not held_out & set(demo_lines)
    # Nor inside a longer line: " line " never contains " transcript " (a newline is no space).
    padded = "\n".join(f" {line} " for line in demo_lines)
    assert [t for t in sorted(held_out) if f" {t} " in padded] == []
    assert f" {demo_lines[1].split(' ', 1)[1]} " in padded  # the search finds what is there
    # Every line's pool, a function of its text, is train.
    assert {extract_sentences.pool_of(line) for line in demo_lines} == {"train"}


def test_demo_text_is_many_times_the_train_transcripts(demo_lines):
    train = _transcripts("train")
    characters = sum(map(len, demo_lines))
    train_characters = sum(map(len, train))
    # Measured: 4,427,020 characters, 5.34x the 828,558 of train.txt's transcripts (SOURCES.md).
    assert characters > 5 * train_characters
    assert len(demo_lines) > 4 * len(train)
    assert len(set(train) & set(demo_lines)) > 0.99 * len(set(train))


def test_demo_text_is_normalized_deduplicated_and_every_line_encodes(demo_lines):
    assert len(set(demo_lines)) == len(demo_lines)
    assert all(line and normalize(line) == line for line in demo_lines)
    result = read_lm_text([DEMO_LM_TEXT], VOCAB)
    assert not result.skipped
    assert result.num_lines == len(result.sentences) == len(demo_lines)
    assert all(result.sentences)
    assert result.num_characters == sum(map(len, demo_lines))
