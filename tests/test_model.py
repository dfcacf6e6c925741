import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc import model as model_lib
from tf_jointctc.layers.encoder import PyramidalBLSTM
from tf_jointctc.model import JointCTCAttention, build_model, make_optimizer
from tf_jointctc.text import Vocabulary

D = 120


def _small(ctc_weight=0.5, units=16, **kwargs):
    return JointCTCAttention(
        vocab_size=33,
        ctc_weight=ctc_weight,
        encoder_layers=2,
        encoder_units=units,
        encoder_projection_units=units,
        encoder_subsample=(1, 2),
        attention_dim=units,
        attention_filters=4,
        attention_width=5,
        decoder_units=units,
        **kwargs,
    )


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([24, 20, 15, 10], "int32")
    features = rng.standard_normal((4, 24, D)).astype("float32")
    for i, n in enumerate(lengths):
        features[i, n:] = 0.0
    labels = np.array([[3, 4, 5, 6], [7, 8, 8, 0], [9, 10, 0, 0], [11, 0, 0, 0]], "int32")
    return {
        "features": features,
        "feature_lengths": lengths,
        "labels": labels,
        "label_lengths": (labels > 0).sum(1).astype("int32"),
    }


def _select(batch, i):
    n, u = int(batch["feature_lengths"][i]), int(batch["label_lengths"][i])
    return {
        "features": batch["features"][i : i + 1, :n],
        "feature_lengths": batch["feature_lengths"][i : i + 1],
        "labels": batch["labels"][i : i + 1, :u],
        "label_lengths": batch["label_lengths"][i : i + 1],
    }


def test_lambda_zero_is_attention_only(monkeypatch):
    model = _small(ctc_weight=0.0)

    def forbidden(*args, **kwargs):
        raise AssertionError("CTC loss computed with ctc_weight=0")

    monkeypatch.setattr(model_lib.ctc_lib, "ctc_loss", forbidden)
    out = model.compute_losses(_batch())
    assert "ctc" not in out
    assert float(out["loss"]) == float(tf.reduce_mean(out["attention"]))
    assert "ctc_loss" not in [m.name for m in model.metrics]


def test_lambda_one_is_ctc_only(monkeypatch):
    model = _small(ctc_weight=1.0)

    def forbidden(*args, **kwargs):
        raise AssertionError("attention branch computed with ctc_weight=1")

    monkeypatch.setattr(model.decoder, "teacher_forcing", forbidden)
    out = model.compute_losses(_batch())
    assert "attention" not in out
    assert float(out["loss"]) == float(tf.reduce_mean(out["ctc"]))
    assert "attention_loss" not in [m.name for m in model.metrics]


def test_mixed_loss_is_the_weighted_sum_of_the_branches():
    batch = _batch()
    mixed = _small(ctc_weight=0.3)
    out = mixed.compute_losses(batch)
    expected = 0.3 * np.mean(out["ctc"]) + 0.7 * np.mean(out["attention"])
    np.testing.assert_allclose(float(out["loss"]), expected, rtol=1e-6)
    ctc_only, att_only = _small(ctc_weight=1.0), _small(ctc_weight=0.0)
    ctc_only.set_weights(mixed.get_weights())
    att_only.set_weights(mixed.get_weights())
    np.testing.assert_allclose(ctc_only.compute_losses(batch)["ctc"], out["ctc"], rtol=1e-6)
    np.testing.assert_allclose(att_only.compute_losses(batch)["attention"], out["attention"], rtol=1e-6)


def test_targets_add_sos_and_eos():
    model = _small()
    inputs, targets, mask = model.decoder_targets(tf.constant([[3, 4, 0], [5, 0, 0]]), tf.constant([2, 1]))
    assert inputs.numpy().tolist() == [[32, 3, 4, 0], [32, 5, 0, 0]]
    assert targets.numpy().tolist() == [[3, 4, 32, 0], [5, 32, 0, 0]]
    assert mask.numpy().tolist() == [[True, True, True, False], [True, True, False, False]]


def test_gradients_finite_and_nonzero():
    model = _small(ctc_weight=0.5)
    with tf.GradientTape() as tape:
        loss = model.compute_losses(_batch(), training=True)["loss"]
    grads = tape.gradient(loss, model.trainable_variables)
    assert len(grads) == len(model.trainable_variables) > 0
    for g, v in zip(grads, model.trainable_variables):
        g = tf.convert_to_tensor(g).numpy()
        assert np.all(np.isfinite(g)), v.path
        assert np.any(g != 0), v.path
    assert not any("cmvn" in v.path for v in model.trainable_variables)


def test_per_utterance_losses_are_padding_invariant():
    model = _small(ctc_weight=0.5)
    batch = _batch(seed=3)
    together = model.compute_losses(batch)
    for i in (1, 3):
        alone = model.compute_losses(_select(batch, i))
        np.testing.assert_allclose(alone["ctc"][0], together["ctc"][i], rtol=1e-5)
        np.testing.assert_allclose(alone["attention"][0], together["attention"][i], rtol=1e-5)


def test_keras_save_load_round_trip(tmp_path):
    model = _small(ctc_weight=0.2, cmvn_mean=np.full(D, 0.5), cmvn_std=np.full(D, 2.0))
    batch = _batch()
    expected = model(batch)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, JointCTCAttention)
    assert restored.get_config() == model.get_config()
    np.testing.assert_allclose(restored.cmvn.mean.numpy(), 0.5)
    got = restored(batch)
    assert set(got) == {"ctc_logits", "encoder_lengths", "attention_logits", "attention_weights"}
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key].numpy(), value.numpy(), err_msg=key)
    h, lengths = restored.encode(batch["features"], batch["feature_lengths"])
    np.testing.assert_array_equal(restored.ctc_logits(h).numpy(), expected["ctc_logits"].numpy())


def test_cmvn_is_applied_first():
    mean, std = np.linspace(-1, 1, D), np.linspace(0.5, 2, D)
    normalized = _small(cmvn_mean=mean, cmvn_std=std)
    identity = _small()
    identity.set_weights(normalized.get_weights())
    identity.cmvn.set_weights([np.zeros(D), np.ones(D)])
    batch = _batch()
    features = (batch["features"] - mean) / std
    features[np.arange(24)[None, :] >= batch["feature_lengths"][:, None]] = 0.0
    h1, _ = normalized.encode(batch["features"], batch["feature_lengths"])
    h2, _ = identity.encode(features.astype("float32"), batch["feature_lengths"])
    np.testing.assert_allclose(h1.numpy(), h2.numpy(), atol=1e-5)


@pytest.mark.parametrize("mode", ["mean", "mean_var"])
def test_utterance_cmvn_follows_the_global_cmvn_and_ignores_padding(mode):
    config = ml_collections.ConfigDict(
        {"encoder": {"num_layers": 2, "units": 8, "projection_units": 8, "subsample": (1, 2)},
         "decoder_units": 8, "attention_dim": 8, "attention_width": 5, "attention_filters": 2,
         "utterance_cmvn": mode}
    )
    mean, std = np.linspace(-1, 1, D), np.linspace(0.5, 2, D)
    model = build_model(config, {"ctc_weight": 0.5}, Vocabulary(), cmvn=(mean, std))
    assert model.get_config()["utterance_cmvn"] == mode
    assert JointCTCAttention.from_config(model.get_config()).utterance_cmvn.mode == mode
    plain = build_model(config.to_dict() | {"utterance_cmvn": "none"}, {"ctc_weight": 0.5}, Vocabulary(),
                        cmvn=(mean, std))
    plain.set_weights(model.get_weights())
    batch = _batch()
    lengths = batch["feature_lengths"]
    features = (batch["features"] - mean) / std
    for b, n in enumerate(lengths):
        valid = features[b, :n]
        centred = valid - valid.mean(axis=0)
        if mode == "mean_var":
            centred /= np.sqrt(np.maximum(valid.var(axis=0), 1e-4))
        features[b, :n], features[b, n:] = centred, 0.0
    h, _ = model.encode(batch["features"], lengths)
    expected, _ = plain.encode(((features * std) + mean).astype("float32"), lengths)
    np.testing.assert_allclose(h.numpy(), expected.numpy(), atol=1e-4)
    # One utterance alone gives what it gives inside the padded batch.
    alone, _ = model.encode(batch["features"][3:, : lengths[3]], lengths[3:])
    np.testing.assert_allclose(alone.numpy()[0], h.numpy()[3, : alone.shape[1]], atol=1e-5)


@pytest.fixture(scope="module")
def trained():
    """A units-32 model trained on one fixed batch until the loss fell by 90% (at most 300 steps)."""
    keras.utils.set_random_seed(0)
    model = _small(ctc_weight=0.5, units=32)
    model.compile(optimizer=make_optimizer({"name": "adam", "learning_rate": 1e-2, "clip_norm": 5.0}))
    batch = _batch(seed=1)
    first = float(model.compute_losses(batch)["loss"])
    history = []
    for _ in range(300):
        history.append(model.train_on_batch(batch, return_dict=True))
        if history[-1]["loss"] < 0.1 * first:
            break
    return model, batch, first, history


def test_overfits_a_fixed_batch(trained):
    model, batch, first, history = trained
    final = float(model.compute_losses(batch)["loss"])
    assert final < 0.1 * first, (first, final, len(history))
    assert history[-1]["non_finite_steps"] == 0
    assert history[-1]["attention_accuracy"] > 0.9
    assert int(model.optimizer.iterations.numpy()) == len(history)


def test_non_finite_batch_is_skipped(trained):
    model, batch, _, _ = trained
    bad = dict(batch)
    bad["features"] = batch["features"].copy()
    bad["features"][0, 3, 5] = np.inf
    before = [v.numpy().copy() for v in model.variables]
    slots = [v.numpy().copy() for v in model.optimizer.variables]
    logs = model.train_on_batch(bad, return_dict=True)
    assert logs["non_finite_steps"] == 1.0
    for old, var in zip(before, model.variables):
        np.testing.assert_array_equal(old, var.numpy())
        assert np.all(np.isfinite(var.numpy()))
    for old, var in zip(slots, model.optimizer.variables):  # a real skip: iterations and Adam moments untouched
        np.testing.assert_array_equal(old, var.numpy())
    logs = model.train_on_batch(batch, return_dict=True)
    assert logs["non_finite_steps"] == 0.0 and np.isfinite(logs["loss"])


def test_fit_and_evaluate_on_a_dataset_of_batch_dicts(trained):
    model, batch, _, _ = trained
    with_ids = dict(batch, ids=np.array([b"a", b"b", b"c", b"d"]))
    dataset = tf.data.Dataset.from_tensors(with_ids).repeat(2)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "ctc_loss", "attention_loss", "attention_accuracy", "non_finite_steps"}
    logs = model.evaluate(dataset, return_dict=True, verbose=0)
    assert np.isfinite(logs["loss"]) and logs["attention_accuracy"] > 0.5


def test_build_model_and_make_optimizer_from_config():
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict(
        {
            "encoder": {"num_layers": 2, "units": 8, "projection_units": 6, "subsample": (1, 2)},
            "attention": "content",
            "attention_dim": 5,
            "attention_filters": 3,
            "attention_width": 7,
            "sharpening": 1.5,
            "decoder_units": 9,
            "init_scale": 0.05,
        }
    )
    config.loss = ml_collections.ConfigDict({"ctc_weight": 0.2})
    config.optimizer = ml_collections.ConfigDict(
        {"name": "adadelta", "learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-8, "clip_norm": 5.0}
    )
    vocab = Vocabulary()
    model = build_model(config, config, vocab, cmvn=(np.zeros(D), np.full(D, 3.0)))
    assert model.ctc_weight == 0.2 and model.attention_type == "content" and model.sos_id == vocab.sos_id == 32
    assert model.decoder.units == 9 and model.encoder.subsample == (1, 2) and model.vocab_size == 33
    np.testing.assert_allclose(model.cmvn.std.numpy(), 3.0)
    same = build_model(config.model, config.loss, vocab)
    assert same.get_config()["encoder_projection_units"] == 6
    optimizer = make_optimizer(config)
    assert isinstance(optimizer, keras.optimizers.Adadelta)
    assert optimizer.global_clipnorm == 5.0 and optimizer.rho == 0.95
    assert isinstance(make_optimizer({"name": "adam", "clip_norm": 0}), keras.optimizers.Adam)
    with pytest.raises(ValueError):
        make_optimizer({"name": "sgd"})
    with pytest.raises(ValueError):
        model.compile(optimizer="adam", jit_compile=True)


def test_trained_model_reloads_with_optimizer_state(trained, tmp_path):
    model, batch, _, _ = trained
    path = tmp_path / "trained.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert int(restored.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) > 0
    np.testing.assert_allclose(
        float(restored.compute_losses(batch)["loss"]), float(model.compute_losses(batch)["loss"]), rtol=1e-6
    )


_MIRRORED_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
from tf_jointctc.training.strategy import make_strategy, split_cpu
split_cpu(2)
import keras
sys.path.insert(0, sys.argv[1])
from test_model import _batch, _small
batch = _batch(1)
keras.utils.set_random_seed(0)
single = _small(units=16)
w0 = single.get_weights()
single.compile(optimizer=keras.optimizers.SGD(0.1))
single.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
strategy = make_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    multi = _small(units=16)
    multi.set_weights(w0)
    multi.compile(optimizer=keras.optimizers.SGD(0.1))
multi.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
for s, m, w in zip(single.get_weights(), multi.get_weights(), w0):
    np.testing.assert_allclose(m - w, s - w, atol=1e-6)
before = multi.get_weights()
bad = dict(batch, features=batch["features"].copy())
bad["features"][0, 0, 0] = np.inf
history = multi.fit(tf.data.Dataset.from_tensors(bad), epochs=1, verbose=0).history
assert history["non_finite_steps"] == [1.0], history
for b, a in zip(before, multi.get_weights()):
    np.testing.assert_array_equal(a, b)
print("MIRRORED OK")
"""


def test_mirrored_strategy_matches_single_device(tmp_path):
    """Two logical CPUs (needs a fresh process): same update as one device, non-finite step skipped."""
    import os
    import subprocess
    import sys

    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED_SCRIPT)
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(tests_dir), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(script), tests_dir], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0 and "MIRRORED OK" in result.stdout, result.stderr[-3000:]


def test_label_smoothing_is_the_uniform_mixture_of_the_cross_entropy():
    rng = np.random.default_rng(7)
    logits = tf.constant(rng.standard_normal((2, 3, 5)).astype("float32"))
    targets = tf.constant([[1, 4, 0], [2, 2, 3]])
    plain = model_lib.attention_cross_entropy(targets, logits, 0.0).numpy()
    log_probs = tf.nn.log_softmax(logits).numpy()
    np.testing.assert_allclose(plain, -np.take_along_axis(log_probs, targets.numpy()[..., None], -1)[..., 0],
                               rtol=1e-5)
    smoothed = model_lib.attention_cross_entropy(targets, logits, 0.1).numpy()
    np.testing.assert_allclose(smoothed, 0.9 * plain - 0.1 * log_probs.mean(-1), rtol=1e-5)
    model = _small(label_smoothing=0.1)
    assert JointCTCAttention.from_config(model.get_config()).label_smoothing == 0.1
    with pytest.raises(ValueError, match="label_smoothing"):
        _small(label_smoothing=1.0)


def test_warmup_decay_schedules():
    cosine = model_lib.WarmupDecay(2e-3, warmup_steps=10, kind="cosine", total_steps=110, final_fraction=0.05)
    values = [float(cosine(step)) for step in range(0, 200)]
    assert values[0] == pytest.approx(2e-4) and values[9] == pytest.approx(2e-3)
    assert all(a < b for a, b in zip(values[:9], values[1:10]))  # warm-up rises
    assert all(a >= b for a, b in zip(values[9:], values[10:]))  # then never rises
    assert values[59] == pytest.approx(1e-3 + 0.5e-4, rel=1e-3)  # half way: the mean of peak and floor
    assert values[150] == pytest.approx(1e-4)  # the floor after total_steps
    inverse = model_lib.WarmupDecay(1e-3, warmup_steps=100, kind="inverse_sqrt")
    assert float(inverse(399)) == pytest.approx(1e-3 * 0.5)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(cosine))
    assert float(restored(59)) == pytest.approx(values[59])
    assert model_lib.learning_rate({"learning_rate": 3e-3}) == 3e-3
    schedule = model_lib.learning_rate({"learning_rate": 3e-3, "schedule": "cosine", "warmup_steps": 5}, 50)
    assert isinstance(schedule, model_lib.WarmupDecay) and schedule.total_steps == 50
    optimizer = make_optimizer({"name": "adam", "learning_rate": 3e-3, "schedule": "cosine", "warmup_steps": 5}, 50)
    assert float(optimizer.learning_rate) == pytest.approx(3e-3 / 5)  # step 0 of the warm-up
    with pytest.raises(ValueError, match="total_steps"):
        model_lib.learning_rate({"schedule": "cosine", "warmup_steps": 5}, 0)
    with pytest.raises(ValueError, match="schedule"):
        model_lib.learning_rate({"schedule": "step"}, 10)


def test_cosine_schedule_follows_the_spent_fraction_of_a_time_budget():
    """With `elapsed_fraction` (train.max_minutes) the cosine's progress is the larger of the step count's and
    the budget's, so the rate is at its floor when the budget ends, however few steps fitted in it."""
    spent = tf.Variable(0.0, trainable=False)
    timed = model_lib.WarmupDecay(2e-3, warmup_steps=10, kind="cosine", total_steps=110, elapsed_fraction=spent)
    plain = model_lib.WarmupDecay(2e-3, warmup_steps=10, kind="cosine", total_steps=110)
    assert float(timed(59)) == pytest.approx(float(plain(59)))  # no time spent: the step count decides
    spent.assign(0.5)
    assert float(timed(19)) == pytest.approx(float(plain(59)))  # step 20 of 110, but half the budget spent
    assert float(timed(89)) == pytest.approx(float(plain(89)))  # the step count is further along
    assert float(timed(5)) == pytest.approx(float(plain(5)))  # the warm-up follows the steps alone
    spent.assign(1.0)
    assert float(timed(30)) == pytest.approx(1e-4)  # the floor when the budget is spent
    assert "elapsed_fraction" not in timed.get_config()  # a run-time input, not configuration
    optimizer = make_optimizer({"name": "adam", "learning_rate": 3e-3, "schedule": "cosine", "warmup_steps": 5},
                               50, elapsed_fraction=spent)
    assert float(optimizer.learning_rate) == pytest.approx(3e-3 / 5)  # step 0: still the warm-up
    assert model_lib.learning_rate({"schedule": "inverse_sqrt", "warmup_steps": 5}, 0, spent).elapsed_fraction is None


def test_input_stacking_from_config_and_time_reduction():
    config = ml_collections.ConfigDict(
        {"encoder": {"num_layers": 2, "units": 8, "projection_units": 6, "subsample": (1, 1), "input_stack": 3},
         "decoder_units": 8, "attention_dim": 8, "attention_width": 5, "attention_filters": 2}
    )
    model = build_model(config, {"ctc_weight": 0.5}, Vocabulary())
    assert model.time_reduction == 3 and model.encoder.input_stack == 3
    out = model(_batch())
    assert out["encoder_lengths"].numpy().tolist() == [8, 7, 5, 4]
    assert JointCTCAttention.from_config(model.get_config()).time_reduction == 3


def test_encoder_input_dims_from_config():
    config = ml_collections.ConfigDict(
        {"encoder": {"num_layers": 2, "units": 8, "projection_units": 6, "subsample": (1, 1), "input_stack": 3,
                     "input_dims": 40},
         "decoder_units": 8, "attention_dim": 8, "attention_width": 5, "attention_filters": 2}
    )
    model = build_model(config, {"ctc_weight": 0.5}, Vocabulary())
    out = model(_batch())
    assert model.encoder.input_dims == 40
    assert model.encoder.blstms[0].forward_layer.cell.kernel.shape == (120, 32)  # 3 stacked frames x 40
    assert out["encoder_lengths"].numpy().tolist() == [8, 7, 5, 4]
    assert JointCTCAttention.from_config(model.get_config()).encoder.input_dims == 40


def test_encoder_conv_front_end_from_config():
    """`model.encoder.conv_channels` builds the front end over the 3 groups of 40 mel bins; a train step updates
    its kernels; the setting survives serialization."""
    config = ml_collections.ConfigDict(
        {"encoder": {"num_layers": 2, "units": 8, "projection_units": 6, "subsample": (1, 1), "input_stack": 3,
                     "conv_channels": 4},
         "decoder_units": 8, "attention_dim": 8, "attention_width": 5, "attention_filters": 2}
    )
    model = build_model(config, {"ctc_weight": 0.5}, Vocabulary())
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    out = model(_batch())
    assert model.encoder.frontend.output_dim() == 40  # 40 mel bins halved twice, 4 channels
    assert model.encoder.blstms[0].forward_layer.cell.kernel.shape == (120, 32)  # 3 stacked frames x 40
    assert out["encoder_lengths"].numpy().tolist() == [8, 7, 5, 4]
    kernel = model.encoder.frontend.convolutions[0].kernel
    before = kernel.numpy().copy()
    model.train_step(_batch())
    assert np.abs(kernel.numpy() - before).max() > 0
    assert JointCTCAttention.from_config(model.get_config()).encoder.conv_channels == 4


@pytest.mark.parametrize("option", [{"encoder_conv_channels": 4}, {"vtlp_warp": (0.9, 1.1)}, {"spectral_tilt": 1.0},
                                    {"spec_augment": {"freq_masks": 1, "freq_width": 4}}])
def test_mel_bin_options_refuse_features_not_in_three_groups_when_built(option):
    """The front end, VTLP, the tilt and SpecAugment read the features as 3 groups (static, delta, delta-delta) of
    `feature_dim / 3` mel bins: another feature size is refused when the model is made, not at its first call."""
    tiny = dict(vocab_size=10, encoder_layers=1, encoder_units=4, encoder_projection_units=4, encoder_subsample=(1,),
                attention_dim=4, decoder_units=4, embedding_dim=4, **option)
    with pytest.raises(ValueError, match="3 groups of mel bins .* got 100"):
        JointCTCAttention(cmvn_mean=np.zeros(100, np.float32), **tiny)
    for feature_dim in (120, 240):
        assert JointCTCAttention(cmvn_mean=np.zeros(feature_dim, np.float32), **tiny).num_mel_bins == feature_dim // 3


def test_mel_bin_options_follow_the_features_mel_bins():
    """With 80 mel bins (240 features per frame) VTLP warps 80 bins, SpecAugment masks within 80, the tilt spans 80
    and the front end halves 80 twice: 20 bins x 4 channels reach the stacking."""
    model = JointCTCAttention(
        vocab_size=10, encoder_layers=1, encoder_units=4, encoder_projection_units=4, encoder_subsample=(1,),
        encoder_input_stack=3, encoder_conv_channels=4, vtlp_warp=(0.9, 1.1), spectral_tilt=1.0,
        spec_augment={"freq_masks": 1, "freq_width": 4}, attention_dim=4, decoder_units=4, embedding_dim=4,
        cmvn_mean=np.zeros(240, np.float32))
    assert (model.vtlp.bins, model.spec_augment.bins, model.tilt.bins) == (80, 80, 80)
    assert model.encoder.frontend.output_dim() == 80
    assert model.encoder.blstms[0].forward_layer.cell.kernel.shape[0] == 3 * 80
    assert JointCTCAttention.from_config(model.get_config()).num_mel_bins == 80


def test_few_mel_bins_build_with_the_mel_options_off_and_are_refused_by_those_that_need_more():
    """A model of 4 mel bins (12 features) builds with every mel-axis option off, SpecAugment's default band width
    of 8 bins included; VTLP on 1 bin, and a band wider than the bins, are refused."""
    tiny = dict(vocab_size=10, encoder_layers=1, encoder_units=4, encoder_projection_units=4, encoder_subsample=(1,),
                attention_dim=4, decoder_units=4, embedding_dim=4)
    assert JointCTCAttention(cmvn_mean=np.zeros(12, np.float32), **tiny).num_mel_bins == 4
    with pytest.raises(ValueError, match="VTLP needs bins >= 2, got 1"):
        JointCTCAttention(cmvn_mean=np.zeros(3, np.float32), vtlp_warp=(0.9, 1.1), **tiny)
    with pytest.raises(ValueError, match="freq_width 8 must be at most bins 4"):
        JointCTCAttention(cmvn_mean=np.zeros(12, np.float32), spec_augment={"freq_masks": 1}, **tiny)


def test_bfloat16_training_projections_from_config():
    config = ml_collections.ConfigDict(
        {"encoder": {"num_layers": 2, "units": 8, "projection_units": 6, "subsample": (1, 1),
                     "training_projection_dtype": "bfloat16"},
         "decoder_units": 8, "attention_dim": 8, "attention_width": 5, "attention_filters": 2}
    )
    model = build_model(config, {"ctc_weight": 0.5}, Vocabulary())
    assert model.encoder.training_projection_dtype == "bfloat16"
    clone = JointCTCAttention.from_config(model.get_config())
    assert clone.encoder.training_projection_dtype == "bfloat16"
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(_batch(), return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["loss"] > 0
    assert all(v.dtype == "float32" for v in model.trainable_variables)


def test_forget_bias_is_added_to_every_lstm_forget_gate():
    keras.utils.set_random_seed(3)
    plain = _small()
    keras.utils.set_random_seed(3)
    biased = _small(forget_bias=1.0)
    def cells(m):
        encoder = [layer.cell for b in m.encoder.blstms for layer in (b.forward_layer, b.backward_layer)]
        return [*encoder, m.decoder.cell]

    for a, b in zip(cells(plain), cells(biased)):
        diff = b.bias.numpy() - a.bias.numpy()
        units = a.units
        np.testing.assert_allclose(diff[units : 2 * units], 1.0, atol=1e-6)
        np.testing.assert_allclose(np.delete(diff, np.s_[units : 2 * units]), 0.0, atol=1e-6)
    assert JointCTCAttention.from_config(biased.get_config()).forget_bias == 1.0


def test_ctc_warmup_trains_the_encoder_alone_then_the_joint_loss():
    keras.utils.set_random_seed(5)
    model = _small(ctc_weight=0.3, ctc_warmup_steps=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    step = tf.function(model.train_step)
    batch = _batch()
    decoder_before = [v.numpy() for v in model.decoder.trainable_variables]
    encoder_before = [v.numpy() for v in model.encoder.trainable_variables]
    logs = step(batch)
    h, lengths = model.encode(batch["features"], batch["feature_lengths"])
    assert float(logs["attention_loss"]) == 0.0  # the decoder did not run
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(decoder_before, model.decoder.trainable_variables))
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(encoder_before, model.encoder.trainable_variables))
    step(batch)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(decoder_before, model.decoder.trainable_variables))
    model.reset_metrics()
    logs = step(batch)  # update 3: eq. 14
    assert float(logs["attention_loss"]) > 0.0
    assert sum(not np.array_equal(a, v.numpy()) for a, v in zip(decoder_before, model.decoder.trainable_variables)) > 3
    assert int(model.optimizer.iterations) == 3
    assert JointCTCAttention.from_config(model.get_config()).ctc_warmup_steps == 2
    assert not _small(ctc_weight=1.0, ctc_warmup_steps=5).uses_ctc_warmup


def test_guided_attention_loss_against_brute_force():
    rng = np.random.default_rng(11)
    weights = rng.random((2, 4, 6)).astype("float32")
    token_lengths, frame_lengths = np.array([4, 2]), np.array([6, 3])
    got = model_lib.guided_attention_loss(weights, token_lengths, frame_lengths, 0.25).numpy()
    for b in range(2):
        total = 0.0
        for u in range(token_lengths[b]):
            for frame in range(frame_lengths[b]):
                d = (frame + 0.5) / frame_lengths[b] - (u + 0.5) / token_lengths[b]
                total += weights[b, u, frame] * (1 - np.exp(-(d**2) / (2 * 0.25**2)))
        assert got[b] == pytest.approx(total, rel=1e-5)
    diagonal = np.zeros((1, 5, 5), "float32")
    diagonal[0, np.arange(5), np.arange(5)] = 1.0
    flat = np.zeros((1, 5, 5), "float32")
    flat[0, :, 0] = 1.0
    assert model_lib.guided_attention_loss(diagonal, [5], [5]).numpy()[0] == pytest.approx(0.0, abs=1e-6)
    assert model_lib.guided_attention_loss(flat, [5], [5]).numpy()[0] > 1.0


def test_guided_attention_adds_to_the_training_loss_only():
    batch = _batch()
    keras.utils.set_random_seed(2)
    plain = _small(ctc_weight=0.3)
    keras.utils.set_random_seed(2)
    guided = _small(ctc_weight=0.3, guided_attention_weight=2.0)
    assert float(guided.compute_losses(batch, training=False)["loss"]) == pytest.approx(
        float(plain.compute_losses(batch, training=False)["loss"]), rel=1e-6)
    out = plain(batch)
    extra = model_lib.guided_attention_loss(out["attention_weights"], batch["label_lengths"] + 1,
                                            out["encoder_lengths"]).numpy().mean()
    assert extra > 0
    assert float(guided.compute_losses(batch, training=True)["loss"]) == pytest.approx(
        float(plain.compute_losses(batch, training=True)["loss"]) + 2.0 * extra, rel=1e-5)
    assert JointCTCAttention.from_config(guided.get_config()).guided_attention_weight == 2.0


def _augmented_and_plain(key, on, off):
    """Two tiny models with the same weights, `model.<key>` = `on` and `off`, and the config of the first."""
    config = ml_collections.ConfigDict(
        {"encoder": {"num_layers": 2, "units": 8, "projection_units": 6, "subsample": (1, 1)},
         "decoder_units": 8, "attention_dim": 8, "attention_width": 5, "attention_filters": 2, key: on}
    )
    keras.utils.set_random_seed(0)
    model = build_model(config, {"ctc_weight": 0.5}, Vocabulary())
    keras.utils.set_random_seed(0)
    plain = build_model(config.to_dict() | {key: off}, {"ctc_weight": 0.5}, Vocabulary())
    return model, plain, config


def test_spec_augment_masks_training_only_and_round_trips():
    model, plain, config = _augmented_and_plain(
        "spec_augment", {"freq_masks": 2, "freq_width": 10, "time_masks": 2, "time_width": 8, "max_time_fraction": 0.5},
        {"freq_masks": 0, "time_masks": 0})
    batch = _batch()
    h, _ = model.encode(batch["features"], batch["feature_lengths"], training=False)
    h_plain, _ = plain.encode(batch["features"], batch["feature_lengths"], training=False)
    np.testing.assert_array_equal(h.numpy(), h_plain.numpy())  # inference never masks
    h_train, _ = model.encode(batch["features"], batch["feature_lengths"], training=True)
    h_plain_train, _ = plain.encode(batch["features"], batch["feature_lengths"], training=True)
    assert np.abs(h_train.numpy() - h_plain_train.numpy()).max() > 1e-3  # training does
    again = JointCTCAttention.from_config(model.get_config())
    assert again.spec_augment.freq_masks == 2 and again.spec_augment.time_width == 8
    assert not build_model(config.to_dict() | {"spec_augment": {}}, {"ctc_weight": 0.5}, Vocabulary()
                           ).spec_augment.enabled


def _assert_acts_in_training_only(model, plain):
    """`model` (a feature augmentation on) encodes `_batch()` as `plain` (off, same weights) at inference, and
    differently in training, where `plain` has nothing random; returns model's training output."""
    batch = _batch()
    h, _ = model.encode(batch["features"], batch["feature_lengths"], training=False)
    h_plain, _ = plain.encode(batch["features"], batch["feature_lengths"], training=False)
    np.testing.assert_array_equal(h.numpy(), h_plain.numpy())  # inference never augments
    h_train, _ = model.encode(batch["features"], batch["feature_lengths"], training=True)
    h_plain_train, _ = plain.encode(batch["features"], batch["feature_lengths"], training=True)
    np.testing.assert_array_equal(h_plain_train.numpy(), h_plain.numpy())  # nothing else random in training
    assert np.abs(h_train.numpy() - h_plain_train.numpy()).max() > 1e-4  # so this is the augmentation
    return h_train


def test_vtlp_warps_training_only_round_trips_and_defaults_off():
    model, plain, config = _augmented_and_plain("vtlp_warp", (0.8, 1.2), (1.0, 1.0))
    h_train = _assert_acts_in_training_only(model, plain)
    batch = _batch()
    in_graph = tf.function(lambda f, n: model.encode(f, n, training=True)[0])
    np.testing.assert_allclose(in_graph(batch["features"], batch["feature_lengths"]).numpy(), h_train.numpy(),
                               atol=1e-6)  # the same warp in a traced training graph (same update, same seed)
    assert JointCTCAttention.from_config(model.get_config()).vtlp.warp_range == (0.8, 1.2)
    unset = config.to_dict()
    del unset["vtlp_warp"]
    assert not build_model(unset, {"ctc_weight": 0.5}, Vocabulary()).vtlp.enabled
    assert build_model(unset, {"ctc_weight": 0.5}, Vocabulary()).vtlp.probability == 1.0
    config.vtlp_probability = 0.25
    rebuilt = build_model(config, {"ctc_weight": 0.5}, Vocabulary())
    assert JointCTCAttention.from_config(rebuilt.get_config()).vtlp.probability == 0.25


def test_spectral_tilt_acts_in_training_only_round_trips_and_defaults_off():
    model, plain, config = _augmented_and_plain("spectral_tilt", 2.0, 0.0)
    _assert_acts_in_training_only(model, plain)
    assert JointCTCAttention.from_config(model.get_config()).tilt.max_slope == 2.0
    unset = config.to_dict()
    del unset["spectral_tilt"]
    assert not build_model(unset, {"ctc_weight": 0.5}, Vocabulary()).tilt.enabled


def test_intermediate_ctc_mixes_a_middle_layers_ctc_loss_through_the_same_head():
    batch = _batch()
    keras.utils.set_random_seed(4)
    plain = _small(ctc_weight=0.3)
    inter = JointCTCAttention.from_config({**plain.get_config(), "intermediate_ctc_weight": 0.4})
    inter.set_weights(plain.get_weights())  # no weights are added
    assert inter.intermediate_ctc_layer == 1  # 0: the middle of 2 layers
    out, reference = inter.compute_losses(batch), plain.compute_losses(batch)
    np.testing.assert_allclose(out["ctc"], reference["ctc"], rtol=1e-6)  # the top layer's, as before
    np.testing.assert_allclose(out["attention"], reference["attention"], rtol=1e-6)
    # By hand: the first layer's output (before the second layer's frame skipping) through the CTC head.
    x = inter.cmvn(tf.constant(batch["features"]))
    h_1, lengths_1 = inter.encoder.layer_outputs(x, batch["feature_lengths"])[0]
    assert lengths_1.numpy().tolist() == batch["feature_lengths"].tolist()
    middle = model_lib.ctc_lib.ctc_loss(inter.ctc_head(h_1), lengths_1, batch["labels"], batch["label_lengths"])
    np.testing.assert_allclose(out["intermediate_ctc"], middle.numpy(), rtol=1e-5)
    assert not np.allclose(middle.numpy(), out["ctc"].numpy(), rtol=1e-2)
    expected = 0.3 * np.mean(0.6 * out["ctc"] + 0.4 * middle.numpy()) + 0.7 * np.mean(out["attention"])
    np.testing.assert_allclose(float(out["loss"]), expected, rtol=1e-5)
    # The warm-up's CTC-only loss mixes the two as well; decoding reads the top layer alone.
    np.testing.assert_allclose(float(inter.compute_losses(batch, ctc_only=True)["loss"]),
                               np.mean(0.6 * out["ctc"] + 0.4 * middle.numpy()), rtol=1e-5)
    np.testing.assert_array_equal(inter(batch)["ctc_logits"].numpy(), plain(batch)["ctc_logits"].numpy())
    assert "intermediate_ctc_loss" in [m.name for m in inter.metrics]
    assert "intermediate_ctc_loss" not in [m.name for m in plain.metrics]
    assert JointCTCAttention.from_config(inter.get_config()).intermediate_ctc_weight == 0.4


def test_intermediate_ctc_trains_the_lower_layers_from_both_losses():
    keras.utils.set_random_seed(6)
    model = _small(ctc_weight=1.0, intermediate_ctc_weight=0.5, intermediate_ctc_layer=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    logs = tf.function(model.train_step)(_batch())
    assert float(logs["intermediate_ctc_loss"]) > 0.0 and float(logs["ctc_loss"]) > 0.0
    assert int(model.optimizer.iterations) == 1


@pytest.mark.parametrize("settings", [{"intermediate_ctc_weight": 1.0}, {"intermediate_ctc_weight": -0.1},
                                      {"intermediate_ctc_weight": 0.3, "intermediate_ctc_layer": 2},
                                      {"intermediate_ctc_weight": 0.3, "intermediate_ctc_layer": -1}])
def test_intermediate_ctc_refuses_bad_settings(settings):
    with pytest.raises(ValueError, match="intermediate_ctc"):
        _small(**settings)


def test_intermediate_ctc_from_config():
    config = ml_collections.ConfigDict(
        {"model": {"encoder": {"num_layers": 4, "units": 8, "projection_units": 6, "subsample": (1, 1, 2, 2)},
                   "decoder_units": 8, "attention_dim": 8, "attention_width": 5, "attention_filters": 2},
         "loss": {"ctc_weight": 0.5, "intermediate_ctc_weight": 0.3, "intermediate_ctc_layer": 3}})
    model = build_model(config, config, Vocabulary())
    assert (model.intermediate_ctc_weight, model.intermediate_ctc_layer) == (0.3, 3)
    del config.loss["intermediate_ctc_layer"]
    assert build_model(config, config, Vocabulary()).intermediate_ctc_layer == 2


def test_self_conditioned_ctc_feeds_the_middle_layers_posteriors_to_the_layer_above():
    batch = _batch()
    keras.utils.set_random_seed(7)
    inter = _small(ctc_weight=0.3, intermediate_ctc_weight=0.4, init_scale=0.5)  # large enough to matter
    conditioned = JointCTCAttention.from_config({**inter.get_config(), "ctc_self_conditioning": True})
    assert len(conditioned.weights) == len(inter.weights) + 2  # the [V] -> [P] Dense
    by_path = {w.path.split("/", 1)[1]: w for w in conditioned.weights}
    for w in inter.weights:
        by_path[w.path.split("/", 1)[1]].assign(w)
    features, lengths = batch["features"], batch["feature_lengths"]
    # By hand: layer 2 reads h_1 + Dense(softmax(CTC logits of h_1)) on valid frames.
    x = conditioned.cmvn(tf.constant(features))
    h_1, lengths_1 = conditioned.encoder.layer_outputs(x, lengths)[0]
    valid = tf.cast(tf.sequence_mask(lengths_1, tf.shape(h_1)[1]), tf.float32)[..., None]
    h_1c = h_1 + conditioned.ctc_conditioning(tf.nn.softmax(conditioned.ctc_head(h_1))) * valid
    rest = PyramidalBLSTM(num_layers=1, units=16, projection_units=16, subsample=(2,))
    rest(h_1c, lengths_1)
    rest.set_weights(conditioned.encoder.get_weights()[len(conditioned.encoder.get_weights()) // 2:])
    h_top, lengths_top = rest(h_1c, lengths_1)
    h, encoder_lengths = conditioned.encode(features, lengths)
    np.testing.assert_allclose(h.numpy(), h_top.numpy(), atol=1e-5)
    np.testing.assert_array_equal(encoder_lengths.numpy(), lengths_top.numpy())
    assert np.abs(h.numpy() - inter.encode(features, lengths)[0].numpy()).max() > 1e-2
    # The intermediate loss reads h_1 before its conditioning; the top layer's CTC reads the conditioned stack.
    out, reference = conditioned.compute_losses(batch), inter.compute_losses(batch)
    np.testing.assert_allclose(out["intermediate_ctc"], reference["intermediate_ctc"], rtol=1e-5)
    assert not np.allclose(out["ctc"], reference["ctc"], rtol=1e-2)
    # Padding never changes a result: the shortest utterance alone gives its row of the batch.
    short = int(np.argmin(lengths))
    alone, _ = conditioned.encode(features[short:short + 1, :lengths[short]], lengths[short:short + 1])
    np.testing.assert_allclose(alone.numpy()[0], h.numpy()[short, :alone.shape[1]], atol=1e-5)
    assert np.all(h.numpy()[short, int(encoder_lengths[short]):] == 0.0)
    # Zeroed conditioning is the plain intermediate-CTC model.
    for weight in conditioned.ctc_conditioning.weights:
        weight.assign(tf.zeros_like(weight))
    np.testing.assert_allclose(conditioned.encode(features, lengths)[0].numpy(),
                               inter.encode(features, lengths)[0].numpy(), atol=1e-6)


def test_self_conditioned_ctc_trains_and_round_trips_its_config():
    keras.utils.set_random_seed(8)
    model = _small(ctc_weight=0.5, intermediate_ctc_weight=0.3, ctc_self_conditioning=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = model.ctc_conditioning.kernel.numpy().copy()
    logs = tf.function(model.train_step)(_batch())
    assert float(logs["intermediate_ctc_loss"]) > 0.0
    assert np.abs(model.ctc_conditioning.kernel.numpy() - before).max() > 0.0
    again = JointCTCAttention.from_config(model.get_config())
    assert again.ctc_self_conditioning and again.ctc_conditioning is not None
    config = ml_collections.ConfigDict(
        {"model": {"encoder": {"num_layers": 4, "units": 8, "projection_units": 6, "subsample": (1, 1, 2, 2)},
                   "decoder_units": 8, "attention_dim": 8, "attention_width": 5, "attention_filters": 2,
                   "ctc_self_conditioning": True},
         "loss": {"ctc_weight": 0.5, "intermediate_ctc_weight": 0.3}})
    assert build_model(config, config, Vocabulary()).ctc_self_conditioning
    del config.model["ctc_self_conditioning"]
    assert build_model(config, config, Vocabulary()).ctc_conditioning is None


@pytest.mark.parametrize("settings", [{"ctc_weight": 0.5}, {"ctc_weight": 0.0, "intermediate_ctc_weight": 0.3}])
def test_self_conditioned_ctc_needs_an_intermediate_ctc(settings):
    with pytest.raises(ValueError, match="ctc_self_conditioning"):
        _small(ctc_self_conditioning=True, **settings)
