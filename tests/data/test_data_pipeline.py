"""make_dataset and make_training_stream: the documented batch dict, eval order, bucketing, determinism, padding
invariance, and a stream that a resumed run continues exactly."""

from __future__ import annotations

import collections
import functools
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc import features
from tf_jointctc.data.audio import read_audio
from tf_jointctc.data.pipeline import (
    bucket_batch_sizes,
    cached_utterance_features,
    make_dataset,
    make_epoch_dataset,
    make_training_stream,
    resolve_shards,
)
from tf_jointctc.data.speed_perturbation import speed_perturbed_utterance
from tf_jointctc.data.tfrecord import prepare_dataset
from tf_jointctc.data.train_noise import TrainNoise, noisy_utterance
from tf_jointctc.text import Vocabulary

VOCAB = Vocabulary()
SECONDS = [0.7, 1.4, 0.9, 1.9, 0.75, 1.2, 1.6]
TEXTS = ["one", "two words", "three", "four and more", "five", "six six", "seven things"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    import json

    import soundfile

    root = tmp_path_factory.mktemp("pipeline")
    entries, expected = [], {}
    for i, (seconds, text) in enumerate(zip(SECONDS, TEXTS)):
        t = np.arange(round(seconds * 16000)) / 16000
        samples = (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32)
        path = str(root / f"utt{i}.wav")
        soundfile.write(path, samples, 16000, subtype="PCM_16")
        entries.append({"id": f"utt{i}", "audio": path, "text": text})
        expected[f"utt{i}"] = (read_audio(path), text)
    with open(root / "m.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(e) + "\n" for e in entries)
    summary = prepare_dataset(str(root / "m.jsonl"), str(root / "cache"), VOCAB, num_shards=3, subsampling=4)
    assert summary["num_utterances"] == len(SECONDS)
    return summary["shards"], expected


def _ids(batch) -> list[str]:
    return [i.decode() for i in batch["ids"].numpy()]


def test_eval_batches_have_the_documented_dict_in_file_order(prepared):
    paths, expected = prepared
    dataset = make_dataset(paths, batch_size=3, training=False)
    spec = dataset.element_spec
    assert set(spec) == {"features", "feature_lengths", "labels", "label_lengths", "ids"}
    assert spec["features"].dtype == tf.float32 and spec["features"].shape.as_list() == [None, None, 120]
    assert spec["feature_lengths"].dtype == tf.int32 and spec["labels"].dtype == tf.int32
    assert spec["label_lengths"].dtype == tf.int32 and spec["ids"].dtype == tf.string

    seen = []
    batches = list(dataset)
    assert [len(_ids(b)) for b in batches] == [3, 3, 1]  # no dropped remainder
    for batch in batches:
        ids = _ids(batch)
        seen += ids
        feats, lengths = batch["features"].numpy(), batch["feature_lengths"].numpy()
        labels, label_lengths = batch["labels"].numpy(), batch["label_lengths"].numpy()
        assert feats.shape[0] == len(ids) and feats.shape[1] == lengths.max()
        for row, utt_id in enumerate(ids):
            pcm, text = expected[utt_id]
            assert lengths[row] == features.num_frames(pcm.shape[0])
            assert not feats[row, lengths[row] :].any()
            encoded = VOCAB.encode(text)
            assert label_lengths[row] == len(encoded)
            assert labels[row, : len(encoded)].tolist() == encoded
            assert not labels[row, len(encoded) :].any()
    assert seen == [f"utt{i}" for i in range(len(SECONDS))]


def test_features_do_not_depend_on_batch_padding(prepared):
    paths, expected = prepared
    extractor = features.FeatureExtractor()
    for batch in make_dataset(paths, batch_size=4, training=False):
        for row, utt_id in enumerate(_ids(batch)):
            pcm = expected[utt_id][0]
            alone, num = extractor(tf.constant(pcm[None].astype(np.float32) / 32768.0), tf.constant([pcm.shape[0]]))
            n = int(num[0])
            assert n == int(batch["feature_lengths"][row])
            np.testing.assert_allclose(batch["features"][row, :n].numpy(), alone[0].numpy(), rtol=1e-4, atol=2e-3)


def test_optional_keys(prepared):
    paths, expected = prepared
    batch = next(iter(make_dataset(paths, batch_size=2, training=False, include_waveform=True, include_text=True)))
    assert [t.decode() for t in batch["texts"].numpy()] == [TEXTS[0], TEXTS[1]]
    assert batch["waveform"].dtype == tf.float32 and batch["num_samples"].dtype == tf.int32
    pcm = expected["utt0"][0]
    np.testing.assert_array_equal(np.rint(batch["waveform"][0, : pcm.shape[0]].numpy() * 32768), pcm)
    assert not batch["waveform"][0, pcm.shape[0] :].numpy().any()
    assert batch["num_samples"].numpy().tolist() == [expected["utt0"][0].shape[0], expected["utt1"][0].shape[0]]


def _epoch_ids(dataset) -> list[list[str]]:
    return [_ids(batch) for batch in dataset]


def test_training_bucketing_is_complete_and_deterministic(prepared):
    paths, _ = prepared
    boundaries = [100, 160]  # frames: 0.7-0.9 s | 1.2-1.6 s | 1.9 s

    def build(seed):
        return make_dataset(
            paths,
            batch_size=4,
            training=True,
            seed=seed,
            shuffle_buffer=16,
            bucket_boundaries=boundaries,
            max_frames_per_batch=320,
        )

    dataset = build(seed=1)
    first_epoch, second_epoch = _epoch_ids(dataset), _epoch_ids(dataset)
    for epoch in (first_epoch, second_epoch):
        assert collections.Counter(i for batch in epoch for i in batch) == {f"utt{i}": 1 for i in range(7)}
    assert _epoch_ids(build(seed=1)) == first_epoch  # the same seed gives the same batches
    for batch in dataset:
        frames = batch["feature_lengths"].numpy()
        buckets = {int(np.searchsorted(boundaries, f, side="right")) for f in frames}
        assert len(buckets) == 1  # one length bucket per batch
        assert len(frames) <= bucket_batch_sizes(boundaries, 4, 320)[buckets.pop()]


def test_bucket_batch_sizes():
    assert bucket_batch_sizes([100, 200], 8) == [8, 8, 8]
    assert bucket_batch_sizes([100, 200, 1000], 8, 1000) == [8, 5, 1, 1]


def test_training_drop_remainder(prepared):
    paths, _ = prepared
    sizes = [len(b) for b in _epoch_ids(make_dataset(paths, batch_size=3, training=True, drop_remainder=True))]
    assert sizes == [3, 3]


def test_resolve_shards(prepared, tmp_path):
    paths, _ = prepared
    folder = paths[0].rsplit("/", 1)[0]
    assert resolve_shards(folder) == paths
    assert resolve_shards(folder + "/shard-*-of-00003.tfrecord") == paths
    assert resolve_shards(paths[::-1]) == paths[::-1]
    with pytest.raises(FileNotFoundError):
        resolve_shards(str(tmp_path / "none-*.tfrecord"))


def _complete_passes(stream: list[list[str]]) -> list[list[str]]:
    """The ids of the stream's batches grouped into passes of len(SECONDS) utterances (a trailing incomplete
    pass is dropped); the stream must start at a pass boundary."""
    passes, current = [], []
    for batch in stream:
        current += batch
        if len(current) == len(SECONDS):
            passes.append(current)
            current = []
    return passes


def test_training_stream_passes_cover_every_utterance_and_resume_continues_exactly(prepared):
    paths, _ = prepared
    boundaries = [100, 160]

    def build(seed, start_batch=0):
        return make_training_stream(paths, batch_size=3, seed=seed, start_batch=start_batch, shuffle_buffer=16,
                                    bucket_boundaries=boundaries)

    stream = [_ids(batch) for batch in build(seed=1).take(12)]
    # Each pass is every utterance once; passes are batched separately and shuffled differently.
    passes = _complete_passes(stream)
    assert len(passes) >= 2
    for one_pass in passes:
        assert collections.Counter(one_pass) == {f"utt{i}": 1 for i in range(7)}
    assert len({tuple(p) for p in passes}) > 1
    # Built again (a resumed run), from batch 5 on: exactly the batches the first stream gave from 5 on.
    assert [_ids(batch) for batch in build(seed=1, start_batch=5).take(7)] == stream[5:]
    assert [_ids(batch) for batch in build(seed=2).take(12)] != stream
    batch = next(iter(build(seed=1)))
    assert set(batch) == {"features", "feature_lengths", "labels", "label_lengths", "ids"}


@pytest.mark.parametrize("global_seed", [0, 5])
def test_training_stream_builds_and_repeats_under_any_global_seed(prepared, global_seed):
    """`config.seed` 0 sets the global seed 0, under which tf.data's seeding of the pass-dependent shuffles once
    failed to build the stream (OperatorNotAllowedInGraphError)."""
    paths, _ = prepared

    def first_batches() -> list[list[str]]:
        tf.random.set_seed(global_seed)
        stream = make_training_stream(paths, batch_size=3, seed=0, shuffle_buffer=16, bucket_boundaries=[100, 160])
        return [_ids(batch) for batch in stream.take(6)]

    batches = first_batches()
    assert collections.Counter(i for batch in batches[:3] for i in batch)["utt0"] >= 1
    assert first_batches() == batches


def test_epoch_datasets_are_the_streams_passes_and_skip_exactly(prepared):
    """Epochs that are passes (`train.steps_per_epoch = 0`): epoch n is shuffled by (seed, n), so a run resumed
    inside it rebuilds the same batches and skips the consumed ones. tf.data also mixes in the process' global
    seed, which `train` sets from `config.seed`: set here too (other tests leave theirs behind)."""
    tf.random.set_seed(1)
    paths, _ = prepared
    kwargs = {"batch_size": 3, "seed": 1, "shuffle_buffer": 16, "bucket_boundaries": [100, 160]}
    epochs = [_epoch_ids(make_epoch_dataset(paths, epoch=n, **kwargs)) for n in range(3)]
    for batches in epochs:
        assert collections.Counter(i for batch in batches for i in batch) == {f"utt{i}": 1 for i in range(7)}
    assert len({tuple(map(tuple, batches)) for batches in epochs}) == 3  # each epoch its own order
    assert _epoch_ids(make_epoch_dataset(paths, epoch=1, **kwargs)) == epochs[1]  # rebuilt: the same
    assert _epoch_ids(make_epoch_dataset(paths, epoch=1, start_batch=2, **kwargs)) == epochs[1][2:]
    # The same batches as the passes of the endless stream.
    stream = [_ids(b) for b in make_training_stream(paths, **kwargs).take(sum(len(e) for e in epochs))]
    assert stream == [batch for batches in epochs for batch in batches]
    # repeat=True: the pass over and over; start_batch counts across the repetitions.
    repeated = [_ids(b) for b in make_epoch_dataset(paths, epoch=1, repeat=True, start_batch=1, **kwargs).take(
        2 * len(epochs[1]))]
    assert repeated == (epochs[1] + epochs[1] + epochs[1])[1 : 1 + 2 * len(epochs[1])]


def _features_by_id(dataset) -> dict[str, np.ndarray]:
    out = {}
    for batch in dataset:
        for uid, feats, n in zip(_ids(batch), batch["features"].numpy(), batch["feature_lengths"].numpy()):
            assert not feats[n:].any()  # zero past the length
            out[uid] = feats[:n]
    return out


def test_cached_stream_is_complete_deterministic_equal_to_live_features_and_read_from_memory(prepared, tmp_path):
    """`data.cache_features`: every pass holds every utterance once, a rebuilt stream (a resumed run) gives the
    same batches, the features equal the live pipeline's, and after the first pass nothing is read from disk:
    the shards are moved away and later passes still come, from the cache."""
    import shutil

    src_paths, _ = prepared
    paths = []
    for p in src_paths:  # a private copy of the shards, which this test moves away
        paths.append(str(tmp_path / os.path.basename(p)))
        shutil.copy(p, paths[-1])
    tf.random.set_seed(1)
    kwargs = {"batch_size": 3, "seed": 1, "shuffle_buffer": 16, "bucket_boundaries": [100, 160]}

    def build(cache, start_batch=0):
        return make_training_stream(paths, start_batch=start_batch, cached_utterances=cache, **kwargs)

    cache = cached_utterance_features(paths)
    iterator = iter(build(cache))
    first_pass, seen = [], 0
    while seen < len(SECONDS):
        first_pass.append(next(iterator))
        seen += len(first_pass[-1]["ids"])
    assert seen == len(SECONDS)
    live = _features_by_id(make_dataset(paths, batch_size=7, training=False))
    cached = _features_by_id(first_pass)
    assert set(cached) == set(live)
    for uid, feats in live.items():
        np.testing.assert_allclose(cached[uid], feats, rtol=1e-5, atol=1e-5)
    assert {b["features"].shape[-1] for b in first_pass} == {120}
    # The pass's shuffle buffer (16) holds all 7 utterances, so the cache was complete before the first batch
    # came out: move the shards away; later passes can only come from memory.
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in paths:
        shutil.move(p, moved / os.path.basename(p))
    later = [_ids(next(iterator)) for _ in range(10)]
    passes = _complete_passes(later)
    assert len(passes) >= 1
    for one_pass in passes:
        assert collections.Counter(one_pass) == {f"utt{i}": 1 for i in range(7)}
    for p in paths:  # back, since building a stream resolves the shard paths
        shutil.move(moved / os.path.basename(p), p)
    # A rebuilt stream on the same cache, from batch 3 on: exactly what the first gave from batch 3 on.
    stream = [_ids(b) for b in first_pass] + later
    assert [_ids(b) for b in build(cache, start_batch=3).take(len(stream) - 3)] == stream[3:]
    # Epoch datasets on the cache are the stream's passes, as without it.
    epoch0 = _epoch_ids(make_epoch_dataset(paths, epoch=0, cached_utterances=cache, **kwargs))
    assert [i for batch in epoch0 for i in batch] == [i for b in first_pass for i in _ids(b)]


def test_training_stream_with_noise_draws_it_anew_each_pass_and_a_rebuilt_stream_repeats_it(prepared):
    """`augmentation` (`data.train_noise`): the stream's batches hold the same utterances as without it, each
    utterance's features differ from the clean ones and from pass to pass, and a rebuilt stream (a resumed run)
    gives exactly the same features from its start batch on."""
    paths, _ = prepared
    noise = functools.partial(noisy_utterance, settings=TrainNoise(probability=1.0, kinds=("white",), weights=(1.0,)))
    kwargs = {"batch_size": 3, "seed": 1, "shuffle_buffer": 16, "bucket_boundaries": [100, 160]}
    tf.random.set_seed(1)
    noisy = list(make_training_stream(paths, augmentation=noise, **kwargs).take(9))
    clean = list(make_training_stream(paths, **kwargs).take(9))
    assert [_ids(b) for b in noisy] == [_ids(b) for b in clean]
    by_pass: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    for noisy_batch, clean_batch in zip(noisy, clean):
        lengths = noisy_batch["feature_lengths"].numpy()
        np.testing.assert_array_equal(lengths, clean_batch["feature_lengths"].numpy())
        for uid, a, b, n in zip(_ids(noisy_batch), noisy_batch["features"].numpy(), clean_batch["features"].numpy(),
                                lengths):
            assert not a[n:].any()
            assert np.abs(a[:n] - b[:n]).mean() > 0.1
            by_pass[uid].append(a[:n])
    repeated = [feats for feats in by_pass.values() if len(feats) >= 2]
    assert repeated
    for feats in repeated:
        assert np.abs(feats[0] - feats[1]).mean() > 0.1
    resumed = list(make_training_stream(paths, augmentation=noise, start_batch=4, **kwargs).take(5))
    for a, b in zip(resumed, noisy[4:]):
        assert _ids(a) == _ids(b)
        np.testing.assert_array_equal(a["features"].numpy(), b["features"].numpy())
    with pytest.raises(ValueError, match="cache_features"):
        make_training_stream(paths, augmentation=noise, cached_utterances=cached_utterance_features(paths), **kwargs)


def test_training_stream_tells_the_augmentation_its_pass(prepared):
    """A noise curriculum (`data.train_noise.ramp_passes`) sees each pass' index: clean in pass 0, noisy from pass 1
    on, in the stream and in the epoch datasets alike."""
    paths, _ = prepared
    noise = functools.partial(noisy_utterance, settings=TrainNoise(
        probability=1.0, initial_probability=0.0, ramp_passes=1, kinds=("white",), weights=(1.0,)))
    kwargs = {"batch_size": 4, "seed": 1, "shuffle_buffer": 16}
    tf.random.set_seed(1)
    for epoch in (0, 1):
        ramped = list(make_epoch_dataset(paths, epoch=epoch, augmentation=noise, **kwargs))
        clean = list(make_epoch_dataset(paths, epoch=epoch, **kwargs))
        differs = [bool(np.abs(a["features"].numpy() - b["features"].numpy()).max() > 0)
                   for a, b in zip(ramped, clean)]
        assert differs == [epoch == 1] * len(clean)
    stream = list(make_training_stream(paths, augmentation=noise, **kwargs).take(2 * len(clean)))
    plain_passes = [b["features"].numpy() for epoch in (0, 1) for b in make_epoch_dataset(paths, epoch=epoch, **kwargs)]
    assert len(stream) == len(plain_passes)
    for position, (batch, plain) in enumerate(zip(stream, plain_passes)):
        assert np.array_equal(batch["features"].numpy(), plain) == (position < len(clean))


def test_speed_perturbed_passes_hold_every_utterance_once_and_a_rebuilt_stream_repeats_them(prepared):
    """`augmentation` (`data.speed_perturbation`): a pass (an epoch dataset) holds every utterance exactly once,
    some at a new length, and a rebuilt stream (a resumed run) gives exactly the same batches from its start on."""
    paths, expected = prepared
    speed = functools.partial(speed_perturbed_utterance, factors=(0.8, 1.25), subsampling=4)
    kwargs = {"batch_size": 3, "seed": 1, "shuffle_buffer": 16, "bucket_boundaries": [100, 160]}
    tf.random.set_seed(1)
    lengths = {}
    for epoch in range(2):
        batches = list(make_epoch_dataset(paths, epoch=epoch, augmentation=speed, **kwargs))
        ids = [i for batch in batches for i in _ids(batch)]
        assert sorted(ids) == sorted(expected)
        for batch in batches:
            lengths.update({(epoch, i): int(n) for i, n in zip(_ids(batch), batch["feature_lengths"].numpy())})
    original = {uid: pcm.shape[0] for uid, (pcm, _) in expected.items()}
    for (_, uid), frames in lengths.items():  # every utterance at one of the two speeds: none keeps its own
        assert frames in [features.num_frames(round(original[uid] / f)) for f in (0.8, 1.25)]
    assert any(lengths[(0, uid)] != lengths[(1, uid)] for uid in original)  # drawn anew each pass
    stream = list(make_training_stream(paths, augmentation=speed, **kwargs).take(8))
    resumed = list(make_training_stream(paths, augmentation=speed, start_batch=3, **kwargs).take(5))
    for a, b in zip(resumed, stream[3:]):
        assert _ids(a) == _ids(b)
        np.testing.assert_array_equal(a["features"].numpy(), b["features"].numpy())
