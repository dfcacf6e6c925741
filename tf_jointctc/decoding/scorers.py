"""Scorers for batched beam search (ESPnet-like `ScorerInterface` / `PartialScorerInterface`).

A beam search over B utterances with beam K works on N = B * K hypotheses at once (hypothesis i belongs to
utterance i // K). Every scorer follows the same three-call protocol; all tensors have N rows:

- `init_state(beam) -> state`: the state of the sos hypothesis, tiled to N rows. A scorer is constructed with
  its per-utterance inputs (encoder output, lengths, ...) and may cache loop-invariant tensors tiled to N rows
  on `self` here; call it in the same graph (the same `tf.function` trace) as `score`/`select`.
- `score(last_tokens [N], state, candidates) -> (scores, new_state)`: log-probability increments of every
  extension. A *full* scorer (`partial = False`) ignores `candidates` and returns `[N, V]` over the whole
  vocabulary; a *partial* scorer (`partial = True`) is given the pre-beam `candidates [N, C]` int32 and returns
  `[N, C]`. `new_state` describes the extensions (for a full scorer, typically the state after consuming
  `last_tokens`; for a partial scorer, whatever `select` needs to build the kept extensions' state: the CTC
  prefix scorer keeps the candidates' prefix scores and the parents' state, and runs its frame recursion in
  `select`, for the N kept extensions only).
- `select(new_state, parent_indices [N], token_ids [N], candidate_indices [N]) -> state`: after pruning,
  hypothesis i is parent `parent_indices[i]` (a flat index in 0..N-1) extended by `token_ids[i]`, which was
  column `candidate_indices[i]` of the candidates (the token id itself for full scorers).

A *bounded* partial scorer (`bounded = True`: the CTC prefix scorer) may return upper bounds instead of exact
scores for some candidates, flagged by `inexact(new_state) -> [N, C] bool`; `score(..., exact=True)` scores all
of them exactly. The search ranks with the bounds and rescores exactly only when it would keep a flagged
candidate: a candidate whose bound does not make the beam cannot make it with its exact score, so the kept
hypotheses are those of exact scoring.

A score `<= IMPOSSIBLE` marks an extension as impossible whatever the scorer's weight (the CTC prefix scorer
uses it for label sequences that do not fit in the frames). `bounds = (low, high)` bounds one step's raw score;
the search derives from it how much a live hypothesis can still gain, for its exact early stop (`None` high:
no early stop). A scorer whose steps are unbounded but whose sum is (`total_bounded = True`: the coverage
scorer) gives instead `remaining_gain(state) -> [N]`, at most what it can still add to each hypothesis, >= 0.

States are nested tuples of tensors (anything `tf.nest` handles) whose shapes do not change between steps:
they are `tf.while_loop` variables.

Combination: the beam search adds `sum_s weight_s * score_s`. Joint CTC/attention decoding is
`AttentionScorer` with weight 1 - lambda, `CTCPrefixScorer` with weight lambda and `LengthBonus` with the
length penalty. `CoverageScorer` (not in the paper; Chorowski & Jaitly 2017) rewards each token by the encoder
frames its attention newly covers; it reads the weights its `AttentionScorer` computed in the same step, so it
follows that scorer in the list (as does `AttentionStallLimit`, which lets a hypothesis whose attention has stopped
advancing only end).

Shallow fusion with a language model (issue 13) adds one more full scorer, `RNNLMScorer(lm, batch_size)` with
weight beta: `score = (1 - lambda) log p_att + lambda log p_ctc + beta log p_lm + length bonus`. Its state is
the LM's LSTM state (zero for the sos hypothesis); `score` runs one LM step on `last_tokens` (sos at the first
step, as for `AttentionScorer`) and returns the log-softmax over V; `select` gathers the new state's rows by
`parent_indices`. Its bounds are those of a log-probability, `(-inf, 0.0)`, so early stopping stays exact.
`beam_search(..., lm=lm, lm_weight=beta)` adds it (only when beta > 0: beta = 0 is the search without an LM).
"""

from __future__ import annotations

import abc
import math
from typing import Any

import tensorflow as tf

from tf_jointctc.decoding import ctc_prefix_score as cps

IMPOSSIBLE = -1e9
State = Any


def kept_rows(state: State, parent_indices: tf.Tensor) -> State:
    """A full scorer's `select`: every tensor of `state` ([N, ...] rows of the new hypotheses' parents) gathered at
    `parent_indices`, the rows of the kept hypotheses."""
    return tf.nest.map_structure(lambda x: tf.gather(x, parent_indices), state)


def tile_rows(x: tf.Tensor, beam: int) -> tf.Tensor:
    """[B, ...] -> [B * beam, ...], each row repeated `beam` times consecutively (a GATHER)."""
    batch = tf.shape(x)[0]
    return tf.gather(x, tf.range(batch * beam) // beam)


class Scorer(abc.ABC):
    """See the module docstring for the protocol."""

    partial: bool = False
    bounded: bool = False
    bounds: tuple[float, float | None] = (-math.inf, 0.0)
    total_bounded: bool = False

    def remaining_gain(self, state: State) -> tf.Tensor:
        """[N] float32 >= 0: at most what this scorer can still add to each hypothesis (`total_bounded` only)."""
        raise NotImplementedError(f"{type(self).__name__} has no total bound")

    @abc.abstractmethod
    def init_state(self, beam: int) -> State:
        """State of the sos hypothesis for B * beam rows."""

    @abc.abstractmethod
    def score(self, last_tokens: tf.Tensor, state: State, candidates: tf.Tensor | None = None) -> tuple[Any, State]:
        """-> (scores [N, V] (full) or [N, C] (partial), new_state)."""

    @abc.abstractmethod
    def select(
        self, new_state: State, parent_indices: tf.Tensor, token_ids: tf.Tensor, candidate_indices: tf.Tensor
    ) -> State:
        """-> state of the kept hypotheses."""


class AttentionScorer(Scorer):
    """Full scorer: the attention decoder's `log p(c | h, x)` (`model.decoder_step`).

    Args:
      model: a `JointCTCAttention` (or anything with `decoder_initial_state` / `decoder_step`).
      h: [B, L, P] encoder output; encoder_lengths: [B] int32.

    After `score`, `step_weights` holds the attention weights of that step, [N, L] float32 (the decoder state's
    last element: the alignment that produced the scores), for `CoverageScorer` and `AttentionStallLimit`
    (`weights_for`); None before the first `score` of a search.
    """

    partial = False
    bounds = (-math.inf, 0.0)

    def __init__(self, model: Any, h: tf.Tensor, encoder_lengths: tf.Tensor):
        self.model = model
        self.h = h
        self.encoder_lengths = tf.cast(encoder_lengths, tf.int32)
        self.step_weights: tf.Tensor | None = None

    def init_state(self, beam: int) -> State:
        self.step_weights = None
        # The encoder tensors stay [B, ...]: the attention reads them once for the beam hypotheses of each
        # utterance (rows n * beam .. n * beam + beam - 1), only the decoder state is per hypothesis.
        self._h_proj, state = self.model.decoder_initial_state(self.h, self.encoder_lengths)
        # The location convolution as a matrix, built once per search where it pays off (layers/attention.py).
        search_location = getattr(self.model, "decoder_search_location", None)
        self._location = search_location(self.h) if search_location is not None else None
        return tf.nest.map_structure(lambda x: tile_rows(x, beam), state)

    def score(self, last_tokens: tf.Tensor, state: State, candidates: tf.Tensor | None = None) -> tuple[Any, State]:
        if self._location is None:  # models without it (test doubles) take no location argument
            log_probs, new_state = self.model.decoder_step(
                last_tokens, state, self.h, self._h_proj, self.encoder_lengths)
        else:
            log_probs, new_state = self.model.decoder_step(
                last_tokens, state, self.h, self._h_proj, self.encoder_lengths, location_matrix=self._location)
        self.step_weights = tf.cast(new_state[-1], tf.float32)
        return tf.cast(log_probs, tf.float32), new_state

    def select(
        self, new_state: State, parent_indices: tf.Tensor, token_ids: tf.Tensor, candidate_indices: tf.Tensor
    ) -> State:
        return kept_rows(new_state, parent_indices)

    def weights_for(self, reader: Scorer) -> tf.Tensor:
        """`step_weights` [N, L] for a scorer that reads them in the same step; ValueError (naming `reader`) if this
        scorer has not scored yet, i.e. it does not come before `reader` in the search's list."""
        if self.step_weights is None:
            raise ValueError(
                f"{type(reader).__name__} reads the attention of the step: put its AttentionScorer first")
        return self.step_weights


class RNNLMScorer(Scorer):
    """Full scorer: a character language model's `log p_lm(c | y_<u)` (shallow fusion).

    Args:
      lm: a `CharacterLanguageModel` (or anything with `initial_state(batch_size)` -> tuple of [N, S] tensors
        and `step(prev_token [N] int32, state) -> (log_probs [N, V], new_state)`) over the recognizer's
        vocabulary.
      batch_size: B, the number of utterances (int or scalar int32 tensor, e.g. `tf.shape(h)[0]`).

    State: the LM's state for N = B * beam rows (`2 * layers` tensors [N, S] for the character LSTM LM).
    """

    partial = False
    bounds = (-math.inf, 0.0)

    def __init__(self, lm: Any, batch_size: Any):
        self.lm = lm
        self.batch_size = batch_size

    def init_state(self, beam: int) -> State:
        state = self.lm.initial_state(self.batch_size)
        return tf.nest.map_structure(lambda x: tile_rows(x, beam), state)

    def score(self, last_tokens: tf.Tensor, state: State, candidates: tf.Tensor | None = None) -> tuple[Any, State]:
        log_probs, new_state = self.lm.step(tf.cast(last_tokens, tf.int32), state)
        return tf.cast(log_probs, tf.float32), new_state

    def select(
        self, new_state: State, parent_indices: tf.Tensor, token_ids: tf.Tensor, candidate_indices: tf.Tensor
    ) -> State:
        return kept_rows(new_state, parent_indices)


class CTCPrefixScorer(Scorer):
    """Partial, bounded scorer: CTC prefix score increments `log psi(h + c) - log psi(h)` for the candidates.

    Summed over a finished hypothesis (ending in eos) the increments give `log P_ctc(y | x)`. Extensions that
    CTC cannot produce (the blank, or more labels than the frames allow) get `LOG_ZERO` (<= IMPOSSIBLE).
    `score` computes the prefix scores as one matmul per utterance (`ctc_prefix_score.extend_by_matmul`):
    exact to float32 rounding except for candidates at least 60 nats less likely than the matmul's bound, which
    get an upper bound and the `inexact` flag; `score(..., exact=True)` uses `ctc_prefix_score.extend`.

    Args:
      log_probs: [B, L, V] CTC log posteriors (`tf.nn.log_softmax(model.ctc_logits(h))`).
      encoder_lengths: [B] int32.
      blank_id, eos_id: special ids.
    """

    partial = True
    bounded = True
    bounds = (-math.inf, 0.0)  # prefix probabilities never grow with the prefix

    def __init__(self, log_probs: tf.Tensor, encoder_lengths: tf.Tensor, blank_id: int = 0, eos_id: int = -1):
        self.log_probs = tf.cast(log_probs, tf.float32)
        self.encoder_lengths = tf.cast(encoder_lengths, tf.int32)
        self.blank_id = int(blank_id)
        self.eos_id = int(eos_id)

    @classmethod
    def from_model(cls, model: Any, h: tf.Tensor, encoder_lengths: tf.Tensor, blank_id: int = 0) -> CTCPrefixScorer:
        log_probs = tf.nn.log_softmax(tf.cast(model.ctc_logits(h), tf.float32), axis=-1)
        return cls(log_probs, encoder_lengths, blank_id=blank_id, eos_id=model.eos_id)

    def init_state(self, beam: int) -> State:
        self._log_probs = tile_rows(self.log_probs, beam)
        self._lengths = tile_rows(self.encoder_lengths, beam)
        self._scaled, self._label_max = cps.scaled_posteriors(self.log_probs, self.encoder_lengths)
        return cps.initial_state(self._log_probs, self._lengths, self.blank_id)

    def score(
        self, last_tokens: tf.Tensor, state: State, candidates: tf.Tensor | None = None, exact: bool = False
    ) -> tuple[Any, State]:
        """-> (scores [N, C], new_state = (log_psi [N, C], the parents' state, inexact [N, C] bool))."""
        if candidates is None:
            raise ValueError("CTCPrefixScorer is a partial scorer: it needs candidates")
        if exact:
            log_psi = cps.extend(
                self._log_probs, self._lengths, state, candidates, blank_id=self.blank_id, eos_id=self.eos_id
            )
            inexact = tf.zeros(tf.shape(candidates), tf.bool)
        else:
            log_psi, inexact = cps.extend_by_matmul(
                self._scaled, self._label_max, self._lengths, state, candidates, self.blank_id, self.eos_id
            )
        increments = log_psi - tf.expand_dims(state.log_psi, 1)
        scores = tf.where(log_psi <= IMPOSSIBLE, tf.constant(cps.LOG_ZERO, tf.float32), increments)
        return scores, (log_psi, state, inexact)

    def inexact(self, new_state: State) -> tf.Tensor:
        """[N, C] bool: the scores of `score` that are upper bounds, not exact."""
        return new_state[2]

    def select(
        self, new_state: State, parent_indices: tf.Tensor, token_ids: tf.Tensor, candidate_indices: tf.Tensor
    ) -> State:
        log_psi, parents, _ = new_state
        return cps.select(
            self._log_probs, parents, log_psi, parent_indices, candidate_indices, token_ids, self.blank_id
        )


class CoverageScorer(Scorer):
    """Full scorer: the coverage term (Chorowski & Jaitly 2017; not in the paper). The coverage of a hypothesis is
    the number of encoder frames whose attention summed over its tokens exceeds `threshold`; each token (not eos)
    scores what its step's attention adds to it, so `weight * score` summed over a finished hypothesis is
    `weight * coverage`. A per-token length bonus rewards a token the decoder repeats over frames it has already
    read as much as one over new frames; this rewards only frames newly read.

    Every token of a hypothesis' extensions scores the same (the step's attention does not depend on the token it
    emits), eos scores 0. One step can add up to L, but a hypothesis no more than its uncovered frames in all:
    `remaining_gain`, which keeps the early stop exact.

    Args:
      attention: the search's `AttentionScorer`, ahead of this scorer in the list: `score` reads its
        `step_weights` of the same step.
      vocab_size, eos_id: output vocabulary.
      threshold: attention mass at which a frame counts as covered (Chorowski & Jaitly: 0.5).

    State: (summed attention [N, L] float32, covered frames [N] float32), zeros for the sos hypothesis.
    """

    partial = False
    bounds = (0.0, None)
    total_bounded = True

    def __init__(self, attention: AttentionScorer, vocab_size: int, eos_id: int, threshold: float = 0.5):
        if not threshold > 0.0:
            raise ValueError(f"coverage threshold must be > 0, got {threshold}")
        self.attention = attention
        self.vocab_size = int(vocab_size)
        self.eos_id = int(eos_id)
        self.threshold = float(threshold)

    def init_state(self, beam: int) -> State:
        self._frames = tf.cast(tile_rows(self.attention.encoder_lengths, beam), tf.float32)  # [N]
        summed = tf.zeros(tf.stack([tf.shape(self._frames)[0], tf.shape(self.attention.h)[1]]), tf.float32)
        return summed, tf.zeros_like(self._frames)

    def score(self, last_tokens: tf.Tensor, state: State, candidates: tf.Tensor | None = None) -> tuple[Any, State]:
        summed, covered = state
        summed = summed + self.attention.weights_for(self)
        new_covered = tf.reduce_sum(tf.cast(summed > self.threshold, tf.float32), axis=1)  # [N]
        row = 1.0 - tf.one_hot(self.eos_id, self.vocab_size, dtype=tf.float32)  # [V]
        scores = tf.expand_dims(new_covered - covered, 1) * tf.expand_dims(row, 0)
        return scores, (summed, new_covered)

    def select(
        self, new_state: State, parent_indices: tf.Tensor, token_ids: tf.Tensor, candidate_indices: tf.Tensor
    ) -> State:
        return kept_rows(new_state, parent_indices)

    def remaining_gain(self, state: State) -> tf.Tensor:
        return tf.maximum(self._frames - state[1], 0.0)


class LengthBonus(Scorer):
    """Full scorer: +1 for every token except eos, so that `weight * score` adds `length_penalty * |y|`
    (the paper's `length(hyp) * 0.1` (WSJ) / `0.3` (CHiME-4)). Stateless (state is an empty tuple)."""

    partial = False
    bounds = (0.0, 1.0)

    def __init__(self, vocab_size: int, eos_id: int):
        self.vocab_size = int(vocab_size)
        self.eos_id = int(eos_id)

    def init_state(self, beam: int) -> State:
        return ()

    def score(self, last_tokens: tf.Tensor, state: State, candidates: tf.Tensor | None = None) -> tuple[Any, State]:
        row = 1.0 - tf.one_hot(self.eos_id, self.vocab_size, dtype=tf.float32)  # [V]
        scores = tf.zeros([tf.shape(last_tokens)[0], 1], tf.float32) + tf.expand_dims(row, 0)
        return scores, ()

    def select(
        self, new_state: State, parent_indices: tf.Tensor, token_ids: tf.Tensor, candidate_indices: tf.Tensor
    ) -> State:
        return ()


class RepeatLimit(Scorer):
    """Full scorer: forbids (`IMPOSSIBLE`) every token that would end a hypothesis in `max_repeats + 1` consecutive
    copies of one unit of `min_unit` to `max_unit` tokens ("the the the", "of the of the of the"); every other
    extension scores 0. Not in the paper: a decoding rule against the attention beam's loops (an attention decoder
    that loses its place in noise may read the same frames again and again, docs/accuracy.md), in the spirit of
    the `no_repeat_ngram_size` of text generation but blind to units said twice ("had had", "sad sad girl" pass at
    `max_repeats` 2). Runs of one token are not units by default (`min_unit` 2): the corpus' texts hold "...".

    For a candidate c after tokens x_1..x_n the rule asks, for every unit length u, whether x_1..x_n c ends in
    `max_repeats + 1` copies of its last u tokens: c equals x_(n+1-u) and the last `max_repeats * u - 1` tokens
    each equal the token u before them (which does not depend on c, so one comparison per u gives the [N, V] mask).

    Args:
      batch_size: B, the number of utterances (int or scalar int32 tensor).
      vocab_size, sos_id: output vocabulary (sos, the first step's `last_tokens`, is not a token of the hypothesis;
        eos, never in the state, is never forbidden).
      max_repeats: >= 1, how many consecutive copies of a unit a hypothesis may hold.
      min_unit, max_unit: 1 <= min_unit <= max_unit, the unit lengths (tokens) checked.

    State: the last `(max_repeats + 1) * max_unit - 1` tokens [N, M] int32, most recent first, -1 where the
    hypothesis is shorter (so a unit is checked only where position `needed - 1` holds a token), all -1 for the sos
    hypothesis.
    """

    partial = False
    bounds = (-math.inf, 0.0)

    def __init__(self, batch_size: Any, vocab_size: int, sos_id: int, max_repeats: int, min_unit: int = 2,
                 max_unit: int = 24):
        if int(max_repeats) < 1:
            raise ValueError(f"max_repeats must be >= 1, got {max_repeats}")
        if not 1 <= int(min_unit) <= int(max_unit):
            raise ValueError(f"need 1 <= min_unit <= max_unit, got {min_unit} and {max_unit}")
        self.batch_size = batch_size
        self.vocab_size = int(vocab_size)
        self.sos_id = int(sos_id)
        self.max_repeats = int(max_repeats)
        self.memory = (self.max_repeats + 1) * int(max_unit) - 1
        units = range(int(min_unit), int(max_unit) + 1)
        # For unit length u (one row per u): the positions j (0: the newest token) that must equal position j + u.
        self._checked = tf.constant(
            [[j < self.max_repeats * u - 1 for j in range(self.memory)] for u in units], tf.bool)  # [U, M]
        self._partner = tf.constant(
            [[min(j + u, self.memory - 1) for j in range(self.memory)] for u in units], tf.int32)  # [U, M]
        # [U]: the newest position a hypothesis must fill (hold a token, not -1) for max_repeats + 1 copies of u.
        self._last_needed = tf.constant([(self.max_repeats + 1) * u - 2 for u in units], tf.int32)
        self._unit_start = tf.constant([u - 1 for u in units], tf.int32)  # [U]: the token u back

    def init_state(self, beam: int) -> State:
        rows = tf.convert_to_tensor(self.batch_size, tf.int32) * beam
        return tf.fill(tf.stack([rows, self.memory]), -1)

    def score(self, last_tokens: tf.Tensor, state: State, candidates: tf.Tensor | None = None) -> tuple[Any, State]:
        recent = state
        last_tokens = tf.cast(last_tokens, tf.int32)
        is_token = tf.not_equal(last_tokens, self.sos_id)  # [N]: sos (the first step) is not a token
        pushed = tf.concat([tf.expand_dims(last_tokens, 1), recent[:, :-1]], axis=1)
        recent = tf.where(tf.expand_dims(is_token, 1), pushed, recent)
        partners = tf.gather(recent, self._partner, axis=1)  # [N, U, M]
        mismatch = tf.not_equal(tf.expand_dims(recent, 1), partners) & self._checked
        periodic = tf.logical_not(tf.reduce_any(mismatch, axis=2))  # [N, U]
        periodic = periodic & (tf.gather(recent, self._last_needed, axis=1) >= 0)  # long enough
        next_copy = tf.gather(recent, self._unit_start, axis=1)  # [N, U]: the token that completes one more copy
        hits = tf.equal(tf.expand_dims(next_copy, 2), tf.range(self.vocab_size))  # [N, U, V]
        forbidden = tf.reduce_any(hits & tf.expand_dims(periodic, 2), axis=1)  # [N, V]
        scores = tf.where(forbidden, tf.constant(IMPOSSIBLE, tf.float32), tf.constant(0.0, tf.float32))
        return scores, recent

    def select(
        self, new_state: State, parent_indices: tf.Tensor, token_ids: tf.Tensor, candidate_indices: tf.Tensor
    ) -> State:
        return kept_rows(new_state, parent_indices)


class AttentionStallLimit(Scorer):
    """Full scorer: a hypothesis may emit at most `max_stall` tokens in a row whose attention peak does not pass the
    furthest encoder frame its peaks have reached; at the next such step every token but eos is forbidden
    (`IMPOSSIBLE`): it may only end there. Every other extension scores 0. Not in the paper: a decoding rule against
    the attention beam's loops in noise, where an attention decoder that has lost its place reads frames it has
    read again, jumping back ("you could of the could the could ...") or circling near the end ("the the plied the the
    pried ..."), with the small changes that `RepeatLimit` does not catch. Teacher-forced through the recognizers of
    docs/accuracy.md's rows ab and as, every looping hypothesis stalled for 28 tokens and more, every other one for
    at most 6.

    The peak of a step is the argmax of the attention weights that produced its scores (`AttentionScorer`'s
    `step_weights`); it does not depend on the token emitted, so the rule forbids whole rows.

    Args:
      attention: the search's `AttentionScorer`, ahead of this scorer in the list: `score` reads its
        `step_weights` of the same step.
      vocab_size, eos_id: output vocabulary.
      max_stall: >= 0, how many tokens in a row may leave the furthest peak where it is.

    State: (the furthest peak of the hypothesis' tokens [N] int32, -1 for the sos hypothesis; how many of its last
    tokens in a row did not pass it [N] int32).
    """

    partial = False
    bounds = (-math.inf, 0.0)

    def __init__(self, attention: AttentionScorer, vocab_size: int, eos_id: int, max_stall: int):
        if int(max_stall) < 0:
            raise ValueError(f"max_stall must be >= 0, got {max_stall}")
        self.attention = attention
        self.vocab_size = int(vocab_size)
        self.eos_id = int(eos_id)
        self.max_stall = int(max_stall)

    def init_state(self, beam: int) -> State:
        rows = tf.expand_dims(tf.shape(self.attention.encoder_lengths)[0] * beam, 0)
        return tf.fill(rows, -1), tf.zeros(rows, tf.int32)

    def score(self, last_tokens: tf.Tensor, state: State, candidates: tf.Tensor | None = None) -> tuple[Any, State]:
        furthest, stalled = state
        peak = tf.math.argmax(self.attention.weights_for(self), axis=1, output_type=tf.int32)  # [N]
        advances = peak > furthest
        stalled = tf.where(advances, tf.zeros_like(stalled), stalled + 1)
        too_long = tf.expand_dims(stalled > self.max_stall, 1)  # [N, 1]
        not_eos = tf.expand_dims(tf.not_equal(tf.range(self.vocab_size), self.eos_id), 0)  # [1, V]
        scores = tf.where(too_long & not_eos, tf.constant(IMPOSSIBLE, tf.float32), tf.constant(0.0, tf.float32))
        return scores, (tf.maximum(furthest, peak), stalled)

    def select(
        self, new_state: State, parent_indices: tf.Tensor, token_ids: tf.Tensor, candidate_indices: tf.Tensor
    ) -> State:
        return kept_rows(new_state, parent_indices)
