"""Batches of the character LM: every sentence once per pass, deterministic by (seed, pass), cut anywhere in
the endless sequence of passes to the same batches, and padded with sos/eos where they belong."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc.data.lm_batches import batches_per_epoch, epoch_batches, make_lm_dataset, pad_batch

SOS, EOS, PAD = 9, 9, 0


def _sentences(n: int) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [list(rng.integers(1, 9, size=rng.integers(1, 12))) for _ in range(n)]


def _rows(dataset) -> list[tuple[int, ...]]:
    """The sentences of every batch, in order (labels recovered from the targets)."""
    rows = []
    for _, targets in dataset:
        for row in targets.numpy():
            labels = list(row[: list(row).index(EOS)])
            rows.append(tuple(int(x) for x in labels))
    return rows


def test_pad_batch_puts_sos_before_and_eos_after_each_sentence():
    tokens_in, targets = pad_batch([[1, 2, 3], [4]], SOS, EOS, PAD)
    np.testing.assert_array_equal(tokens_in, [[SOS, 1, 2, 3], [SOS, 4, PAD, PAD]])
    np.testing.assert_array_equal(targets, [[1, 2, 3, EOS], [4, EOS, PAD, PAD]])
    assert tokens_in.dtype == np.int32


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), batch=st.integers(1, 20), seed=st.integers(0, 5), epoch=st.integers(0, 3))
def test_a_pass_holds_every_sentence_once_in_the_counted_batches(n, batch, seed, epoch):
    lengths = list(np.random.default_rng(n).integers(1, 50, size=n))
    batches = epoch_batches(n, lengths, batch, seed, epoch)
    assert len(batches) == batches_per_epoch(n, batch)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert all(1 <= len(b) <= batch for b in batches)
    assert [list(b) for b in epoch_batches(n, lengths, batch, seed, epoch)] == [list(b) for b in batches]


def test_passes_differ_and_batches_group_similar_lengths():
    lengths = list(range(1, 2001))
    first, second = epoch_batches(2000, lengths, 10, 1, 0), epoch_batches(2000, lengths, 10, 1, 1)
    assert [list(b) for b in first] != [list(b) for b in second]
    # Sorted within groups of 32 batches: a batch spans far fewer lengths than a random one would.
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first])
    assert spread < 200, spread  # random batches of 10 out of 1..2000 spread ~1,600


def test_the_endless_sequence_is_the_same_whatever_batch_it_starts_at():
    sentences = _sentences(23)
    kwargs = {"batch_size": 4, "sos_id": SOS, "eos_id": EOS, "pad_id": PAD, "seed": 7}
    per_pass = batches_per_epoch(23, 4)  # 6
    whole = [tuple(map(tuple, t.numpy())) for _, t in make_lm_dataset(sentences, first_batch=0,
                                                                         num_batches=3 * per_pass, **kwargs)]
    assert len(whole) == 18
    for first, count in [(0, 6), (4, 5), (6, 6), (11, 7)]:
        part = [tuple(map(tuple, t.numpy())) for _, t in make_lm_dataset(sentences, first_batch=first,
                                                                            num_batches=count, **kwargs)]
        assert part == whole[first:first + count]
    # Each pass holds every sentence once.
    for p in range(3):
        ds = make_lm_dataset(sentences, first_batch=p * per_pass, num_batches=per_pass, **kwargs)
        assert collections.Counter(_rows(ds)) == collections.Counter(tuple(s) for s in sentences)
    # num_batches=None: to the end of the pass.
    assert len(list(make_lm_dataset(sentences, first_batch=8, **kwargs))) == 4


def test_evaluation_order_is_the_sentences_in_order():
    sentences = _sentences(10)
    ds = make_lm_dataset(sentences, batch_size=3, sos_id=SOS, eos_id=EOS, pad_id=PAD, first_batch=None)
    assert _rows(ds) == [tuple(s) for s in sentences]


def test_no_sentences_is_an_error():
    with pytest.raises(ValueError, match="no sentences"):
        make_lm_dataset([], batch_size=2, sos_id=SOS, eos_id=EOS)
