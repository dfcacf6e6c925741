import json
import os

import pytest

from tf_jointctc import metrics
from tf_jointctc.decoding.options import DecodeOptions
from tf_jointctc.evaluation import UtteranceResult, evaluate_workdir, evaluation_options, summarize


def test_decode_options_come_from_the_config_with_overrides():
    from tf_jointctc.config import base_config

    options = DecodeOptions.from_config(base_config().decode, beam=4, length_penalty=None)
    assert (options.beam, options.ctc_weight, options.length_penalty) == (4, 0.3, 0.1)
    with pytest.raises(ValueError, match="beam"):
        DecodeOptions(beam=0)


def test_summary_sums_errors_over_utterances_and_computes_rtf():
    results = [
        UtteranceResult("a", "ab cd", "ab cx", 0.0, metrics.char_counts("ab cd", "ab cx"),
                        metrics.word_counts("ab cd", "ab cx")),
        UtteranceResult("b", "ef", "", 0.0, metrics.char_counts("ef", ""), metrics.word_counts("ef", "")),
    ]
    summary = summarize(results, audio_seconds=10.0, decode_seconds=2.5)
    assert summary["cer"] == pytest.approx(100 * 3 / 7, abs=1e-3)
    assert summary["wer"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert summary["char_errors"] == {"sub": 1, "del": 2, "ins": 0, "ref": 7}
    assert summary["utterances"] == 2 and summary["rtf"] == 0.25
    assert results[1].as_dict()["words"] == {"sub": 0, "del": 1, "ins": 0, "ref": 1}


# ------------------------------------------------------------------------- shallow fusion with a character LM


def make_lm_workdir(folder, vocab, seed=0):
    """A jointctc-train-lm work dir as `load_trained_lm` reads it (config.json, vocab.json,
    checkpoints/latest) holding a tiny random-weight character LM over `vocab`; returns its path (str)."""
    import keras
    import tensorflow as tf

    from tf_jointctc.config import lm_base_config
    from tf_jointctc.language_model import build_language_model
    from tf_jointctc.trained_model import model_variables
    from tf_jointctc.training.workdir import save_config, save_vocab

    folder.mkdir(parents=True)
    config = lm_base_config()
    config.model.units, config.model.embedding_dim, config.model.init_scale = 16, 8, 0.5
    keras.utils.set_random_seed(seed)
    lm = build_language_model(config.model, vocab)
    save_config(str(folder), config)
    save_vocab(str(folder), vocab)
    checkpoint = tf.train.Checkpoint(model=model_variables(lm))
    tf.train.CheckpointManager(checkpoint, str(folder / "checkpoints" / "latest"), max_to_keep=1).save()
    return str(folder)


def copy_workdir(workdir, folder, **decode):
    """The trained work dir's model files in `folder`, its config's `decode` section updated with `decode`."""
    import shutil

    folder.mkdir()
    for name in ("vocab.json", "cmvn.json"):
        shutil.copy(workdir / name, folder / name)
    shutil.copytree(workdir / "checkpoints", folder / "checkpoints")
    config = json.loads((workdir / "config.json").read_text())
    config["decode"].update(decode)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def hypotheses(path):
    return {(e := json.loads(line))["id"]: (e["hypothesis"], e["score"]) for line in path.read_text().splitlines()}


def decode_config(workdir, **decode):
    """The trained work dir's `config.decode`, with `decode` set."""
    from tf_jointctc.trained_model import load_config

    config = load_config(str(workdir))
    config.decode.update(decode)
    return config.decode


def configured_options(workdir, mode, **decode):
    """What `evaluate_workdir` decodes `mode` with (no LM) when the work dir's config sets `decode`."""
    return evaluation_options(decode_config(workdir, **decode), mode, lm_workdir="")[0]


def options_asked(workdir, mode, **overrides):
    """What `evaluate_workdir` decodes `mode` with (no LM) when asked for `overrides` as arguments. A search is a
    function of its options: where these equal `configured_options`, so do the hypotheses."""
    return evaluation_options(decode_config(workdir), mode, lm_workdir="", **overrides)[0]


def test_evaluation_fuses_an_lm_and_reports_it(trained_workdir, trained_manifest, tmp_path):
    from tf_jointctc.trained_model import load_vocab

    workdir, _ = trained_workdir
    lm_workdir = make_lm_workdir(tmp_path / "lm", load_vocab(str(workdir)))
    data = str(trained_manifest)
    common = dict(beam=3, batch_size=4)
    plain = evaluate_workdir(str(workdir), data, "joint", output=str(tmp_path / "plain.jsonl"), **common)
    assert (plain["lm_workdir"], plain["lm_weight"], plain["lm_checkpoint"]) == (None, 0.0, None)
    # beta = 0: the LM is loaded (and its vocabulary checked) but the search is the one without it.
    zero = evaluate_workdir(str(workdir), data, "joint", output=str(tmp_path / "zero.jsonl"), lm_workdir=lm_workdir,
                            lm_weight=0.0, **common)
    assert zero["lm_workdir"] == os.path.abspath(lm_workdir) and zero["lm_weight"] == 0.0
    assert zero["lm_checkpoint"].startswith(os.path.join(lm_workdir, "checkpoints", "latest"))
    assert zero["cer"] == plain["cer"] and zero["wer"] == plain["wer"]
    assert hypotheses(tmp_path / "zero.jsonl") == hypotheses(tmp_path / "plain.jsonl")
    # The work dir's config names the LM and its weight: they are the defaults, flags override them. (No attention
    # mode's own LM settings here: the trained work dir's config, configs/demo.py's, has them.)
    configured = copy_workdir(workdir, tmp_path / "configured", lm_workdir=lm_workdir, lm_weight=0.5,
                              attention_lm_weight=None, attention_lm_length_penalty=None)
    for mode in ("attention", "joint"):
        fused = evaluate_workdir(str(configured), data, mode, output=str(tmp_path / f"{mode}.jsonl"), **common)
        assert fused["lm_workdir"] == os.path.abspath(lm_workdir) and fused["lm_weight"] == 0.5
        assert fused["utterances"] == plain["utterances"] and fused["mode"] == mode
    fused_scores = {k: score for k, (_, score) in hypotheses(tmp_path / "joint.jsonl").items()}
    plain_scores = {k: score for k, (_, score) in hypotheses(tmp_path / "plain.jsonl").items()}
    assert fused_scores.keys() == plain_scores.keys() and fused_scores != plain_scores  # the LM scored them
    # The attention mode's own LM settings: attention with the LM takes them, joint the shared ones, and an
    # explicit weight or bonus beats them; the search runs with them (the same output as asking for them).
    tuned = copy_workdir(workdir, tmp_path / "tuned", lm_workdir=lm_workdir, lm_weight=0.5, attention_lm_weight=0.2,
                         attention_lm_length_penalty=0.4)
    own = evaluate_workdir(str(tuned), data, "attention", output=str(tmp_path / "own.jsonl"), **common)
    assert (own["lm_weight"], own["length_penalty"]) == (0.2, 0.4)
    asked = evaluate_workdir(str(configured), data, "attention", output=str(tmp_path / "asked.jsonl"), lm_weight=0.2,
                             length_penalty=0.4, **common)
    assert (asked["lm_weight"], asked["length_penalty"]) == (0.2, 0.4)
    assert hypotheses(tmp_path / "own.jsonl") == hypotheses(tmp_path / "asked.jsonl")
    assert hypotheses(tmp_path / "own.jsonl") != hypotheses(tmp_path / "attention.jsonl")  # not the shared 0.5
    # The joint mode's own CTC weight: joint with the LM takes it; the search runs with it.
    joint_own = copy_workdir(workdir, tmp_path / "joint_own", lm_workdir=lm_workdir, lm_weight=0.5,
                             joint_lm_ctc_weight=0.8)
    own_joint = evaluate_workdir(str(joint_own), data, "joint", output=str(tmp_path / "own_joint.jsonl"), **common)
    assert (own_joint["ctc_weight"], own_joint["lm_weight"]) == (0.8, 0.5)
    asked_joint = evaluate_workdir(str(configured), data, "joint", output=str(tmp_path / "asked_joint.jsonl"),
                                   ctc_weight=0.8, **common)
    assert asked_joint["ctc_weight"] == 0.8
    assert hypotheses(tmp_path / "own_joint.jsonl") == hypotheses(tmp_path / "asked_joint.jsonl")
    assert hypotheses(tmp_path / "own_joint.jsonl") != hypotheses(tmp_path / "joint.jsonl")  # not the shared weight
    # The config's weight is the weight when an LM is fused: without one the search runs without it.
    unfused = evaluate_workdir(str(configured), data, "joint", lm_workdir="", output=str(tmp_path / "unfused.jsonl"),
                               **common)
    assert unfused["lm_workdir"] is None and unfused["lm_weight"] == 0.0
    assert hypotheses(tmp_path / "unfused.jsonl") == hypotheses(tmp_path / "plain.jsonl")
    # ctc_greedy never loads an LM, and refuses an explicit weight (`modes.check_mode`, after the model is loaded).
    with pytest.raises(ValueError, match="'ctc_greedy' cannot use a language model"):
        evaluate_workdir(str(configured), data, "ctc_greedy", lm_weight=0.5, **common)


def test_evaluation_options_resolve_the_configs_lm_settings_and_the_explicit_ones(trained_workdir, tmp_path):
    """`evaluation_options`, what `evaluate_workdir` decodes with (the test above runs the searches of some of these
    settings end to end and compares their hypotheses): the config's LM settings are the defaults, each mode's own
    settings apply with an LM, explicit arguments beat both, and a weight without an LM is refused."""
    workdir, _ = trained_workdir
    lm_workdir = str(tmp_path / "lm")  # only named here: evaluate_workdir loads the LM, evaluation_options does not
    plain = decode_config(workdir)
    shared_bonus, shared_ctc = float(plain.length_penalty), float(plain.ctc_weight)
    assert shared_bonus != 0.4 and shared_ctc != 0.8  # so that the checks below tell the settings apart
    options, fused = evaluation_options(plain, "joint")
    assert (fused, options.lm_weight, options.ctc_weight) == ("", 0.0, shared_ctc)
    tuned = decode_config(workdir, lm_workdir=lm_workdir, lm_weight=0.5, attention_lm_weight=0.2,
                          attention_lm_length_penalty=0.4, joint_lm_ctc_weight=0.8)
    options, fused = evaluation_options(tuned, "attention")
    assert (fused, options.lm_weight, options.length_penalty) == (lm_workdir, 0.2, 0.4)  # the mode's own
    options, _ = evaluation_options(tuned, "joint")
    assert (options.lm_weight, options.length_penalty, options.ctc_weight) == (0.5, shared_bonus, 0.8)
    options, _ = evaluation_options(tuned, "attention", lm_weight=0.7, length_penalty=0.0)  # explicit beats own
    assert (options.lm_weight, options.length_penalty) == (0.7, 0.0)
    assert evaluation_options(tuned, "joint", ctc_weight=0.1)[0].ctc_weight == 0.1
    # Without the LM, neither its weight nor the modes' own settings: the shared ones.
    for asked in (None, 0.0):
        options, fused = evaluation_options(tuned, "joint", lm_workdir="", lm_weight=asked)
        assert (fused, options.lm_weight, options.ctc_weight) == ("", 0.0, shared_ctc), asked
        options, fused = evaluation_options(tuned, "attention", lm_workdir="", lm_weight=asked)
        assert (fused, options.lm_weight, options.length_penalty) == ("", 0.0, shared_bonus), asked
        # ctc_greedy never fuses one: it ignores the config's weight (an explicit one is refused by check_mode).
        options, fused = evaluation_options(tuned, "ctc_greedy", lm_weight=asked)
        assert (fused, options.lm_weight) == ("", 0.0), asked
    assert evaluation_options(tuned, "ctc_greedy", lm_weight=0.5)[0].lm_weight == 0.5
    with pytest.raises(ValueError, match="needs a language model: pass --lm_workdir"):
        evaluation_options(plain, "joint", lm_weight=0.5)
    with pytest.raises(ValueError, match="needs a language model: pass --lm_workdir"):
        evaluation_options(tuned, "attention", lm_workdir="", lm_weight=0.5)
    with pytest.raises(ValueError, match="finite number >= 0"):
        evaluation_options(tuned, "joint", lm_weight=float("nan"))
    with pytest.raises(ValueError, match="beem"):
        evaluation_options(plain, "joint", beem=3)


def test_evaluation_refuses_an_lm_over_another_vocabulary(trained_workdir, trained_manifest, tmp_path):
    from tf_jointctc.text import Vocabulary
    from tf_jointctc.trained_model import load_vocab

    workdir, _ = trained_workdir
    characters = load_vocab(str(workdir)).tokens[1:-1]
    other = make_lm_workdir(tmp_path / "lm", Vocabulary(tuple(c for c in characters if c != "q")))
    with pytest.raises(ValueError) as error:
        evaluate_workdir(str(workdir), str(trained_manifest), "joint", lm_workdir=other, lm_weight=0.3)
    message = str(error.value)
    # Both work dirs and both vocabularies (`data.lm_text.vocabulary_mismatch_message`) are named.
    assert other in message and str(workdir) in message and "differs from the recognizer" in message, message
    with pytest.raises(FileNotFoundError, match="not a jointctc-train work dir"):
        evaluate_workdir(str(workdir), str(trained_manifest), "joint", lm_workdir=str(tmp_path), lm_weight=0.3)


def test_evaluation_length_limits_come_from_the_config_and_arguments(trained_workdir, trained_manifest, tmp_path):
    """`min_length_ratio` / `max_length_ratio` (tokens per encoder frame; jointctc-eval's flags) default to the
    config's and bound what the search emits: eos forbidden early makes hypotheses no shorter, a low cap no
    longer, and each changes some."""
    workdir, _ = trained_workdir
    data = str(trained_manifest)
    common = dict(beam=3, batch_size=4, lm_workdir="")
    lengths = {}
    for name, limits in (("free", {}), ("floor", dict(min_length_ratio=0.9)), ("cap", dict(max_length_ratio=0.1))):
        summary = evaluate_workdir(str(workdir), data, "attention", output=str(tmp_path / f"{name}.jsonl"), **common,
                                   **limits)
        expected = {"min_length_ratio": 0.0, "max_length_ratio": 1.0, **limits}
        assert {key: summary[key] for key in expected} == expected
        lengths[name] = {key: len(text) for key, (text, _) in hypotheses(tmp_path / f"{name}.jsonl").items()}
    assert all(lengths["floor"][key] >= length for key, length in lengths["free"].items())
    assert all(lengths["cap"][key] <= length for key, length in lengths["free"].items())
    assert lengths["floor"] != lengths["free"] and lengths["cap"] != lengths["free"]
    assert configured_options(workdir, "attention", min_length_ratio=0.9) == options_asked(
        workdir, "attention", min_length_ratio=0.9)


def test_evaluation_coverage_term_comes_from_the_config_and_arguments(trained_workdir, trained_manifest, tmp_path):
    """`coverage_weight` / `coverage_threshold` (jointctc-eval's flags) default to the config's (0: none) and are
    recorded; a large weight rewards reading more frames, so hypotheses get no shorter and some change."""
    workdir, _ = trained_workdir
    data = str(trained_manifest)
    common = dict(beam=3, batch_size=4, lm_workdir="")
    off = evaluate_workdir(str(workdir), data, "attention", output=str(tmp_path / "off.jsonl"), **common)
    assert (off["coverage_weight"], off["coverage_threshold"]) == (0.0, 0.5)
    on = evaluate_workdir(str(workdir), data, "attention", output=str(tmp_path / "on.jsonl"), coverage_weight=5.0,
                          coverage_threshold=0.3, **common)
    assert (on["coverage_weight"], on["coverage_threshold"]) == (5.0, 0.3)
    free, covered = hypotheses(tmp_path / "off.jsonl"), hypotheses(tmp_path / "on.jsonl")
    assert free != covered
    assert sum(len(text) for text, _ in covered.values()) > sum(len(text) for text, _ in free.values())
    assert configured_options(workdir, "attention", coverage_weight=5.0, coverage_threshold=0.3) == options_asked(
        workdir, "attention", coverage_weight=5.0, coverage_threshold=0.3)


def holds_two_copies(text, min_unit=2, max_unit=24):
    """Brute force: two consecutive copies of a unit of min_unit to max_unit characters anywhere in `text`?"""
    return any(text[i : i + u] == text[i + u : i + 2 * u]
               for u in range(min_unit, max_unit + 1) for i in range(len(text) - 2 * u + 1))


def test_evaluation_repeat_limit_comes_from_the_config_and_arguments(trained_workdir, trained_manifest, tmp_path):
    """`max_repeats` (jointctc-eval's flag) defaults to the config's and is recorded; at 1 no hypothesis of the joint
    mode holds a unit of 2 to 24 characters twice in a row, from the argument or from the config."""
    workdir, _ = trained_workdir
    data = str(trained_manifest)
    common = dict(beam=3, batch_size=4, lm_workdir="")
    off = evaluate_workdir(str(workdir), data, "joint", output=str(tmp_path / "off.jsonl"), max_repeats=0, **common)
    assert off["max_repeats"] == 0
    on = evaluate_workdir(str(workdir), data, "joint", output=str(tmp_path / "on.jsonl"), max_repeats=1, **common)
    assert on["max_repeats"] == 1
    limited = hypotheses(tmp_path / "on.jsonl")
    assert limited.keys() == hypotheses(tmp_path / "off.jsonl").keys()
    assert not any(holds_two_copies(text) for text, _ in limited.values())
    assert configured_options(workdir, "joint", max_repeats=1) == options_asked(workdir, "joint", max_repeats=1)


def test_evaluation_attention_stall_limit_comes_from_the_config_and_arguments(trained_workdir, trained_manifest,
                                                                                  tmp_path):
    """`max_attention_stall` (jointctc-eval's flag) defaults to the config's and is recorded; the argument and
    the config give the same hypotheses."""
    workdir, _ = trained_workdir
    data = str(trained_manifest)
    common = dict(beam=3, batch_size=4, lm_workdir="")
    off = evaluate_workdir(str(workdir), data, "attention", max_attention_stall=0, **common)
    assert off["max_attention_stall"] == 0
    on = evaluate_workdir(str(workdir), data, "attention", output=str(tmp_path / "on.jsonl"),
                          max_attention_stall=1, **common)
    assert on["max_attention_stall"] == 1
    assert configured_options(workdir, "attention", max_attention_stall=1) == options_asked(
        workdir, "attention", max_attention_stall=1)
