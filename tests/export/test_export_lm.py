"""Export with a character LM fused into the beam-search signatures (issue 13): jointctc-export --lm_workdir.

The LM is trained in a few seconds on the transcripts of the utterances `trained_workdir` memorized (conftest), so
it agrees with the recognizer. The SavedModel is written by the command's `export()` (in-process) and the TFLite
models (float, float16, int8) from one trace of `export_tflite`; the Keras reference is `modes.decode(..., lm=)`
itself, not the export's serving function.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.export.test_export import (
    TEST_DECODE,
    _interpreter,
    _operator_names,
    load_model,
    manifest_audio,
    run_saved_model,
    run_tflite,
    tflite_hypotheses,
    tokens,
)
from tests.helpers import MEMORIZED_CER
from tf_jointctc.config import lm_base_config
from tf_jointctc.decoding import modes
from tf_jointctc.export import from_workdir
from tf_jointctc.export import signatures as sig
from tf_jointctc.export.to_saved_model import export_saved_model
from tf_jointctc.export.to_tflite import QUANTIZATIONS, export_tflite
from tf_jointctc.features import FeatureExtractor
from tf_jointctc.metrics import error_rates
from tf_jointctc.text import Vocabulary
from tf_jointctc.tflite_metadata import read_export_info

pytestmark = pytest.mark.slow

LM_WEIGHT = 0.5
# The attention mode's own LM settings (`decode.attention_lm_weight`, `decode.attention_lm_length_penalty`): the
# `attention_beam` signatures take them, `serving_default` (joint) the shared ones.
ATTENTION_LM = {"attention_lm_weight": 0.2, "attention_lm_length_penalty": 0.0}
BEAM_SIGNATURES = (sig.SERVING_DEFAULT, sig.ATTENTION_BEAM)


def train_memorizing_lm(manifest: pathlib.Path, workdir: pathlib.Path) -> dict:
    """A 1 x 32 character LM trained on the manifest's transcripts until it nearly knows them by heart (~8 s;
    measured dev 0.08 bits per character): a half-trained one prefers the shorter sentences, which tips the tiny
    recognizer's near-ties."""
    from tf_jointctc.training.lm_loop import train_lm

    config = lm_base_config()
    config.data.train = config.data.dev = str(manifest)
    config.model.units, config.model.embedding_dim = 32, 16
    config.train.batch_size, config.train.epochs, config.train.steps_per_epoch = 4, 1, 300
    config.optimizer.learning_rate, config.optimizer.warmup_steps = 3e-2, 5
    return train_lm(config, str(workdir), verbose=0)


@pytest.fixture(scope="module")
def lm_workdir(trained_manifest, tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("export_lm") / "lm"
    summary = train_memorizing_lm(trained_manifest, folder)
    assert summary["dev_bits_per_char"] < 0.5, summary
    return folder


@pytest.fixture(scope="module")
def lm_exported(trained_workdir, lm_workdir, tmp_path_factory) -> dict:
    """The work dir's export with the LM its config names (`decode.lm_workdir`, `decode.lm_weight`, and the
    attention mode's own `ATTENTION_LM`): what jointctc-export without LM flags and `jointctc-transcribe --model
    <work dir>` both export."""
    workdir = str(trained_workdir[0])
    out = tmp_path_factory.mktemp("exported_lm")
    configured = out / "workdir_with_lm"
    shutil.copytree(workdir, configured)
    config = json.loads((configured / "config.json").read_text())
    config["decode"].update(lm_workdir=str(lm_workdir), lm_weight=LM_WEIGHT, **ATTENTION_LM)
    (configured / "config.json").write_text(json.dumps(config))
    keras.utils.set_random_seed(1234)
    summary = from_workdir.export_workdir(str(configured), str(out / "sm"), **TEST_DECODE)
    model, config, vocab, _ = load_model(workdir)
    lm, weight = from_workdir.fusion_lm(config, vocab, workdir, str(lm_workdir), LM_WEIGHT)
    options = sig.DecodeOptions.from_config(config.decode, **TEST_DECODE, lm_weight=weight, **ATTENTION_LM)
    tflite = {quantize: str(out / f"model_{quantize}.tflite") for quantize in QUANTIZATIONS}
    tflite_info = export_tflite(model, vocab, tflite, options, lm=lm)
    return {
        "summary": summary, "saved_model": str(out / "sm"), "tflite": tflite, "tflite_info": tflite_info,
        "model": model, "vocab": vocab, "options": options, "lm": lm,
    }


@pytest.fixture(scope="module")
def saved_model_lm(lm_exported):
    return tf.saved_model.load(lm_exported["saved_model"])


@pytest.fixture(scope="module")
def tflite_lm(lm_exported):
    return {quantize: _interpreter(path) for quantize, path in lm_exported["tflite"].items()}


def keras_decoder(model, mode, options, lm):
    """The reference: features, encoder and `modes.decode(..., lm)` of the Keras model, batch 1 (the memorized
    utterances are long: the export's padding and empty-audio rules do not apply)."""
    extractor = FeatureExtractor(name="reference_features")

    @tf.function(input_signature=sig.input_signature(1))
    def decode(waveform, num_samples):
        features, num_frames = extractor(waveform, num_samples)
        h, lengths = model.encode(features, num_frames, training=False)
        return modes.decode(model, h, lengths, mode, options, lm)

    def run(waveform):
        token_ids, num_tokens, score = decode(waveform[None], np.array([len(waveform)], np.int32))
        return {"token_ids": token_ids.numpy()[0], "num_tokens": num_tokens.numpy()[0], "score": score.numpy()[0]}

    return run


def lm_log_prob(lm, token_ids) -> float:
    """log p_lm(y, eos) of one hypothesis (eager, step by step)."""
    state = lm.initial_state(1)
    total = 0.0
    for previous, token in zip([lm.sos_id, *token_ids], [*token_ids, lm.eos_id]):
        log_probs, state = lm.step(tf.constant([previous], tf.int32), state)
        total += float(log_probs[0, token])
    return total


# ---------------------------------------------------------------------------------------------- records


def test_the_lm_is_recorded_in_export_info(lm_exported, lm_workdir, saved_model_lm):
    info = json.loads((pathlib.Path(lm_exported["saved_model"]) / "assets.extra" / "export_info.json").read_text())
    assert json.loads(saved_model_lm.signatures["export_info"]()["export_info"].numpy()) == info
    record = info["lm"]
    assert record["workdir"] == os.path.abspath(lm_workdir) and record["weight"] == LM_WEIGHT
    assert record["checkpoint"].startswith(os.path.join(str(lm_workdir), "checkpoints", "best"))
    assert (record["layers"], record["units"], record["embedding_dim"], record["vocab_size"]) == (1, 32, 16, 33)
    assert record["vocabulary_check"].startswith("passed")
    assert record["signatures"] == ["attention_beam", "serving_default"]
    assert info["decode"]["lm_weight"] == LM_WEIGHT and info["serving_default"] == modes.JOINT
    joint, attention = info["signatures"]["serving_default"], info["signatures"]["attention_beam"]
    assert (joint["lm_weight"], joint["length_penalty"]) == (LM_WEIGHT, info["decode"]["length_penalty"])
    assert (attention["lm_weight"], attention["length_penalty"]) == tuple(ATTENTION_LM.values())
    assert info["signatures"]["ctc_greedy"] == {"mode": "ctc_greedy"}  # CTC best path stays LM-free
    summary = lm_exported["summary"]
    assert summary["lm"] == record and summary["decode"] == info["decode"]
    # The LM-free record plus the LM's fields, nothing else.
    model, vocab, options = lm_exported["model"], lm_exported["vocab"], lm_exported["options"]
    without = sig.export_info(model, vocab, sig.DecodeOptions(**{**options.to_dict(), "lm_weight": 0.0}),
                              batch_size=None, extra={k: info[k] for k in ("checkpoint", "workdir", "which")})
    assert "lm" not in without and "lm_weight" not in without["decode"]
    stripped = {k: v for k, v in info.items() if k != "lm"}
    stripped["decode"] = {k: v for k, v in info["decode"].items() if k != "lm_weight"}
    stripped["signatures"] = {
        name: {k: v for k, v in entry.items() if k != "lm_weight"} for name, entry in info["signatures"].items()
    }
    stripped["signatures"]["attention_beam"]["length_penalty"] = options.length_penalty  # its bonus with the LM
    assert stripped == without
    # TFLite: the same record in the metadata, and the Recognizer shows it.
    from tf_jointctc.recognizer import Recognizer

    for quantize, path in lm_exported["tflite"].items():
        tflite_info = read_export_info(path)
        assert tflite_info == {**lm_exported["tflite_info"], "quantize": quantize}
        assert tflite_info["lm"] == record and tflite_info["batch_size"] == 1
    recognizer = Recognizer.load(lm_exported["tflite"]["none"])
    assert recognizer.lm == record and "lm_weight=0.5" in repr(recognizer)


def test_tflite_with_the_lm_is_builtins_only(lm_exported, tflite_lm):
    for quantize, path in lm_exported["tflite"].items():
        ops = _operator_names(path)
        assert not any(op.startswith("CUSTOM") for op in ops), (quantize, ops)  # no Flex
        assert {"WHILE", "LOG_SOFTMAX", "FULLY_CONNECTED"} <= ops, (quantize, ops)
        assert set(tflite_lm[quantize].get_signature_list()) == {"serving_default", "ctc_greedy", "attention_beam"}
    sizes = {quantize: os.path.getsize(path) for quantize, path in lm_exported["tflite"].items()}
    print("TFLite bytes with the LM:", sizes)
    # Both quantizations shrink the model. (int8 is not always below float16 here: the fused LSTMs' per-gate
    # weights of this tiny model are under the quantizer's 1,024-element minimum and stay float32 in int8 mode.)
    assert sizes["int8"] < sizes["none"] and sizes["float16"] < sizes["none"]


# ---------------------------------------------------------------------------------------------- parity


def test_keras_saved_model_and_tflite_give_identical_tokens_with_the_lm(
    trained_manifest, lm_exported, saved_model_lm, tflite_lm
):
    model, vocab, options, lm = (lm_exported[k] for k in ("model", "vocab", "options", "lm"))
    assert lm_exported["summary"]["serving_default"] == modes.JOINT
    audio = manifest_audio(trained_manifest)
    no_lm = sig.DecodeOptions(**{**options.to_dict(), "lm_weight": 0.0})
    for name in BEAM_SIGNATURES:
        mode = modes.JOINT if name == sig.SERVING_DEFAULT else modes.ATTENTION
        mode_options = options.for_mode(mode, with_lm=True)  # attention_beam: the attention mode's own beta and bonus
        fused = keras_decoder(model, mode, mode_options, lm.model)
        for utt, waveform, _ in audio:
            expected = fused(waveform)
            assert tokens(expected), (name, utt)
            from_saved = run_saved_model(saved_model_lm, name, waveform)
            from_tflite = run_tflite(tflite_lm["none"], name, waveform)
            assert tokens(from_saved) == tokens(expected), (name, utt)
            assert tokens(from_tflite) == tokens(expected), (name, utt)
            np.testing.assert_allclose(from_saved["score"], expected["score"], rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(from_tflite["score"], expected["score"], rtol=1e-3, atol=1e-3)
            assert from_saved["text"].decode() == vocab.decode(tokens(expected)), (name, utt)
            # The LM is in: its term of the score, beta log p_lm(y, eos), is far above the tolerance above, so the
            # same tokens without the LM would not have the same score.
            assert mode_options.lm_weight * lm_log_prob(lm.model, tokens(from_saved)) < -0.1, (name, utt)
    greedy = keras_decoder(model, modes.CTC_GREEDY, no_lm, None)
    for utt, waveform, _ in audio:
        expected = greedy(waveform)
        for out in (run_saved_model(saved_model_lm, "ctc_greedy", waveform),
                    run_tflite(tflite_lm["none"], "ctc_greedy", waveform)):
            assert tokens(out) == tokens(expected), utt
            np.testing.assert_allclose(out["score"], expected["score"], rtol=1e-3, atol=1e-3)


def test_quantized_with_the_lm_close_to_float(trained_manifest, tflite_lm):
    """float16 and dynamic-range int8 against float32 with the LM: the quantized exports' only test (the LM adds
    its weights to the recognizer's, all quantized alike; test_export's int8 test without an LM was dropped to keep
    the suite under 15 minutes). On the utterances the test model memorized (conftest), where float decodes well, a
    quantization defect shows (a quantized DFT or mel matmul once cost the int8 demo model 34 CER points). With the
    LM, joint decoding (serving_default) of this tiny recognizer turns one utterance into another, shorter,
    memorized sentence (a near-tie of its joint search without the LM), so only attention_beam's float CER is
    bounded. Measured on the 2-core CPU, float / float16 / int8 CER (printed with pytest -s): attention_beam
    0.0 / 0.0 / 0.0; serving_default 24.2 / 24.2 / 24.2; ctc_greedy 81.7 / 81.7 / 83.3."""
    audio = manifest_audio(trained_manifest)
    references = [text for _, _, text in audio]
    found = {
        name: {quantize: tflite_hypotheses(interpreter, name, audio) for quantize, interpreter in tflite_lm.items()}
        for name in sig.DECODING_SIGNATURES
    }
    cers = {
        name: {quantize: error_rates(references, hyps)["cer"] for quantize, hyps in by.items()}
        for name, by in found.items()
    }
    print("float / float16 / int8 CER with the LM:", json.dumps(cers))
    for name, by in found.items():
        assert all(all(hyps) for hyps in by.values()), (name, by)
    assert cers["attention_beam"]["none"] <= MEMORIZED_CER, found["attention_beam"]
    for quantize in ("float16", "int8"):
        assert abs(cers["attention_beam"][quantize] - cers["attention_beam"]["none"]) <= 1.0, cers
        for name in ("serving_default", "ctc_greedy"):
            same = sum(a == b for a, b in zip(found[name]["none"], found[name][quantize]))
            assert 2 * same >= len(audio), (name, quantize, found[name])


# ---------------------------------------------------------------------------------------------- refusals


def random_lm(vocab, seed=0):
    from tf_jointctc.language_model import build_language_model

    keras.utils.set_random_seed(seed)
    config = lm_base_config().model
    config.units, config.embedding_dim = 8, 4
    return build_language_model(config, vocab)


def test_export_refuses_an_lm_it_cannot_fuse(lm_exported, tmp_path):
    model, vocab, options = lm_exported["model"], lm_exported["vocab"], lm_exported["options"]
    other = Vocabulary(tuple(c for c in vocab.tokens[1:-1] if c != "q"))
    mismatched = sig.FusionLM(random_lm(other), other, workdir="/lms/other")
    with pytest.raises(ValueError) as error:
        export_saved_model(model, vocab, str(tmp_path / "sm"), options, lm=mismatched)
    message = str(error.value)
    assert "/lms/other" in message and f"({other.size} tokens" in message and f"({vocab.size} tokens" in message
    assert "only the recognizer has q" in message
    assert not (tmp_path / "sm").exists()
    fine = sig.FusionLM(random_lm(vocab), vocab)
    zero = sig.DecodeOptions(**{**options.to_dict(), "lm_weight": 0.0})
    with pytest.raises(ValueError, match="would not be in the export with lm_weight 0"):
        sig.export_info(model, vocab, zero, batch_size=None, lm=fine)
    with pytest.raises(ValueError, match="needs a language model"):
        sig.export_info(model, vocab, options, batch_size=None)
    from tests.decoding.test_beam_search import tiny_model

    ctc_only = tiny_model(vocab.tokens[1:-1], ctc_weight=1.0, seed=3)
    with pytest.raises(ValueError, match="no place in this export"):
        sig.export_info(ctc_only, vocab, options, batch_size=None, lm=fine)


def test_command_lm_defaults_and_refusals(trained_workdir, lm_workdir, tmp_path):
    """`fusion_lm`: what jointctc-export fuses for its --lm_workdir/--lm_weight flags and the config's decode."""
    from tests.test_evaluation import make_lm_workdir
    from tf_jointctc.trained_model import load_config, load_vocab

    workdir = str(trained_workdir[0])
    config, vocab = load_config(workdir), load_vocab(workdir)
    assert from_workdir.fusion_lm(config, vocab, workdir) == (None, 0.0)  # no LM configured: today's export
    configured = load_config(workdir)
    configured.decode.lm_workdir, configured.decode.lm_weight = str(lm_workdir), 0.3
    lm, weight = from_workdir.fusion_lm(configured, vocab, workdir)
    assert weight == 0.3 and lm.workdir == os.path.abspath(lm_workdir) and lm.vocab == vocab
    assert from_workdir.fusion_lm(configured, vocab, workdir, lm_workdir="", lm_weight=0.0) == (None, 0.0)
    assert from_workdir.fusion_lm(configured, vocab, workdir, lm_weight=0.0) == (None, 0.0)  # the config's "0: no LM"
    # The config's weight is the weight when an LM is fused: without one, no LM (as jointctc-eval).
    assert from_workdir.fusion_lm(configured, vocab, workdir, lm_workdir="") == (None, 0.0)
    with pytest.raises(from_workdir.ExportRefused, match="needs a language model"):
        from_workdir.fusion_lm(configured, vocab, workdir, lm_workdir="", lm_weight=0.3)  # an explicit weight
    demo_weight = float(config.decode.lm_weight)  # configs/demo.py's joint beta, for when an LM is fused
    fused_at = from_workdir.fusion_lm(config, vocab, workdir, lm_workdir=str(lm_workdir))[1]
    assert demo_weight > 0 and fused_at == demo_weight
    config.decode.lm_weight = 0.0
    with pytest.raises(from_workdir.ExportRefused, match="would export without the language model"):
        from_workdir.fusion_lm(config, vocab, workdir, lm_workdir=str(lm_workdir))  # explicit, weight 0
    with pytest.raises(from_workdir.ExportRefused, match="needs a language model"):
        from_workdir.fusion_lm(config, vocab, workdir, lm_weight=0.5)
    with pytest.raises(from_workdir.ExportRefused, match="finite number >= 0"):
        from_workdir.fusion_lm(config, vocab, workdir, lm_workdir=str(lm_workdir), lm_weight=-1.0)
    other = make_lm_workdir(tmp_path / "other", Vocabulary(tuple(c for c in vocab.tokens[1:-1] if c != "q")))
    with pytest.raises(from_workdir.ExportRefused) as error:
        from_workdir.fusion_lm(config, vocab, workdir, lm_workdir=other, lm_weight=0.5)
    message = str(error.value)
    assert other in message and workdir in message and "differs from the recognizer" in message, message
