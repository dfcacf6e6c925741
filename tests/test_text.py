import hypothesis.strategies as st
import pytest
from hypothesis import given

from tf_jointctc import text
from tf_jointctc.text import NOISE, NormalizationReport, Vocabulary, ctc_min_frames, normalize


def test_paper_vocabulary_has_32_attention_labels_plus_blank():
    vocab = Vocabulary()
    # Paper section 3.1: 26 letters, apostrophe, period, dash, space, noise, sos/eos = 32; CTC adds the blank.
    assert vocab.size == 33
    assert vocab.tokens[vocab.blank_id] == text.BLANK
    assert vocab.tokens[vocab.sos_id] == text.SOS_EOS
    assert vocab.sos_id == vocab.eos_id == 32
    assert set("abcdefghijklmnopqrstuvwxyz' .-") | {NOISE} == set(vocab.tokens[1:-1])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello  World", "hello world"),
        ("It\u2019s a \u201cquote\u201d", "it's a quote"),
        ("well\u2014then", "well-then"),
        ("Caf\u00e9 na\u00efve", "cafe naive"),
        ("[noise] the cat <NOISE>", f"{NOISE} the cat {NOISE}"),
        ("chapter 12 begins", "chapter begins"),
        ("\t  \n", ""),
        ("\u4e2d\u6587", ""),
        ("Mr. Darcy's - friend.", "mr. darcy's - friend."),
        ("A\x00b", "ab"),
    ],
)
def test_normalize_examples(raw, expected):
    assert normalize(raw) == expected


def test_normalize_counts_mapped_and_dropped_characters():
    report = NormalizationReport()
    normalize("It\u2019s 42!", report)
    assert report.mapped["\u2019"] == 1
    assert report.dropped["4"] == 1 and report.dropped["2"] == 1 and report.dropped["!"] == 1
    assert "dropped 3" in report.summary()


@given(st.text(max_size=60))
def test_normalize_is_idempotent_and_in_vocabulary(raw):
    vocab = Vocabulary()
    once = normalize(raw)
    assert normalize(once) == once
    ids = vocab.encode(once)
    assert all(1 <= i < vocab.sos_id for i in ids)
    assert vocab.decode(ids) == once


def test_encode_rejects_unnormalized_text():
    with pytest.raises(KeyError, match="normalize"):
        Vocabulary().encode("Upper")


def test_decode_skips_blank_padding_and_sos():
    vocab = Vocabulary()
    ids = [vocab.sos_id, *vocab.encode("ab"), vocab.blank_id, -1, vocab.eos_id]
    assert vocab.decode(ids) == "ab"


def test_vocabulary_json_round_trip():
    vocab = Vocabulary()
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    with pytest.raises(ValueError):
        Vocabulary.from_json('{"tokens": ["a", "b"]}')


@pytest.mark.parametrize(("ids", "frames"), [([], 0), ([1], 1), ([1, 2], 2), ([1, 1], 3), ([1, 1, 1, 2, 2], 8)])
def test_ctc_min_frames(ids, frames):
    assert ctc_min_frames(ids) == frames
