"""jointctc-eval on a trained work dir: the contract's JSON line, the per-utterance report, batch invariance."""

from __future__ import annotations

import json

import pytest

from tests.helpers import MEMORIZED_CER, last_json_line, run_cli
from tf_jointctc.evaluation import evaluate_workdir
from tf_jointctc.metrics import error_rates
from tf_jointctc.text import normalize


def test_eval_cli_prints_the_contract_line_and_writes_hypotheses(trained_workdir, trained_manifest, tmp_path):
    # `trained_manifest` is the fixture model's training and dev set.
    workdir, train_summary = trained_workdir
    manifest = trained_manifest
    output = tmp_path / "hyp.jsonl"
    result = run_cli("tf_jointctc.cli.evaluate", f"--workdir={workdir}", f"--data={manifest}",
                     "--mode=ctc_greedy", f"--output={output}", "--intra_op_threads=1")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json_line(result.stdout)
    assert summary["cpu_threads"]["intra_op"] == 1  # applied: the CLI sets it before TensorFlow runs
    for key in ("cer", "wer", "utterances", "audio_seconds", "decode_seconds", "rtf"):
        assert key in summary, key
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert summary["utterances"] == len(entries)
    assert summary["audio_seconds"] == pytest.approx(sum(e["duration"] for e in entries), abs=0.05)
    assert summary["rtf"] == pytest.approx(summary["decode_seconds"] / summary["audio_seconds"], rel=1e-3)
    lines = {(line := json.loads(text))["id"]: line for text in output.read_text().splitlines()}
    assert sorted(lines) == sorted(e["id"] for e in entries)
    assert all(lines[e["id"]]["reference"] == normalize(e["text"]) for e in entries)
    assert all(line["hypothesis"] for line in lines.values())
    rates = error_rates([line["reference"] for line in lines.values()], [line["hypothesis"] for line in lines.values()])
    assert summary["cer"] == pytest.approx(rates["cer"], abs=1e-3)
    assert summary["wer"] == pytest.approx(rates["wer"], abs=1e-3)
    # The trainer scores its dev set the same way (CTC best path) with the same (best) weights; the JSON line
    # rounds to 3 decimals.
    assert summary["cer"] == pytest.approx(train_summary["best_dev_cer"], abs=1e-3)


def test_decoding_gives_the_same_results_in_any_batch_size(trained_workdir, tiny_corpus, tmp_path):
    # Exact batch invariance of beam search (same encoder output, padded) is tested in tests/decoding. End to
    # end the encoder runs at other batch shapes, whose float kernels differ by ~1e-6: enough to flip the
    # near-ties of this tiny model's beam scores on utterances it did not train on, so this check decodes with CTC
    # best path.
    workdir, _ = trained_workdir
    manifest = str(tiny_corpus / "test_clean" / "manifest.jsonl")
    outputs = []
    for batch_size in (1, 4):
        output = tmp_path / f"greedy-{batch_size}.jsonl"
        evaluate_workdir(str(workdir), manifest, "ctc_greedy", output=str(output), batch_size=batch_size)
        outputs.append({(e := json.loads(line))["id"]: e for line in output.read_text().splitlines()})
    assert outputs[0].keys() == outputs[1].keys()
    for utt_id, alone in outputs[0].items():
        assert alone["hypothesis"] == outputs[1][utt_id]["hypothesis"]
        assert alone["score"] == pytest.approx(outputs[1][utt_id]["score"], abs=1e-3)


def test_beam_modes_decode_end_to_end(trained_workdir, trained_manifest):
    # The fixture model memorizes the utterances of `trained_manifest`: attention and joint beam search decode them
    # at beam 3 within `MEMORIZED_CER` (0.0 on one machine, 25 and 45 on another), which fails if decoding breaks.
    workdir, _ = trained_workdir
    count = len(trained_manifest.read_text().splitlines())
    for mode in ("attention", "joint"):
        summary = evaluate_workdir(str(workdir), str(trained_manifest), mode, beam=3, batch_size=4)
        assert summary["mode"] == mode and summary["beam"] == 3 and summary["utterances"] == count
        assert summary["cer"] <= MEMORIZED_CER and summary["decode_seconds"] > 0, summary


def test_eval_refuses_an_unknown_data_set_clearly(trained_workdir, tmp_path):
    workdir, _ = trained_workdir
    result = run_cli("tf_jointctc.cli.evaluate", f"--workdir={workdir}", f"--data={tmp_path / 'nope.jsonl'}")
    assert result.returncode != 0
    assert "jointctc-eval:" in result.stderr and "nope.jsonl" in result.stderr
    result = run_cli("tf_jointctc.cli.evaluate", f"--workdir={workdir}", f"--data={tmp_path}", "--intra_op_threads=-1")
    assert result.returncode != 0 and "intra_op_threads" in result.stderr
