import itertools

import hypothesis.strategies as st
import numpy as np
import tensorflow as tf
from hypothesis import given, settings

from tf_jointctc.decoding import ctc_greedy_decode


def reference_greedy(logits, length, blank=0):
    best = np.argmax(logits[:length], axis=-1)
    return [int(k) for k, _ in itertools.groupby(best) if k != blank]


def test_collapses_repeats_and_drops_blanks():
    # Frames' best tokens: 1 1 0 1 2 2 0 -> "1 1 2" (the blank separates the two 1s).
    best = [1, 1, 0, 1, 2, 2, 0]
    logits = tf.one_hot([best], depth=3) * 10.0
    token_ids, num_tokens, score = ctc_greedy_decode(logits, tf.constant([7]))
    assert num_tokens.numpy().tolist() == [3]
    assert token_ids.numpy()[0].tolist() == [1, 1, 2, -1, -1, -1, -1]
    assert score.numpy()[0] < 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_batch_matches_per_utterance_reference(seed):
    rng = np.random.default_rng(seed)
    batch, frames, vocab = 3, 9, 4
    logits = rng.normal(size=(batch, frames, vocab)).astype(np.float32)
    lengths = rng.integers(0, frames + 1, size=batch).astype(np.int32)
    token_ids, num_tokens, _ = ctc_greedy_decode(tf.constant(logits), tf.constant(lengths))
    for b in range(batch):
        expected = reference_greedy(logits[b], lengths[b])
        assert num_tokens.numpy()[b] == len(expected)
        assert token_ids.numpy()[b, : len(expected)].tolist() == expected
        assert (token_ids.numpy()[b, len(expected):] == -1).all()


def test_padding_frames_do_not_change_the_result():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 6, 5)).astype(np.float32)
    padded = np.concatenate([logits, rng.normal(size=(1, 4, 5)).astype(np.float32) * 50], axis=1)
    alone = ctc_greedy_decode(tf.constant(logits), tf.constant([6]))
    in_pad = ctc_greedy_decode(tf.constant(padded), tf.constant([6]))
    n = int(alone[1][0])
    assert int(in_pad[1][0]) == n
    assert alone[0].numpy()[0, :n].tolist() == in_pad[0].numpy()[0, :n].tolist()
    np.testing.assert_allclose(alone[2].numpy(), in_pad[2].numpy(), rtol=1e-6)
