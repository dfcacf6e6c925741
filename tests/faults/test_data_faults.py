"""Data faults (issue 7): every bad entry of one seeded data set is skipped with its reason, every usable one
is kept, by data preparation, by `jointctc-train` and by `jointctc-eval`. See docs/robustness.md."""

from __future__ import annotations

import json
import logging
import re

import pytest

from tests.helpers import SHALLOW_ENCODER, last_json_line, run_cli, tiny_config, write_config_file
from tf_jointctc.data import audio as audio_lib
from tf_jointctc.data import make_dataset, prepare_dataset, read_dataset, skips
from tf_jointctc.data.skips import SkipReport
from tf_jointctc.text import Vocabulary, ctc_min_frames, normalize

pytestmark = pytest.mark.slow


def _ids_in(shards) -> set[str]:
    ids = set()
    for batch in make_dataset(shards, batch_size=8, training=False):
        ids.update(i.decode() for i in batch["ids"].numpy())
    return ids


def _skip_counts(summary) -> dict[str, int]:
    return {reason: entry["count"] for reason, entry in summary["skips"]["reasons"].items()}


def _skip_lines(caplog) -> dict[str, str]:
    """reason -> the WARNING line of SkipReport.log."""
    lines = {}
    for record in caplog.records:
        match = re.search(r"skipped (\d+) utterance\(s\) for (\w+), e\.g\. ", record.getMessage())
        if match and record.levelno == logging.WARNING:
            lines[match.group(2)] = record.getMessage()
    return lines


def test_the_fault_set_is_what_it_claims(faulty_set):
    # The labels-too-long entries sit where they should: one fails at any subsampling, one only at 4x.
    vocab = Vocabulary()
    by_id = {e.id: e for e in faulty_set.entries}
    frames_1s = 1 + (16000 - 400) // 160
    at_4x = ((frames_1s + 1) // 2 + 1) // 2
    short = ctc_min_frames(vocab.encode(normalize(by_id["fault-labels-too-long-at-4x"].text)))
    long = ctc_min_frames(vocab.encode(normalize(by_id["fault-labels-too-long"].text)))
    assert at_4x < short <= frames_1s < long
    assert normalize(by_id["fault-oov-transcript"].text) == ""


@pytest.mark.parametrize("form", ["manifest", "kaldi"])
def test_prepare_skips_exactly_the_unusable_entries(faulty_set, form, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(audio_lib, "_logged_rates", set())  # the resampling note is logged once per process
    data = faulty_set.manifest if form == "manifest" else faulty_set.kaldi
    # The absl logger's own level may have been raised by an earlier test: set it, not only the root's.
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="absl"):
        summary = prepare_dataset(str(data), str(tmp_path / "cache"), Vocabulary(), num_shards=2, max_seconds=20.0,
                                  subsampling=4)
    expected = faulty_set.skip_counts("train", form)
    assert _skip_counts(summary) == expected
    usable = faulty_set.usable("train")
    assert summary["num_utterances"] == len(usable)
    assert _ids_in(summary["shards"]) == usable
    # One WARNING line per reason, with its count and an example id.
    lines = _skip_lines(caplog)
    assert set(lines) == set(expected)
    for reason, count in expected.items():
        assert f"skipped {count} utterance(s) for {reason}" in lines[reason]
    assert any("resampling audio from 8000 Hz" in r.getMessage() for r in caplog.records)
    # The summary on disk says the same, with example ids per reason.
    on_disk = json.loads((tmp_path / "cache" / "summary.json").read_text())
    assert on_disk["skips"]["total"] == sum(expected.values())
    assert "fault-corrupt-flac" in " ".join(on_disk["skips"]["reasons"][skips.UNREADABLE_AUDIO]["examples"])


def test_read_dataset_of_the_kaldi_dir_counts_ids_missing_on_one_side(faulty_set):
    report = SkipReport()
    utterances = read_dataset(str(faulty_set.kaldi), report)
    assert dict(report.counts) == {skips.NO_TEXT_FOR_ID: 1, skips.NO_AUDIO_FOR_ID: 1}
    assert report.examples[skips.NO_TEXT_FOR_ID][0].startswith("fault-audio-only")
    assert report.examples[skips.NO_AUDIO_FOR_ID][0].startswith("fault-text-only")
    assert {u.id for u in utterances} == {e.id for e in faulty_set.entries}
    report = SkipReport()
    assert {u.id for u in read_dataset(str(faulty_set.manifest), report)} == {e.id for e in faulty_set.entries}
    assert dict(report.counts) == {skips.BAD_MANIFEST_LINE: 1}


def test_train_on_the_faulty_manifest_uses_every_usable_entry(faulty_set, tiny_corpus, tmp_path):
    config = tiny_config(tiny_corpus, **{**SHALLOW_ENCODER, "data.train": str(faulty_set.manifest), "train.epochs": 1,
                                         "data.cache_dir": str(tmp_path / "cache")})
    workdir = tmp_path / "work"
    result = run_cli("tf_jointctc.cli.train", f"--config={write_config_file(config, tmp_path)}",
                     f"--workdir={workdir}", "--verbose=0")
    assert result.returncode == 0, result.stderr[-5000:]
    summary = last_json_line(result.stdout)
    assert summary["train_utterances"] == len(faulty_set.usable("train"))
    assert summary["epochs"] == 1 and summary["non_finite_steps"] == 0
    for reason, count in faulty_set.skip_counts("train", "manifest").items():
        assert f"skipped {count} utterance(s) for {reason}" in result.stderr, reason


def test_eval_on_the_faulty_manifest_scores_every_readable_entry(faulty_set, trained_workdir, tmp_path):
    workdir, _ = trained_workdir
    output = tmp_path / "hyp.jsonl"
    result = run_cli("tf_jointctc.cli.evaluate", f"--workdir={workdir}", f"--data={faulty_set.manifest}",
                     "--mode=ctc_greedy", f"--output={output}")
    assert result.returncode == 0, result.stderr[-5000:]
    summary = last_json_line(result.stdout)
    usable = faulty_set.usable("eval")
    # Evaluation keeps the 10-minute file and transcripts too long for CTC: they are scored, not dropped.
    assert {"fault-ten-minutes", "fault-labels-too-long-at-4x", "fault-labels-too-long"} <= usable
    assert summary["utterances"] == len(usable)
    expected = faulty_set.skip_counts("eval", "manifest")
    assert summary["skipped"] == sum(expected.values()) - expected[skips.BAD_MANIFEST_LINE]  # not an utterance
    assert {json.loads(line)["id"] for line in output.read_text().splitlines()} == usable
    for reason, count in expected.items():
        assert f"skipped {count} utterance(s) for {reason}" in result.stderr, reason
