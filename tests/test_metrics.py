import functools

import hypothesis.strategies as st
import pytest
from hypothesis import given

from tf_jointctc.metrics import EditCounts, char_counts, edit_counts, edit_distance, error_rates, word_counts


def brute_force_distance(a, b):
    @functools.cache
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


@pytest.mark.parametrize(
    ("ref", "hyp", "subs", "dels", "ins"),
    [
        ("kitten", "sitting", 2, 0, 1),
        ("abc", "abc", 0, 0, 0),
        ("abc", "", 0, 3, 0),
        ("", "ab", 0, 0, 2),
        ("abcd", "acd", 0, 1, 0),
        ("abcd", "xbcdy", 1, 0, 1),
    ],
)
def test_hand_worked_edit_counts(ref, hyp, subs, dels, ins):
    counts = edit_counts(ref, hyp)
    assert (counts.substitutions, counts.deletions, counts.insertions) == (subs, dels, ins)
    assert counts.reference_length == len(ref)


@given(st.text("abc", max_size=7), st.text("abc", max_size=7))
def test_edit_distance_matches_brute_force(a, b):
    counts = edit_counts(a, b)
    assert counts.errors == brute_force_distance(a, b)
    # The alignment must be consistent with both lengths.
    assert len(a) - counts.deletions + counts.insertions == len(b)


def test_word_and_char_counts_normalize_both_sides():
    # "The cat sat" vs "the bat sat down": 1 substitution + 1 insertion over 3 words.
    words = word_counts("The cat sat", "the bat sat down")
    assert (words.substitutions, words.insertions, words.reference_length) == (1, 1, 3)
    assert char_counts("It\u2019s", "it's").errors == 0


def test_corpus_error_rates_are_percent_over_total_length():
    rates = error_rates(["ab cd", "ef"], ["ab cd", "xf"])
    assert rates["cer"] == pytest.approx(100 * 1 / 7)
    assert rates["wer"] == pytest.approx(100 * 1 / 3)
    with pytest.raises(ValueError):
        error_rates(["a"], [])


def test_empty_reference_rate():
    assert EditCounts().rate() == 0.0
    assert edit_counts("", "x").rate() == 100.0
    assert edit_distance("abc", "abd") == 1
