"""jointctc-export and jointctc-transcribe end to end (subprocesses)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.helpers import last_json_line, run_cli


@pytest.fixture(scope="module")
def cli_export(trained_workdir, tmp_path_factory):
    workdir, _ = trained_workdir
    out = tmp_path_factory.mktemp("cli_export")
    result = run_cli(
        "tf_jointctc.cli.export", f"--workdir={workdir}", f"--saved_model={out / 'sm'}",
        f"--tflite={out / 'model_int8.tflite'}", "--quantize=int8", "--beam=3", "--length_penalty=0.5",
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return out, last_json_line(result.stdout)


def test_export_prints_paths_sizes_and_options(cli_export):
    out, summary = cli_export
    assert summary["saved_model"] == str(out / "sm") and summary["tflite"] == str(out / "model_int8.tflite")
    assert summary["saved_model_bytes"] > 0 and summary["tflite_bytes"] == os.path.getsize(out / "model_int8.tflite")
    assert summary["quantize"] == "int8"
    assert summary["signatures"] == ["attention_beam", "ctc_greedy", "serving_default"]
    assert summary["serving_default"] == "joint"  # the mode names of jointctc-eval --mode
    # Overrides win, the rest comes from the work dir's config.decode (configs/demo.py's LM settings included:
    # without an LM they change nothing, and its joint beta, for when an LM is fused, is not recorded).
    assert summary["decode"] == {
        "beam": 3, "length_penalty": 0.5, "ctc_weight": 0.3, "max_length_ratio": 1.0, "min_length_ratio": 0.0,
        "attention_lm_weight": 0.1, "attention_lm_length_penalty": 0.3, "max_repeats": 2,
    }
    info = json.loads((out / "sm" / "assets.extra" / "export_info.json").read_text())
    assert info["decode"] == summary["decode"] and info["which"] == "best"
    assert info["signatures"]["attention_beam"]["length_penalty"] == 0.5
    assert info["signatures"]["attention_beam"]["max_repeats"] == 2  # configs/demo.py's repeat limit, baked in
    assert "lm_weight" not in info["signatures"]["attention_beam"]


def test_export_refuses_a_folder_that_is_not_a_workdir(tmp_path):
    result = run_cli("tf_jointctc.cli.export", f"--workdir={tmp_path}", f"--saved_model={tmp_path / 'sm'}")
    assert result.returncode == 2 and "not a jointctc-train work dir" in result.stderr


def test_export_refuses_an_lm_over_another_vocabulary_naming_both(trained_workdir, tmp_path):
    """Refused before anything is written (exit 2); the LM flags' other refusals: tests/export/test_export_lm.py."""
    from tests.test_evaluation import make_lm_workdir
    from tf_jointctc.text import Vocabulary
    from tf_jointctc.trained_model import load_vocab

    workdir, _ = trained_workdir
    characters = load_vocab(str(workdir)).tokens[1:-1]
    other = make_lm_workdir(tmp_path / "lm", Vocabulary(tuple(c for c in characters if c != "q")))
    result = run_cli(
        "tf_jointctc.cli.export", f"--workdir={workdir}", f"--saved_model={tmp_path / 'sm'}",
        f"--lm_workdir={other}", "--lm_weight=0.5",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("jointctc-export: ") and "differs from the recognizer" in message, message
    assert other in message and str(workdir) in message and "only the recognizer has q" in message, message
    assert not (tmp_path / "sm").exists()


def test_transcribe_prints_one_line_per_file_and_reports_failures(cli_export, tiny_corpus, tmp_path):
    out, _ = cli_export
    folder = tiny_corpus / "test_clean"
    good = [str(folder / json.loads(line)["audio"]) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + os.urandom(100))
    missing = tmp_path / "missing.wav"
    for model in (out / "sm", out / "model_int8.tflite"):
        result = run_cli("tf_jointctc.cli.transcribe", f"--model={model}", good[0], str(corrupt), str(missing), good[1])
        assert result.returncode == 1, result.stderr[-3000:]
        lines = result.stdout.splitlines()
        assert [line.split("\t")[0] for line in lines] == [good[0], good[1]]
        assert all(len(line.split("\t")) == 2 for line in lines)
        errors = [line for line in result.stderr.splitlines() if line.startswith("jointctc-transcribe:")]
        assert any(str(corrupt) in line for line in errors) and any(str(missing) in line for line in errors)
    # `--signature` is tested in test_transcribe_exports_a_workdir_first.


def test_transcribe_cuts_audio_longer_than_segment_seconds(cli_export, tiny_corpus, tmp_path):
    """70 s of speech: refused whole (over the 60 s limit), transcribed in pieces with `--segment_seconds`."""
    import soundfile

    out, _ = cli_export
    folder = tiny_corpus / "test_clean"
    files = [folder / json.loads(line)["audio"] for line in (folder / "manifest.jsonl").read_text().splitlines()]
    pause = np.zeros(8000, np.int16)
    one_round = np.concatenate([part for f in files for part in (soundfile.read(f, dtype="int16")[0], pause)])
    long_wav = tmp_path / "long.wav"
    soundfile.write(long_wav, np.tile(one_round, -(-70 * 16000 // len(one_round)))[: 70 * 16000], 16000)
    model = out / "model_int8.tflite"
    whole = run_cli("tf_jointctc.cli.transcribe", f"--model={model}", "--signature=ctc_greedy", str(long_wav))
    assert whole.returncode == 1 and "too long" in whole.stderr and "segment_seconds" in whole.stderr, whole.stderr
    cut = run_cli("tf_jointctc.cli.transcribe", f"--model={model}", "--signature=ctc_greedy",
                  "--segment_seconds=20", str(long_wav))
    assert cut.returncode == 0, cut.stderr[-3000:]
    (line,) = cut.stdout.splitlines()
    path, text = line.split("\t")
    assert path == str(long_wav) and len(text.split()) >= 4


def test_transcribe_exports_a_workdir_first(trained_workdir, cli_export, tiny_corpus):
    """`--model` may be a work dir: it is exported to a temporary SavedModel (the Recognizer reads exports only)
    and transcribes like the exported model (ctc_greedy: the export's beam options do not matter)."""
    out, _ = cli_export
    folder = tiny_corpus / "test_clean"
    audio = str(folder / json.loads((folder / "manifest.jsonl").read_text().splitlines()[0])["audio"])
    results = [
        run_cli("tf_jointctc.cli.transcribe", f"--model={model}", "--signature=ctc_greedy", audio)
        for model in (trained_workdir[0], out / "sm")
    ]
    assert results[0].returncode == results[1].returncode == 0, results[0].stderr[-3000:]
    assert results[0].stdout == results[1].stdout and results[0].stdout.startswith(audio + "\t")


def test_transcribe_with_a_workdir_that_cannot_be_exported_exits_2(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = run_cli("tf_jointctc.cli.transcribe", f"--model={tmp_path}", "a.wav")
    assert result.returncode == 2 and "cannot export the work dir" in result.stderr


def test_transcribe_with_a_bad_model_exits_2(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    result = run_cli("tf_jointctc.cli.transcribe", f"--model={bad}", "a.wav")
    assert result.returncode == 2 and str(bad) in result.stderr
