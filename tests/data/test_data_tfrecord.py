"""write_shards / parse_example round trip, skip accounting, and prepare_dataset's cache."""

from __future__ import annotations

import glob
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc.data import tfrecord
from tf_jointctc.data.audio import read_audio
from tf_jointctc.data.manifest import read_dataset
from tf_jointctc.data.skips import SkipReport
from tf_jointctc.data.tfrecord import encoder_frames, parse_example, prepare_dataset, write_shards
from tf_jointctc.text import Vocabulary, normalize

VOCAB = Vocabulary()


def test_encoder_frames():
    assert encoder_frames(98, 4) == 25
    assert encoder_frames(97, 4) == 25
    assert encoder_frames(5, 2) == 3
    assert encoder_frames(7, 1) == 7
    assert encoder_frames(0, 4) == 0
    assert encoder_frames(9, 8) == 2
    assert encoder_frames(10, 3) == 4  # input stacking 3: any positive reduction, ceil(T / r)
    assert encoder_frames(9, 3) == 3
    for frames in range(40):  # nested ceilings of a stack-3 front end and two halvings compose to one
        assert encoder_frames(frames, 12) == math.ceil(math.ceil(math.ceil(frames / 3) / 2) / 2)
    with pytest.raises(ValueError):
        encoder_frames(10, 0)


def _dataset_with_bad_entries(tmp_path, helpers) -> str:
    """A manifest with 4 good utterances and one bad one per skip reason."""
    audio = tmp_path / "audio"
    audio.mkdir()
    good = {
        "g1": (helpers.write_audio(audio / "g1.wav", helpers.tone(0.8, seed=1)), "Hello world"),
        "g2": (helpers.write_audio(audio / "g2.flac", helpers.tone(1.1, seed=2)), "it\u2019s a test"),
        "g3": (helpers.write_audio(audio / "g3.wav", helpers.tone(0.6, rate=8000, seed=3), rate=8000), "eight k"),
        "g4": (helpers.write_audio(audio / "g4.wav", helpers.tone(0.9, seed=4), subtype="PCM_24"), "twenty four"),
    }
    nan = helpers.tone(0.5)
    nan[10] = np.nan
    bad = {
        "missing": ("audio/nope.wav", "missing file"),
        "digits": (good["g1"][0], "123 456"),  # empty after normalization
        "toolong_labels": (helpers.write_audio(audio / "short.wav", helpers.tone(0.3)), "far too many letters here"),
        "toolong_audio": (helpers.write_audio(audio / "long.wav", helpers.tone(2.5)), "long"),
        "truncated": (helpers.truncate(helpers.write_audio(audio / "cut.wav", helpers.tone(1.0))), "cut"),
        "nan": (helpers.write_audio(audio / "nan.wav", nan, subtype="FLOAT"), "not a number"),
        "empty": (helpers.write_audio(audio / "empty.wav", np.zeros(0, np.float32)), "empty"),
    }
    entries: list[dict | str] = []
    for name in ["g1", "missing", "g2", "digits", "toolong_labels", "g3", "toolong_audio", "truncated", "nan"]:
        path, text = good.get(name) or bad[name]
        entries.append({"id": name, "audio": path, "text": text})
    entries += ["{broken json", {"id": "empty", "audio": bad["empty"][0], "text": "e"}]
    entries.append({"id": "g4", "audio": os.path.relpath(good["g4"][0], tmp_path), "text": good["g4"][1]})
    return helpers.write_manifest(tmp_path / "manifest.jsonl", entries)


def _read_records(paths) -> list[dict]:
    records = []
    for path in paths:
        for serialized in tf.data.TFRecordDataset(path):
            records.append({k: v.numpy() for k, v in parse_example(serialized).items()})
    return records


def test_write_shards_round_trip_and_skips(tmp_path, helpers):
    manifest = _dataset_with_bad_entries(tmp_path, helpers)
    report = SkipReport()
    utterances = read_dataset(manifest, report)
    out = tmp_path / "shards"
    summary = write_shards(utterances, str(out), VOCAB, num_shards=2, max_seconds=2.0, subsampling=4, report=report)

    shards = sorted(glob.glob(str(out / "shard-*.tfrecord")))
    assert [os.path.basename(p) for p in shards] == ["shard-00000-of-00002.tfrecord", "shard-00001-of-00002.tfrecord"]
    records = _read_records(shards)
    by_id = {r["id"].decode(): r for r in records}
    assert sorted(by_id) == ["g1", "g2", "g3", "g4"]
    for utt in utterances:
        if utt.id not in by_id:
            continue
        record = by_id[utt.id]
        pcm = read_audio(utt.audio)
        assert record["num_samples"] == pcm.shape[0] and record["num_samples"].dtype == np.int32
        # waveform = pcm / 32768 exactly, so the int16 samples come back bit for bit.
        assert record["waveform"].dtype == np.float32
        np.testing.assert_array_equal(np.rint(record["waveform"] * 32768).astype(np.int16), pcm)
        assert np.abs(record["waveform"]).max() <= 1.0
        text = normalize(utt.text)
        assert record["text"].decode() == text
        assert record["labels"].dtype == np.int32
        assert record["labels"].tolist() == VOCAB.encode(text)
    assert by_id["g2"]["text"].decode() == "it's a test"

    counts = summary["skips"]["reasons"]
    assert {reason: entry["count"] for reason, entry in counts.items()} == {
        "bad_manifest_line": 1,
        "missing_file": 1,
        "empty_transcript": 1,
        "labels_too_long_for_ctc": 1,
        "too_long_audio": 1,
        "unreadable_audio": 1,
        "non_finite_audio": 1,
        "empty_audio": 1,
    }
    assert counts["labels_too_long_for_ctc"]["examples"][0].startswith("toolong_labels")
    assert summary["num_input"] == 11 and summary["num_utterances"] == 4 and summary["shard_sizes"] == [2, 2]
    assert summary["total_seconds"] == pytest.approx(0.8 + 1.1 + 0.6 + 0.9, abs=1e-3)
    assert summary["normalization"]["dropped"]  # the digits
    with open(out / "summary.json", encoding="utf-8") as f:
        assert json.load(f)["num_utterances"] == 4

    # Round-robin dealing: reading the shards one record at a time in turn gives data set order back.
    first, second = (_read_records([p]) for p in shards)
    interleaved = [r["id"].decode() for pair in zip(first, second) for r in pair]
    assert interleaved == ["g1", "g2", "g3", "g4"]


def test_write_shards_labels_limit_follows_subsampling(tmp_path, helpers):
    # 0.3 s -> 28 frames; 12 labels fit into 28 / 2 = 14 frames but not into 28 / 4 = 7.
    path = helpers.write_audio(tmp_path / "a.wav", helpers.tone(0.3))
    manifest = helpers.write_manifest(tmp_path / "m.jsonl", [{"id": "a", "audio": path, "text": "abcdefghijkl"}])
    utts = read_dataset(manifest)
    assert (
        write_shards(utts, str(tmp_path / "s2"), VOCAB, num_shards=1, max_seconds=None, subsampling=2)["num_utterances"]
        == 1
    )
    assert (
        write_shards(utts, str(tmp_path / "s4"), VOCAB, num_shards=1, max_seconds=None, subsampling=4)["num_utterances"]
        == 0
    )


def _mtimes(folder) -> dict[str, int]:
    return {name: os.stat(os.path.join(folder, name)).st_mtime_ns for name in sorted(os.listdir(folder))}


def test_prepare_dataset_reuses_and_rebuilds(tmp_path, helpers):
    paths = [helpers.write_audio(tmp_path / f"u{i}.wav", helpers.tone(0.9 + 0.1 * i, seed=i)) for i in range(3)]
    entries = [
        {"id": f"u{i}", "audio": p, "text": f"utterance {'one two three'.split()[i]}"} for i, p in enumerate(paths)
    ]
    manifest = helpers.write_manifest(tmp_path / "m.jsonl", entries)
    cache = tmp_path / "cache" / "train"

    first = prepare_dataset(manifest, str(cache), VOCAB, num_shards=2, max_seconds=10.0, subsampling=4)
    assert not first["reused"] and first["num_utterances"] == 3
    assert first["shards"] == [
        str(cache / "shard-00000-of-00002.tfrecord"),
        str(cache / "shard-00001-of-00002.tfrecord"),
    ]
    before = _mtimes(cache)

    second = prepare_dataset(manifest, str(cache), VOCAB, num_shards=2, max_seconds=10.0, subsampling=4)
    assert second["reused"] and second["shards"] == first["shards"]
    assert _mtimes(cache) == before

    # Another setting is another cache.
    assert not prepare_dataset(manifest, str(cache), VOCAB, num_shards=1, max_seconds=10.0, subsampling=4)["reused"]
    assert sorted(os.listdir(cache)) == ["shard-00000-of-00001.tfrecord", "summary.json"]

    # A changed manifest rebuilds.
    helpers.write_manifest(manifest, entries[:2])
    third = prepare_dataset(manifest, str(cache), VOCAB, num_shards=1, max_seconds=10.0, subsampling=4)
    assert not third["reused"] and third["num_utterances"] == 2
    # Nothing is left behind beside the cache.
    assert os.listdir(cache.parent) == ["train"]


def test_interrupted_build_leaves_no_partial_cache(tmp_path, helpers, monkeypatch):
    paths = [helpers.write_audio(tmp_path / f"u{i}.wav", helpers.tone(0.5, seed=i)) for i in range(3)]
    manifest = helpers.write_manifest(
        tmp_path / "m.jsonl", [{"id": f"u{i}", "audio": p, "text": "hello"} for i, p in enumerate(paths)]
    )
    cache = tmp_path / "cache"
    prepare_dataset(manifest, str(cache), VOCAB, num_shards=1, subsampling=4)
    before = _mtimes(cache)
    helpers.write_manifest(manifest, [{"id": "u0", "audio": paths[0], "text": "changed"}])

    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(tfrecord, "read_audio", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(manifest, str(cache), VOCAB, num_shards=1, subsampling=4)
    assert calls
    assert _mtimes(cache) == before  # the old cache is untouched
    assert sorted(os.listdir(tmp_path / "cache")) == ["shard-00000-of-00001.tfrecord", "summary.json"]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]


def test_prepare_dataset_refuses_a_foreign_folder(tmp_path, helpers):
    manifest = helpers.write_manifest(tmp_path / "m.jsonl", [])
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing"):
        prepare_dataset(manifest, str(foreign), VOCAB, subsampling=4)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_text_outside_a_narrow_vocabulary_is_skipped(tmp_path, helpers):
    path = helpers.write_audio(tmp_path / "a.wav", helpers.tone(1.0))
    manifest = helpers.write_manifest(
        tmp_path / "m.jsonl",
        [{"id": "ok", "audio": path, "text": "abc"}, {"id": "bad", "audio": path, "text": "hello"}],
    )
    report = SkipReport()
    summary = write_shards(
        read_dataset(manifest),
        str(tmp_path / "s"),
        Vocabulary(tuple(" abc")),
        num_shards=1,
        max_seconds=None,
        subsampling=4,
        report=report,
    )
    assert summary["num_utterances"] == 1 and report.count("text_not_in_vocabulary") == 1


def test_length_stats_record_every_whole_percentile_as_quantiles():
    from tf_jointctc.data.tfrecord import _stats

    values = np.random.default_rng(1).integers(50, 900, size=501).tolist()
    stats = _stats(values)
    quantiles = stats["quantiles"]
    assert len(quantiles) == 99 and quantiles == sorted(quantiles)
    assert all(quantiles[int(p) - 1] == value for p, value in stats["percentiles"].items())
    assert min(values) <= quantiles[0] and quantiles[-1] <= max(values)
    assert _stats([])["quantiles"] == []
    # The p-th percentile of 1..101 is 1 + p; rounding up a float a hair above it may add one.
    exact = _stats(list(range(1, 102)))
    assert all(p + 1 <= q <= p + 2 for p, q in zip(range(1, 100), exact["quantiles"]))
    assert all(exact["percentiles"][str(p)] == exact["quantiles"][p - 1] for p in (10, 25, 50, 75, 90, 95, 99))
