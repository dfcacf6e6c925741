import math

import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc.layers.conv_frontend import ConvFrontEnd
from tf_jointctc.layers.encoder import PyramidalBLSTM


def _features(lengths, bins, groups, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((len(lengths), max(lengths), groups * bins)).astype("float32")
    return x, np.asarray(lengths, "int32")


def _reference(x, lengths, layer):
    """The front end by brute force in numpy: zero-padded 3 x 3 windows, stride 2 along the mel axis, ReLU,
    frames past the length zeroed after every layer; groups of `bins` features as input channels."""
    batch, steps, dim = x.shape
    h = x.reshape(batch, steps, dim // layer.bins, layer.bins).transpose(0, 1, 3, 2)
    valid = (np.arange(steps)[None, :] < lengths[:, None])[:, :, None, None]
    h = h * valid
    for conv in layer.convolutions:
        kernel, bias = (w.numpy() for w in conv.weights)  # [3, 3, C_in, C_out], [C_out]
        width = h.shape[2]
        out_width = math.ceil(width / 2)
        pad_width = max((out_width - 1) * 2 + 3 - width, 0)
        left = pad_width // 2
        padded = np.pad(h, [(0, 0), (1, 1), (left, pad_width - left), (0, 0)])
        out = np.zeros((batch, steps, out_width, kernel.shape[-1]), "float64")
        for t in range(steps):
            for f in range(out_width):
                window = padded[:, t:t + 3, 2 * f:2 * f + 3, :]  # [B, 3, 3, C_in]
                out[:, t, f] = np.einsum("bijc,ijco->bo", window, kernel) + bias
        h = np.maximum(out, 0.0) * valid
    return h.reshape(batch, steps, -1)


@pytest.mark.parametrize("bins, groups, channels", [(8, 3, 4), (5, 1, 2)])
def test_matches_a_brute_force_convolution_and_zeroes_padding(bins, groups, channels):
    layer = ConvFrontEnd(channels, bins=bins)
    x, lengths = _features([9, 6, 1], bins, groups, seed=1)
    x[1, 6:] = 7.0  # garbage past the length
    out = layer(x, lengths).numpy()
    assert out.shape == (3, 9, layer.output_dim())
    assert layer.output_bins() == math.ceil(math.ceil(bins / 2) / 2)
    np.testing.assert_allclose(out, _reference(x, lengths, layer), atol=1e-5)
    for i, n in enumerate(lengths):
        assert np.all(out[i, n:] == 0.0)
    assert np.abs(out[0]).sum() > 0


def test_padding_never_changes_an_utterances_output():
    """Exactly, for whatever the padded frames hold in the same batch; to float rounding against the utterance
    alone (a batch of another shape: oneDNN's AVX2 convolution sums in another order there, 3e-8 apart, while
    the AVX-512 one of stops 42-48 happened to give the same bits)."""
    layer = ConvFrontEnd(3, bins=8)
    x, lengths = _features([11, 5], 8, 3, seed=2)
    x[1, 5:] = -4.0
    batched = layer(x, lengths).numpy()
    x[1, 5:] = 100.0
    np.testing.assert_array_equal(layer(x, lengths).numpy(), batched)
    alone = layer(x[1:2, :5], lengths[1:2]).numpy()
    np.testing.assert_allclose(batched[1, :5], alone[0], rtol=0, atol=1e-6)
    assert np.abs(alone).sum() > 0


def test_refuses_features_not_in_whole_groups_and_bad_sizes():
    with pytest.raises(ValueError, match="groups of 8 mel bins, got 20"):
        ConvFrontEnd(2, bins=8)(np.zeros((1, 3, 20), "float32"), np.array([3], "int32"))
    with pytest.raises(ValueError, match="channels"):
        ConvFrontEnd(0)
    with pytest.raises(ValueError, match="num_layers"):
        ConvFrontEnd(2, num_layers=0)


def test_serializes():
    layer = ConvFrontEnd(6, bins=10, num_layers=1)
    clone = ConvFrontEnd.from_config(layer.get_config())
    assert (clone.channels, clone.bins, clone.num_layers, clone.output_dim()) == (6, 10, 1, 30)


def test_encoder_feeds_the_front_end_to_the_stacking():
    """With `conv_channels` the first BLSTM reads `input_stack` stacked frames of the front end's output; lengths
    follow the stacking alone; padding never changes a result; the setting survives serialization."""
    enc = PyramidalBLSTM(num_layers=2, units=4, projection_units=3, subsample=(1, 1), input_stack=3,
                         conv_channels=2, conv_bins=8)
    x, lengths = _features([14, 8], 8, 3, seed=3)
    x[1, 8:] = 3.0
    h, out_lengths = enc(x, lengths)
    assert enc.frontend.output_dim() == 4
    assert enc.blstms[0].forward_layer.cell.kernel.shape == (12, 16)  # 3 stacked frames x (2 bins x 2 channels)
    assert out_lengths.numpy().tolist() == [5, 3]
    alone, _ = enc(x[1:2, :8], lengths[1:2])
    np.testing.assert_allclose(h[1, :3].numpy(), alone[0].numpy(), atol=1e-6)
    clone = PyramidalBLSTM.from_config(enc.get_config())
    assert (clone.conv_channels, clone.conv_bins) == (2, 8)
    assert PyramidalBLSTM(num_layers=1, subsample=(1,)).frontend is None
    with pytest.raises(ValueError, match="conv_channels"):
        PyramidalBLSTM(num_layers=1, subsample=(1,), conv_channels=-1)
    assert tf.reduce_all(tf.equal(h[1, 3:], 0.0))
