"""A bidirectional LSTM computed as one time loop for both directions, with a hand-written backward pass.

Same mathematics as `keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True))` called with a
padding mask (gates i, f, c, o; sigmoid gates, tanh cell; the backward direction starts at each utterance's last
valid frame), on the weights of such a layer, so the encoder keeps the Keras layers as weight holders (their
checkpoints, initializers and configs are unchanged) and only the computation differs. Where the time goes
differently from Keras' generic RNN loop:

- the input projections of all frames and both directions are one GEMM before the loop (`[B*T, D] x [D, 8H]`);
- the backward direction is time-reversed per utterance (`tf.reverse_sequence`) so both directions run in one
  loop, as one batched matmul `[2, B, H] x [2, H, 4H]` per step, and the loop needs no per-step masking (every
  utterance's valid frames are a prefix in both directions; outputs past the length are zeroed at the end);
- the backward pass (`tf.custom_gradient`) keeps only the per-step work that is sequential (`dz_t`, `dh_{t-1}`)
  in its loop: the gate derivatives of all steps are computed before it in a few large element-wise ops, and
  the recurrent-weight gradient after it as one GEMM over all steps, instead of accumulating a `[H, 4H]` outer
  product per step.

Only while loops, matmuls and element-wise ops: the inference path (no custom gradient) converts to TFLite
built-ins (WHILE, BATCH_MATMUL, LOGISTIC, TANH).
"""

from __future__ import annotations

import tensorflow as tf


def _cell(z: tf.Tensor, c: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """One LSTM step from the pre-activations z [D, B, 4H] (gate order i, f, c, o) and the cell c [D, B, H]:
    returns (i, f, g, o, new c, new h)."""
    zi, zf, zg, zo = tf.split(z, 4, axis=-1)
    i, f, g, o = tf.sigmoid(zi), tf.sigmoid(zf), tf.tanh(zg), tf.sigmoid(zo)
    c = f * c + i * g
    return i, f, g, o, c, o * tf.tanh(c)


def _zero_state(inputs: tf.Tensor, recurrent: tf.Tensor) -> tf.Tensor:
    """Zeros [D, B, H] for inputs [T, D, B, 4H] and recurrent [D, H, 4H]."""
    return tf.zeros(tf.stack([tf.shape(inputs)[1], tf.shape(inputs)[2], tf.shape(recurrent)[1]]), inputs.dtype)


def _state_shape(inputs: tf.Tensor, recurrent: tf.Tensor) -> tf.TensorShape:
    """The static part of [D, B, H] (the TFLite converter needs it: batch 1 at export)."""
    return inputs.shape[1:3].concatenate(recurrent.shape[1:2])


def lstm_loop(inputs: tf.Tensor, recurrent: tf.Tensor) -> tf.Tensor:
    """The recurrence only, no gradient bookkeeping (inference and export).

    inputs [T, D, B, 4H] (input projection + bias per direction D), recurrent [D, H, 4H] -> h [T, D, B, H].
    """
    steps = tf.shape(inputs)[0]
    zeros = _zero_state(inputs, recurrent)
    outputs = tf.TensorArray(inputs.dtype, size=steps, element_shape=_state_shape(inputs, recurrent))

    def body(t, h, c, outputs):
        *_, c, h = _cell(inputs[t] + tf.matmul(h, recurrent), c)
        return t + 1, h, c, outputs.write(t, h)

    _, _, _, outputs = tf.while_loop(lambda t, *_: t < steps, body, (0, zeros, zeros, outputs))
    return _stack(outputs, inputs.shape[:1].concatenate(_state_shape(inputs, recurrent)))


def _stack(array: tf.TensorArray, static_shape: tf.TensorShape) -> tf.Tensor:
    stacked = array.stack()
    stacked.set_shape(static_shape)
    return stacked


@tf.custom_gradient
def lstm_loop_with_gradient(inputs: tf.Tensor, recurrent: tf.Tensor):
    """`lstm_loop` for training: saves the gates and cells, and back-propagates by hand (module docstring)."""
    steps = tf.shape(inputs)[0]
    zeros = _zero_state(inputs, recurrent)
    shape3 = tf.TensorShape([None, None, None])
    arrays = [tf.TensorArray(inputs.dtype, size=steps, element_shape=shape3) for _ in range(6)]

    def body(t, h, c, hs, cs, i_s, f_s, g_s, o_s):
        i, f, g, o, c, h = _cell(inputs[t] + tf.matmul(h, recurrent), c)
        return (t + 1, h, c, hs.write(t, h), cs.write(t, c), i_s.write(t, i), f_s.write(t, f), g_s.write(t, g),
                o_s.write(t, o))

    loop = tf.while_loop(lambda t, *_: t < steps, body, (0, zeros, zeros, *arrays))
    state_shape = inputs.shape[:1].concatenate(_state_shape(inputs, recurrent))
    hs, cs, i_s, f_s, g_s, o_s = (_stack(a, state_shape) for a in loop[3:])

    def grad(d_hs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # c_{t-1} and h_{t-1} of every step (zeros before the first).
        c_prev = tf.concat([zeros[None], cs[:-1]], axis=0)
        h_prev = tf.concat([zeros[None], hs[:-1]], axis=0)
        recurrent_t = tf.transpose(recurrent, [0, 2, 1])  # [D, 4H, H]
        # Everything that does not depend on the recurrence, for all steps at once (large element-wise ops),
        # so that the loop below only does: dh, dc, dz = [dc, dc, dc, dh] * factors, dz R^T, dc f.
        tanh_c = tf.tanh(cs)
        cell_from_h = o_s * (1.0 - tf.square(tanh_c))  # d c_t / d h_t (through h = o tanh c)
        factors = tf.concat(  # d z / d(dc) for i, f, g; d z / d(dh) for o
            [g_s * i_s * (1.0 - i_s), c_prev * f_s * (1.0 - f_s), i_s * (1.0 - tf.square(g_s)),
             tanh_c * o_s * (1.0 - o_s)],
            axis=-1,
        )
        d_z = tf.TensorArray(inputs.dtype, size=steps, element_shape=shape3)

        def back(t, dh_next, dc_next, d_z):
            dh = d_hs[t] + dh_next
            dc = dc_next + dh * cell_from_h[t]
            dz = tf.concat([dc, dc, dc, dh], axis=-1) * factors[t]
            return t - 1, tf.matmul(dz, recurrent_t), dc * f_s[t], d_z.write(t, dz)

        _, _, _, d_z = tf.while_loop(lambda t, *_: t >= 0, back, (steps - 1, zeros, zeros, d_z))
        d_inputs = tf.reshape(d_z.stack(), tf.shape(inputs))
        d_recurrent = tf.einsum("tdbh,tdbg->dhg", h_prev, d_inputs)  # one GEMM over all steps
        return d_inputs, d_recurrent

    return hs, grad


def bidirectional_lstm(x: tf.Tensor, lengths: tf.Tensor, forward: tuple, backward: tuple, training: bool = False
                       ) -> tf.Tensor:
    """Masked bidirectional LSTM.

    Args:
      x: [B, T, D] inputs; frames at and after `lengths` are ignored.
      lengths: [B] int32 valid frames.
      forward, backward: (kernel [D, 4H], recurrent_kernel [H, 4H], bias [4H]) of each direction, Keras' gate
        order (i, f, c, o).
      training: use the hand-written gradient (training) or the plain loop (inference, export).

    Returns:
      [B, T, 2H]: forward then backward outputs, exactly zero at padded frames.
    """
    steps = tf.shape(x)[1]
    kernel = tf.concat([forward[0], backward[0]], axis=1)  # [D, 8H]
    bias = tf.concat([forward[2], backward[2]], axis=0)
    projected = tf.einsum("btd,dg->btg", x, kernel) + bias  # [B, T, 8H], one GEMM for every frame
    fw, bw = tf.split(projected, 2, axis=-1)
    bw = tf.reverse_sequence(bw, lengths, seq_axis=1, batch_axis=0)
    inputs = tf.transpose(tf.stack([fw, bw]), [2, 0, 1, 3])  # [T, 2, B, 4H]
    recurrent = tf.stack([forward[1], backward[1]])  # [2, H, 4H]
    loop = lstm_loop_with_gradient if training else lstm_loop
    hs = tf.transpose(loop(inputs, recurrent), [1, 2, 0, 3])  # [2, B, T, H]
    out_bw = tf.reverse_sequence(hs[1], lengths, seq_axis=1, batch_axis=0)
    mask = tf.cast(tf.sequence_mask(lengths, steps), x.dtype)[..., None]
    return tf.concat([hs[0], out_bw], axis=-1) * mask
