"""Reading JSONL manifests and Kaldi data directories."""

from __future__ import annotations

import json
import os

import pytest

from tf_jointctc.data import manifest
from tf_jointctc.data.manifest import read_dataset
from tf_jointctc.data.skips import SkipReport


def test_jsonl_relative_and_absolute_paths_and_bad_lines(tmp_path, helpers):
    (tmp_path / "audio").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    absolute = str(elsewhere / "b.wav")
    path = helpers.write_manifest(
        tmp_path / "m.jsonl",
        [
            {"id": "a", "audio": "audio/a.wav", "text": "Hello", "duration": 1.5},
            {"id": "b", "audio": absolute, "text": "world"},
            "this is not json",
            "",
            {"id": "c", "audio": "c.wav"},  # no text
            {"id": "d", "audio": "d.wav", "text": "x", "duration": "long"},
            {"id": "a", "audio": "again.wav", "text": "dup"},
            [1, 2],
        ],
    )
    report = SkipReport()
    utts = read_dataset(path, report)
    assert [u.id for u in utts] == ["a", "b"]
    assert utts[0].audio == str(tmp_path / "audio" / "a.wav")
    assert utts[0].text == "Hello" and utts[0].duration == 1.5 and utts[0].start is None
    assert utts[1].audio == absolute and utts[1].duration is None
    assert report.count("bad_manifest_line") == 4
    assert report.count("duplicate_id") == 1
    assert any("m.jsonl:3" in e for e in report.examples["bad_manifest_line"])
    # The whole report is JSON-serializable and round-trips.
    assert SkipReport.from_dict(json.loads(json.dumps(report.as_dict()))).counts == report.counts


def test_folder_with_manifest_jsonl(tmp_path, helpers):
    helpers.write_manifest(tmp_path / "manifest.jsonl", [{"id": "a", "audio": "a.wav", "text": "hi"}])
    assert [u.id for u in read_dataset(str(tmp_path))] == ["a"]


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_kaldi_dir_without_segments(tmp_path):
    data = tmp_path / "kaldi"
    data.mkdir()
    absolute = str(tmp_path / "abs.flac")
    _write_lines(
        data / "wav.scp",
        [
            "u1 wavs/u1.wav",
            f"u2 {absolute}",
            "u3 sox in.wav -t wav - |",
            "u4 raw.ark:1234",
            "only_audio only.wav",
        ],
    )
    _write_lines(data / "text", ["u1 HELLO THERE", "u2 good bye", "u3 piped", "u4 ark", "only_text some words", "u5"])
    report = SkipReport()
    utts = read_dataset(str(data), report)
    assert [(u.id, u.text) for u in utts] == [("u1", "HELLO THERE"), ("u2", "good bye")]
    assert utts[0].audio == str(data / "wavs" / "u1.wav")
    assert utts[1].audio == absolute
    assert report.count("unsupported_wav_scp_entry") == 2
    assert "piped command" in report.examples["unsupported_wav_scp_entry"][0]
    assert report.count("no_text_for_id") == 1 and report.examples["no_text_for_id"][0].startswith("only_audio")
    # only_text and u5 (a text line with an empty transcript) have no audio.
    assert report.count("no_audio_for_id") == 2


def test_kaldi_dir_with_segments(tmp_path):
    data = tmp_path / "kaldi"
    data.mkdir()
    _write_lines(data / "wav.scp", ["rec1 rec1.wav", "rec2 rec2.wav"])
    _write_lines(
        data / "segments",
        [
            "rec1-a rec1 0.00 1.25",
            "rec1-b rec1 1.25 -1",
            "rec2-a rec2 0.5 2.0",
            "rec3-a rec3 0 1",  # recording missing from wav.scp
            "rec2-bad rec2 2.0 1.0",  # end before start
        ],
    )
    _write_lines(data / "text", ["rec1-a first part", "rec1-b second part", "rec3-a lost", "rec2-bad x"])
    report = SkipReport()
    utts = read_dataset(str(data), report)
    assert [(u.id, u.start, u.end) for u in utts] == [("rec1-a", 0.0, 1.25), ("rec1-b", 1.25, None)]
    assert all(u.audio == str(data / "rec1.wav") for u in utts)
    assert report.count("no_text_for_id") == 1  # rec2-a
    assert report.count("no_audio_for_id") == 1  # rec3-a
    assert report.count("bad_manifest_line") == 1  # rec2-bad


def test_missing_or_malformed_dataset_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dataset(str(tmp_path / "nope.jsonl"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "wav.scp").write_text("a a.wav\n")
    with pytest.raises(ValueError, match="found only wav.scp"):
        read_dataset(str(tmp_path / "half"))


def test_fingerprint_follows_the_manifest(tmp_path, helpers):
    path = helpers.write_manifest(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav", "text": "hi"}])
    before = manifest.fingerprint(path)
    assert before[0]["path"] == os.path.abspath(path)
    helpers.write_manifest(path, [{"id": "a", "audio": "a.wav", "text": "hi there"}])
    assert manifest.fingerprint(path) != before
