"""Batches of sentences for the character LM (issue 13): `(tokens_in [B, U], targets [B, U])` int32, where
`tokens_in` is sos + a sentence's labels and `targets` its labels + eos, padded with `pad_id` (the blank).

A pass's batches depend only on (seed, pass): the sentences are shuffled by that pair, cut into groups of
`batch_size * SORT_GROUP` that are sorted by length (little padding) and cut into batches, and the batches
are shuffled again. Training reads an endless sequence of passes by batch number, so a resumed run sees
exactly the batches an uninterrupted one would, from the one it had reached on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

SORT_GROUP = 32  # batches' worth of sentences sorted by length together


def epoch_batches(
    num_sentences: int, lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[np.ndarray]:
    """The sentence indices of every batch of pass `epoch` (0-based), in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(num_sentences)
    lengths = np.asarray(lengths)
    batches = []
    group = batch_size * SORT_GROUP
    for start in range(0, num_sentences, group):
        chunk = order[start:start + group]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(
    sentences: Sequence[Sequence[int]], sos_id: int, eos_id: int, pad_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """-> (tokens_in [B, U], targets [B, U]) int32 with U = the longest sentence + 1."""
    width = max(len(s) for s in sentences) + 1
    tokens_in = np.full((len(sentences), width), pad_id, np.int32)
    targets = np.full((len(sentences), width), pad_id, np.int32)
    for row, labels in enumerate(sentences):
        tokens_in[row, : len(labels) + 1] = [sos_id, *labels]
        targets[row, : len(labels) + 1] = [*labels, eos_id]
    return tokens_in, targets


def make_lm_dataset(
    sentences: Sequence[Sequence[int]],
    *,
    batch_size: int,
    sos_id: int,
    eos_id: int,
    pad_id: int = 0,
    seed: int = 1,
    first_batch: int | None = 0,
    num_batches: int | None = None,
) -> tf.data.Dataset:
    """Training batches `first_batch .. first_batch + num_batches - 1` of the endless sequence of passes
    (batch k is batch `k % P` of pass `k // P`, P = `batches_per_epoch`; `num_batches=None`: to the end of
    `first_batch`'s pass). `first_batch=None`: the sentences in order, unshuffled, one pass (evaluation).

    Raises ValueError for an empty sentence list."""
    if not sentences:
        raise ValueError("no sentences to batch")
    lengths = [len(s) for s in sentences]
    per_pass = batches_per_epoch(len(sentences), batch_size)
    if first_batch is None:
        indices = [np.arange(i, min(i + batch_size, len(sentences))) for i in range(0, len(sentences), batch_size)]
    else:
        stop = first_batch + num_batches if num_batches is not None else (first_batch // per_pass + 1) * per_pass
        indices = []
        for epoch in range(first_batch // per_pass, -(-stop // per_pass)):
            batches = epoch_batches(len(sentences), lengths, batch_size, seed, epoch)
            low, high = max(first_batch - epoch * per_pass, 0), min(stop - epoch * per_pass, per_pass)
            indices += batches[low:high]

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for batch in indices:
            yield pad_batch([sentences[i] for i in batch], sos_id, eos_id, pad_id)

    spec = tf.TensorSpec([None, None], tf.int32)
    return tf.data.Dataset.from_generator(generate, output_signature=(spec, spec)).prefetch(2)


def batches_per_epoch(num_sentences: int, batch_size: int) -> int:
    """Updates in one pass (groups are cut at `batch_size * SORT_GROUP`, a multiple of the batch size)."""
    return -(-num_sentences // batch_size)
