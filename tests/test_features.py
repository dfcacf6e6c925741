"""Tests for tf_jointctc.features: framing, log-mel, deltas, padding invariance, CMVN, TFLite conversion."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc import features as F

RNG_SEED = 1234


def _noise(num_samples: int, seed: int, scale: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(num_samples) * scale).astype(np.float32)


def _pad_batch(waves: list[np.ndarray], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    width = width if width is not None else max(len(w) for w in waves)
    batch = np.zeros((len(waves), width), np.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch, np.array([len(w) for w in waves], np.int32)


def _reference_log_mel(wave: np.ndarray, window_type: str = "povey") -> np.ndarray:
    """Independent numpy path in float64: a framing loop, np.fft.rfft and the whole filterbank as one matmul
    (the layer: gather, tf.signal.rfft in float32 and one weighted sum per filter)."""
    count = F.num_frames(len(wave))
    frames = np.stack([wave[t * 160 : t * 160 + 400] for t in range(count)]).astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    emphasized = frames.copy()
    emphasized[:, 1:] -= 0.97 * frames[:, :-1]
    emphasized[:, 0] -= 0.97 * frames[:, 0]
    n = np.arange(400)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / 399)
    window = hann**0.85 if window_type == "povey" else 0.54 - 0.46 * np.cos(2 * np.pi * n / 399)
    power = np.abs(np.fft.rfft(emphasized * window, n=512)) ** 2
    return np.log(np.maximum(power @ F.mel_filterbank_matrix(), 1e-10))


def _reference_deltas(feats: np.ndarray, window: int = 2) -> np.ndarray:
    """Straightforward HTK regression deltas for one utterance [T, D] with replicated edges, looping over t."""
    count = feats.shape[0]
    denominator = 2 * sum(n * n for n in range(1, window + 1))

    def delta(c: np.ndarray) -> np.ndarray:
        out = np.zeros_like(c)
        for t in range(count):
            for n in range(1, window + 1):
                out[t] += n * (c[min(t + n, count - 1)] - c[max(t - n, 0)])
        return out / denominator

    d1 = delta(feats)
    return np.concatenate([feats, d1, delta(d1)], axis=1)


@pytest.fixture(scope="module")
def extractor() -> F.FeatureExtractor:
    return F.FeatureExtractor()


# ---------------------------------------------------------------- frame counts and shapes


@pytest.mark.parametrize(
    "samples, expected", [(0, 0), (1, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16000, 98), (16160, 99)]
)
def test_num_frames_scalar_int(samples: int, expected: int) -> None:
    result = F.num_frames(samples)
    assert isinstance(result, int)
    assert result == expected


def test_num_frames_numpy_and_tensor() -> None:
    samples = np.array([0, 399, 400, 559, 560, 16000, 16160], np.int32)
    expected = np.array([0, 0, 1, 1, 2, 98, 99])
    np.testing.assert_array_equal(F.num_frames(samples), expected)
    result = F.num_frames(tf.constant(samples))
    assert isinstance(result, tf.Tensor) and result.dtype == tf.int32
    np.testing.assert_array_equal(result.numpy(), expected)
    np.testing.assert_array_equal(F.num_frames(tf.constant(samples, tf.int64)).numpy(), expected)


@pytest.mark.parametrize("width", [0, 200, 399, 400, 1000, 16000])
def test_shapes_and_lengths(extractor: F.FeatureExtractor, width: int) -> None:
    lengths = np.array([width, width // 2, 0], np.int32)
    waves = np.zeros((3, width), np.float32)
    waves[:, :] = _noise(width, seed=width)[None, :] if width else 0.0
    feats, out_lengths = extractor(waves, lengths)
    expected_t = F.num_frames(width)
    assert tuple(feats.shape) == (3, expected_t, 120)
    assert out_lengths.dtype == tf.int32
    np.testing.assert_array_equal(out_lengths.numpy(), F.num_frames(lengths))
    assert np.all(np.isfinite(feats.numpy()))


def test_log_mel_matches_numpy_fft_reference() -> None:
    wave = _noise(8000, seed=RNG_SEED, scale=0.3)
    for window_type in ("povey", "hamming"):
        fbank, lengths = F.LogMelFilterbank(window_type=window_type)(wave[None, :], np.array([8000], np.int32))
        reference = _reference_log_mel(wave, window_type)
        assert int(lengths[0]) == reference.shape[0] == 48
        np.testing.assert_allclose(fbank.numpy()[0], reference, atol=2e-4, rtol=0)


def test_compute_output_shape(extractor: F.FeatureExtractor) -> None:
    feats_shape, lengths_shape = extractor.compute_output_shape((4, 16000), (4,))
    assert feats_shape == (4, 98, 120) and lengths_shape == (4,)
    assert extractor.compute_output_shape((None, None), (None,))[0] == (None, None, 120)


def test_num_samples_beyond_width_is_clamped(extractor: F.FeatureExtractor) -> None:
    wave = _noise(5000, seed=2)[None, :]
    feats, lengths = extractor(wave, np.array([99999], np.int32))
    assert int(lengths[0]) == feats.shape[1] == F.num_frames(5000)


# ---------------------------------------------------------------- deltas


def test_deltas_match_numpy_reference() -> None:
    rng = np.random.default_rng(RNG_SEED)
    lengths = np.array([9, 1, 4, 0, 2], np.int32)
    width = 12
    feats = rng.standard_normal((len(lengths), width, 5)).astype(np.float32)
    # Garbage (not zeros) in the padding: it must not leak into valid frames.
    out = F.Deltas()(feats, lengths).numpy()
    assert out.shape == (len(lengths), width, 15)
    for b, count in enumerate(lengths):
        if count:
            np.testing.assert_allclose(
                out[b, :count], _reference_deltas(feats[b, :count].astype(np.float64)), atol=1e-5
            )
        np.testing.assert_array_equal(out[b, count:], 0.0)


def test_deltas_of_linear_ramp() -> None:
    # Interior delta of c_t = 3t is exactly 3, delta-delta 0 (far enough from the edges).
    ramp = (3.0 * np.arange(20, dtype=np.float32))[None, :, None]
    out = F.Deltas()(ramp, np.array([20], np.int32)).numpy()[0]
    np.testing.assert_allclose(out[2:18, 1], 3.0, atol=1e-5)
    np.testing.assert_allclose(out[4:16, 2], 0.0, atol=1e-5)
    assert abs(out[0, 1] - 3.0) > 0.1  # the replicated edge changes the first delta


# ---------------------------------------------------------------- padding invariance and range


def test_padding_invariance(extractor: F.FeatureExtractor) -> None:
    sizes = [400, 1234, 16000, 5000, 399, 27001]
    waves = [_noise(n, seed=i, scale=0.2) for i, n in enumerate(sizes)]
    batch, lengths = _pad_batch(waves, width=max(sizes) + 777)
    batch_feats, batch_lengths = extractor(batch, lengths)
    batch_feats = batch_feats.numpy()
    for i, wave in enumerate(waves):
        alone, alone_lengths = extractor(wave[None, :], np.array([len(wave)], np.int32))
        count = F.num_frames(len(wave))
        assert int(alone_lengths[0]) == int(batch_lengths[i]) == count
        assert alone.shape[1] == count
        np.testing.assert_allclose(batch_feats[i, :count], alone.numpy()[0], atol=1e-5, rtol=0)
        np.testing.assert_array_equal(batch_feats[i, count:], 0.0)


def test_log_mel_zero_past_num_frames() -> None:
    waves = [_noise(n, seed=n) for n in (3000, 900, 16000)]
    batch, lengths = _pad_batch(waves)
    fbank, out_lengths = F.LogMelFilterbank()(batch, lengths)
    fbank = fbank.numpy()
    assert fbank.shape == (3, 98, 40)
    for b, count in enumerate(out_lengths.numpy()):
        assert count == F.num_frames(len(waves[b]))
        assert np.all(fbank[b, :count] != 0.0)
        np.testing.assert_array_equal(fbank[b, count:], 0.0)


def test_padding_content_does_not_leak(extractor: F.FeatureExtractor) -> None:
    wave = _noise(6000, seed=7)
    clean, _ = _pad_batch([wave], width=9000)
    dirty = clean.copy()
    dirty[0, 6000:] = 0.9  # loud junk in the padded region
    lengths = np.array([6000], np.int32)
    np.testing.assert_array_equal(extractor(clean, lengths)[0].numpy(), extractor(dirty, lengths)[0].numpy())


def test_silence_and_loud_input_are_finite(extractor: F.FeatureExtractor) -> None:
    loud = np.sign(_noise(8000, seed=3)) * 1.0  # full-scale square-ish noise
    very_loud = _noise(8000, seed=4, scale=1000.0)  # far outside [-1, 1]
    batch = np.stack([np.zeros(8000, np.float32), loud.astype(np.float32), very_loud])
    feats, _ = extractor(batch, np.full([3], 8000, np.int32))
    feats = feats.numpy()
    assert np.all(np.isfinite(feats))
    # Silence sits exactly on the floor: static = log(1e-10), deltas 0.
    np.testing.assert_allclose(feats[0, :, :40], np.log(1e-10), rtol=1e-6)
    np.testing.assert_array_equal(feats[0, :, 40:], 0.0)
    assert feats[2, :, :40].mean() > feats[1, :, :40].mean() > feats[0, :, :40].mean()


@pytest.mark.parametrize("frequency", [700.0, 1000.0, 2000.0, 6000.0])
def test_sine_energy_in_nearest_mel_bin(frequency: float) -> None:
    # 1 kHz is the fixed point of the HTK mel scale (mel(1000) ~= 1000), so it alone cannot tell a mel axis from
    # a linear one: the other frequencies can.
    t = np.arange(16000) / 16000.0
    sine = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    fbank, _ = F.LogMelFilterbank()(sine[None, :], np.array([16000], np.int32))
    profile = fbank.numpy()[0].mean(axis=0)
    # Centers computed here from the HTK formula, independently of the module.
    mel = np.linspace(1127 * np.log1p(20 / 700), 1127 * np.log1p(7600 / 700), 42)
    centers = 700 * np.expm1(mel / 1127)[1:-1]
    expected = int(np.argmin(np.abs(centers - frequency)))
    assert int(np.argmax(profile)) == expected
    # Energy is concentrated: bins far away are much lower (measured 15-20 nats below the peak at 1 kHz).
    far = expected + 8 if expected + 8 < 40 else expected - 8
    assert profile[expected] - profile[far] > 10.0
    if frequency == 1000.0:
        assert expected == 13 and abs(centers[expected] - 1000.0) < 60.0


# ---------------------------------------------------------------- serialization


def test_feature_extractor_config_round_trip(extractor: F.FeatureExtractor) -> None:
    config = extractor.get_config()
    json.dumps(config)
    clone = F.FeatureExtractor.from_config(config)
    wave = _noise(4000, seed=11)[None, :]
    lengths = np.array([4000], np.int32)
    np.testing.assert_array_equal(clone(wave, lengths)[0].numpy(), extractor(wave, lengths)[0].numpy())
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(extractor))
    assert isinstance(restored, F.FeatureExtractor)
    hamming = F.FeatureExtractor(window_type="hamming", num_mel_bins=23)
    assert F.FeatureExtractor.from_config(hamming.get_config()).filterbank.window_type == "hamming"
    assert hamming(wave, lengths)[0].shape[-1] == 69
    assert (hamming.num_mel_bins, hamming.feature_dim) == (23, 69)
    assert F.FeatureExtractor.from_config(hamming.get_config()).num_mel_bins == 23


# ---------------------------------------------------------------- CMVN


def _random_feature_dataset(seed: int = 0, batches: int = 4, dim: int = 120) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    elements = []
    for _ in range(batches):
        lengths = rng.integers(1, 30, size=6).astype(np.int32)
        feats = (rng.standard_normal((6, 30, dim)) * rng.uniform(0.5, 4.0, dim) + rng.uniform(-10, 10, dim)).astype(
            np.float32
        )
        feats *= (np.arange(30)[None, :] < lengths[:, None])[..., None]
        elements.append({"features": feats, "feature_lengths": lengths})
    return tf.data.Dataset.from_generator(
        lambda: iter(elements),
        output_signature={
            "features": tf.TensorSpec([None, None, dim], tf.float32),
            "feature_lengths": tf.TensorSpec([None], tf.int32),
        },
    )


def test_cmvn_normalizes_its_own_statistics() -> None:
    dataset = _random_feature_dataset()
    stats = F.compute_cmvn_stats(dataset)
    cmvn = F.GlobalCMVN.from_stats(stats)
    assert [w.trainable for w in cmvn.weights] == [False, False]
    assert cmvn.trainable_weights == []
    valid_rows = []
    for batch in dataset.as_numpy_iterator():
        lengths = batch["feature_lengths"]
        mask = np.arange(batch["features"].shape[1])[None, :] < lengths[:, None]
        out = cmvn(batch["features"], mask=tf.constant(mask)).numpy()
        np.testing.assert_array_equal(out[~mask], 0.0)
        valid_rows.append(out[mask])
    normalized = np.concatenate(valid_rows)
    assert normalized.shape[0] == stats.count
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalized.std(axis=0), 1.0, atol=1e-4)
    # max_batches limits what is read.
    assert F.compute_cmvn_stats(dataset, max_batches=1).count < stats.count


def test_cmvn_stats_match_numpy_and_floor_std() -> None:
    rng = np.random.default_rng(5)
    feats = rng.standard_normal((3, 10, 4)).astype(np.float32)
    feats[..., 3] = 2.5  # constant dimension -> std floored
    lengths = np.array([10, 3, 6])
    stats = F.CMVNStats(dim=4)
    stats.accumulate(feats[:2], lengths[:2])
    stats.accumulate(feats[2:], lengths[2:])
    valid = np.concatenate([feats[b, :n] for b, n in enumerate(lengths)]).astype(np.float64)
    assert stats.count == 19
    np.testing.assert_allclose(stats.mean, valid.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(stats.std[:3], valid.std(axis=0)[:3], atol=1e-9)
    assert stats.std[3] == pytest.approx(1e-5)
    with pytest.raises(ValueError):
        _ = F.CMVNStats(dim=4).mean


def test_cmvn_stats_json_round_trip(tmp_path) -> None:
    stats = F.compute_cmvn_stats(_random_feature_dataset(seed=3))
    path = tmp_path / "cmvn.json"
    stats.save(path)
    payload = json.loads(path.read_text())
    assert payload["count"] == stats.count and len(payload["mean"]) == 120
    loaded = F.CMVNStats.load(path)
    assert loaded.count == stats.count and loaded.dim == 120
    np.testing.assert_array_equal(loaded.sum, stats.sum)
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.std, stats.std)


def test_global_cmvn_config_round_trip_and_model_save(tmp_path) -> None:
    mean = [1.0, -2.0, 0.5]
    std = [2.0, 0.5, 1.0]
    cmvn = F.GlobalCMVN(mean, std)
    config = cmvn.get_config()
    json.dumps(config)
    clone = F.GlobalCMVN.from_config(config)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    expected = (x - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(clone(x).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(cmvn(x).numpy(), expected, atol=1e-6)
    # Inside a saved .keras model the statistics travel with the weights.
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, F.GlobalCMVN(mean, std)(inputs))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded(x).numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError):
        F.GlobalCMVN([0.0, 0.0], [1.0, 0.0])


def _reference_utterance_cmvn(features: np.ndarray, lengths: np.ndarray, mode: str) -> np.ndarray:
    """Per utterance in float64, over its valid rows only (numpy's mean and std of a slice)."""
    out = np.zeros(features.shape, np.float64)
    for b, n in enumerate(lengths):
        valid = features[b, :n].astype(np.float64)
        if n == 0 or mode == "none":
            out[b, :n] = valid
            continue
        centred = valid - valid.mean(axis=0)
        if mode == "mean_var":
            centred /= np.sqrt(np.maximum(valid.var(axis=0), F.UtteranceCMVN.VARIANCE_FLOOR))
        out[b, :n] = centred
    return out


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 9), min_size=1, max_size=4),
    extra_padding=st.integers(0, 3),
    mode=st.sampled_from(F.UTTERANCE_CMVN_MODES),
    seed=st.integers(0, 2**16),
)
def test_utterance_cmvn_matches_numpy_and_ignores_padding(lengths, extra_padding, mode, seed) -> None:
    rng = np.random.default_rng(seed)
    width = max(lengths) + extra_padding
    features = (rng.standard_normal((len(lengths), width, 5)) * 3 + rng.standard_normal(5) * 4).astype(np.float32)
    lengths = np.array(lengths, np.int32)
    mask = np.arange(width)[None, :] < lengths[:, None]
    layer = F.UtteranceCMVN(mode)
    out = layer(features, mask=tf.constant(mask)).numpy()
    expected = _reference_utterance_cmvn(features, lengths, mode)
    np.testing.assert_allclose(out, expected, atol=2e-4, rtol=1e-4)
    assert np.all(out[~mask] == 0.0)
    # What the padding holds never reaches a valid frame.
    garbage = features.copy()
    garbage[~mask] = 1e4
    np.testing.assert_array_equal(layer(garbage, mask=tf.constant(mask)).numpy()[mask], out[mask])


def test_utterance_cmvn_removes_a_constant_offset_and_a_scale() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 40, 6)).astype(np.float32)
    shifted = x + rng.standard_normal(6).astype(np.float32) * 5
    scaled = x * 3.0 - 2.0
    mean_layer, mean_var_layer = F.UtteranceCMVN("mean"), F.UtteranceCMVN("mean_var")
    np.testing.assert_allclose(mean_layer(shifted).numpy(), mean_layer(x).numpy(), atol=1e-4)
    np.testing.assert_allclose(mean_var_layer(scaled).numpy(), mean_var_layer(x).numpy(), atol=1e-4)
    # A constant feature dimension (zero variance) stays finite: zero after centring.
    constant = np.full((1, 10, 2), 4.0, np.float32)
    np.testing.assert_array_equal(mean_var_layer(constant).numpy(), 0.0)


def test_utterance_cmvn_config_round_trip_and_bad_mode() -> None:
    layer = F.UtteranceCMVN("mean_var")
    config = layer.get_config()
    json.dumps(config)
    assert F.UtteranceCMVN.from_config(config).mode == "mean_var"
    with pytest.raises(ValueError, match="mean_var"):
        F.UtteranceCMVN("per_speaker")


# ---------------------------------------------------------------- TFLite


def _tflite_interpreter(model_content: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on the optional extra
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_content=model_content)


@pytest.mark.parametrize("quantize", ["none", "float16", "int8"])
def test_feature_extractor_converts_to_tflite_builtins(extractor: F.FeatureExtractor, quantize: str) -> None:
    """Float, float16 and dynamic-range int8 conversions give the same features, digital silence included:
    nothing in the extractor may be a quantizable matmul (a quantized DFT or mel matmul once cost the int8 demo
    model 34 CER points), nor a constant that float16 rounds to 0 (the 1e-10 log floor cost it 10)."""

    @tf.function(
        input_signature=[tf.TensorSpec([1, None], tf.float32, name="waveform"), tf.TensorSpec([1], tf.int32, name="n")]
    )
    def serve(waveform: tf.Tensor, num_samples: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return extractor(waveform, num_samples)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], extractor)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    model_content = converter.convert()

    interpreter = _tflite_interpreter(model_content)
    op_names = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any("Flex" in name or name == "CUSTOM" for name in op_names), op_names

    for num_samples in (12345, 4000):
        wave = _noise(num_samples, seed=num_samples, scale=0.3)[None, :]
        wave[:, 1000:3000] = 0.0  # digital silence: every bin at the log floor
        lengths = np.array([num_samples], np.int32)
        expected_feats, expected_lengths = extractor(wave, lengths)

        inputs = {d["name"]: d for d in interpreter.get_input_details()}
        wave_detail = next(d for name, d in inputs.items() if "waveform" in name)
        lengths_detail = next(d for name, d in inputs.items() if "waveform" not in name)
        interpreter.resize_tensor_input(wave_detail["index"], wave.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(wave_detail["index"], wave)
        interpreter.set_tensor(lengths_detail["index"], lengths)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        feats = next(o for o in outputs if o.ndim == 3)
        out_lengths = next(o for o in outputs if o.ndim == 1)
        assert feats.shape == tuple(expected_feats.shape) == (1, F.num_frames(num_samples), 120)
        np.testing.assert_array_equal(out_lengths, expected_lengths.numpy())
        assert np.isfinite(feats).all()
        # float16 rounds the window and filter weights (~1e-3 relative): ~0.01 in log-mel, rarely up to 0.05.
        np.testing.assert_allclose(feats, expected_feats.numpy(), atol=0.1 if quantize == "float16" else 1e-3, rtol=0)


def test_utterance_cmvn_converts_to_tflite_builtins() -> None:
    """The exported recognizer runs the per-utterance normalization inside TFLite: built-in ops only, and the
    interpreter gives what TensorFlow gives."""
    layer = F.UtteranceCMVN("mean_var")

    @tf.function(input_signature=[tf.TensorSpec([1, None, 5], tf.float32), tf.TensorSpec([1], tf.int32)])
    def serve(features: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        return layer(features, mask=tf.sequence_mask(lengths, tf.shape(features)[1]))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], layer)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = _tflite_interpreter(converter.convert())
    op_names = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any("Flex" in name or name == "CUSTOM" for name in op_names), op_names
    features = (np.random.default_rng(3).standard_normal((1, 30, 5)) * 2 + 7).astype(np.float32)
    lengths = np.array([21], np.int32)
    inputs = interpreter.get_input_details()
    features_detail = next(d for d in inputs if len(d["shape"]) == 3)
    lengths_detail = next(d for d in inputs if len(d["shape"]) == 1)
    interpreter.resize_tensor_input(features_detail["index"], features.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(features_detail["index"], features)
    interpreter.set_tensor(lengths_detail["index"], lengths)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, serve(features, lengths).numpy(), atol=1e-5)
    np.testing.assert_allclose(got[0, :21].std(axis=0), 1.0, atol=1e-3)


def test_mel_band_edges_are_equally_spaced_in_mel_and_span_the_band():
    edges = F.mel_band_edges(4, 100.0, 4000.0)
    assert len(edges) == 6 and np.allclose(np.diff(edges), np.diff(edges)[0])
    np.testing.assert_allclose(edges[[0, -1]], F.hz_to_mel([100.0, 4000.0]))
