import itertools

import hypothesis.strategies as st
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings

from tf_jointctc.decoding import ctc_prefix_score as cps
from tf_jointctc.decoding.scorers import IMPOSSIBLE, CTCPrefixScorer

BLANK = 0


def collapse(path):
    return tuple(k for k, _ in itertools.groupby(path) if k != BLANK)


def brute_force(log_probs, length, prefix, complete):
    """Sum over all CTC paths of `length` frames whose collapse starts with (or, if complete, equals) prefix."""
    probs = np.exp(log_probs[:length].astype(np.float64))
    total = 0.0
    for path in itertools.product(range(probs.shape[1]), repeat=length):
        labels = collapse(path)
        match = labels == tuple(prefix) if complete else labels[: len(prefix)] == tuple(prefix)
        if match:
            total += np.prod(probs[np.arange(length), path])
    return total


def random_log_probs(rng, n, frames, vocab, scale=1.5):
    logits = rng.normal(size=(n, frames, vocab)) * scale
    return tf.nn.log_softmax(tf.constant(logits, tf.float32)).numpy()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_prefix_and_full_sequence_probabilities_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    vocab, eos, max_frames = 3, 3, 5  # blank 0, labels 1 and 2; eos lies outside the CTC vocabulary
    n = 2
    lengths = rng.integers(1, max_frames + 1, size=n).astype(np.int32)
    log_probs = random_log_probs(rng, n, max_frames, vocab)
    # Frames past each length hold garbage that must not matter.
    for i in range(n):
        log_probs[i, lengths[i] :] = rng.normal(size=(max_frames - lengths[i], vocab)) * 50
    depth = int(rng.integers(0, 5))  # up to longer than the shortest utterances allow
    prefixes = rng.integers(1, vocab, size=(n, depth)).astype(np.int32)
    candidates = np.tile(np.array([[1, 2, BLANK, eos]], np.int32), (n, 1))

    state = cps.initial_state(log_probs, lengths)
    for k in range(depth + 1):
        log_psi = cps.extend(log_probs, lengths, state, candidates, blank_id=BLANK, eos_id=eos)
        psi = np.exp(log_psi.numpy().astype(np.float64))
        for i in range(n):
            prefix = list(prefixes[i, :k])
            for j, c in enumerate(candidates[i]):
                if c == BLANK:
                    assert log_psi.numpy()[i, j] <= IMPOSSIBLE
                    continue
                if c == eos:
                    expected = brute_force(log_probs[i], lengths[i], prefix, complete=True)
                else:
                    expected = brute_force(log_probs[i], lengths[i], [*prefix, c], complete=False)
                np.testing.assert_allclose(psi[i, j], expected, rtol=2e-4, atol=1e-7, err_msg=f"{prefix}+{c}")
        if k == depth:
            break
        slots = prefixes[:, k] - 1  # label c sits in column c - 1
        state = cps.select(log_probs, state, log_psi, tf.range(n), slots, prefixes[:, k])
        np.testing.assert_allclose(state.log_psi.numpy(), log_psi.numpy()[np.arange(n), slots], rtol=1e-6)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_eos_score_equals_ctc_loss_on_longer_utterances(seed):
    rng = np.random.default_rng(seed)
    vocab, frames, n = 6, 30, 3
    eos = vocab - 1  # like the model: the CTC head has an (unused) eos column
    lengths = np.array([30, 22, 13], np.int32)
    log_probs = random_log_probs(rng, n, frames, vocab, scale=3.0)
    labels = rng.integers(1, eos, size=(n, 6)).astype(np.int32)
    labels[:, 2] = labels[:, 1]  # a repeat needs a blank between the two labels
    scorer = CTCPrefixScorer(log_probs, lengths, blank_id=BLANK, eos_id=eos)
    state = scorer.init_state(beam=1)
    total = np.zeros(n)
    for k in range(labels.shape[1]):
        candidates = np.stack([labels[:, k], np.full(n, eos)], axis=1)
        scores, new_state = scorer.score(labels[:, k], state, candidates)
        total += scores.numpy()[:, 0]
        state = scorer.select(new_state, tf.range(n), labels[:, k], tf.zeros(n, tf.int32))
    scores, _ = scorer.score(labels[:, -1], state, np.full((n, 1), eos, np.int32))
    total += scores.numpy()[:, 0]
    loss = tf.nn.ctc_loss(
        labels=tf.constant(labels),
        logits=tf.constant(log_probs),
        label_length=tf.fill([n], labels.shape[1]),
        logit_length=tf.constant(lengths),
        logits_time_major=False,
        blank_index=BLANK,
    ).numpy()
    np.testing.assert_allclose(total, -loss, rtol=1e-4, atol=1e-3)


def test_impossible_prefix_is_log_zero_and_padding_is_ignored():
    rng = np.random.default_rng(3)
    log_probs = random_log_probs(rng, 1, 4, 3)
    # Three labels "1 1 1" need 5 frames; only 4 exist.
    state = cps.initial_state(log_probs, [4])
    for _ in range(2):
        log_psi = cps.extend(log_probs, [4], state, [[1]], eos_id=3)
        state = cps.select(log_probs, state, log_psi, [0], [0], [1])
    assert state.log_psi.numpy()[0] > IMPOSSIBLE
    log_psi = cps.extend(log_probs, [4], state, [[1, 2]], eos_id=3)
    assert log_psi.numpy()[0, 0] <= IMPOSSIBLE
    assert log_psi.numpy()[0, 1] > IMPOSSIBLE

    padded = np.concatenate([log_probs, np.full((1, 3, 3), 5.0, np.float32)], axis=1)
    a = cps.extend(log_probs, [4], cps.initial_state(log_probs, [4]), [[1, 2, 3]], eos_id=3)
    b = cps.extend(padded, [4], cps.initial_state(padded, [4]), [[1, 2, 3]], eos_id=3)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_single_frame_utterance():
    log_probs = np.log(np.array([[[0.5, 0.3, 0.2]]], np.float32))
    state = cps.initial_state(log_probs, [1])
    log_psi = cps.extend(log_probs, [1], state, [[1, 2, 3]], eos_id=3)
    np.testing.assert_allclose(np.exp(log_psi.numpy()), [[0.3, 0.2, 0.5]], rtol=1e-5)


def frame_by_frame(phi_prev, x_c, x_blank, first_scanned):
    """The recursion of the module docstring one frame after another, in float64: [T, S] r^n, r^b."""
    phi_prev, x_c, x_blank = (np.float64(a) for a in (phi_prev, x_c, x_blank))
    r_n = np.full(x_c.shape, -np.inf)
    r_b = np.full(x_c.shape, -np.inf)
    n_prev = b_prev = np.full(x_c.shape[1], -np.inf)
    for t in range(first_scanned, len(x_c)):
        r_n[t] = np.logaddexp(n_prev, phi_prev[t]) + x_c[t]
        r_b[t] = np.logaddexp(n_prev, b_prev) + x_blank[t]
        n_prev, b_prev = r_n[t], r_b[t]
    return np.maximum(r_n, cps.LOG_ZERO), np.maximum(r_b, cps.LOG_ZERO)


@pytest.mark.parametrize("frames_per_block,blocks_per_iteration", [(32, 4), (1, 1), (3, 2)])
@pytest.mark.parametrize("frames,first_scanned", [(1, 0), (5, 0), (8, 3), (31, 30), (75, 40), (129, 0), (300, 17)])
def test_blocks_give_the_frame_by_frame_values(monkeypatch, frames_per_block, blocks_per_iteration, frames,
                                               first_scanned):
    """`forward_variables` runs the recursion in blocks (the last ones padded), whatever their size: the values of
    the recursion run one frame after another in float64, to float32 rounding, at every frame, including phi of
    log 0 (a parent that is not complete yet) and log 0 before the first scanned frame."""
    monkeypatch.setattr(cps, "FRAMES_PER_BLOCK", frames_per_block)
    monkeypatch.setattr(cps, "BLOCKS_PER_ITERATION", blocks_per_iteration)
    rng = np.random.default_rng(frames)
    log_probs = random_log_probs(rng, 1, frames, 4, scale=3.0)[0]
    x_c, x_blank = np.stack([log_probs[:, 1], log_probs[:, 2]], 1), np.stack([log_probs[:, 0]] * 2, 1)
    phi_prev = np.cumsum(np.log(rng.uniform(0.3, 1.0, size=(frames, 2))), axis=0).astype(np.float32)
    phi_prev[: first_scanned + frames // 3, 1] = cps.LOG_ZERO
    phi_prev[:first_scanned] = cps.LOG_ZERO
    got = cps.forward_variables(phi_prev, x_c, x_blank, tf.constant(first_scanned))
    for value, want in zip(got, frame_by_frame(phi_prev, x_c, x_blank, first_scanned)):
        assert value.shape == (frames, 2)
        np.testing.assert_allclose(value.numpy(), want, rtol=2e-6, atol=0)
    assert (got[0].numpy()[first_scanned:, 0] > cps.LOG_ZERO).all()  # every scanned frame was computed


def test_select_keeps_the_values_of_the_recursion_over_every_candidate():
    """`select` runs the recursion for the kept extensions only: what the recursion run for all N x C
    extensions (`forward_variables` on every column) gives in the kept columns, for parents other than the
    hypothesis itself, repeats and the empty prefix (to float32 rounding: Eigen's vectorized and scalar `exp`
    may differ in the last bit between tensors of different widths)."""
    rng = np.random.default_rng(5)
    n, frames, vocab, num_candidates = 4, 40, 7, 5
    log_probs = random_log_probs(rng, n, frames, vocab, scale=3.0)
    log_probs[2:] = log_probs[:2]  # two utterances, two hypotheses each (the beam search's layout)
    lengths = np.array([40, 40, 33, 33], np.int32)
    state = cps.initial_state(log_probs, lengths)
    for step in range(3):
        candidates = np.stack([rng.permutation(np.arange(1, vocab))[:num_candidates] for _ in range(n)])
        candidates[:, 0] = np.maximum(state.last.numpy(), 1)  # a repeat where the parent has a last label
        log_psi = cps.extend(log_probs, lengths, state, candidates)
        parents = np.array([1, 1, 3, 2], np.int32)  # hypothesis i's parent is in its utterance
        slots = rng.integers(0, num_candidates, size=n).astype(np.int32)
        tokens = candidates[parents, slots]
        kept = cps.select(log_probs, state, log_psi, parents, slots, tokens)

        rows = np.repeat(np.arange(n), num_candidates)
        phi_all, x_all, x_blank_all = [], [], []
        for row, c in zip(rows, candidates.reshape(-1)):
            r_n, r_b = state.r_n.numpy()[:, row], state.r_b.numpy()[:, row]
            phi = r_b if c == state.last.numpy()[row] else cps.logaddexp(r_n, r_b).numpy()
            start = 0.0 if state.last.numpy()[row] < 0 else cps.LOG_ZERO
            phi_all.append(np.concatenate([[start], phi[:-1]]).astype(np.float32))
            x_all.append(log_probs[row, :, c])
            x_blank_all.append(log_probs[row, :, BLANK])
        first = max(step, 1) - 1
        everything = cps.forward_variables(
            tf.constant(np.stack(phi_all, 1)), tf.constant(np.stack(x_all, 1)), tf.constant(np.stack(x_blank_all, 1)),
            tf.constant(first),
        )
        columns = parents * num_candidates + slots
        np.testing.assert_allclose(kept.r_n.numpy(), everything[0].numpy()[:, columns], rtol=1e-6, atol=0)
        np.testing.assert_allclose(kept.r_b.numpy(), everything[1].numpy()[:, columns], rtol=1e-6, atol=0)
        assert (kept.r_n.numpy() > cps.LOG_ZERO).any()  # something was computed, not only log 0
        np.testing.assert_array_equal(kept.log_psi.numpy(), log_psi.numpy().reshape(-1)[columns])
        np.testing.assert_array_equal(kept.length.numpy(), state.length.numpy()[parents] + 1)
        state = kept


def test_confident_posteriors_stay_finite_clamped_and_exact():
    """Log posteriors of -2000 (a very confident model) drive many forward variables below log 0: every result
    stays finite and at or above LOG_ZERO, and the prefix scores match brute force."""
    rng = np.random.default_rng(11)
    frames, vocab, eos = 5, 3, 3
    best = rng.integers(0, vocab, size=frames)
    log_probs = np.full((1, frames, vocab), -2000.0, np.float32)
    log_probs[0, np.arange(frames), best] = 0.0
    log_probs[0, 1] = np.log([0.5, 0.3, 0.2])  # one uncertain frame: more than one path survives
    state = cps.initial_state(log_probs, [frames])
    candidates = np.array([[1, 2, BLANK, eos]], np.int32)
    for prefix in ([], [int(c) for c in collapse(best)][:1]):
        if prefix:
            log_psi = cps.extend(log_probs, [frames], state, [[prefix[0]]], eos_id=eos)
            state = cps.select(log_probs, state, log_psi, [0], [0], [prefix[0]])
        log_psi = cps.extend(log_probs, [frames], state, candidates, eos_id=eos)
        kept = cps.select(log_probs, state, log_psi, [0], [0], [int(candidates[0, 0])])
        for values in (log_psi, kept.r_n, kept.r_b):
            assert np.all(np.isfinite(values.numpy())) and values.numpy().min() >= cps.LOG_ZERO
        for j, c in enumerate(candidates[0]):
            if c == BLANK:
                continue
            complete = c == eos
            expected = brute_force(log_probs[0], frames, prefix if complete else [*prefix, c], complete=complete)
            if expected == 0.0:  # below float64's range: the log score must be too (it is e.g. -6000)
                assert log_psi.numpy()[0, j] < np.log(np.finfo(np.float64).tiny)
            else:
                np.testing.assert_allclose(np.exp(np.float64(log_psi.numpy()[0, j])), expected, rtol=1e-4)


def test_scaled_posteriors_scale_each_label_by_its_largest_valid_posterior():
    rng = np.random.default_rng(2)
    log_probs = random_log_probs(rng, 2, 6, 4)
    log_probs[1, 4:] = 0.0  # padding larger than any valid log posterior: ignored
    scaled, label_max = cps.scaled_posteriors(log_probs, np.array([6, 4], np.int32))
    np.testing.assert_allclose(label_max.numpy(), [log_probs[0].max(0), log_probs[1, :4].max(0)], rtol=1e-6)
    np.testing.assert_allclose(scaled.numpy()[1, :4], np.exp(log_probs[1, :4] - log_probs[1, :4].max(0)), rtol=1e-6)
    assert (scaled.numpy()[1, 4:] == 0).all() and np.isclose(scaled.numpy().max(1), 1).all()


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1.5, 12.0, 80.0]))
def test_matmul_prefix_scores_are_extends_or_flagged_upper_bounds(seed, scale):
    """`extend_by_matmul` gives `extend`'s prefix scores (to float32 rounding) wherever it does not flag them, and
    an upper bound where it does, for two utterances of different lengths with three hypotheses each, new labels,
    repeats, the blank and eos, over several beam steps."""
    rng = np.random.default_rng(seed)
    utterances, beam, frames, vocab, num_candidates = 2, 3, 30, 6, 5
    eos = vocab
    log_probs = random_log_probs(rng, utterances, frames, vocab, scale=scale)
    utterance_lengths = np.array([frames, 23], np.int32)
    per_hypothesis, lengths = np.repeat(log_probs, beam, 0), np.repeat(utterance_lengths, beam)
    scaled, label_max = cps.scaled_posteriors(log_probs, utterance_lengths)
    state = cps.initial_state(per_hypothesis, lengths)
    for _ in range(5):
        candidates = np.stack([rng.permutation(vocab + 1)[:num_candidates] for _ in range(utterances * beam)])
        candidates[:, 0] = np.maximum(state.last.numpy(), 1)  # a repeat where the parent has a last label
        exact = cps.extend(per_hypothesis, lengths, state, candidates, eos_id=eos).numpy()
        bound, flagged = (x.numpy() for x in cps.extend_by_matmul(
            scaled, label_max, lengths, state, candidates, eos_id=eos))
        np.testing.assert_allclose(bound[~flagged], exact[~flagged], rtol=1e-6, atol=2e-5)
        assert (bound[flagged] >= exact[flagged] - 1e-3).all()
        assert not flagged[(candidates == eos) | (candidates == BLANK)].any()
        parents = np.array([0, 0, 1, 4, 3, 3], np.int32)  # each hypothesis' parent is in its utterance
        slots = rng.integers(1, num_candidates, size=utterances * beam).astype(np.int32)
        tokens = np.where(np.isin(candidates[parents, slots], [eos, BLANK]), 1, candidates[parents, slots])
        state = cps.select(per_hypothesis, state, tf.constant(exact), parents, slots, tokens.astype(np.int32))


def test_matmul_prefix_scores_flag_what_float32_cannot_scale():
    """Posteriors spread over hundreds of nats (scale 80) leave some prefix scores more than 60 nats below the
    matmul's scale: they are flagged, and still upper bounds."""
    rng = np.random.default_rng(4)
    log_probs = random_log_probs(rng, 1, 30, 6, scale=80.0)
    lengths = np.array([30], np.int32)
    state = cps.initial_state(log_probs, lengths)
    log_psi = cps.extend(log_probs, lengths, state, [[2]])
    state = cps.select(log_probs, state, log_psi, [0], [0], [2])
    candidates = np.array([[1, 2, 3, 4, 5]], np.int32)
    exact = cps.extend(log_probs, lengths, state, candidates).numpy()
    bound, flagged = (x.numpy() for x in cps.extend_by_matmul(*cps.scaled_posteriors(log_probs, lengths), lengths,
                                                               state, candidates))
    assert flagged.any()
    assert (bound >= exact - 1e-3).all()
