"""tf_jointctc.Recognizer over a SavedModel and a .tflite file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from tests.export.test_export import export_once
from tf_jointctc.recognizer import MAX_SAMPLES, ModelLoadError, Recognizer, decode_ids, join_pieces, to_waveform


@pytest.fixture(scope="module")
def exported(trained_workdir, tmp_path_factory):
    return export_once(trained_workdir[0], tmp_path_factory)


def _test_files(corpus):
    folder = corpus / "test_clean"
    return [str(folder / json.loads(line)["audio"]) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_package_import_does_not_import_tensorflow():
    code = "import sys, tf_jointctc; r = tf_jointctc.Recognizer; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_tflite_recognizer_does_not_need_tensorflow(exported, tiny_corpus):
    path = _test_files(tiny_corpus)[0]
    code = (
        "import sys, tf_jointctc as jc; "
        f"print(repr(jc.Recognizer.load({exported['tflite']!r}).transcribe([{path!r}])[0])); "
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_saved_model_and_tflite_transcribe_alike(exported, tiny_corpus):
    import tf_jointctc as jc

    files = _test_files(tiny_corpus)
    saved = jc.Recognizer.load(exported["saved_model"])
    tflite = jc.Recognizer.load(exported["tflite"])
    assert saved.format == "saved_model" and tflite.format == "tflite"
    assert set(saved.signatures) == set(tflite.signatures) == {"serving_default", "ctc_greedy", "attention_beam"}
    # Files and arrays (float and int16) give the same transcript.
    waveform = to_waveform(files[0])
    pcm = np.round(waveform * 32768).astype(np.int16)
    for signature in ("serving_default", "ctc_greedy"):
        texts = saved.transcribe([files[0], waveform, pcm, files[1]], signature=signature)
        assert texts[0] == texts[1] == texts[2]
        assert tflite.transcribe([files[0], files[1]], signature=signature) == [texts[0], texts[3]]
    details = tflite.recognize([files[0]])[0]
    assert details["text"] == "".join(tflite.vocabulary[i] for i in details["token_ids"])
    assert saved.transcribe([np.zeros(0, np.float32), np.zeros(100, np.float32)]) == ["", ""]
    with pytest.raises(ValueError, match="no signature"):
        saved.transcribe([files[0]], signature="nope")


def test_a_workdir_is_refused_with_a_pointer_to_export(tmp_path):
    """The Recognizer reads exported files only (jointctc-transcribe exports a work dir first)."""
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="export it first"):
        Recognizer.load(tmp_path)


def test_bad_audio_is_refused_clearly(exported, tmp_path):
    rec = Recognizer.load(exported["tflite"])
    with pytest.raises(ValueError, match="too long"):
        rec.transcribe([np.zeros(MAX_SAMPLES + 1, np.float32)])
    with pytest.raises(ValueError, match="1-D"):
        rec.transcribe([np.zeros((2, 800), np.float32)])
    with pytest.raises(Exception, match="does not exist"):
        rec.transcribe([str(tmp_path / "missing.wav")])
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.int16), 16000)
    assert rec.transcribe([str(empty)]) == [""]
    nan = np.full(8000, np.nan, np.float32)
    assert rec.transcribe([nan]) == rec.transcribe([np.zeros(8000, np.float32)])


@pytest.mark.parametrize("kind", ["truncated_tflite", "garbage_tflite", "empty_dir", "broken_saved_model", "missing"])
def test_corrupt_models_give_a_clear_error(exported, tmp_path, kind):
    import shutil

    if kind == "truncated_tflite":
        path = tmp_path / "model.tflite"
        data = open(exported["tflite"], "rb").read()
        path.write_bytes(data[: len(data) // 3])
    elif kind == "garbage_tflite":
        path = tmp_path / "model.tflite"
        path.write_bytes(b"this is not a model" * 100)
    elif kind == "empty_dir":
        path = tmp_path / "folder"
        path.mkdir()
    elif kind == "broken_saved_model":
        path = tmp_path / "saved_model"
        shutil.copytree(exported["saved_model"], path)
        pb = path / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:200])
    else:
        path = tmp_path / "nothing_here"
    with pytest.raises((ValueError, OSError), match=str(path)) as error:
        Recognizer.load(str(path))
    assert isinstance(error.value, ModelLoadError)


def _speech_with_pauses(corpus, seconds: float) -> np.ndarray:
    """The test_clean utterances one after the other with 0.5 s of silence between, repeated to `seconds`."""
    pause = np.zeros(8000, np.float32)
    one_round = np.concatenate([part for path in _test_files(corpus) for part in (to_waveform(path), pause)])
    return np.tile(one_round, int(np.ceil(seconds * 16000 / len(one_round))))[: int(seconds * 16000)]


@pytest.mark.parametrize("backend, signature, seconds, segment_seconds",
                         [("tflite", "ctc_greedy", 75.0, 20.0), ("saved_model", "serving_default", 12.0, 5.0)])
def test_long_audio_is_decoded_in_pieces_cut_at_pauses(exported, tiny_corpus, backend, signature, seconds,
                                                       segment_seconds):
    rec = Recognizer.load(exported[backend])
    waveform = _speech_with_pauses(tiny_corpus, seconds)
    if seconds * 16000 > MAX_SAMPLES:
        with pytest.raises(ValueError, match="segment_seconds"):
            rec.recognize([waveform], signature)
    (result,) = rec.recognize([waveform], signature, segment_seconds=segment_seconds)
    segments = result["segments"]
    assert len(segments) >= int(np.ceil(seconds / segment_seconds))
    assert segments[0]["start"] == 0.0 and segments[-1]["end"] == len(waveform) / 16000
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:]))
    assert all(0 < s["end"] - s["start"] <= segment_seconds for s in segments)
    # Each piece is what the model makes of that piece alone; the transcript joins them with spaces, the token
    # ids with the space's id.
    pieces = [waveform[round(s["start"] * 16000): round(s["end"] * 16000)] for s in segments]
    alone = [r for r in rec.recognize(pieces, signature)]
    assert [s["text"] for s in segments] == [r["text"] for r in alone]
    assert result["text"] == " ".join(s["text"].strip() for s in segments if s["text"].strip())
    assert result["text"]  # the trained model hears speech in it
    space = rec.vocabulary.index(" ")
    texts = [text for text in ("".join(rec.vocabulary[i] for i in r["token_ids"]).strip() for r in alone) if text]
    assert "".join(rec.vocabulary[i] for i in result["token_ids"]) == " ".join(texts) == result["text"]
    assert result["token_ids"].count(space) == result["text"].count(" ")
    assert result["score"] == pytest.approx(sum(r["score"] for r in alone))
    # Audio no longer than the pieces is decoded whole, as without segment_seconds.
    short = waveform[: 16000 * 3]
    assert rec.recognize([short], signature, segment_seconds=segment_seconds) == rec.recognize([short], signature)


@pytest.mark.parametrize("segment_seconds", [0.5, 61.0, float("nan")])
def test_a_piece_length_outside_one_to_sixty_seconds_is_refused(exported, segment_seconds):
    rec = Recognizer.load(exported["tflite"])
    with pytest.raises(ValueError, match="segment_seconds"):
        rec.transcribe([np.zeros(16000, np.float32)], segment_seconds=segment_seconds)


def test_decode_ids_leaves_out_specials_and_out_of_range_ids():
    info = {"vocabulary": ["<blank>", "a", "b", " ", "<eos>"], "blank_id": 0, "sos_id": 4}
    assert decode_ids(info, np.array([1, 0, 3, 2, 4, 9, -1, 1]), 7) == "a b"
    assert decode_ids(info, [1, 2], 0) == ""


def test_join_pieces_uses_one_space_between_non_empty_pieces():
    space = 3
    pieces = [
        {"text": " ab ", "token_ids": [3, 1, 2, 3], "score": -1.5},
        {"text": "", "token_ids": [], "score": 0.0},
        {"text": "b", "token_ids": [2], "score": -2.0},
        {"text": "  ", "token_ids": [3, 3], "score": -0.5},
    ]
    joined = join_pieces(pieces, space)
    assert joined == {"text": "ab b", "token_ids": [1, 2, 3, 2], "score": -4.0}
    # Without a space in the vocabulary the ids are concatenated.
    assert join_pieces(pieces[:1] + pieces[2:3], None)["token_ids"] == [3, 1, 2, 3, 2]
