"""jointctc-eval on a trained work dir: the contract's JSON line, the per-utterance report, batch invariance."""

from __future__ import annotations

import json

import pytest

from tests.helpers import last_json_line, run_cli
from tf_jointctc.evaluation import evaluate_workdir
from tf_jointctc.metrics import error_rates


def test_eval_cli_prints_the_contract_line_and_writes_hypotheses(trained_workdir, tiny_corpus, tmp_path):
    workdir, _ = trained_workdir
    manifest = tiny_corpus / "test_clean" / "manifest.jsonl"
    output = tmp_path / "hyp.jsonl"
    result = run_cli("tf_jointctc.cli.evaluate", f"--workdir={workdir}", f"--data={manifest}",
                     "--mode=ctc_greedy", f"--output={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json_line(result.stdout)
    for key in ("cer", "wer", "utterances", "audio_seconds", "decode_seconds", "rtf"):
        assert key in summary, key
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert summary["utterances"] == len(entries)
    assert summary["audio_seconds"] == pytest.approx(sum(e["duration"] for e in entries), abs=0.05)
    assert summary["rtf"] == pytest.approx(summary["decode_seconds"] / summary["audio_seconds"], rel=1e-3)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(e["id"] for e in entries)
    rates = error_rates([line["reference"] for line in lines], [line["hypothesis"] for line in lines])
    assert summary["cer"] == pytest.approx(rates["cer"], abs=1e-3)
    assert summary["wer"] == pytest.approx(rates["wer"], abs=1e-3)


def test_beam_search_gives_the_same_hypotheses_in_any_batch_size(trained_workdir, tiny_corpus, tmp_path):
    # Joint decoding's batch invariance is tested exactly in tests/decoding (same encoder output, padded).
    # Here the encoder itself runs at other batch shapes, whose float kernels differ by ~1e-6: enough to flip
    # the near-ties of this barely trained model in 150-step joint searches, so the end-to-end check uses
    # attention decoding, whose scores are less flat.
    workdir, _ = trained_workdir
    mode = "attention"
    manifest = str(tiny_corpus / "test_clean" / "manifest.jsonl")
    outputs = []
    for batch_size in (1, 4):
        output = tmp_path / f"{mode}-{batch_size}.jsonl"
        summary = evaluate_workdir(str(workdir), manifest, mode, beam=3, output=str(output), batch_size=batch_size)
        assert summary["mode"] == mode and summary["beam"] == 3
        outputs.append({(e := json.loads(line))["id"]: e["hypothesis"] for line in output.read_text().splitlines()})
    assert outputs[0] == outputs[1]


def test_eval_refuses_an_unknown_data_set_clearly(trained_workdir, tmp_path):
    workdir, _ = trained_workdir
    result = run_cli("tf_jointctc.cli.evaluate", f"--workdir={workdir}", f"--data={tmp_path / 'nope.jsonl'}")
    assert result.returncode != 0
    assert "jointctc-eval:" in result.stderr and "nope.jsonl" in result.stderr
