import contextlib
import itertools
import math

import hypothesis.strategies as st
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings

from tf_jointctc.config import base_config
from tf_jointctc.decoding import (
    AttentionScorer,
    AttentionStallLimit,
    CoverageScorer,
    LengthBonus,
    RepeatLimit,
    Scorer,
    batch_beam_search,
    beam_search,
    beam_search_decode,
)
from tf_jointctc.decoding.attention_greedy import attention_greedy_decode
from tf_jointctc.decoding.scorers import IMPOSSIBLE, kept_rows
from tf_jointctc.model import build_model
from tf_jointctc.text import Vocabulary

HASH_SIZE = 97


class HashScorer(Scorer):
    """Fake full scorer with history-dependent conditional distributions: log p(. | prefix) is row
    `hash(prefix)` of a fixed random table per utterance."""

    partial = False

    def __init__(self, table):
        self.table = tf.constant(table, tf.float32)  # [B, HASH_SIZE, V]
        self.vocab = table.shape[2]

    def init_state(self, beam):
        batch = tf.shape(self.table)[0]
        self._rows = (tf.range(batch * beam) // beam) * HASH_SIZE
        self._flat = tf.reshape(self.table, [-1, self.vocab])
        return tf.zeros([batch * beam], tf.int32)

    def score(self, last_tokens, state, candidates=None):
        return tf.gather(self._flat, self._rows + state), state

    def select(self, new_state, parent_indices, token_ids, candidate_indices):
        return (tf.gather(new_state, parent_indices) * 7 + token_ids + 1) % HASH_SIZE


def hash_of(prefix):
    value = 0
    for token in prefix:
        value = (value * 7 + token + 1) % HASH_SIZE
    return value


def exhaustive(table, eos, max_length, min_length, length_penalty):
    """All (score, tokens) that the search may output for one utterance, best first."""
    tokens = [c for c in range(table.shape[1]) if c != eos]
    results = []
    for n in range(max_length):
        if n < min_length and n != max_length - 1:
            continue
        for seq in itertools.product(tokens, repeat=n):
            score = sum(table[hash_of(seq[:i]), c] for i, c in enumerate(seq)) + table[hash_of(seq), eos]
            results.append((score + length_penalty * n, list(seq)))
    return sorted(results, key=lambda r: -r[0])


def check_against(out, b, expected, nbest):
    for j in range(nbest):
        if j < len(expected):
            score, seq = expected[j]
            n = int(out["num_tokens"][b, j])
            assert n == len(seq), (j, expected[: nbest + 1], out)
            assert out["token_ids"][b, j, :n].tolist() == seq
            assert (out["token_ids"][b, j, n:] == -1).all()
            np.testing.assert_allclose(out["score"][b, j], score, rtol=1e-5, atol=1e-4)
        else:
            assert out["num_tokens"][b, j] == 0 and out["score"][b, j] == -np.inf
            assert (out["token_ids"][b, j] == -1).all()


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    vocab=st.integers(2, 4),
    max_lengths=st.lists(st.integers(1, 4), min_size=2, max_size=2),
    min_length=st.integers(0, 3),
    length_penalty=st.floats(-1.0, 1.0),
    nbest=st.integers(1, 4),
)
def test_big_beam_equals_exhaustive_search(seed, vocab, max_lengths, min_length, length_penalty, nbest):
    # A beam of V * (V-1)^(max_length-2) hypotheses never prunes anything: the search must be exhaustive.
    rng = np.random.default_rng(seed)
    eos = vocab - 1
    table = tf.nn.log_softmax(rng.normal(size=(2, HASH_SIZE, vocab)) * 2.0).numpy()
    beam = max(nbest, vocab * (vocab - 1) ** max(max(max_lengths) - 2, 0))
    scorers = [(HashScorer(table), 1.0)]
    if length_penalty:
        scorers.append((LengthBonus(vocab, eos), length_penalty))
    out = batch_beam_search(
        scorers,
        batch_size=2,
        vocab_size=vocab,
        sos_id=eos,
        eos_id=eos,
        max_lengths=max_lengths,
        min_lengths=[min_length, min_length],
        beam=beam,
        nbest=nbest,
    )
    out = {k: v.numpy() for k, v in out.items()}
    assert out["token_ids"].shape == (2, nbest, max(max_lengths))
    for b in range(2):
        expected = exhaustive(table[b], eos, max_lengths[b], min_length, length_penalty)
        check_against(out, b, expected, nbest)


def repeats_a_unit(seq, max_repeats, min_unit, max_unit):
    """Brute force: does `seq` hold max_repeats + 1 consecutive copies of some unit of min_unit to max_unit tokens?"""
    for unit in range(min_unit, max_unit + 1):
        span = (max_repeats + 1) * unit
        for start in range(len(seq) - span + 1):
            if seq[start : start + span] == seq[start : start + unit] * (max_repeats + 1):
                return True
    return False


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    vocab=st.integers(3, 4),
    max_length=st.integers(2, 6),
    max_repeats=st.integers(1, 2),
    min_unit=st.integers(1, 2),
    extra_unit=st.integers(0, 2),
    nbest=st.integers(1, 3),
)
def test_repeat_limit_equals_exhaustive_search_without_repeated_units(seed, vocab, max_length, max_repeats, min_unit,
                                                                        extra_unit, nbest):
    """A beam that never prunes, with `RepeatLimit`, returns the best hypotheses among those that hold no unit of
    min_unit to max_unit tokens more than max_repeats times in a row, scored as without the limit."""
    max_unit = min_unit + extra_unit
    rng = np.random.default_rng(seed)
    eos = vocab - 1
    table = tf.nn.log_softmax(rng.normal(size=(2, HASH_SIZE, vocab)) * 2.0).numpy()
    beam = max(nbest, vocab * (vocab - 1) ** max(max_length - 2, 0))
    limit = RepeatLimit(2, vocab, eos, max_repeats, min_unit=min_unit, max_unit=max_unit)
    out = batch_beam_search([(HashScorer(table), 1.0), (limit, 1.0)], batch_size=2, vocab_size=vocab, sos_id=eos,
                            eos_id=eos, max_lengths=[max_length, max_length], min_lengths=[0, 0], beam=beam,
                            nbest=nbest)
    out = {k: v.numpy() for k, v in out.items()}
    for b in range(2):
        expected = [(score, seq) for score, seq in exhaustive(table[b], eos, max_length, 0, 0.0)
                    if not repeats_a_unit(seq, max_repeats, min_unit, max_unit)]
        check_against(out, b, expected, nbest)


def forbidden_after(limit, vocab, text):
    """The tokens `limit` forbids after `text` (one hypothesis), checking that it forbade nothing on the way."""
    state = limit.init_state(1)
    scores, state = limit.score(tf.constant([vocab.sos_id]), state)
    for token in vocab.encode(text):
        assert float(tf.reduce_min(scores)) == 0.0, text
        scores, state = limit.score(tf.constant([token]), state)
    return np.flatnonzero(scores.numpy()[0] <= -1e9).tolist()


def test_repeat_limit_forbids_the_copy_that_would_exceed_it():
    """'the the' may go on as anything but a third 'the' (max_repeats 2): the scorer forbids exactly the token that
    completes the third copy; a unit said twice ('had had') and a run of one token ('...') stay allowed."""
    vocab = Vocabulary()
    limit = RepeatLimit(1, vocab.size, vocab.sos_id, max_repeats=2)
    assert forbidden_after(limit, vocab, " the the th") == vocab.encode("e")
    assert forbidden_after(limit, vocab, "so of the of the of th") == vocab.encode("e")
    assert forbidden_after(limit, vocab, "he had had") == []
    assert forbidden_after(limit, vocab, "a day...") == []
    with pytest.raises(ValueError, match="max_repeats"):
        RepeatLimit(1, vocab.size, vocab.sos_id, max_repeats=0)
    with pytest.raises(ValueError, match="min_unit"):
        RepeatLimit(1, vocab.size, vocab.sos_id, max_repeats=2, min_unit=3, max_unit=2)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), penalties=st.lists(st.floats(-2.0, 2.0), min_size=2, max_size=2))
def test_larger_length_penalty_never_shortens_the_best_hypothesis(seed, penalties):
    rng = np.random.default_rng(seed)
    vocab, max_length = 3, 5
    table = tf.nn.log_softmax(rng.normal(size=(1, HASH_SIZE, vocab)) * 2.0).numpy()
    lengths = []
    for penalty in sorted(penalties):
        out = batch_beam_search(
            [(HashScorer(table), 1.0), (LengthBonus(vocab, 2), penalty)],
            batch_size=1,
            vocab_size=vocab,
            sos_id=2,
            eos_id=2,
            max_lengths=[max_length],
            min_lengths=[0],
            beam=vocab * (vocab - 1) ** (max_length - 2),
        )
        lengths.append(int(out["num_tokens"][0, 0]))
    assert lengths[0] <= lengths[1]


class UnboundedLengthBonus(LengthBonus):
    bounds = (0.0, None)  # no known bound: the search cannot stop early


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), penalty=st.floats(0.0, 2.0), beam=st.integers(1, 3))
def test_early_stop_is_exact(seed, penalty, beam):
    # Small beams: utterances fill their finished set long before the maximum length, so the stop fires.
    rng = np.random.default_rng(seed)
    vocab = 4
    table = tf.nn.log_softmax(rng.normal(size=(2, HASH_SIZE, vocab)) * 3.0).numpy()
    outs = []
    for bonus in (LengthBonus(vocab, 3), UnboundedLengthBonus(vocab, 3)):
        out = batch_beam_search(
            [(HashScorer(table), 1.0), (bonus, penalty)],
            batch_size=2,
            vocab_size=vocab,
            sos_id=3,
            eos_id=3,
            max_lengths=[8, 5],
            min_lengths=[0, 0],
            beam=beam,
            nbest=beam,
        )
        outs.append({k: v.numpy() for k, v in out.items()})
    for key in ("token_ids", "num_tokens"):
        np.testing.assert_array_equal(outs[0][key], outs[1][key])
    np.testing.assert_allclose(outs[0]["score"], outs[1]["score"], rtol=1e-6)


class LooseBoundScorer(Scorer):
    """Fake bounded partial scorer: the candidates' log-probabilities under `hash(prefix)` (as `HashScorer`),
    but unless asked for exact scores it flags every third candidate and returns its score plus `slack` (an
    upper bound, as `CTCPrefixScorer` does for candidates it cannot score exactly by its matmul)."""

    partial = True
    bounded = True

    def __init__(self, table, slack):
        self.hash_scorer = HashScorer(table)
        self.slack = slack
        self.exact_calls = 0

    def init_state(self, beam):
        return self.hash_scorer.init_state(beam)

    def score(self, last_tokens, state, candidates=None, exact=False):
        self.exact_calls += int(exact)
        scores = tf.gather(self.hash_scorer.score(last_tokens, state)[0], candidates, batch_dims=1)
        flagged = tf.equal((candidates * 31 + tf.expand_dims(state, 1) * 17) % 3, 0) & tf.constant(not exact)
        return scores + tf.where(flagged, self.slack, 0.0), (state, flagged)

    def inexact(self, new_state):
        return new_state[1]

    def select(self, new_state, parent_indices, token_ids, candidate_indices):
        return self.hash_scorer.select(new_state[0], parent_indices, token_ids, candidate_indices)


class ExactScorer(LooseBoundScorer):
    bounded = False

    def score(self, last_tokens, state, candidates=None, exact=False):
        return super().score(last_tokens, state, candidates, exact=True)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), slack=st.sampled_from([0.5, 5.0, 50.0]), beam=st.integers(1, 4))
def test_bounded_partial_scores_keep_the_hypotheses_of_exact_scoring(seed, slack, beam):
    """A bounded partial scorer's flagged bounds are rescored exactly whenever the beam would keep one: the search
    returns what it returns with exact scores throughout (and did rescore, with this much slack)."""
    rng = np.random.default_rng(seed)
    vocab, eos = 6, 5
    full_table = tf.nn.log_softmax(rng.normal(size=(2, HASH_SIZE, vocab)) * 2.0).numpy()
    partial_table = tf.nn.log_softmax(rng.normal(size=(2, HASH_SIZE, vocab)) * 2.0).numpy()
    outs = []
    for partial in (LooseBoundScorer(partial_table, slack), ExactScorer(partial_table, slack)):
        out = batch_beam_search(
            [(HashScorer(full_table), 0.6), (partial, 0.4), (LengthBonus(vocab, eos), 0.3)],
            batch_size=2, vocab_size=vocab, sos_id=eos, eos_id=eos, max_lengths=[6, 4], min_lengths=[0, 1],
            beam=beam, pre_beam=3, nbest=beam,
        )
        outs.append({k: v.numpy() for k, v in out.items()})
    for key in ("token_ids", "num_tokens"):
        np.testing.assert_array_equal(outs[0][key], outs[1][key])
    np.testing.assert_allclose(outs[0]["score"], outs[1]["score"], rtol=1e-6)
    assert outs[0]["num_tokens"].max() > 0


def test_bounded_partial_scores_rescore_only_when_a_flagged_candidate_would_be_kept():
    rng = np.random.default_rng(3)
    vocab, eos = 6, 5
    table = tf.nn.log_softmax(rng.normal(size=(1, HASH_SIZE, vocab)) * 2.0).numpy()
    calls = []
    for slack in (50.0, -1e6):  # bounds that always win the beam / never do (a flagged candidate is then hopeless)
        partial = LooseBoundScorer(table, slack)
        batch_beam_search(
            [(HashScorer(table), 0.6), (partial, 0.4)], batch_size=1, vocab_size=vocab, sos_id=eos, eos_id=eos,
            max_lengths=[5], min_lengths=[0], beam=2, pre_beam=3,
        )
        calls.append(partial.exact_calls)
    assert calls[0] > 0 and calls[1] == 0


# ---------------------------------------------------------------------------- real (tiny, random) models


def tiny_model(characters="abc", ctc_weight=0.5, seed=0):
    config = base_config()
    config.model.encoder.num_layers = 2
    config.model.encoder.units = 16
    config.model.encoder.projection_units = 16
    config.model.encoder.subsample = (1, 2)
    config.model.attention_dim = 16
    config.model.attention_filters = 4
    config.model.attention_width = 5
    config.model.decoder_units = 16
    config.model.init_scale = 0.6  # peaky random distributions: no near-ties
    config.loss.ctc_weight = ctc_weight
    keras.utils.set_random_seed(seed)
    return build_model(config, config, Vocabulary(tuple(characters)))


def encode(model, frames, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((len(frames), max(frames), 120)).astype(np.float32)
    for i, n in enumerate(frames):
        features[i, n:] = 0.0
    return model.encode(features, np.array(frames, np.int32))


def attention_log_prob(model, h, lengths, sequences, coverage_threshold=None):
    """log p_att(seq + eos | x) for every sequence, utterance 0 of h; with `coverage_threshold` also each
    sequence's coverage: frames whose attention summed over its tokens' steps (not eos') exceeds the threshold."""
    m = len(sequences)
    width = max(len(s) for s in sequences) + 1
    rows = tf.zeros([m], tf.int32)
    h1, l1 = tf.gather(h, rows), tf.gather(lengths, rows)
    h_proj, state = model.decoder_initial_state(h1, l1)
    prev = np.full(m, model.sos_id, np.int32)
    total = np.zeros(m)
    summed = np.zeros([m, h.shape[1]])
    for u in range(width):
        log_probs, state = model.decoder_step(prev, state, h1, h_proj, l1)
        target = np.array([s[u] if u < len(s) else (model.eos_id if u == len(s) else 0) for s in sequences])
        picked = log_probs.numpy()[np.arange(m), target]
        total += np.where(np.array([u <= len(s) for s in sequences]), picked, 0.0)
        summed += np.array([u < len(s) for s in sequences])[:, None] * state[-1].numpy()
        prev = target.astype(np.int32)
    if coverage_threshold is None:
        return total
    return total, (summed > coverage_threshold).sum(axis=1)


def ctc_log_prob(log_probs, labels):
    """Plain forward algorithm (log space) for one utterance: log P(labels | x)."""
    ext = [0]
    for c in labels:
        ext += [c, 0]
    alpha = np.full(len(ext), -np.inf)
    alpha[0] = log_probs[0, 0]
    if len(ext) > 1:
        alpha[1] = log_probs[0, ext[1]]
    for t in range(1, len(log_probs)):
        new = np.full(len(ext), -np.inf)
        for s, c in enumerate(ext):
            terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
            if s >= 2 and c != 0 and ext[s - 2] != c:
                terms.append(alpha[s - 2])
            new[s] = np.logaddexp.reduce(terms) + log_probs[t, c]
        alpha = new
    return np.logaddexp.reduce(alpha[-2:]) if len(ext) > 1 else alpha[-1]


@pytest.fixture(scope="module")
def small_vocab_model():
    return tiny_model("abc", ctc_weight=0.5, seed=1)


@pytest.mark.parametrize("ctc_weight,length_penalty", [(0.0, 0.0), (0.0, 0.7), (0.4, 0.0), (0.4, 0.5)])
def test_model_big_beam_equals_exhaustive_search(small_vocab_model, ctc_weight, length_penalty):
    model = small_vocab_model
    h, lengths = encode(model, [12], seed=5)  # 6 encoder frames; max length ratio 0.5 -> 3 steps (2 tokens)
    max_steps, nbest = 3, 4
    eos = model.eos_id
    out = beam_search(
        model,
        h,
        lengths,
        beam=20,
        ctc_weight=ctc_weight,
        length_penalty=length_penalty,
        max_length_ratio=0.5,
        nbest=nbest,
    )
    out = {k: v.numpy() for k, v in out.items()}
    tokens = [c for c in range(model.vocab_size) if c != eos]
    sequences = [list(s) for n in range(max_steps) for s in itertools.product(tokens, repeat=n)]
    scores = (1 - ctc_weight) * attention_log_prob(model, h, lengths, sequences)
    scores += length_penalty * np.array([len(s) for s in sequences])
    if ctc_weight:
        ctc = tf.nn.log_softmax(model.ctc_logits(h))[0, : int(lengths[0])].numpy()
        scores += ctc_weight * np.array([ctc_log_prob(ctc, s) if 0 not in s else -np.inf for s in sequences])
    expected = sorted([(s, q) for s, q in zip(scores, sequences) if np.isfinite(s)], key=lambda r: -r[0])
    check_against(out, 0, expected, nbest)


@pytest.mark.parametrize("ctc_weight,coverage_weight,threshold", [(0.0, 1.5, 0.3), (0.4, 0.6, 0.2)])
def test_model_big_beam_with_coverage_equals_exhaustive_search(small_vocab_model, ctc_weight, coverage_weight,
                                                               threshold):
    model = small_vocab_model
    h, lengths = encode(model, [12], seed=5)
    max_steps, nbest = 3, 4
    out = beam_search(model, h, lengths, beam=20, ctc_weight=ctc_weight, max_length_ratio=0.5, nbest=nbest,
                      coverage_weight=coverage_weight, coverage_threshold=threshold)
    out = {k: v.numpy() for k, v in out.items()}
    tokens = [c for c in range(model.vocab_size) if c != model.eos_id]
    sequences = [list(s) for n in range(max_steps) for s in itertools.product(tokens, repeat=n)]
    attention, coverage = attention_log_prob(model, h, lengths, sequences, coverage_threshold=threshold)
    assert len(set(coverage.tolist())) > 1  # the term separates the hypotheses
    scores = (1 - ctc_weight) * attention + coverage_weight * coverage
    if ctc_weight:
        ctc = tf.nn.log_softmax(model.ctc_logits(h))[0, : int(lengths[0])].numpy()
        scores += ctc_weight * np.array([ctc_log_prob(ctc, s) if 0 not in s else -np.inf for s in sequences])
    expected = sorted([(s, q) for s, q in zip(scores, sequences) if np.isfinite(s)], key=lambda r: -r[0])
    check_against(out, 0, expected, nbest)
    # Without the term, another best list.
    plain = beam_search(model, h, lengths, beam=20, ctc_weight=ctc_weight, max_length_ratio=0.5, nbest=nbest)
    assert not np.allclose(plain["score"].numpy(), out["score"])


class CountedCoverage(CoverageScorer):
    """Counts its steps (the search runs eagerly here: one `score` call per step)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.steps = 0

    def score(self, last_tokens, state, candidates=None):
        self.steps += 1
        return super().score(last_tokens, state, candidates)


class UnboundedCoverage(CountedCoverage):
    total_bounded = False  # bounds (0, None): the search cannot stop early


@pytest.mark.parametrize("weight,beam,length_weight", [(0.3, 3, -0.6), (0.5, 3, -0.8)])
def test_coverage_early_stop_is_exact(paper_vocab_model, weight, beam, length_weight):
    # A length penalty (< 0) makes the random model's hypotheses end, so the stop can fire.
    model = paper_vocab_model
    h, lengths = encode(model, [30, 22, 9], seed=6)
    outs, steps = [], []
    for coverage_class in (CountedCoverage, UnboundedCoverage):
        attention = AttentionScorer(model, h, lengths)
        coverage = coverage_class(attention, model.vocab_size, model.eos_id, 0.4)
        scorers = [(attention, 1.0), (coverage, weight), (LengthBonus(model.vocab_size, model.eos_id), length_weight)]
        out = batch_beam_search(
            scorers, batch_size=3, vocab_size=model.vocab_size, sos_id=model.sos_id, eos_id=model.eos_id,
            max_lengths=2 * lengths, min_lengths=tf.zeros([3], tf.int32), beam=beam, nbest=beam,
        )
        outs.append({k: v.numpy() for k, v in out.items()})
        steps.append(coverage.steps)
    assert steps[0] < steps[1] == 30  # the bounded search stopped early, the other ran to the longest maximum
    assert len(set(outs[0]["num_tokens"].ravel().tolist())) > 2
    for key in ("token_ids", "num_tokens"):
        np.testing.assert_array_equal(outs[0][key], outs[1][key])
    np.testing.assert_allclose(outs[0]["score"], outs[1]["score"], rtol=1e-5)


def test_coverage_scorer_needs_its_attention_scorer_first(small_vocab_model):
    model = small_vocab_model
    h, lengths = encode(model, [12])
    attention = AttentionScorer(model, h, lengths)
    coverage = CoverageScorer(attention, model.vocab_size, model.eos_id)
    with pytest.raises(ValueError, match="AttentionScorer first"):
        batch_beam_search([(coverage, 1.0), (attention, 1.0)], batch_size=1, vocab_size=model.vocab_size,
                          sos_id=model.sos_id, eos_id=model.eos_id, max_lengths=[4], min_lengths=[0], beam=2)
    with pytest.raises(ValueError, match="threshold"):
        CoverageScorer(attention, model.vocab_size, model.eos_id, threshold=0.0)
    with pytest.raises(ValueError, match="coverage_weight"):
        beam_search(model, h, lengths, coverage_weight=-1.0)


def attention_peaks(model, h, lengths, sequences):
    """For every sequence (utterance 0 of h): the argmax frame of the attention at each of its token steps."""
    m = len(sequences)
    width = max(len(s) for s in sequences)
    rows = tf.zeros([m], tf.int32)
    h1, l1 = tf.gather(h, rows), tf.gather(lengths, rows)
    h_proj, state = model.decoder_initial_state(h1, l1)
    prev = np.full(m, model.sos_id, np.int32)
    peaks = np.zeros([m, width], np.int64)
    for u in range(width):
        _, state = model.decoder_step(prev, state, h1, h_proj, l1)
        peaks[:, u] = state[-1].numpy().argmax(axis=1)
        prev = np.array([s[u] if u < len(s) else 0 for s in sequences], np.int32)
    return [peaks[i, : len(s)] for i, s in enumerate(sequences)]


def longest_stall(peaks):
    """Brute force: the most tokens in a row whose peak does not pass the furthest peak before them."""
    furthest, run, longest = -1, 0, 0
    for peak in peaks:
        run = 0 if peak > furthest else run + 1
        furthest, longest = max(furthest, peak), max(longest, run)
    return longest


@pytest.mark.parametrize("ctc_weight,max_stall", [(0.0, 1), (0.4, 1)])
def test_stall_limit_equals_exhaustive_search_over_hypotheses_whose_attention_keeps_moving(
        small_vocab_model, ctc_weight, max_stall):
    """With the limit, a big beam finds the best hypotheses among those with at most `max_stall` tokens in a row whose
    attention peak does not pass the furthest frame before them (eos after a longer stall is allowed: such a
    hypothesis may end there), scored as without the limit."""
    model = small_vocab_model
    h, lengths = encode(model, [20], seed=0)  # 10 encoder frames; ratio 0.5 -> 5 steps (4 tokens)
    max_steps, nbest = 5, 4
    out = beam_search(model, h, lengths, beam=128, ctc_weight=ctc_weight, max_length_ratio=0.5, nbest=nbest,
                      max_attention_stall=max_stall)
    out = {k: v.numpy() for k, v in out.items()}
    tokens = [c for c in range(model.vocab_size) if c != model.eos_id]
    sequences = [list(s) for n in range(max_steps) for s in itertools.product(tokens, repeat=n)]
    scores = (1 - ctc_weight) * attention_log_prob(model, h, lengths, sequences)
    if ctc_weight:
        ctc = tf.nn.log_softmax(model.ctc_logits(h))[0, : int(lengths[0])].numpy()
        scores += ctc_weight * np.array([ctc_log_prob(ctc, s) if 0 not in s else -np.inf for s in sequences])
    stalls = [longest_stall(p) > max_stall for p in attention_peaks(model, h, lengths, sequences)]
    ranked = sorted([(s, q, j) for s, q, j in zip(scores, sequences, stalls) if np.isfinite(s)], key=lambda r: -r[0])
    assert any(j for _, _, j in ranked[:nbest])  # without the limit, the best list holds a longer stall
    check_against(out, 0, [(s, q) for s, q, j in ranked if not j], nbest)


def test_stall_limit_forbids_every_token_but_eos_after_too_many_tokens_without_progress(small_vocab_model):
    model = small_vocab_model
    h, lengths = encode(model, [20], seed=3)
    attention = AttentionScorer(model, h, lengths)
    limit = AttentionStallLimit(attention, model.vocab_size, model.eos_id, max_stall=1)
    attention.init_state(2)
    furthest, stalled = limit.init_state(2)
    assert furthest.numpy().tolist() == [-1, -1] and stalled.numpy().tolist() == [0, 0]
    attention.step_weights = tf.one_hot([3, 7], 10)  # peaks at frames 3 and 7
    state = (tf.constant([5, 5]), tf.constant([1, 1]))  # both reached frame 5; one token each without progress
    scores, (furthest, stalled) = limit.score(tf.constant([model.sos_id] * 2), state)
    assert furthest.numpy().tolist() == [5, 7] and stalled.numpy().tolist() == [2, 0]
    eos = model.eos_id
    assert (scores.numpy()[0, np.arange(model.vocab_size) != eos] <= IMPOSSIBLE).all()  # a second token behind 5
    assert scores.numpy()[0, eos] == 0.0
    assert (scores.numpy()[1] == 0.0).all()  # frame 7 passes 5: progress
    kept = limit.select((furthest, stalled), tf.constant([1, 1]), None, None)
    assert [x.numpy().tolist() for x in kept] == [[7, 7], [0, 0]]


def test_stall_limit_needs_its_attention_scorer_first(small_vocab_model):
    model = small_vocab_model
    h, lengths = encode(model, [12])
    attention = AttentionScorer(model, h, lengths)
    limit = AttentionStallLimit(attention, model.vocab_size, model.eos_id, max_stall=3)
    with pytest.raises(ValueError, match="AttentionScorer first"):
        batch_beam_search([(limit, 1.0), (attention, 1.0)], batch_size=1, vocab_size=model.vocab_size,
                          sos_id=model.sos_id, eos_id=model.eos_id, max_lengths=[4], min_lengths=[0], beam=2)
    with pytest.raises(ValueError, match="max_stall"):
        AttentionStallLimit(attention, model.vocab_size, model.eos_id, max_stall=-1)
    with pytest.raises(ValueError, match="max_attention_stall"):
        beam_search(model, h, lengths, max_attention_stall=-1)


@pytest.fixture(scope="module")
def paper_vocab_model():
    return tiny_model(Vocabulary().tokens[1:-1], ctc_weight=0.5, seed=2)


def test_beam_one_equals_attention_greedy(paper_vocab_model):
    model = paper_vocab_model
    h, lengths = encode(model, [30, 22, 9], seed=1)
    greedy = attention_greedy_decode(model, h, lengths)
    beam = beam_search_decode(model, h, lengths, beam=1)
    n = greedy[1].numpy()
    np.testing.assert_array_equal(beam[1].numpy(), n)
    for b in range(3):
        assert beam[0].numpy()[b, : n[b]].tolist() == greedy[0].numpy()[b, : n[b]].tolist()
    np.testing.assert_allclose(beam[2].numpy(), greedy[2].numpy(), rtol=1e-5)


def test_batch_and_padding_do_not_change_results(paper_vocab_model):
    model = paper_vocab_model
    kwargs = dict(beam=4, ctc_weight=0.3, length_penalty=0.2, nbest=3)
    spec = [tf.TensorSpec([None, None, 16], tf.float32), tf.TensorSpec([None], tf.int32)]
    search = tf.function(lambda h, lengths: beam_search(model, h, lengths, **kwargs), input_signature=spec)
    frames = [30, 22, 9]
    h, lengths = encode(model, frames, seed=2)
    batch = {k: v.numpy() for k, v in search(h, lengths).items()}
    rng = np.random.default_rng(0)
    for b, n in enumerate(lengths.numpy()):
        # Alone, with garbage padding after its valid frames.
        alone_h = np.concatenate([h[b : b + 1, :n].numpy(), 50 * rng.standard_normal((1, 5, 16))], axis=1)
        alone = {k: v.numpy() for k, v in search(alone_h.astype(np.float32), lengths[b : b + 1]).items()}
        np.testing.assert_array_equal(alone["num_tokens"][0], batch["num_tokens"][b])
        for j in range(3):
            k = alone["num_tokens"][0, j]
            np.testing.assert_array_equal(alone["token_ids"][0, j, :k], batch["token_ids"][b, j, :k])
        np.testing.assert_allclose(alone["score"][0], batch["score"][b], rtol=1e-5)
    assert (np.diff(batch["score"], axis=1) <= 0).all()
    # The n-best hypotheses are distinct.
    for b in range(3):
        seqs = {tuple(batch["token_ids"][b, j, : batch["num_tokens"][b, j]]) for j in range(3)}
        assert len(seqs) == 3


def test_length_limits_and_forced_length(paper_vocab_model):
    model = paper_vocab_model
    h, lengths = encode(model, [20, 14], seed=3)  # 10 and 7 encoder frames
    out = beam_search(model, h, lengths, beam=3, ctc_weight=0.3, min_length_ratio=0.5, nbest=3)
    minimum = np.ceil(0.5 * lengths.numpy())[:, None]
    assert (out["num_tokens"].numpy() >= minimum).all()
    assert (out["num_tokens"].numpy() <= lengths.numpy()[:, None] - 1).all()

    # A huge length bonus outweighs any log-probability: every utterance reaches the maximum length.
    out = beam_search(model, h, lengths, beam=3, length_penalty=100.0, max_length_ratio=0.6)
    np.testing.assert_array_equal(out["num_tokens"].numpy()[:, 0], np.ceil(0.6 * lengths.numpy()) - 1)

    out = beam_search(model, h, lengths, beam=2, ctc_weight=0.3, force_length=4, nbest=2)
    assert (out["num_tokens"].numpy() == 4).all()
    assert (out["token_ids"].numpy()[:, :, :4] >= 0).all() and (out["token_ids"].numpy()[:, :, 4:] == -1).all()


def test_refuses_unsupported_models():
    attention_only = tiny_model("abc", ctc_weight=0.0)
    h, lengths = encode(attention_only, [8])
    with pytest.raises(ValueError, match="compute_ctc"):
        beam_search(attention_only, h, lengths, ctc_weight=0.3)
    assert math.isfinite(float(beam_search(attention_only, h, lengths, beam=2)["score"][0, 0]))
    ctc_only = tiny_model("abc", ctc_weight=1.0)
    with pytest.raises(ValueError, match="ctc_greedy_decode"):
        beam_search(ctc_only, h, lengths)
    with pytest.raises(ValueError, match="nbest"):
        beam_search(attention_only, h, lengths, beam=2, nbest=3)


@pytest.mark.slow
@pytest.mark.parametrize("coverage_weight,max_repeats,max_stall", [(0.0, 0, 0), (0.3, 1, 2)])
def test_converts_to_tflite_builtins_and_matches(paper_vocab_model, tmp_path, coverage_weight, max_repeats,
                                                 max_stall):
    """The whole joint decoder (encoder + beam search, with and without the coverage term, the repeat limit and the
    attention stall limit)
    exports to TFLite with built-in ops only. The batch must be static: TFLite lowers the TensorLists of
    `tf.scan`/LSTM loops only with static element shapes."""
    interpreter_lib = pytest.importorskip("ai_edge_litert.interpreter")
    model = paper_vocab_model

    def serve(features, lengths):
        h, encoder_lengths = model.encode(features, lengths)
        return beam_search(model, h, encoder_lengths, beam=3, ctc_weight=0.3, length_penalty=0.1, nbest=2,
                           coverage_weight=coverage_weight, coverage_threshold=0.4, max_repeats=max_repeats,
                           max_attention_stall=max_stall)

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = [tf.TensorSpec([1, None, 120], tf.float32), tf.TensorSpec([1], tf.int32)]
    archive.add_endpoint("serve", serve, input_signature=spec)
    archive.write_out(str(tmp_path / "saved_model"))
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved_model"))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = interpreter_lib.Interpreter(model_content=converter.convert())
    runner = interpreter.get_signature_runner(next(iter(interpreter.get_signature_list())))
    features = np.random.default_rng(4).standard_normal((1, 26, 120)).astype(np.float32)
    lengths = np.array([26], np.int32)
    expected = {k: v.numpy() for k, v in serve(features, lengths).items()}
    got = runner(features=features, lengths=lengths)
    np.testing.assert_array_equal(got["num_tokens"], expected["num_tokens"])
    np.testing.assert_array_equal(got["token_ids"], expected["token_ids"])
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-4)


def test_joint_search_traced_with_dynamic_length_handles_utterances_shorter_than_their_hypotheses():
    """One or a few encoder frames: hypotheses soon outgrow the frames, and the CTC prefix recursion then has
    no frame left to scan. Traced with a dynamic time axis (as in an export) this once failed in graph mode."""
    model = tiny_model()
    dim = 16  # tiny_model's encoder output width

    @tf.function(input_signature=[tf.TensorSpec([None, None, dim]), tf.TensorSpec([None], tf.int32)])
    def decode(h, lengths):
        return beam_search_decode(model, h, lengths, beam=3, ctc_weight=0.5, max_length_ratio=3.0)

    for frames in (1, 2, 3):
        token_ids, num_tokens, score = decode(tf.random.normal([2, frames, dim], seed=frames), tf.constant([frames, 1]))
        # CTC cannot emit more labels than frames, so the joint search never does either.
        assert num_tokens.numpy().tolist()[1] <= 1 and num_tokens.numpy()[0] <= frames
        assert np.isfinite(score.numpy()).all()


@pytest.mark.parametrize("frames", [[20, 14], [40, 24]])  # 10 encoder frames (the location matrix) and 20 (conv)
def test_location_matrix_in_search_keeps_the_convolutions_hypotheses(small_vocab_model, frames):
    """The traced search runs the location convolution as a matrix where it pays off (layers/attention.py) and as
    conv2d inside `convolution_in_search` (the TFLite exports): the same hypotheses and scores either way."""
    from tf_jointctc.layers.attention import convolution_in_search

    model = small_vocab_model
    h, lengths = encode(model, frames, seed=9)
    outs = []
    for convolve in (False, True):
        with convolution_in_search() if convolve else contextlib.nullcontext():
            search = tf.function(lambda h, lengths: beam_search(model, h, lengths, beam=4, ctc_weight=0.4, nbest=2))
            outs.append({k: v.numpy() for k, v in search(h, lengths).items()})
    np.testing.assert_array_equal(outs[0]["token_ids"], outs[1]["token_ids"])
    np.testing.assert_allclose(outs[0]["score"], outs[1]["score"], rtol=1e-5)
    assert outs[0]["num_tokens"].max() > 0


def test_kept_rows_gathers_every_tensor_of_a_nested_state_at_the_parents():
    state = (tf.constant([10, 11, 12]), tf.constant([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    furthest, weights = kept_rows(state, tf.constant([2, 2, 0]))
    assert furthest.numpy().tolist() == [12, 12, 10]
    assert weights.numpy().tolist() == [[4.0, 5.0], [4.0, 5.0], [0.0, 1.0]]
    assert kept_rows(tf.constant([7, 8]), tf.constant([1])).numpy().tolist() == [8]  # a bare tensor as well
