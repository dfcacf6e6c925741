"""Batched CTC prefix scoring for joint CTC/attention beam search.

The incremental forward recursion of Watanabe et al. 2017 ("Hybrid CTC/attention architecture for end-to-end
speech recognition", Algorithm 2; ESPnet's `CTCPrefixScoreTH`), vectorized over N hypotheses and C candidate
tokens per hypothesis, in two calls per beam step:

- `extend` scores all N x C extensions h+c: psi(h+c) below is a sum over frames of the parent's phi, so it needs
  no frame loop; `extend_by_matmul` computes the same sums for all labels as one matmul per utterance, exact to
  float32 rounding except for flagged candidates (upper bounds; the beam search rescores them with `extend` when
  it would keep one);
- `select`, once the beam has kept N of them, runs the frame recursion (`forward_variables`) for those N only.

For a hypothesis (prefix) h every frame t keeps, in log space,

    r_t^n(h): probability of all paths over frames 0..t whose collapse is h and that end in h's last label,
    r_t^b(h): the same for paths ending in a blank,

and the prefix probability psi(h) = P(collapse of a full path starts with h). Extending h by a label c
(0-based frames, y_t^c the CTC posterior):

    phi_t      = r_t^b(h)                       if c == last(h)  (a repeat needs a blank in between)
               = logaddexp(r_t^n(h), r_t^b(h))  otherwise
    r_0^n(h+c) = log y_0^c if h is empty else log 0;      r_0^b(h+c) = log 0
    r_t^n(h+c) = logaddexp(r_{t-1}^n(h+c), phi_{t-1}) + log y_t^c
    r_t^b(h+c) = logaddexp(r_{t-1}^n(h+c), r_{t-1}^b(h+c)) + log y_t^blank
    psi(h+c)   = logsumexp(r_0^n(h+c), phi_{t-1} + log y_t^c for t = 1 .. len-1)

and for c = eos: psi(h+eos) = logaddexp(r_{len-1}^n(h), r_{len-1}^b(h)) = log P(h | x), the full-sequence
probability. `len` is the hypothesis' utterance length: frames at or past it never contribute (their r values
are computed but never read). The blank as a candidate gets log 0.

A prefix of |h| + 1 labels needs |h| + 1 frames, so r_t(h+c) = log 0 and phi_{t-1}(h) = log 0 for t < |h|: the
frame loop starts at frame max(min |h|, 1) over the parents (ESPnet does the same), which saves a quarter
of the frame iterations when the output is half as long as the encoder output.

The frame recursion is linear in probability space: (r_t^n, r_t^b) = M_t (r_{t-1}^n, r_{t-1}^b) + (phi_{t-1}
y_t^c, 0) with M_t = [[y_t^c, 0], [y_t^blank, y_t^blank]]. `forward_variables` runs it in blocks of K frames:
the composition of a block's maps up to its j-th frame has five log-space entries (`_block_maps`: r_j^n =
logaddexp(r0^n + a_j, c_j^n), r_j^b = logaddexp3(r0^n + d_j, r0^b + e_j, c_j^b), where r0 are the variables
before the block), computed for all blocks at once by a recursion over j; a scan over the blocks carries the
variables across block boundaries (`_carry_across_blocks`); then every frame follows from the variables before
its block, all at once. That is ~24 K + 22 T / K small ops instead of 16 T one frame after another, and the
recursion is op-overhead bound (each op works on N values). The values are the frame-by-frame recursion's to
float32 rounding (the additions are grouped differently; tested against a float64 recursion).

Log 0 is the finite `LOG_ZERO` (-1e10) so that `max`-based logaddexp never sees `-inf - -inf`; results are
clamped at `LOG_ZERO`. The frame recursion clamps once, at its end: inside it, log 0 terms add up with each other
and with log posteriors (to a few times 1e11 in the padding of the last blocks, which is dropped), never to
-inf. Only TFLite built-in ops are used (GATHER, SELECT_V2, MAXIMUM, MINIMUM, EXP, LOG, CUMSUM, BATCH_MATMUL,
PACK, UNPACK, WHILE via `tf.scan`, TRANSPOSE, RESHAPE, CONCATENATION).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

LOG_ZERO = -1e10
# The frame recursion in blocks (module docstring). A block's map to each of its frames costs ~24 small ops per
# frame of the block, all blocks at once; carrying the variables across blocks costs ~22 per block, in sequence:
# ~24 K + 22 T / K ops instead of 16 T. One recursion of 10 extensions, 1 thread, TFLite: 267 frames 1.26 -> 0.31
# ms, 2,000 frames 9.1 -> 1.5 ms (docs/performance.md, stop 34); blocks of 16 or 24 frames were within 10 %.
FRAMES_PER_BLOCK = 32
# Blocks carried per iteration of the scan across blocks (unrolled inside it): 2, 4 and 8 were within 10 %.
BLOCKS_PER_ITERATION = 4


class CTCPrefixState(NamedTuple):
    """Per-hypothesis CTC prefix state (N hypotheses, T encoder frames).

    r_n, r_b: [T, N] float32 log r_t^n(h), log r_t^b(h) (time-major for the frame recursion).
    log_psi: [N] float32 log prefix probability of h (0 for the empty prefix).
    last: [N] int32 last label of h, -1 for the empty prefix.
    length: [N] int32 |h|.
    """

    r_n: tf.Tensor
    r_b: tf.Tensor
    log_psi: tf.Tensor
    last: tf.Tensor
    length: tf.Tensor


def logaddexp(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """log(exp(a) + exp(b)) as max + log(1 + exp(min - max)): built-in TFLite ops only, safe for LOG_ZERO
    inputs. The same values as max + log(exp(a - max) + exp(b - max)) (one of the two exps is exp(0) = 1) in
    7 ops instead of 8: the frame recursion runs two per frame, and its loop is op-overhead bound."""
    m = tf.maximum(a, b)
    return m + tf.math.log(1.0 + tf.exp(tf.minimum(a, b) - m))


def _logsumexp(x: tf.Tensor, axis: int) -> tf.Tensor:
    m = tf.reduce_max(x, axis=axis, keepdims=True)
    return tf.squeeze(m, axis) + tf.math.log(tf.reduce_sum(tf.exp(x - m), axis=axis))


def initial_state(log_probs: tf.Tensor, lengths: tf.Tensor, blank_id: int = 0) -> CTCPrefixState:
    """State of the empty prefix (sos): r^n = log 0, r^b_t = sum_{s <= t} log y_s^blank.

    Args:
      log_probs: [N, T, V] CTC log posteriors (log-softmax), one row per hypothesis.
      lengths: [N] int32 valid frames (unused here: padded frames are never read).
      blank_id: the blank's id.
    """
    del lengths
    log_probs = tf.convert_to_tensor(log_probs, tf.float32)
    x_blank = tf.transpose(log_probs[:, :, blank_id])  # [T, N]
    r_b = tf.maximum(tf.cumsum(x_blank, axis=0), LOG_ZERO)
    r_n = tf.fill(tf.shape(r_b), tf.constant(LOG_ZERO, tf.float32))
    n = tf.shape(log_probs)[0]
    shape = tf.expand_dims(n, 0)
    return CTCPrefixState(r_n, r_b, tf.zeros(shape, tf.float32), tf.fill(shape, -1), tf.zeros(shape, tf.int32))


def eos_score(state: CTCPrefixState, lengths: tf.Tensor) -> tf.Tensor:
    """[N] log P(h | x): logaddexp(r^n, r^b) at each hypothesis' last valid frame."""
    last_frame = tf.maximum(tf.cast(lengths, tf.int32) - 1, 0)
    r_n = tf.gather(tf.transpose(state.r_n), tf.expand_dims(last_frame, 1), batch_dims=1)
    r_b = tf.gather(tf.transpose(state.r_b), tf.expand_dims(last_frame, 1), batch_dims=1)
    return tf.squeeze(logaddexp(r_n, r_b), 1)


def _frames_by_label(log_probs: tf.Tensor) -> tf.Tensor:
    """[N, T, V] -> [N * V, T]: row n * V + v holds label v's frames in hypothesis n. Gathering whole rows of
    frames from this layout is 2.5x faster than an element-wise gather on the label axis (`batch_dims=1`)."""
    return tf.reshape(tf.transpose(log_probs, [0, 2, 1]), tf.stack([-1, tf.shape(log_probs)[1]]))


def _label_rows(by_label: tf.Tensor, vocab: tf.Tensor, rows: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """[N, S, T] frames of `labels` [N, S] (in 0..V-1) of hypotheses `rows` [N] from `_frames_by_label`'s layout."""
    flat = tf.reshape(tf.expand_dims(rows * vocab, 1) + labels, [-1])
    return tf.reshape(tf.gather(by_label, flat), tf.concat([tf.shape(labels), tf.shape(by_label)[1:]], 0))


def _phi_before(phi: tf.Tensor, empty: tf.Tensor) -> tf.Tensor:
    """[S, T] phi_{t-1} for t = 0..T-1 from phi_t [S, T] of S parents; empty [S]: the parent is the empty prefix
    ("frame -1" holds only it, complete with probability 1)."""
    phi_minus_1 = tf.where(empty, 0.0, tf.fill(tf.shape(empty), tf.constant(LOG_ZERO, tf.float32)))
    return tf.concat([tf.expand_dims(phi_minus_1, 1), phi[:, :-1]], axis=1)


def _first_scanned_frame(parent_lengths: tf.Tensor, frames: tf.Tensor) -> tf.Tensor:
    """The frame the recursion starts at: max(min |h|, 1) - 1 over the parents h, at most T - 1 (see the module
    docstring: earlier frames are log 0 for every extension, and so is the carry into frame start - 1). Never
    past the last frame, so the scan always has a frame even when the prefix is as long as the utterance (a
    zero-length scan fails in graph mode)."""
    return tf.minimum(tf.maximum(tf.reduce_min(parent_lengths), 1), tf.maximum(frames, 1)) - 1


def _in_vocabulary(labels: tf.Tensor, vocab: tf.Tensor, blank_id: int) -> tf.Tensor:
    """`labels` with ids outside 0..V-1 (eos) replaced by the blank's, safe to gather posteriors with."""
    return tf.where(tf.logical_and(labels >= 0, labels < vocab), labels, blank_id)


def _blank_and_eos(log_psi: tf.Tensor, state: CTCPrefixState, lengths: tf.Tensor, candidates: tf.Tensor,
                   blank_id: int, eos_id: int | None) -> tuple[tf.Tensor, tf.Tensor]:
    """[N, C] prefix scores with the blank's set to log 0 and eos's to log P(h | x) (`eos_score`), and the [N, C]
    mask of those special candidates."""
    special = tf.equal(candidates, blank_id)
    log_psi = tf.where(special, tf.constant(LOG_ZERO, tf.float32), log_psi)
    if eos_id is not None:
        is_eos = tf.equal(candidates, eos_id)
        special = special | is_eos
        log_psi = tf.where(is_eos, tf.expand_dims(eos_score(state, lengths), 1), log_psi)
    return log_psi, special


def extend(
    log_probs: tf.Tensor,
    lengths: tf.Tensor,
    state: CTCPrefixState,
    candidates: tf.Tensor,
    blank_id: int = 0,
    eos_id: int | None = None,
) -> tf.Tensor:
    """Prefix scores log psi(h+c) of every candidate extension h+c of every hypothesis h.

    psi is a sum over frames of the parent's phi (no recursion), so all N x C extensions are scored without a
    frame loop; `select` then runs the recursion for the N extensions the beam keeps.

    Args:
      log_probs: [N, T, V] CTC log posteriors per hypothesis (frames >= lengths may hold anything).
      lengths: [N] int32 valid frames.
      state: the hypotheses' `CTCPrefixState`.
      candidates: [N, C] int32 candidate labels (may contain `eos_id`, even if outside 0..V-1, and the blank).
      blank_id, eos_id: special ids.

    Returns:
      log_psi [N, C]: log prefix probability of h+c, log P(h | x) for eos, LOG_ZERO for the blank.
    """
    log_probs = tf.convert_to_tensor(log_probs, tf.float32)
    candidates = tf.cast(candidates, tf.int32)
    lengths = tf.cast(lengths, tf.int32)
    hypotheses, frames, vocab = tf.unstack(tf.shape(log_probs))
    safe = _in_vocabulary(candidates, vocab, blank_id)
    first = _first_scanned_frame(state.length, frames)
    # Hypothesis-major [N, C, T'] throughout: the candidates' rows of frames need no transpose, and the parent's
    # phi ([N, T'], one per parent) broadcasts over the candidates instead of being tiled to [T, N, C].
    by_label = _frames_by_label(log_probs)
    hypothesis = tf.range(hypotheses)
    x_c = _label_rows(by_label, vocab, hypothesis, safe)[:, :, first:]  # [N, C, T']
    r_n, r_b = tf.transpose(state.r_n), tf.transpose(state.r_b)  # [N, T]
    empty = state.last < 0
    # phi_{t-1} for t = first..T-1, log 0 at frames t >= len (they never contribute).
    valid = tf.expand_dims(tf.range(first, frames), 0) < tf.expand_dims(lengths, 1)  # [N, T']

    def before(phi: tf.Tensor) -> tf.Tensor:
        return tf.expand_dims(tf.where(valid, _phi_before(phi, empty)[:, first:], LOG_ZERO), 1)  # [N, 1, T']

    log_psi = _logsumexp(before(logaddexp(r_n, r_b)) + x_c, axis=2)  # [N, C]
    # A repeat of the parent's last label (at most one candidate per parent) needs a blank in between: phi = r_b.
    last = tf.expand_dims(tf.where(empty, blank_id, state.last), 1)
    log_psi_repeat = _logsumexp(before(r_b) + _label_rows(by_label, vocab, hypothesis, last)[:, :, first:], axis=2)
    log_psi = tf.where(tf.equal(candidates, tf.expand_dims(state.last, 1)), log_psi_repeat, log_psi)
    return _blank_and_eos(tf.maximum(log_psi, LOG_ZERO), state, lengths, candidates, blank_id, eos_id)[0]


# float32's smallest normal number: a product of two scaled terms that underflows is below it (module docstring).
_SMALLEST_NORMAL = 1.1754944e-38
# `extend_by_matmul` flags a score inexact below this log of its scaled sum (module docstring).
INEXACT_BELOW = -60.0


def scaled_posteriors(log_probs: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(exp(log y_t^v - M_v) [B, T, V], M [B, V]) with M_v each label's largest log posterior over the valid
    frames; padded frames become 0. Computed once per utterance for `extend_by_matmul`.

    Args:
      log_probs: [B, T, V] CTC log posteriors, one row per utterance; lengths: [B] int32 valid frames.
    """
    log_probs = tf.convert_to_tensor(log_probs, tf.float32)
    valid = tf.expand_dims(tf.sequence_mask(lengths, tf.shape(log_probs)[1]), 2)  # [B, T, 1]
    masked = tf.where(valid, log_probs, LOG_ZERO)
    label_max = tf.reduce_max(masked, axis=1)  # [B, V]
    return tf.exp(masked - tf.expand_dims(label_max, 1)), label_max


def extend_by_matmul(
    scaled: tf.Tensor,
    label_max: tf.Tensor,
    lengths: tf.Tensor,
    state: CTCPrefixState,
    candidates: tf.Tensor,
    blank_id: int = 0,
    eos_id: int | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """`extend`'s prefix scores as one matmul per utterance, with an exactness flag per score.

    psi(h+c) = sum_t exp(phi_{t-1}(h)) y_t^c over the frames is, with m_h = max_t phi_{t-1}(h) and M_c from
    `scaled_posteriors`, exp(m_h + M_c) times the sum S of exp(phi_{t-1}(h) - m_h) exp(log y_t^c - M_c): a matmul
    of the hypotheses' scaled phi [K, T] with the utterance's scaled posteriors [T, V], for all labels at once. A
    term of S that float32 flushes to zero is below its smallest normal number, so S is exact to float32
    rounding where S >= exp(INEXACT_BELOW) (the lost terms are < T * 1e-38), and the returned
    log(S + T * 1e-38) + m_h + M_c is an upper bound of log psi everywhere. Candidates with S below that are
    flagged: they are at least 60 nats less likely than the bound, and `extend` scores them exactly when the
    beam would keep one (`CTCPrefixScorer`).

    Args:
      scaled, label_max: `scaled_posteriors` of the B utterances ([B, T, V], [B, V]).
      lengths: [N] int32 valid frames, N = B * K (K hypotheses per utterance, consecutive).
      state, candidates, blank_id, eos_id: as for `extend`.

    Returns:
      (log_psi [N, C]: `extend`'s scores where exact, upper bounds where not; inexact [N, C] bool).
    """
    candidates = tf.cast(candidates, tf.int32)
    lengths = tf.cast(lengths, tf.int32)
    batch, frames, vocab = tf.unstack(tf.shape(scaled))
    hypotheses = tf.shape(candidates)[0]
    per_utterance = hypotheses // batch
    first = _first_scanned_frame(state.length, frames)
    r_n, r_b = tf.transpose(state.r_n), tf.transpose(state.r_b)  # [N, T]
    empty = state.last < 0
    # phi_{t-1} at frames first..len-1, log 0 elsewhere (as `extend` reads them).
    position = tf.expand_dims(tf.range(frames), 0)
    read = (position >= first) & (position < tf.expand_dims(lengths, 1))  # [N, T]
    # Per hypothesis, phi of a new label and phi of a repeat of its last label (r^b alone): [N, 2, T].
    phi = tf.stack([_phi_before(logaddexp(r_n, r_b), empty), _phi_before(r_b, empty)], axis=1)
    phi = tf.where(tf.expand_dims(read, 1), phi, LOG_ZERO)
    phi_max = tf.reduce_max(phi, axis=2, keepdims=True)  # [N, 2, 1]
    # [B, 2K, T] x [B, T, V]: each utterance's hypotheses against its own posteriors, all labels at once.
    scaled_phi = tf.reshape(tf.exp(phi - phi_max), tf.stack([batch, 2 * per_utterance, frames]))
    sums = tf.reshape(tf.matmul(scaled_phi, scaled), tf.stack([hypotheses, 2, vocab]))
    utterance_max = tf.expand_dims(tf.gather(label_max, tf.range(hypotheses) // per_utterance), 1)  # [N, 1, V]
    lost = tf.cast(frames, tf.float32) * _SMALLEST_NORMAL
    log_psi_all = tf.math.log(sums + lost) + phi_max + utterance_max  # [N, 2, V]
    # Candidate c of hypothesis n reads row (n, repeat?) and column c.
    safe = _in_vocabulary(candidates, vocab, blank_id)
    repeat = tf.cast(tf.equal(candidates, tf.expand_dims(state.last, 1)), tf.int32)
    flat = (tf.expand_dims(tf.range(hypotheses) * 2, 1) + repeat) * vocab + safe  # [N, C]
    log_psi = tf.maximum(tf.gather(tf.reshape(log_psi_all, [-1]), flat), LOG_ZERO)
    inexact = tf.gather(tf.reshape(sums < tf.exp(INEXACT_BELOW), [-1]), flat)
    log_psi, special = _blank_and_eos(log_psi, state, lengths, candidates, blank_id, eos_id)
    return log_psi, inexact & tf.logical_not(special)


def logaddexp3(a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
    """log(exp(a) + exp(b) + exp(c)), safe for LOG_ZERO inputs (as `logaddexp`)."""
    m = tf.maximum(tf.maximum(a, b), c)
    return m + tf.math.log(tf.exp(a - m) + tf.exp(b - m) + tf.exp(c - m))


def _block_maps(phi_prev: tf.Tensor, x_c: tf.Tensor, x_blank: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """The map from the forward variables before each block to those at each of its frames (module docstring).

    Args:
      phi_prev, x_c, x_blank: [blocks, K, S] phi_{t-1}(h), log y_t^c, log y_t^blank.

    Returns:
      (a, d, e, c_n, c_b), each [blocks, K, S]: at the block's j-th frame, r^n = logaddexp(r0^n + a, c_n) and
      r^b = logaddexp3(r0^n + d, r0^b + e, c_b), where (r0^n, r0^b) are the variables at the frame before the
      block. The recursion over j runs for all blocks at once.
    """
    frames_per_block = phi_prev.shape[1]
    a = tf.cumsum(x_c, axis=1)  # a path in h+c's last label throughout
    e = tf.cumsum(x_blank, axis=1)  # a path in blank throughout
    phis, xs, blanks = (tf.unstack(t, frames_per_block, axis=1) for t in (phi_prev, x_c, x_blank))
    a_before = tf.unstack(a, frames_per_block, axis=1)
    d, c_n = blanks[0], phis[0] + xs[0]
    c_b = tf.fill(tf.shape(c_n), tf.constant(LOG_ZERO, tf.float32))
    ds, c_ns, c_bs = [d], [c_n], [c_b]
    for j in range(1, frames_per_block):
        # From r0^n: stay in the label (a) or move to blank (d); from phi: enter the label (c_n), then blank (c_b).
        d, c_b, c_n = (
            logaddexp(a_before[j - 1], d) + blanks[j],
            logaddexp(c_n, c_b) + blanks[j],
            logaddexp(c_n, phis[j]) + xs[j],
        )
        ds.append(d)
        c_ns.append(c_n)
        c_bs.append(c_b)
    return a, tf.stack(ds, 1), e, tf.stack(c_ns, 1), tf.stack(c_bs, 1)


def _carry_across_blocks(a: tf.Tensor, d: tf.Tensor, e: tf.Tensor, c_n: tf.Tensor, c_b: tf.Tensor) -> tuple:
    """(r^n, r^b) [blocks, S] at the frame before each block, from the first block's (log 0) on: a scan over the
    blocks' whole-block maps (each [blocks, S], the last frame of `_block_maps`), BLOCKS_PER_ITERATION blocks
    unrolled per iteration. `blocks` is a multiple of BLOCKS_PER_ITERATION."""
    width = tf.shape(a)[1:]

    def grouped(x: tf.Tensor) -> tf.Tensor:
        return tf.reshape(x, tf.concat([[-1, BLOCKS_PER_ITERATION], width], 0))

    def iteration(carry: tuple[tf.Tensor, tf.Tensor], maps: tuple) -> tuple[tf.Tensor, tf.Tensor]:
        """[BLOCKS_PER_ITERATION + 1, S]: the variables before each block of the group, then after its last."""
        r_n, r_b = carry[0][-1], carry[1][-1]
        before_n, before_b = [r_n], [r_b]
        for a_k, d_k, e_k, c_n_k, c_b_k in zip(*(tf.unstack(m, BLOCKS_PER_ITERATION) for m in maps)):
            r_n, r_b = logaddexp(r_n + a_k, c_n_k), logaddexp3(r_n + d_k, r_b + e_k, c_b_k)
            before_n.append(r_n)
            before_b.append(r_b)
        return tf.stack(before_n), tf.stack(before_b)

    log_zero = tf.fill(tf.concat([[BLOCKS_PER_ITERATION + 1], width], 0), tf.constant(LOG_ZERO, tf.float32))
    before_n, before_b = tf.scan(iteration, tuple(grouped(m) for m in (a, d, e, c_n, c_b)),
                                 initializer=(log_zero, log_zero))
    flat = tf.concat([[-1], width], 0)
    return tf.reshape(before_n[:, :-1], flat), tf.reshape(before_b[:, :-1], flat)


def forward_variables(
    phi_prev: tf.Tensor, x_c: tf.Tensor, x_blank: tf.Tensor, first_scanned: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """The recursion of r^n(h+c), r^b(h+c) over the frames (module docstring), for S extensions at once, in
    blocks of FRAMES_PER_BLOCK frames: `_block_maps` for all blocks at once, `_carry_across_blocks` in sequence,
    then every frame of every block at once.

    Args:
      phi_prev, x_c, x_blank: [T, S] phi_{t-1}(h), log y_t^c, log y_t^blank of each extension.
      first_scanned: scalar int32 in 0..T-1; every r before it is log 0.

    Returns:
      (r_n, r_b) [T, S], clamped at LOG_ZERO.
    """
    frames = tf.shape(x_c)[0]
    width = tf.shape(x_c)[1:]
    # Frames from first_scanned, padded with log 0 to whole groups of blocks (padded frames are dropped).
    scanned = frames - first_scanned
    group = FRAMES_PER_BLOCK * BLOCKS_PER_ITERATION
    padding = (group - scanned % group) % group

    def blocks(x: tf.Tensor) -> tf.Tensor:
        """[T, S] -> [blocks, FRAMES_PER_BLOCK, S] from first_scanned, padded with log 0."""
        pad = tf.fill(tf.concat([tf.expand_dims(padding, 0), width], 0), tf.constant(LOG_ZERO))
        padded = tf.concat([x[first_scanned:], pad], axis=0)
        return tf.reshape(padded, tf.concat([[-1, FRAMES_PER_BLOCK], width], 0))

    a, d, e, c_n, c_b = _block_maps(blocks(phi_prev), blocks(x_c), blocks(x_blank))
    before_n, before_b = _carry_across_blocks(a[:, -1], d[:, -1], e[:, -1], c_n[:, -1], c_b[:, -1])
    before_n, before_b = tf.expand_dims(before_n, 1), tf.expand_dims(before_b, 1)  # [blocks, 1, S]
    r_n = logaddexp(before_n + a, c_n)
    r_b = logaddexp3(before_n + d, before_b + e, c_b)
    flat_shape = tf.concat([[-1], width], 0)
    skipped = tf.fill(tf.concat([tf.expand_dims(first_scanned, 0), width], 0), tf.constant(LOG_ZERO))
    r_n = tf.concat([skipped, tf.maximum(tf.reshape(r_n, flat_shape)[:scanned], LOG_ZERO)], axis=0)
    r_b = tf.concat([skipped, tf.maximum(tf.reshape(r_b, flat_shape)[:scanned], LOG_ZERO)], axis=0)
    return r_n, r_b


def select(
    log_probs: tf.Tensor,
    state: CTCPrefixState,
    log_psi: tf.Tensor,
    parent_indices: tf.Tensor,
    candidate_indices: tf.Tensor,
    token_ids: tf.Tensor,
    blank_id: int = 0,
) -> CTCPrefixState:
    """New states after pruning: hypothesis i becomes extension `candidate_indices[i]` (label `token_ids[i]`) of
    hypothesis `parent_indices[i]`; the frame recursion runs for these N extensions only.

    Args:
      log_probs: [N, T, V] as given to `extend`.
      state: the parents' `CTCPrefixState` (the one `extend` scored).
      log_psi: [N, C] from `extend`.
      parent_indices, candidate_indices, token_ids: [N] int32. A token outside 0..V-1 (eos) gets meaningless r
        values: the search never extends an ended hypothesis.
      blank_id: the blank's id.
    """
    log_probs = tf.convert_to_tensor(log_probs, tf.float32)
    parent_indices = tf.cast(parent_indices, tf.int32)
    token_ids = tf.cast(token_ids, tf.int32)
    frames, vocab = tf.shape(log_probs)[1], tf.shape(log_probs)[2]
    safe = _in_vocabulary(token_ids, vocab, blank_id)
    parent_last = tf.gather(state.last, parent_indices)
    parent_lengths = tf.gather(state.length, parent_indices)
    r_n = tf.gather(tf.transpose(state.r_n), parent_indices)  # [N, T]
    r_b = tf.gather(tf.transpose(state.r_b), parent_indices)
    phi = tf.where(tf.expand_dims(tf.equal(token_ids, parent_last), 1), r_b, logaddexp(r_n, r_b))
    phi_prev = tf.transpose(_phi_before(phi, parent_last < 0))  # [T, N]
    # The token's and the blank's frames of each parent in one gather: [N, 2, T] -> [2, T, N].
    labels = tf.stack([safe, tf.fill(tf.shape(safe), blank_id)], axis=1)
    x_c, x_blank = tf.unstack(tf.transpose(_label_rows(_frames_by_label(log_probs), vocab, parent_indices, labels),
                                           [1, 2, 0]))
    r_n, r_b = forward_variables(phi_prev, x_c, x_blank, _first_scanned_frame(parent_lengths, frames))
    r_n.set_shape(state.r_n.shape)  # keeps while_loop shapes fixed
    r_b.set_shape(state.r_b.shape)
    num_candidates = tf.shape(log_psi)[1]
    flat = parent_indices * num_candidates + tf.cast(candidate_indices, tf.int32)
    return CTCPrefixState(
        r_n=r_n,
        r_b=r_b,
        log_psi=tf.gather(tf.reshape(log_psi, [-1]), flat),
        last=token_ids,
        length=parent_lengths + 1,
    )
