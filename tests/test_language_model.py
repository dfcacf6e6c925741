"""The trainable character LM: its loss is the mean negative log-likelihood of the scored characters (a
brute-force reference), and `fit` learns a text it can predict."""

from __future__ import annotations

import math

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc.config import lm_base_config
from tf_jointctc.data.lm_batches import make_lm_dataset, pad_batch
from tf_jointctc.language_model import CharacterLanguageModel, build_language_model
from tf_jointctc.text import Vocabulary


def _model(**overrides) -> CharacterLanguageModel:
    keras.utils.set_random_seed(5)
    config = ml_collections.ConfigDict(lm_base_config().model)
    config.units, config.embedding_dim = 32, 16
    config.update(overrides)
    return build_language_model(config, Vocabulary())


def test_negative_log_likelihood_scores_labels_and_eos_only():
    vocab = Vocabulary()
    model = _model(init_scale=0.5)
    tokens_in, targets = pad_batch([vocab.encode("ab c"), vocab.encode("d")], vocab.sos_id, vocab.eos_id)
    nll_sum, count = model.negative_log_likelihood(tf.constant(tokens_in), tf.constant(targets))
    log_probs = tf.nn.log_softmax(model(tf.constant(tokens_in))).numpy()
    expected = -sum(log_probs[b, u, targets[b, u]] for b in range(2) for u in range(targets.shape[1])
                    if targets[b, u] != vocab.blank_id)
    assert float(count) == 4 + 1 + 1 + 1  # "ab c" and eos, "d" and eos
    assert float(nll_sum) == pytest.approx(expected, rel=1e-5)


def test_fit_learns_a_predictable_text_and_reports_bits_per_character():
    vocab = Vocabulary()
    sentences = [vocab.encode(text) for text in ["abc abc abc", "abc abc", "abc abc abc abc"] * 20]
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    data = make_lm_dataset(sentences, batch_size=6, sos_id=vocab.sos_id, eos_id=vocab.eos_id, first_batch=0,
                           num_batches=200)
    before = model.evaluate(make_lm_dataset(sentences, batch_size=6, sos_id=vocab.sos_id, eos_id=vocab.eos_id,
                                            first_batch=None), return_dict=True, verbose=0)
    assert before["bits_per_char"] == pytest.approx(math.log2(vocab.size), abs=0.3)  # ~uniform at the start
    history = model.fit(data, epochs=1, verbose=0).history
    after = model.evaluate(make_lm_dataset(sentences, batch_size=6, sos_id=vocab.sos_id, eos_id=vocab.eos_id,
                                           first_batch=None), return_dict=True, verbose=0)
    assert history["bits_per_char"][0] == pytest.approx(history["loss"][0] / math.log(2), rel=1e-5)
    # The only uncertainty left is where a sentence ends (after 2, 3 or 4 words): well under 0.5 bit per char.
    assert after["bits_per_char"] < 0.5, after
    assert np.isfinite(after["loss"])
