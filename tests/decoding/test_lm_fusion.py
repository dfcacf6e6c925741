"""Shallow fusion of a character LM with beam search (issue 13): `RNNLMScorer`, `beam_search(lm=, lm_weight=)`,
`DecodeOptions.lm_weight` and the modes' checks.

References are brute force: an exhaustive search over a 3-character vocabulary, and a step-by-step greedy
search in eager mode for beam 1. The recognizers are `test_beam_search`'s tiny random models; the LMs are tiny
random (peaky) character LMs, or one trained for a few dozen updates on a single sentence.
"""

from __future__ import annotations

import itertools
import math

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from tests.decoding.test_beam_search import attention_log_prob, check_against, ctc_log_prob, encode, tiny_model
from tf_jointctc.config import base_config, lm_base_config
from tf_jointctc.data.lm_batches import make_lm_dataset
from tf_jointctc.decoding import AttentionScorer, LengthBonus, batch_beam_search, beam_search, beam_search_decode, modes
from tf_jointctc.decoding.beam_search import length_limits
from tf_jointctc.decoding.options import DecodeOptions
from tf_jointctc.decoding.scorers import RNNLMScorer
from tf_jointctc.language_model import build_language_model
from tf_jointctc.text import Vocabulary

PAPER_CHARACTERS = Vocabulary().tokens[1:-1]
SENTENCE = "a cat sat"  # what `trained_lm` learns


def tiny_lm(characters=PAPER_CHARACTERS, seed=0, init_scale=0.5, units=32):
    """A random character LM; a large `init_scale` makes its distributions peaky, so that it matters."""
    keras.utils.set_random_seed(seed)
    config = ml_collections.ConfigDict(lm_base_config().model)
    config.units, config.embedding_dim, config.init_scale = units, 16, init_scale
    return build_language_model(config, Vocabulary(tuple(characters)))


def lm_log_prob(lm, sequences):
    """log p_lm(seq + eos) of every sequence (eager, step by step)."""
    m = len(sequences)
    width = max(len(s) for s in sequences) + 1
    state = lm.initial_state(m)
    prev = np.full(m, lm.sos_id, np.int32)
    total = np.zeros(m)
    for u in range(width):
        log_probs, state = lm.step(prev, state)
        target = np.array([s[u] if u < len(s) else (lm.eos_id if u == len(s) else 0) for s in sequences])
        picked = log_probs.numpy()[np.arange(m), target]
        total += np.where(np.array([u <= len(s) for s in sequences]), picked, 0.0)
        prev = target.astype(np.int32)
    return total


def as_numpy(out):
    return {k: v.numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def small_vocab_model():
    return tiny_model("abc", ctc_weight=0.5, seed=1)


@pytest.fixture(scope="module")
def paper_vocab_model():
    return tiny_model(PAPER_CHARACTERS, ctc_weight=0.5, seed=2)


@pytest.fixture(scope="module")
def random_lm():
    return tiny_lm(seed=3)


@pytest.fixture(scope="module")
def trained_lm():
    """An LM that has seen nothing but `SENTENCE` (80 updates of 8 copies): it predicts it almost surely."""
    lm = tiny_lm(seed=4, init_scale=0.1, units=48)
    vocab = Vocabulary()
    lm.compile(optimizer=keras.optimizers.Adam(2e-2))
    data = make_lm_dataset([vocab.encode(SENTENCE)] * 8, batch_size=8, sos_id=vocab.sos_id, eos_id=vocab.eos_id,
                           first_batch=0, num_batches=80)
    lm.fit(data, epochs=1, verbose=0)
    return lm


# ------------------------------------------------------------------------------------------ exact references


@pytest.mark.parametrize(
    "ctc_weight,length_penalty,lm_weight", [(0.0, 0.0, 0.5), (0.0, 0.7, 2.0), (0.4, 0.0, 1.0), (0.4, 0.5, 0.3)]
)
def test_big_beam_with_lm_equals_exhaustive_search(small_vocab_model, ctc_weight, length_penalty, lm_weight):
    model = small_vocab_model
    lm = tiny_lm("abc", seed=7)
    h, lengths = encode(model, [12], seed=5)  # 6 encoder frames; max length ratio 0.5 -> 3 steps (2 tokens)
    max_steps, nbest = 3, 4
    eos = model.eos_id
    out = beam_search(
        model, h, lengths, beam=20, ctc_weight=ctc_weight, length_penalty=length_penalty, max_length_ratio=0.5,
        nbest=nbest, lm=lm, lm_weight=lm_weight,
    )
    tokens = [c for c in range(model.vocab_size) if c != eos]
    sequences = [list(s) for n in range(max_steps) for s in itertools.product(tokens, repeat=n)]
    scores = (1 - ctc_weight) * attention_log_prob(model, h, lengths, sequences)
    scores += lm_weight * lm_log_prob(lm, sequences)
    scores += length_penalty * np.array([len(s) for s in sequences])
    if ctc_weight:
        ctc = tf.nn.log_softmax(model.ctc_logits(h))[0, : int(lengths[0])].numpy()
        scores += ctc_weight * np.array([ctc_log_prob(ctc, s) if 0 not in s else -np.inf for s in sequences])
    expected = sorted([(s, q) for s, q in zip(scores, sequences) if np.isfinite(s)], key=lambda r: -r[0])
    check_against(as_numpy(out), 0, expected, nbest)


def greedy_reference(model, lm, h, lengths, b, lm_weight, length_penalty):
    """Beam 1 by hand, in eager mode: at every step the argmax of att + beta * lm + length bonus over V (eos
    forced at the last of the `ceil(L)` steps); -> (tokens, score)."""
    n = int(lengths[b])
    h1, l1 = h[b : b + 1, :n], lengths[b : b + 1]
    h_proj, state = model.decoder_initial_state(h1, l1)
    lm_state = lm.initial_state(1)
    bonus = length_penalty * (1.0 - np.eye(model.vocab_size)[model.eos_id])
    prev, tokens, score = model.sos_id, [], 0.0
    for t in range(n):
        att, state = model.decoder_step(tf.constant([prev]), state, h1, h_proj, l1)
        lmp, lm_state = lm.step(tf.constant([prev]), lm_state)
        total = att.numpy()[0] + lm_weight * lmp.numpy()[0] + bonus
        choice = model.eos_id if t == n - 1 else int(np.argmax(total))
        score += total[choice]
        if choice == model.eos_id:
            break
        tokens.append(choice)
        prev = choice
    return tokens, score


@pytest.mark.parametrize("lm_weight,length_penalty", [(0.5, 0.0), (1.5, 0.3)])
def test_beam_one_with_lm_equals_a_step_by_step_greedy_reference(paper_vocab_model, random_lm, lm_weight,
                                                                  length_penalty):
    model, lm = paper_vocab_model, random_lm
    h, lengths = encode(model, [30, 22, 9], seed=1)
    token_ids, num_tokens, score = beam_search_decode(
        model, h, lengths, beam=1, length_penalty=length_penalty, lm=lm, lm_weight=lm_weight
    )
    without_lm = beam_search_decode(model, h, lengths, beam=1, length_penalty=length_penalty)
    changed = 0
    for b in range(3):
        tokens, expected_score = greedy_reference(model, lm, h, lengths, b, lm_weight, length_penalty)
        assert token_ids.numpy()[b, : num_tokens.numpy()[b]].tolist() == tokens
        np.testing.assert_allclose(score.numpy()[b], expected_score, rtol=1e-5, atol=1e-4)
        changed += without_lm[0].numpy()[b, : without_lm[1].numpy()[b]].tolist() != tokens
    assert changed, "the LM changed no hypothesis: the test would not see it ignored"


# --------------------------------------------------------------------------------- invariances and identities


def _search(model, lm, mode, beam, nbest):
    options = DecodeOptions(beam=beam, ctc_weight=0.3, length_penalty=0.2, lm_weight=0.6)
    ctc_weight = modes.beam_ctc_weight(mode, options)
    spec = [tf.TensorSpec([None, None, 16], tf.float32), tf.TensorSpec([None], tf.int32)]

    def search(h, lengths):
        return beam_search(model, h, lengths, beam=beam, ctc_weight=ctc_weight, length_penalty=0.2, nbest=nbest,
                           lm=lm, lm_weight=options.lm_weight)

    return tf.function(search, input_signature=spec)


@pytest.mark.parametrize("mode", ["attention", "joint"])
@pytest.mark.parametrize("beam", [1, 4, 20])
def test_batch_and_padding_do_not_change_results_with_an_lm(paper_vocab_model, random_lm, mode, beam):
    model = paper_vocab_model
    nbest = min(3, beam)
    search = _search(model, random_lm, mode, beam, nbest)
    h, lengths = encode(model, [30, 22, 9], seed=2)
    batch = as_numpy(search(h, lengths))
    rng = np.random.default_rng(0)
    for b, n in enumerate(lengths.numpy()):
        # Alone, with garbage padding after its valid frames.
        alone_h = np.concatenate([h[b : b + 1, :n].numpy(), 50 * rng.standard_normal((1, 5, 16))], axis=1)
        alone = as_numpy(search(alone_h.astype(np.float32), lengths[b : b + 1]))
        np.testing.assert_array_equal(alone["num_tokens"][0], batch["num_tokens"][b])
        for j in range(nbest):
            k = alone["num_tokens"][0, j]
            np.testing.assert_array_equal(alone["token_ids"][0, j, :k], batch["token_ids"][b, j, :k])
        np.testing.assert_allclose(alone["score"][0], batch["score"][b], rtol=1e-5)
    assert (np.diff(batch["score"], axis=1) <= 0).all()
    assert np.isfinite(batch["score"]).all()


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3])
def test_lm_weight_zero_is_exactly_the_search_without_an_lm(paper_vocab_model, random_lm, ctc_weight):
    model = paper_vocab_model
    h, lengths = encode(model, [30, 22, 9], seed=3)
    kwargs = dict(beam=4, ctc_weight=ctc_weight, length_penalty=0.2, nbest=3)
    without = as_numpy(beam_search(model, h, lengths, **kwargs))
    with_zero = as_numpy(beam_search(model, h, lengths, lm=random_lm, lm_weight=0.0, **kwargs))
    with_lm = as_numpy(beam_search(model, h, lengths, lm=random_lm, lm_weight=0.5, **kwargs))
    for key in without:
        np.testing.assert_array_equal(with_zero[key], without[key], err_msg=key)
    assert not np.array_equal(with_lm["score"], without["score"])
    # Not even traced: the graph of a zero weight does not read the LM's weights.
    spec = [tf.TensorSpec([None, None, 16], tf.float32), tf.TensorSpec([None], tf.int32)]
    lm_variables = {id(v.value if hasattr(v, "value") else v) for v in random_lm.weights}

    def captured(lm_weight):
        fn = tf.function(lambda h, n: beam_search(model, h, n, lm=random_lm, lm_weight=lm_weight, **kwargs))
        return {id(v) for v in fn.get_concrete_function(*spec).variables}

    assert not captured(0.0) & lm_variables
    assert captured(0.5) & lm_variables


@pytest.mark.parametrize("mode", ["attention", "joint"])
def test_a_large_lm_weight_pulls_the_hypothesis_to_what_the_lm_learned(paper_vocab_model, trained_lm, mode):
    model, vocab = paper_vocab_model, Vocabulary()
    h, lengths = encode(model, [40, 30], seed=4)  # 20 and 15 encoder frames: room for the 9 characters
    ctc_weight = 0.3 if mode == "joint" else 0.0
    texts = {}
    for lm_weight in (0.0, 20.0):
        token_ids, num_tokens, _ = beam_search_decode(
            model, h, lengths, beam=4, ctc_weight=ctc_weight, length_penalty=0.1, lm=trained_lm, lm_weight=lm_weight
        )
        texts[lm_weight] = [vocab.decode(token_ids.numpy()[b, : num_tokens.numpy()[b]]) for b in range(2)]
    assert SENTENCE not in texts[0.0], texts  # the random recognizer alone says something else
    # Measured: "t.qqqqq.qqqq.qqqqqq" (attention) and "t.q.q.t.qt.t.q.q.q" (joint) for the first utterance. A
    # large weight lets the LM speak; at middling ones (0.3 to 5) attention decoding gives the empty hypothesis,
    # the short-hypothesis bias of shallow fusion, which the length bonus counters.
    assert texts[20.0] == [SENTENCE, SENTENCE], texts


class CountingLMScorer(RNNLMScorer):
    """`RNNLMScorer` that counts its steps (eager mode: one Python call per step)."""

    calls = 0

    def score(self, last_tokens, state, candidates=None):
        type(self).calls += 1
        return super().score(last_tokens, state, candidates)


class UnboundedLMScorer(CountingLMScorer):
    bounds = (-math.inf, None)  # no known bound: the search cannot stop early


@pytest.mark.parametrize("beam,length_penalty,lm_weight", [(2, 0.0, 0.5), (2, 0.5, 20.0), (3, 1.0, 5.0), (4, 0.2, 2.0)])
def test_early_stop_stays_exact_with_an_lm(paper_vocab_model, trained_lm, beam, length_penalty, lm_weight):
    # The random recognizer alone never ends a hypothesis early; `trained_lm` ends them after (part of) its
    # sentence, so the finished set fills up long before the maximum length and the bound can stop the search.
    # (With beam 1 the search always stops when its one hypothesis ends: no bound involved.)
    model = paper_vocab_model
    h, lengths = encode(model, [40, 30, 12], seed=6)
    max_lengths, min_lengths = length_limits(lengths)
    outs, steps = [], []
    for scorer_class in (CountingLMScorer, UnboundedLMScorer):
        scorer_class.calls = 0
        scorers = [
            (AttentionScorer(model, h, lengths), 1.0),
            (LengthBonus(model.vocab_size, model.eos_id), length_penalty),
            (scorer_class(trained_lm, tf.shape(h)[0]), lm_weight),
        ]
        out = batch_beam_search(
            scorers, batch_size=3, vocab_size=model.vocab_size, sos_id=model.sos_id, eos_id=model.eos_id,
            max_lengths=max_lengths, min_lengths=min_lengths, beam=beam, nbest=beam,
        )
        outs.append(as_numpy(out))
        steps.append(scorer_class.calls)
    for key in ("token_ids", "num_tokens"):
        np.testing.assert_array_equal(outs[0][key], outs[1][key])
    np.testing.assert_allclose(outs[0]["score"], outs[1]["score"], rtol=1e-6)
    assert steps[1] == int(tf.reduce_max(max_lengths))  # without a bound the search runs every step
    assert steps[0] < steps[1], steps  # the early stop fired (else this test would check nothing)


# --------------------------------------------------------------------------------------- options and modes


def test_decode_options_carry_the_lm_weight():
    assert DecodeOptions.from_config(base_config().decode).lm_weight == 0.0
    assert DecodeOptions.from_config(base_config().decode, lm_weight=0.4).lm_weight == 0.4
    config = base_config().decode
    config.lm_weight = 0.25
    assert DecodeOptions.from_config(config).lm_weight == 0.25
    assert DecodeOptions.from_config(config, lm_weight=None).lm_weight == 0.25
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="lm_weight"):
            DecodeOptions(lm_weight=bad)
    # Records of decoding without an LM (export_info, summaries) read as before it existed.
    assert "lm_weight" not in DecodeOptions().to_dict()
    assert DecodeOptions(lm_weight=0.3).to_dict()["lm_weight"] == 0.3


def test_check_mode_refuses_what_the_lm_cannot_do(paper_vocab_model, random_lm):
    model, lm = paper_vocab_model, random_lm
    with_lm = DecodeOptions(ctc_weight=0.3, lm_weight=0.5)
    with pytest.raises(ValueError, match="'ctc_greedy' cannot use a language model"):
        modes.check_mode(model, modes.CTC_GREEDY, with_lm, lm)
    modes.check_mode(model, modes.CTC_GREEDY, DecodeOptions(lm_weight=0.0), lm)  # an unused LM is fine
    for mode in (modes.ATTENTION, modes.JOINT):
        modes.check_mode(model, mode, with_lm, lm)
        with pytest.raises(ValueError, match="needs a language model"):
            modes.check_mode(model, mode, with_lm)
        with pytest.raises(ValueError, match="differs from the recognizer"):
            modes.check_mode(model, mode, with_lm, tiny_lm("abc"))
    # Export chooses its signatures by what the model can do: the LM is not its concern.
    assert modes.unsupported_reason(model, modes.CTC_GREEDY, with_lm) is None
    h, lengths = encode(model, [12])
    with pytest.raises(ValueError, match="needs a language model"):
        beam_search(model, h, lengths, beam=2, lm_weight=0.5)
    with pytest.raises(ValueError, match="lm_weight"):
        beam_search(model, h, lengths, beam=2, lm=lm, lm_weight=-1.0)


def test_decode_passes_the_lm_to_the_beam_modes(paper_vocab_model, random_lm):
    model, lm = paper_vocab_model, random_lm
    h, lengths = encode(model, [12, 9])
    options = DecodeOptions(beam=3, ctc_weight=0.4, length_penalty=0.2, lm_weight=0.7)
    beam = dict(beam=3, length_penalty=0.2, max_length_ratio=1.0, min_length_ratio=0.0, lm=lm, lm_weight=0.7)
    expected = {
        "attention": beam_search_decode(model, h, lengths, ctc_weight=0.0, **beam),
        "joint": beam_search_decode(model, h, lengths, ctc_weight=0.4, **beam),
    }
    for mode, want in expected.items():
        got = modes.decode(model, h, lengths, mode, options, lm)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=mode)
    plain = modes.decode(model, h, lengths, modes.ATTENTION, DecodeOptions(beam=3, length_penalty=0.2))
    assert not np.array_equal(plain[2].numpy(), expected["attention"][2].numpy())
