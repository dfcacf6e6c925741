"""Export to SavedModel and TFLite: signatures, parity with the Keras model, int8 vs float, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import build_once
from tf_jointctc.decoding import modes
from tf_jointctc.export import signatures as sig
from tf_jointctc.export.to_saved_model import export_saved_model
from tf_jointctc.export.to_tflite import export_tflite
from tf_jointctc.recognizer import TFLiteSignatures
from tf_jointctc.text import Vocabulary, normalize
from tf_jointctc.tflite_metadata import read_export_info

# A small beam keeps the tests fast; the parity argument does not depend on it.
# The stall limit on, so that its scorer is in every exported beam search (built-ins only, recorded, the same
# tokens as Keras); 64 tokens, far above the demo's 8, because the test model's barely trained attention stays on
# one frame for many tokens and a tight limit would cut its hypotheses (tests/helpers.py `tiny_config`).
TEST_DECODE = {"beam": 4, "max_attention_stall": 64}
NO_LM = {"lm_weight": 0.0}  # the trained config's beta (configs/demo.py's) is for when an LM is fused; none here
_EXPORT_RECORD = "export.json"  # the paths and export info of the shared export


def load_model(workdir):
    """The work dir's model. Seeded: weights the checkpoint lacks (if any) are then the same in every call."""
    import keras

    from tf_jointctc.trained_model import load_trained_model

    keras.utils.set_random_seed(1234)
    return load_trained_model(str(workdir))


def export_once(workdir, tmp_path_factory) -> dict:
    """SavedModel + float TFLite of the trained test model, made once per run for all pytest-xdist workers
    (`helpers.build_once`: the TFLite conversion of the beam search is slow). Returns the paths and the export
    info. Read only. (Its float16 and int8 forms are tested with an LM fused, which quantizes a superset of these
    weights: tests/export/test_export_lm.py; the int8 form without one is what tests/cli/test_export_cli.py
    exports and transcribes with.)"""

    def export(folder: pathlib.Path) -> None:
        model, config, vocab, _ = load_model(workdir)
        options = sig.DecodeOptions.from_config(config.decode, **TEST_DECODE, **NO_LM)
        paths = {
            "saved_model": str(folder / "saved_model"),
            "tflite": str(folder / "model.tflite"),
        }
        info = export_saved_model(model, vocab, paths["saved_model"], options)
        export_tflite(model, vocab, paths["tflite"], options)
        (folder / _EXPORT_RECORD).write_text(json.dumps({**paths, "info": info}))

    return json.loads((build_once(tmp_path_factory, "shared_export", export) / _EXPORT_RECORD).read_text())


@pytest.fixture(scope="module")
def exported(trained_workdir, tmp_path_factory):
    workdir, _ = trained_workdir
    return export_once(workdir, tmp_path_factory)


@pytest.fixture(scope="module")
def keras_model(trained_workdir):
    model, config, vocab, _ = load_model(trained_workdir[0])
    return model, vocab, sig.DecodeOptions.from_config(config.decode, **TEST_DECODE, **NO_LM)


@pytest.fixture(scope="module")
def saved_model(exported):
    return tf.saved_model.load(exported["saved_model"])


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=path, num_threads=1)


@pytest.fixture(scope="module")
def tflite_float(exported):
    return _interpreter(exported["tflite"])


def manifest_audio(manifest: pathlib.Path) -> list[tuple[str, np.ndarray, str]]:
    """(id, float waveform, normalized text) of each entry of a JSONL manifest."""
    from tf_jointctc.recognizer import to_waveform

    items = []
    for line in manifest.read_text().splitlines():
        entry = json.loads(line)
        items.append((entry["id"], to_waveform(str(manifest.parent / entry["audio"])), normalize(entry["text"])))
    return items


def corpus_audio(corpus, splits=("test_clean",)):
    return [item for split in splits for item in manifest_audio(corpus / split / "manifest.jsonl")]


def run_saved_model(loaded, name, waveform):
    out = loaded.signatures[name](
        waveform=tf.constant(waveform[None].astype(np.float32)), num_samples=tf.constant([len(waveform)], tf.int32)
    )
    return {k: v.numpy()[0] for k, v in out.items()}


_SIGNATURES: dict[int, TFLiteSignatures] = {}


def run_tflite(interpreter, name, waveform):
    """As `Recognizer` runs it: the fused LSTMs' states reset before each call (export.to_tflite)."""
    if id(interpreter) not in _SIGNATURES:
        _SIGNATURES[id(interpreter)] = TFLiteSignatures(interpreter)
    return _SIGNATURES[id(interpreter)](name, waveform)


def tokens(out):
    return out["token_ids"][: int(out["num_tokens"])].tolist()


# ---------------------------------------------------------------------------------------------- structure


def test_saved_model_signatures_and_recorded_info(exported, saved_model):
    info = exported["info"]
    assert set(saved_model.signatures) == {"serving_default", "ctc_greedy", "attention_beam", "export_info"}
    assert info["serving_default"] == modes.JOINT  # the test model has both branches
    for name in sig.DECODING_SIGNATURES:
        fn = saved_model.signatures[name]
        _, inputs = fn.structured_input_signature
        assert inputs["waveform"].dtype == tf.float32 and inputs["waveform"].shape.as_list() == [None, None]
        assert inputs["num_samples"].dtype == tf.int32 and inputs["num_samples"].shape.as_list() == [None]
        outputs = fn.structured_outputs
        assert set(outputs) == {"token_ids", "num_tokens", "score", "text"}
        assert outputs["token_ids"].dtype == tf.int32 and outputs["token_ids"].shape.rank == 2
        assert outputs["num_tokens"].dtype == tf.int32 and outputs["score"].dtype == tf.float32
        assert outputs["text"].dtype == tf.string
    described = saved_model.signatures["export_info"]()
    assert json.loads(described["export_info"].numpy()) == info
    vocab = Vocabulary()
    assert [t.decode() for t in described["vocabulary"].numpy()] == list(vocab.tokens)
    extra = pathlib.Path(exported["saved_model"]) / "assets.extra"
    assert json.loads((extra / "export_info.json").read_text()) == info
    assert Vocabulary.from_json((extra / "vocab.json").read_text()) == vocab
    assert info["decode"]["beam"] == TEST_DECODE["beam"]
    assert info["signatures"]["serving_default"]["ctc_weight"] == info["decode"]["ctc_weight"]
    for name in ("serving_default", "attention_beam"):  # the stall limit, baked into both beam searches
        assert info["signatures"][name]["max_attention_stall"] == TEST_DECODE["max_attention_stall"]
    assert info["max_samples"] == sig.MAX_SAMPLES == 960000


def test_recognizer_constants_match_signatures():
    from tf_jointctc import recognizer

    assert recognizer.MAX_SAMPLES == sig.MAX_SAMPLES and recognizer.MIN_SAMPLES == sig.MIN_SAMPLES


def _operator_names(path):
    from ai_edge_litert import schema_py_generated as schema

    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(bytearray(pathlib.Path(path).read_bytes()), 0)
    names = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        op = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        names.add(builtin[op] if op != schema.BuiltinOperator.CUSTOM else "CUSTOM:" + code.CustomCode().decode())
    return names


def test_tflite_is_builtins_only_batch_one_with_vocabulary(exported):
    ops = _operator_names(exported["tflite"])
    assert not any(op.startswith("CUSTOM") for op in ops), ops  # no Flex (Flex ops are custom ops)
    assert "WHILE" in ops
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops  # the encoder's LSTMs are the fused kernel (issue 14)
    interpreter = _interpreter(exported["tflite"])  # no Flex delegate anywhere
    signatures = interpreter.get_signature_list()
    assert set(signatures) == {"serving_default", "ctc_greedy", "attention_beam"}
    for name, io in signatures.items():
        assert set(io["inputs"]) == {"waveform", "num_samples"}
        assert set(io["outputs"]) == {"token_ids", "num_tokens", "score"}
        runner = interpreter.get_signature_runner(name)
        details = runner.get_input_details()
        assert details["waveform"]["dtype"] == np.float32 and list(details["waveform"]["shape"][:1]) == [1]
        assert details["num_samples"]["dtype"] == np.int32
    info = read_export_info(exported["tflite"])
    assert info["vocabulary"] == list(Vocabulary().tokens)
    assert info["batch_size"] == 1 and info["quantize"] == "none"


# ---------------------------------------------------------------------------------------------- parity


def test_fused_lstms_are_unclipped_and_their_state_is_reset_between_calls(exported, trained_manifest):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(pathlib.Path(exported["tflite"]).read_bytes())))
    clips = [op.builtinOptions.cellClip for g in model.subgraphs for op in g.operators
             if isinstance(op.builtinOptions, schema.UnidirectionalSequenceLSTMOptionsT)]
    assert clips and all(c == 0.0 for c in clips)  # the converter writes 10; TensorFlow's LSTM has no clip
    assert read_export_info(exported["tflite"])["reset_variables_before_invoke"] is True

    _, waveform, _ = manifest_audio(trained_manifest)[0]
    interpreter = Interpreter(model_path=exported["tflite"], num_threads=1)
    signatures = TFLiteSignatures(interpreter, ["ctc_greedy"])
    first, again = signatures("ctc_greedy", waveform), signatures("ctc_greedy", waveform)
    assert first["score"] == again["score"] and tokens(first) == tokens(again)
    # Without the reset, a second call of the same length starts from the first call's final LSTM states.
    runner = interpreter.get_signature_runner("ctc_greedy")
    inputs = {"waveform": waveform[None].astype(np.float32), "num_samples": np.array([len(waveform)], np.int32)}
    runner(**inputs)
    assert runner(**inputs)["score"][0] != first["score"]


def test_keras_saved_model_and_tflite_give_identical_tokens(trained_manifest, keras_model, saved_model, tflite_float):
    # On the utterances the test model memorized (conftest): every signature emits tokens there, so equal outputs
    # are not just two empty ones.
    model, vocab, options = keras_model
    available = sig.available_modes(model, options)
    audio = manifest_audio(trained_manifest)
    skip = (vocab.blank_id, vocab.sos_id)
    for name, mode in available.items():
        keras_fn = tf.function(sig.make_decode_fn(model, mode), input_signature=sig.input_signature(1))
        for utt, waveform, _ in audio:
            out = keras_fn(waveform[None], np.array([len(waveform)], np.int32))
            expected = {k: v.numpy()[0] for k, v in out.items()}
            assert tokens(expected), (name, utt)
            from_saved = run_saved_model(saved_model, name, waveform)
            from_tflite = run_tflite(tflite_float, name, waveform)
            assert tokens(from_saved) == tokens(expected), (name, utt)
            assert tokens(from_tflite) == tokens(expected), (name, utt)
            np.testing.assert_allclose(from_tflite["score"], expected["score"], rtol=1e-3, atol=1e-3)
            assert from_saved["text"].decode() == vocab.decode(tokens(expected)), (name, utt)
            assert from_saved["text"].decode() == "".join(vocab.tokens[i] for i in tokens(expected) if i not in skip)


def tflite_hypotheses(interpreter, name, audio):
    return [Vocabulary().decode(tokens(run_tflite(interpreter, name, waveform))) for _, waveform, _ in audio]


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("num_samples", [0, 1, 399])
def test_short_or_empty_audio_gives_empty_transcript(saved_model, tflite_float, num_samples):
    rng = np.random.default_rng(num_samples)
    waveform = (0.1 * rng.standard_normal(num_samples)).astype(np.float32)
    for name in sig.DECODING_SIGNATURES:
        for out in (run_saved_model(saved_model, name, waveform), run_tflite(tflite_float, name, waveform)):
            assert int(out["num_tokens"]) == 0 and (out["token_ids"] == -1).all(), name
            assert float(out["score"]) == 0.0
        assert run_saved_model(saved_model, name, waveform)["text"] == b""


@pytest.mark.parametrize("num_samples", [400, 700, 1500])
def test_very_short_audio_decodes(saved_model, tflite_float, num_samples):
    """One to a few feature frames (a single encoder frame before padding) still decode, the same everywhere."""
    waveform = (0.1 * np.random.default_rng(num_samples).standard_normal(num_samples)).astype(np.float32)
    for name in sig.DECODING_SIGNATURES:
        expected = run_saved_model(saved_model, name, waveform)
        assert tokens(run_tflite(tflite_float, name, waveform)) == tokens(expected)


def test_batch_with_an_empty_utterance(saved_model, tiny_corpus):
    _, waveform, _ = corpus_audio(tiny_corpus)[0]
    batch = np.zeros((2, len(waveform)), np.float32)
    batch[0] = waveform
    out = saved_model.signatures["ctc_greedy"](
        waveform=tf.constant(batch), num_samples=tf.constant([len(waveform), 0], tf.int32)
    )
    alone = run_saved_model(saved_model, "ctc_greedy", waveform)
    assert out["num_tokens"].numpy().tolist() == [alone["num_tokens"], 0]
    assert out["text"].numpy().tolist() == [alone["text"], b""]


def test_too_long_audio_is_refused_by_the_saved_model(saved_model):
    waveform = tf.zeros([1, sig.MAX_SAMPLES + 1])
    for name in sig.DECODING_SIGNATURES:
        with pytest.raises(tf.errors.InvalidArgumentError, match="audio too long"):
            saved_model.signatures[name](waveform=waveform, num_samples=tf.constant([100], tf.int32))


def test_wrong_rank_or_dtype_is_refused(saved_model, tflite_float):
    refused = (TypeError, ValueError, tf.errors.InvalidArgumentError)
    fn = saved_model.signatures["ctc_greedy"]
    with pytest.raises(refused, match="shape|rank"):
        fn(waveform=tf.zeros([1, 800, 1]), num_samples=tf.constant([800], tf.int32))
    with pytest.raises(refused, match="float|double"):
        fn(waveform=tf.zeros([1, 800], tf.float64), num_samples=tf.constant([800], tf.int32))
    with pytest.raises(refused, match="int"):
        fn(waveform=tf.zeros([1, 800]), num_samples=tf.constant([800], tf.int64))
    runner = tflite_float.get_signature_runner("ctc_greedy")
    with pytest.raises(ValueError):
        runner(waveform=np.zeros([1, 800], np.float64), num_samples=np.array([800], np.int32))


def test_non_finite_samples_are_zeroed(saved_model, tflite_float, tiny_corpus):
    _, waveform, _ = corpus_audio(tiny_corpus)[0]
    waveform = waveform[:24000].copy()
    bad = waveform.copy()
    bad[100], bad[5000], bad[9000:9010] = np.nan, np.inf, -np.inf
    zeroed = np.where(np.isfinite(bad), bad, 0.0).astype(np.float32)
    for name in ("ctc_greedy", "serving_default"):
        expected = run_saved_model(saved_model, name, zeroed)
        got = run_saved_model(saved_model, name, bad)
        assert tokens(got) == tokens(expected) and np.isfinite(got["score"])
        got = run_tflite(tflite_float, name, bad)
        assert tokens(got) == tokens(expected) and np.isfinite(got["score"])


# ---------------------------------------------------------------------------------------------- fallbacks


def _tiny(ctc_weight):
    from tests.decoding.test_beam_search import tiny_model

    return tiny_model(Vocabulary().tokens[1:-1], ctc_weight=ctc_weight, seed=3)


def test_available_modes_fall_back():
    options = sig.DecodeOptions(beam=3, ctc_weight=0.3)
    attention_only = sig.available_modes(_tiny(0.0), options)
    assert set(attention_only) == {"serving_default", "attention_beam"}
    assert attention_only["serving_default"]["mode"] == modes.ATTENTION
    ctc_only = sig.available_modes(_tiny(1.0), options)
    assert set(ctc_only) == {"serving_default", "ctc_greedy"}
    assert ctc_only["serving_default"]["mode"] == modes.CTC_GREEDY
    both = _tiny(0.5)
    assert sig.available_modes(both, options)["serving_default"]["mode"] == modes.JOINT
    no_ctc_decode = sig.available_modes(both, sig.DecodeOptions(beam=3, ctc_weight=0.0))
    assert no_ctc_decode["serving_default"]["mode"] == modes.ATTENTION
    assert sig.available_modes(both, sig.DecodeOptions(ctc_weight=1.0))["serving_default"]["mode"] == "ctc_greedy"
    with pytest.raises(ValueError):
        sig.DecodeOptions(beam=0)


def test_a_joint_serving_default_takes_the_joint_modes_own_ctc_weight_only_with_an_lm():
    both = _tiny(0.5)
    options = sig.DecodeOptions(beam=3, ctc_weight=0.3, joint_lm_ctc_weight=0.5)
    assert sig.available_modes(both, options)["serving_default"]["ctc_weight"] == 0.3  # no LM: the shared weight
    fused = sig.available_modes(both, dataclasses.replace(options, lm_weight=0.9))["serving_default"]
    assert (fused["mode"], fused["ctc_weight"], fused["lm_weight"]) == (modes.JOINT, 0.5, 0.9)


def test_ctc_only_model_exports_without_attention_signature(tmp_path):
    model = _tiny(1.0)
    info = export_saved_model(model, Vocabulary(), str(tmp_path / "sm"), sig.DecodeOptions(beam=3))
    assert info["serving_default"] == modes.CTC_GREEDY
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    assert set(loaded.signatures) == {"serving_default", "ctc_greedy", "export_info"}
    waveform = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    default, greedy = (run_saved_model(loaded, name, waveform) for name in ("serving_default", "ctc_greedy"))
    assert tokens(default) == tokens(greedy)


def _exports_ctc_greedy_match_keras(model, tmp_path, waveform_seed: int) -> Callable[[], dict]:
    """Exports `model` (beam 3) as a SavedModel and a TFLite model and asserts that both exports' `ctc_greedy` give
    the Keras model's tokens (not none) and score on one random 0.75-second waveform. Returns the Keras model's
    output on that waveform as a function, to compare again after its weights change."""
    vocab, options = Vocabulary(), sig.DecodeOptions(beam=3)
    export_saved_model(model, vocab, str(tmp_path / "sm"), options)
    export_tflite(model, vocab, str(tmp_path / "model.tflite"), options)
    waveform = (0.1 * np.random.default_rng(waveform_seed).standard_normal(12000)).astype(np.float32)
    keras_fn = tf.function(sig.make_decode_fn(model, sig.available_modes(model, options)["ctc_greedy"]),
                           input_signature=sig.input_signature(1))

    def keras_out() -> dict:
        return {k: v.numpy()[0] for k, v in keras_fn(waveform[None], np.array([len(waveform)], np.int32)).items()}

    expected = keras_out()
    assert tokens(expected)
    for out in (run_saved_model(tf.saved_model.load(str(tmp_path / "sm")), "ctc_greedy", waveform),
                run_tflite(_interpreter(str(tmp_path / "model.tflite")), "ctc_greedy", waveform)):
        assert tokens(out) == tokens(expected)
        np.testing.assert_allclose(out["score"], expected["score"], rtol=1e-3, atol=1e-3)
    return keras_out


def test_self_conditioned_ctc_and_the_conv_front_end_are_in_the_saved_model_and_tflite(tmp_path):
    """Self-conditioning runs at inference and the convolutional front end converts to built-in ops: on a random
    CTC-only model with both, the exports' `ctc_greedy` tokens and scores match the Keras model's, which change
    when either the conditioning or the front end's kernels are zeroed (one model for both: each export and
    conversion costs tens of seconds)."""
    import keras

    from tf_jointctc.config import base_config
    from tf_jointctc.model import build_model

    config = base_config()
    config.model.encoder.update(num_layers=2, units=16, projection_units=16, subsample=(1, 2), input_stack=3,
                                conv_channels=4)
    config.model.update(init_scale=0.6, ctc_self_conditioning=True)
    config.loss.update(ctc_weight=1.0, intermediate_ctc_weight=0.3)
    keras.utils.set_random_seed(5)
    model = build_model(config, config, Vocabulary())
    keras_out = _exports_ctc_greedy_match_keras(model, tmp_path, waveform_seed=0)
    expected = keras_out()
    for part in (model.ctc_conditioning.weights, [conv.kernel for conv in model.encoder.frontend.convolutions]):
        kept = [weight.numpy() for weight in part]
        for weight in part:
            weight.assign(tf.zeros_like(weight))
        assert abs(float(keras_out()["score"]) - float(expected["score"])) > 1e-2
        for weight, value in zip(part, kept):
            weight.assign(value)
    assert float(keras_out()["score"]) == pytest.approx(float(expected["score"]), abs=1e-5)  # restored


def test_a_model_of_80_mel_bins_exports_a_saved_model_and_tflite_that_compute_them(tmp_path):
    """The exports compute the features of the model's own mel bins from audio (`data.num_mel_bins`, read back as
    its CMVN's width / 3): an 80-bin CTC-only model with the front end exports, and the SavedModel's and the
    TFLite model's `ctc_greedy` give the Keras model's tokens and score (a 40-bin feature extractor would not fit
    its 240-wide CMVN)."""
    import keras

    from tf_jointctc.config import base_config
    from tf_jointctc.model import build_model

    config = base_config()
    config.model.encoder.update(num_layers=1, units=16, projection_units=16, subsample=(1,), input_stack=3,
                                conv_channels=2)
    config.model.update(init_scale=0.6)
    config.loss.update(ctc_weight=1.0)
    keras.utils.set_random_seed(6)
    cmvn = {"mean": np.zeros(240, np.float32), "std": np.full(240, 4.0, np.float32)}
    model = build_model(config.model, config.loss, Vocabulary(), cmvn)
    assert model.num_mel_bins == 80
    _exports_ctc_greedy_match_keras(model, tmp_path, waveform_seed=1)


# ---------------------------------------------------------------------------------------------- saved_model_cli


def _saved_model_cli():
    return str(pathlib.Path(sys.executable).with_name("saved_model_cli"))


def test_saved_model_cli_show_and_run(exported, saved_model, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    show = subprocess.run(
        [_saved_model_cli(), "show", "--dir", exported["saved_model"], "--all"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert show.returncode == 0, show.stderr[-3000:]
    for name in sig.DECODING_SIGNATURES:
        assert f"signature_def['{name}']" in show.stdout
    waveform = (0.1 * np.random.default_rng(1).standard_normal((1, 12000))).astype(np.float32)
    np.save(tmp_path / "w.npy", waveform)
    np.save(tmp_path / "n.npy", np.array([12000], np.int32))
    inputs = f"waveform={tmp_path / 'w.npy'};num_samples={tmp_path / 'n.npy'}"
    result = subprocess.run(
        [
            _saved_model_cli(), "run", "--dir", exported["saved_model"], "--tag_set", "serve",
            "--signature_def", "ctc_greedy", "--inputs", inputs, "--outdir", str(tmp_path / "out"),
        ],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = run_saved_model(saved_model, "ctc_greedy", waveform[0])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "num_tokens.npy"), [expected["num_tokens"]])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "token_ids.npy")[0], expected["token_ids"])
