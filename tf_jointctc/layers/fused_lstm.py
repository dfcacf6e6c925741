"""A bidirectional LSTM computed as one time loop for both directions, with a hand-written backward pass.

Same mathematics as `keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True))` called with a
padding mask (gates i, f, c, o; sigmoid gates, tanh cell; the backward direction starts at each utterance's last
valid frame), on the weights of such a layer, so the encoder keeps the Keras layers as weight holders (their
checkpoints, initializers and configs are unchanged) and only the computation differs. Where the time goes
differently from Keras' generic RNN loop:

- the input projection of all frames is one GEMM per direction before the loop (`[T*B, D] x [D, 4H]`), on
  time-major inputs, so the loop reads `[B, 4H]` slices without any transpose of the projected tensor;
- the backward direction runs on time-reversed inputs (`tf.reverse_sequence`, applied to the narrow input
  rather than to the projection), so both directions advance in the same loop, and the loop needs no per-step
  masking (every utterance's valid frames are a prefix in both directions; outputs past the length are zeroed
  at the end);
- each direction keeps its own state, step tensors and plain 2-D matmul `[B, H] x [H, 4H]`: on this CPU two
  matmuls are faster than one batched `[2, B, H] x [2, H, 4H]`, and no per-step stacking is needed;
- the backward pass (`tf.custom_gradient`) keeps only the per-step work that is sequential (`dz_t`, `dh_{t-1}`)
  in its loop: the gate derivatives of all steps are computed before it in a few large element-wise ops, and
  the recurrent-weight gradient after it as one 2-D GEMM over all steps (`h_{t-1}^T dz_t`, `[H, T*B] x
  [T*B, 4H]`), instead of accumulating a `[H, 4H]` outer product per step.

Training can round the operands of its matmuls to bfloat16 (products rounded to bfloat16 as the native kernel
returns them, float32 states and gates): the input
projection's (`input_projection`, the encoder's `training_projection_dtype`) and, for `unidirectional_lstm`
(the character LM's `training_dtype`), the recurrence's and the recurrent-weight gradient's too. The product
is the same on every CPU (`_operand`); "auto" uses bfloat16 only where the CPU multiplies it natively.

Only while loops, matmuls and element-wise ops: the inference path (no custom gradient) converts to TFLite
built-ins (WHILE, FULLY_CONNECTED / BATCH_MATMUL, LOGISTIC, TANH). Inside `tflite_fusable_lstms()` (the TFLite
export), each direction of an inference-time LSTM with a static batch is traced instead as the composite
function that the TFLite converter replaces by its fused `UNIDIRECTIONAL_SEQUENCE_LSTM` kernel (`_lstm_composite`).
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Iterator, Sequence

import tensorflow as tf
from absl import logging

_COMPOSITES = {"enabled": False}
# Frames per iteration of the time loops (inference, training forward and backward): the loop's own ops run
# once per block of frames (docs/performance.md, stop 35).
STEPS_PER_ITERATION = 4
# What training may round its matmul operands to (`training_dtype`, `training_projection_dtype`): "auto" is
# bfloat16 where the CPU multiplies bfloat16 natively (`cpu_has_native_bfloat16`) and float32 elsewhere.
TRAINING_DTYPES = ("float32", "bfloat16", "auto")
# /proc/cpuinfo flags of the x86 units that multiply bfloat16 with float32 accumulation (Intel AMX, AVX512-BF16).
_NATIVE_BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX-BF16 or AVX512-BF16, from /proc/cpuinfo; False where
    it cannot be read). Elsewhere TensorFlow's bfloat16 matmul is no faster than float32 and may accumulate in
    bfloat16, so `_operand` emulates the native arithmetic instead."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in _NATIVE_BFLOAT16_FLAGS)


def _cell(z: tf.Tensor, c: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """One LSTM step from the pre-activations z [B, 4H] (gate order i, f, c, o) and the cell c [B, H]:
    returns (i, f, g, o, new c, new h)."""
    zi, zf, zg, zo = tf.split(z, 4, axis=-1)
    i, f, g, o = tf.sigmoid(zi), tf.sigmoid(zf), tf.tanh(zg), tf.sigmoid(zo)
    c = f * c + i * g
    return i, f, g, o, c, o * tf.tanh(c)


def _zero_state(inputs: tf.Tensor, recurrent: tf.Tensor) -> tf.Tensor:
    """Zeros [B, H] for inputs [T, B, 4H] and recurrent [H, 4H]."""
    return tf.zeros(tf.stack([tf.shape(inputs)[1], tf.shape(recurrent)[0]]), inputs.dtype)


def _state_shape(inputs: tf.Tensor, recurrent: tf.Tensor) -> tf.TensorShape:
    """The static part of [B, H] (the TFLite converter needs it: batch 1 at export)."""
    return inputs.shape[1:2].concatenate(recurrent.shape[:1])


def check_training_dtype(dtype: str, name: str = "matmul dtype") -> None:
    """Raises ValueError (naming the setting `name`) unless `dtype` is one of `TRAINING_DTYPES`."""
    if dtype not in TRAINING_DTYPES:
        raise ValueError(f"{name} must be 'float32', 'bfloat16' or 'auto', got {dtype!r}")


def resolve_training_dtype(dtype: str, name: str = "matmul dtype") -> str:
    """"float32" or "bfloat16" for a `TRAINING_DTYPES` setting: "auto" is "bfloat16" on a CPU with native
    bfloat16 matmuls (`cpu_has_native_bfloat16`), else "float32" (on this project's AVX2-only machines bfloat16
    matmuls bought no speed: docs/performance.md). Raises ValueError naming the setting `name` for any other
    value."""
    check_training_dtype(dtype, name)
    if dtype != "auto":
        return dtype
    return "bfloat16" if cpu_has_native_bfloat16() else "float32"


def _operand(tensor: tf.Tensor, dtype: str) -> tf.Tensor:
    """`tensor` as a matmul operand of `dtype` ("float32": unchanged; "bfloat16": rounded to bfloat16). Where
    the CPU has no native bfloat16 matmul, the rounded operand is cast back to float32, and `_rounded_product`
    rounds the float32 product: the native one's arithmetic (bfloat16 operands, float32 accumulation, a
    bfloat16 result) on every CPU."""
    if dtype == "float32":
        return tensor
    rounded = tf.cast(tensor, tf.bfloat16)
    return rounded if cpu_has_native_bfloat16() else tf.cast(rounded, tf.float32)


def _rounded_product(product: tf.Tensor) -> tf.Tensor:
    """A product of `_operand`s as float32 holding a bfloat16 value: TensorFlow's native bfloat16 matmul
    (oneDNN on AMX / AVX512-BF16) accumulates in float32 but returns bfloat16, and the emulated float32 product
    is rounded the same way."""
    return tf.cast(tf.cast(product, tf.bfloat16), tf.float32)


def _matmul(a: tf.Tensor, b: tf.Tensor, dtype: str, **kwargs) -> tf.Tensor:
    """a x b in float32, or on bfloat16-rounded operands (`b` already rounded by `_operand`) with the
    bfloat16-rounded product as float32 (`_rounded_product`)."""
    if dtype == "float32":
        return tf.matmul(a, b, **kwargs)
    return _rounded_product(tf.matmul(_operand(a, dtype), b, **kwargs))


def _in_blocks(x: tf.Tensor, blocks: tf.Tensor, block: int) -> tf.Tensor:
    """[T, ...] -> [blocks, block, ...], zero-padded at the end to blocks x block frames. Keeps the static
    shape of the trailing axes (a padding tensor hides it from shape inference; the loops' states need it)."""
    padded = tf.pad(x, tf.concat([[[0, blocks * block - tf.shape(x)[0]]], tf.zeros([x.shape.rank - 1, 2], tf.int32)],
                                 0))
    blocked = tf.reshape(padded, tf.concat([[blocks, block], tf.shape(x)[1:]], axis=0))
    blocked.set_shape(tf.TensorShape([None, block]).concatenate(x.shape[1:]))
    return blocked


def _from_blocks(array: tf.TensorArray, steps: tf.Tensor, static_shape: tf.TensorShape) -> tf.Tensor:
    """A TensorArray of `blocks` elements [block, ...] -> [steps, ...], the padding dropped."""
    stacked = array.stack()
    stacked = tf.reshape(stacked, tf.concat([[-1], tf.shape(stacked)[2:]], axis=0))[:steps]
    stacked.set_shape(static_shape)
    return stacked


def _forward(inputs: Sequence[tf.Tensor], recurrent: Sequence[tf.Tensor], dtype: str = "float32",
             steps_per_iteration: int = STEPS_PER_ITERATION) -> list[list[tf.Tensor]]:
    """The training loop's forward: all directions advance in one loop, `steps_per_iteration` frames per
    iteration (the frames zero-padded to a multiple of it; padded steps only follow the real ones and are
    dropped). Per direction returns the stacked [T, B, H] step tensors [h, c, i, f, g, o] (what the backward
    pass needs). `dtype`: the recurrent matmuls' operands (`_matmul`)."""
    steps = tf.shape(inputs[0])[0]
    block = int(steps_per_iteration)
    blocks = (steps + block - 1) // block
    zeros = [_zero_state(x, r) for x, r in zip(inputs, recurrent)]
    shapes = [_state_shape(x, r) for x, r in zip(inputs, recurrent)]
    kernels = [_operand(r, dtype) for r in recurrent]
    x_blocks = [_in_blocks(x, blocks, block) for x in inputs]  # [blocks, block, B, 4H]
    arrays = [tf.TensorArray(x.dtype, size=blocks, element_shape=tf.TensorShape([block, 6]).concatenate(s))
              for x, s in zip(inputs, shapes)]

    def body(b, hs, cs, arrays):
        new_h, new_c, written = [], [], []
        for d, (x, r) in enumerate(zip(x_blocks, kernels)):
            x_block, h, c, per_step = x[b], hs[d], cs[d], []
            for j in range(block):
                i, f, g, o, c, h = _cell(x_block[j] + _matmul(h, r, dtype), c)
                per_step.append((h, c, i, f, g, o))
            new_h.append(h)
            new_c.append(c)
            written.append(arrays[d].write(b, tf.stack([tf.stack(v) for v in per_step])))  # [block, 6, B, H]
        return b + 1, new_h, new_c, written

    _, _, _, arrays = tf.while_loop(lambda b, *_: b < blocks, body, (0, zeros, zeros, arrays))
    return [tf.unstack(_from_blocks(array, steps, x.shape[:1].concatenate([6]).concatenate(shape)), 6, axis=1)
            for array, x, shape in zip(arrays, inputs, shapes)]  # per direction 6 x [T, B, H]


def _gates_ifo_g(z: tf.Tensor) -> tf.Tensor:
    """[..., 4H] in Keras' gate order (i, f, c, o) -> (i, f, o, c): the three sigmoid gates side by side."""
    units = z.shape[-1] // 4
    return tf.concat([z[..., :2 * units], z[..., 3 * units:], z[..., 2 * units:3 * units]], axis=-1)


def lstm_loop(inputs: tf.Tensor, recurrent: tf.Tensor, steps_per_iteration: int = STEPS_PER_ITERATION) -> tf.Tensor:
    """The recurrence of one direction only, no gradient bookkeeping (inference and export).

    inputs [T, B, 4H] (input projection + bias), recurrent [H, 4H] -> h [T, B, H]. The same values as the
    training loop's forward (`_forward`), with fewer ops per step: at batch 1 a step's ~30 small ops cost more
    than its matmul (docs/performance.md). The gates are reordered once (`_gates_ifo_g`) so that one sigmoid
    covers i, f and o. Each loop iteration runs `steps_per_iteration` steps (the frames padded with zeros to a
    multiple of it, the padding's outputs dropped; a padded step only follows the real ones), so the loop's own
    ops run once per block. A bidirectional LSTM runs one such loop per direction (`bidirectional_lstm`).
    """
    units = recurrent.shape[0]
    steps = tf.shape(inputs)[0]
    block = int(steps_per_iteration)
    blocks = (steps + block - 1) // block
    x = _in_blocks(_gates_ifo_g(inputs), blocks, block)  # [T / block, block, B, 4H]
    kernel = _gates_ifo_g(recurrent)  # [H, 4H]
    state_shape = _state_shape(inputs, recurrent)  # [B, H]
    zeros = _zero_state(inputs, recurrent)
    zeros.set_shape(state_shape)
    outputs = tf.TensorArray(x.dtype, size=blocks, element_shape=tf.TensorShape([block]).concatenate(state_shape))

    def body(b, h, c, outputs):
        x_block, hs = x[b], []
        for j in range(block):
            sigmoid_part, cell_part = tf.split(x_block[j] + tf.matmul(h, kernel), [3 * units, units], axis=-1)
            i, f, o = tf.split(tf.sigmoid(sigmoid_part), 3, axis=-1)
            c = f * c + i * tf.tanh(cell_part)
            h = o * tf.tanh(c)
            hs.append(h)
        return b + 1, h, c, outputs.write(b, tf.stack(hs))

    _, _, _, outputs = tf.while_loop(lambda b, *_: b < blocks, body, (0, zeros, zeros, outputs))
    return _from_blocks(outputs, steps, inputs.shape[:1].concatenate(state_shape))  # [T, B, H]


def _backward_factors(hs: tf.Tensor, cs: tf.Tensor, gates: Sequence[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """Everything that does not depend on the recurrence, for all steps at once (large element-wise ops):
    returns (cell_from_h [T, B, H] = d c_t / d h_t through h = o tanh c, factors [T, B, 4H] such that
    dz_t = [dc, dc, dc, dh] * factors_t)."""
    i_s, f_s, g_s, o_s = gates
    c_prev = tf.concat([tf.zeros_like(cs[:1]), cs[:-1]], axis=0)  # c_{t-1}, zeros before the first step
    tanh_c = tf.tanh(cs)
    cell_from_h = o_s * (1.0 - tf.square(tanh_c))
    factors = tf.concat(
        [g_s * i_s * (1.0 - i_s), c_prev * f_s * (1.0 - f_s), i_s * (1.0 - tf.square(g_s)),
         tanh_c * o_s * (1.0 - o_s)],
        axis=-1,
    )
    return cell_from_h, factors


@functools.cache
def _loop_with_gradient(dtype: str, block: int = STEPS_PER_ITERATION) -> Callable:
    """`lstm_loop` for training, as a function of (inputs of every direction, then their recurrent kernels)
    that saves the gates and cells and back-propagates by hand (module docstring). `dtype`: the operands of its
    recurrent matmuls, forward and backward, and of the recurrent-weight gradient (`_matmul`); `block`: frames
    per iteration of both loops."""

    @tf.custom_gradient
    def loop(*tensors: tf.Tensor):
        directions = len(tensors) // 2
        inputs, recurrent = tensors[:directions], tensors[directions:]
        steps = tf.shape(inputs[0])[0]
        saved = _forward(inputs, recurrent, dtype, block)  # per direction: h, c, i, f, g, o

        def grad(*d_hs: tf.Tensor) -> list[tf.Tensor]:
            cell_from_h, factors = zip(*(_backward_factors(hs, cs, gates) for hs, cs, *gates in saved))
            recurrent_t = [_operand(tf.transpose(r), dtype) for r in recurrent]  # [4H, H]
            f_s = [s[3] for s in saved]
            zeros = [_zero_state(x, r) for x, r in zip(inputs, recurrent)]
            blocks = (steps + block - 1) // block
            # Padded steps get zero upstream gradients and zero factors, so they pass exact zeros back.
            d_h_blocks, from_h_blocks, factor_blocks, f_blocks = (
                [_in_blocks(v, blocks, block) for v in values] for values in (d_hs, cell_from_h, factors, f_s))
            d_z = [tf.TensorArray(x.dtype, size=blocks, element_shape=tf.TensorShape([block, None, None]))
                   for x in inputs]

            def back(b, dh_next, dc_next, d_z):
                new_dh, new_dc, written = [], [], []
                for d in range(directions):
                    d_h, from_h, factor, forget = (v[d][b] for v in (d_h_blocks, from_h_blocks, factor_blocks,
                                                                     f_blocks))
                    dh_carry, dc_carry, dzs = dh_next[d], dc_next[d], [None] * block
                    for j in reversed(range(block)):
                        dh = d_h[j] + dh_carry
                        dc = dc_carry + dh * from_h[j]
                        dzs[j] = tf.concat([dc, dc, dc, dh], axis=-1) * factor[j]
                        dh_carry = _matmul(dzs[j], recurrent_t[d], dtype)
                        dc_carry = dc * forget[j]
                    new_dh.append(dh_carry)
                    new_dc.append(dc_carry)
                    written.append(d_z[d].write(b, tf.stack(dzs)))
                return b - 1, new_dh, new_dc, written

            _, _, _, d_z = tf.while_loop(lambda b, *_: b >= 0, back, (blocks - 1, zeros, zeros, d_z))
            d_inputs, d_recurrent = [], []
            for d in range(directions):
                dz = tf.reshape(_from_blocks(d_z[d], steps, tf.TensorShape(None)), tf.shape(inputs[d]))  # [T, B, 4H]
                hs = saved[d][0]
                units = tf.shape(hs)[-1]
                # sum_t h_{t-1}^T dz_t (h_{-1} = 0): one GEMM [H, (T-1)*B] x [(T-1)*B, 4H].
                d_recurrent.append(_matmul(tf.reshape(hs[:-1], [-1, units]),
                                           _operand(tf.reshape(dz[1:], [-1, 4 * units]), dtype), dtype,
                                           transpose_a=True))
                d_inputs.append(dz)
            return d_inputs + d_recurrent

        return [s[0] for s in saved], grad

    return loop


def lstm_loop_with_gradient(inputs: Sequence[tf.Tensor], recurrent: Sequence[tf.Tensor], dtype: str = "float32",
                            steps_per_iteration: int = STEPS_PER_ITERATION) -> list[tf.Tensor]:
    """`lstm_loop` with the hand-written backward pass; `dtype` "bfloat16" (or "auto" on a CPU with native
    bfloat16: `resolve_training_dtype`) computes its recurrent matmuls (and the recurrent-weight gradient) on
    bfloat16-rounded operands, with float32 states, gates and results. `steps_per_iteration`: frames per
    iteration of the forward and backward loops (the same values for any)."""
    if len(inputs) != len(recurrent):
        raise ValueError(f"{len(inputs)} inputs for {len(recurrent)} recurrent kernels")
    return list(_loop_with_gradient(resolve_training_dtype(dtype), int(steps_per_iteration))(*inputs, *recurrent))


@contextlib.contextmanager
def tflite_fusable_lstms() -> Iterator[None]:
    """While active, `bidirectional_lstm` and `unidirectional_lstm` at inference with a static batch trace each
    direction as `_lstm_composite`, which the TFLite converter (`from_saved_model`, built-ins only) turns into
    one fused `UNIDIRECTIONAL_SEQUENCE_LSTM` op instead of a WHILE loop of small ops. What that op implies for
    the converted model (`export.to_tflite`): its cell clip is set to 10 (the exporter resets it to 0, no clip)
    and its initial state is a TFLite *variable* tensor that the kernel overwrites, so the interpreter's
    variables must be reset before every invocation (`Interpreter.reset_all_variables()`)."""
    previous = _COMPOSITES["enabled"]
    _COMPOSITES["enabled"] = True
    try:
        yield
    finally:
        _COMPOSITES["enabled"] = previous


def _lstm_composite(x: tf.Tensor, weights: tuple) -> tf.Tensor:
    """x [B, T, D] (B static) -> h [B, T, H] through a function with the Keras 2 LSTM contract that the TFLite
    converter's `prepare_composite_functions` pass fuses (tensorflow/compiler/mlir/lite/utils/lstm_utils.cc,
    `ConvertKerasLSTMLayer`): attribute `api_implements = "lstm_<uuid>"` and `time_major`; arguments
    `(inputs, init_h, init_c, kernel, recurrent_kernel, bias)`, tensors with static shapes except time;
    results `(last_output, outputs, h, c, runtime)` of which callers use `outputs` only. In TensorFlow the
    function runs `_causal_lstm`."""
    kernel, recurrent, bias = (tf.convert_to_tensor(w) for w in weights)
    zeros = tf.zeros([x.shape[0], recurrent.shape[0]], x.dtype)

    def keras_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        del init_c  # zero, like init_h: the fused kernel starts from these; the loop starts from zeros
        outputs = _causal_lstm(inputs, (kernel, recurrent_kernel, bias), training=False, dtype="float32")
        return outputs[:, -1], outputs, init_h, init_h, tf.constant(0.0)

    composite = tf.function(keras_lstm, autograph=False, experimental_attributes={
        "api_implements": f"lstm_{uuid.uuid4()}", "api_preferred_device": "CPU", "time_major": False,
        "go_backwards": False})
    return composite(x, zeros, zeros, kernel, recurrent, bias)[1]


def _use_composite(x: tf.Tensor, training: bool) -> bool:
    if not _COMPOSITES["enabled"] or training:
        return False
    if x.shape[0] is None:
        logging.warning("tflite_fusable_lstms: batch size not static, the LSTM stays a loop of small ops")
        return False
    return True


def input_projection(inputs: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, dtype: str = "float32") -> tf.Tensor:
    """[T, B, D] x kernel [D, 4H] + bias [4H] -> [T, B, 4H] float32, one GEMM for every frame. With `dtype`
    "bfloat16" the GEMM (and, under a gradient tape, its two gradient GEMMs) reads inputs and kernel rounded to
    bfloat16 and returns its bfloat16-rounded product as float32 (`_rounded_product`); the kernel variable
    stays float32. "auto": `resolve_training_dtype`."""
    dtype = resolve_training_dtype(dtype, "projection dtype")
    if dtype == "float32":
        return tf.einsum("tbd,dg->tbg", inputs, kernel) + bias
    product = tf.einsum("tbd,dg->tbg", _operand(inputs, dtype), _operand(kernel, dtype))
    return _rounded_product(product) + bias


def bidirectional_lstm(x: tf.Tensor, lengths: tf.Tensor, forward: tuple, backward: tuple, training: bool = False,
                       training_projection_dtype: str = "float32") -> tf.Tensor:
    """Masked bidirectional LSTM.

    Args:
      x: [B, T, D] inputs; frames at and after `lengths` are ignored.
      lengths: [B] int32 valid frames.
      forward, backward: (kernel [D, 4H], recurrent_kernel [H, 4H], bias [4H]) of each direction, Keras' gate
        order (i, f, c, o).
      training: use the hand-written gradient (training) or the plain loop (inference, export).
      training_projection_dtype: "float32", "bfloat16" or "auto": the input projections' GEMMs when
        `training` (`input_projection`); inference always computes them in float32.

    Returns:
      [B, T, 2H]: forward then backward outputs, exactly zero at padded frames.
    """
    steps = tf.shape(x)[1]
    mask = tf.cast(tf.sequence_mask(lengths, steps), x.dtype)[..., None]
    if _use_composite(x, training):
        out_fw = _lstm_composite(x, forward)
        x_reversed = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
        out_bw = tf.reverse_sequence(_lstm_composite(x_reversed, backward), lengths, seq_axis=1, batch_axis=0)
        return tf.concat([out_fw, out_bw], axis=-1) * mask
    x_time_major = tf.transpose(x, [1, 0, 2])  # [T, B, D]
    x_reversed = tf.reverse_sequence(x_time_major, lengths, seq_axis=0, batch_axis=1)
    projection_dtype = training_projection_dtype if training else "float32"
    projected = [
        input_projection(inputs, kernel, bias, projection_dtype)  # [T, B, 4H]
        for inputs, (kernel, _, bias) in ((x_time_major, forward), (x_reversed, backward))
    ]
    recurrent = [forward[1], backward[1]]
    if training:
        out_fw, out_bw = lstm_loop_with_gradient(projected, recurrent)  # [T, B, H] each, backward in reversed time
    else:
        # One loop per direction, not one loop for both: a step then reads one direction's recurrent kernel, which
        # stays in a core's L2 cache (WSJ: [320, 1280] float32 = 1.6 MB; both are 3.3 MB), and with two inter-op
        # threads the two loops run on two cores. The same values; the WSJ encoder 1.98x faster on one thread
        # and 2.3x on two (docs/performance.md, stop 36).
        out_fw, out_bw = (lstm_loop(p, r) for p, r in zip(projected, recurrent))
    out_bw = tf.reverse_sequence(out_bw, lengths, seq_axis=0, batch_axis=1)
    out = tf.transpose(tf.concat([out_fw, out_bw], axis=-1), [1, 0, 2])  # [B, T, 2H]
    return out * mask


def unidirectional_lstm(x: tf.Tensor, weights: tuple, training: bool = False, training_dtype: str = "float32"
                        ) -> tf.Tensor:
    """Causal (forward-only) LSTM over every step, with no mask: what a step depends on never comes after it,
    so padding at the end of a sequence changes nothing before it.

    Args:
      x: [B, T, D] inputs.
      weights: (kernel [D, 4H], recurrent_kernel [H, 4H], bias [4H]), Keras' gate order (i, f, c, o).
      training: use the hand-written gradient (training) or the plain loop (inference).
      training_dtype: "float32", "bfloat16" or "auto" (`resolve_training_dtype`): the operands of every matmul
        when `training` (the input projection, `input_projection`, and the recurrence,
        `lstm_loop_with_gradient`); inference always computes in float32.

    Returns:
      [B, T, H], equal to `keras.layers.LSTM(H, return_sequences=True)` on the same weights.
    """
    check_training_dtype(training_dtype)
    if _use_composite(x, training):
        return _lstm_composite(x, weights)
    return _causal_lstm(x, weights, training, training_dtype if training else "float32")


def _causal_lstm(x: tf.Tensor, weights: tuple, training: bool, dtype: str) -> tf.Tensor:
    """`unidirectional_lstm` as a TensorFlow loop: [B, T, D] -> [B, T, H]."""
    kernel, recurrent, bias = weights
    projected = input_projection(tf.transpose(x, [1, 0, 2]), kernel, bias, dtype)  # [T, B, 4H]
    if training:
        (out,) = lstm_loop_with_gradient([projected], [recurrent], dtype)  # [T, B, H]
    else:
        out = lstm_loop(projected, recurrent)
    return tf.transpose(out, [1, 0, 2])
