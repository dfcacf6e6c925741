"""`DecodeOptions`: reading a config's `decode` section and the attention and joint modes' own LM settings
(`for_mode`); the LM weight a search runs with (`fused_lm_weight`)."""

import inspect
import json

import ml_collections
import pytest

from tf_jointctc.config import base_config
from tf_jointctc.decoding import modes
from tf_jointctc.decoding.beam_search import beam_search
from tf_jointctc.decoding.options import DecodeOptions, explicit_mode_settings, fused_lm_weight


def test_from_config_reads_the_decode_section_and_overrides_that_are_set():
    decode = base_config().decode
    options = DecodeOptions.from_config(decode)
    assert (options.beam, options.ctc_weight, options.length_penalty, options.lm_weight) == (20, 0.3, 0.1, 0.0)
    assert options.attention_lm_weight is None and options.attention_lm_length_penalty is None
    decode.attention_lm_weight, decode.attention_lm_length_penalty = 0.1, 0.3
    tuned = DecodeOptions.from_config(decode, beam=5, lm_weight=None, attention_lm_length_penalty=0.5)
    assert (tuned.beam, tuned.lm_weight, tuned.attention_lm_weight, tuned.attention_lm_length_penalty) == \
        (5, 0.0, 0.1, 0.5)
    # A work dir saved before the keys existed reads as "not set".
    old = ml_collections.ConfigDict({"beam": 10, "ctc_weight": 0.5, "lm_weight": 0.7})
    assert DecodeOptions.from_config(old).attention_lm_weight is None


def test_from_config_refuses_an_override_that_names_no_option():
    with pytest.raises(ValueError, match=r"unknown decoding options \['max_repeat'\]"):
        DecodeOptions.from_config(base_config().decode, max_repeat=2)  # a typo of max_repeats


def test_every_field_holds_its_own_type_however_it_was_given():
    options = DecodeOptions(beam=3.0, length_penalty=0, max_repeats=2.0, attention_lm_weight=1)
    assert (type(options.beam), type(options.length_penalty), type(options.max_repeats)) == (int, float, int)
    assert type(options.attention_lm_weight) is float
    assert json.dumps(options.to_dict()).count('"length_penalty": 0.0') == 1  # recorded as a float
    with pytest.raises(ValueError, match="beam: must be an integer"):
        DecodeOptions(beam=2.5)


def test_search_settings_are_the_shared_fields_named_as_beam_search_keywords():
    options = DecodeOptions(beam=4, ctc_weight=0.2, lm_weight=0.5, attention_lm_weight=0.1, max_attention_stall=8)
    settings = options.search_settings()
    assert settings["beam"] == 4 and settings["max_attention_stall"] == 8 and settings["lm_weight"] == 0.5
    assert "attention_lm_weight" not in settings and "joint_lm_ctc_weight" not in settings
    assert set(settings) <= set(inspect.signature(beam_search).parameters)


def test_for_mode_gives_the_attention_mode_its_own_lm_settings_only_with_an_lm():
    options = DecodeOptions(beam=4, length_penalty=0.1, lm_weight=0.9, attention_lm_weight=0.1,
                            attention_lm_length_penalty=0.3)
    attention = options.for_mode(modes.ATTENTION, with_lm=True)
    assert (attention.lm_weight, attention.length_penalty, attention.beam) == (0.1, 0.3, 4)
    assert attention.attention_lm_weight is None and attention.attention_lm_length_penalty is None
    for mode in (modes.JOINT, modes.CTC_GREEDY):
        other = options.for_mode(mode, with_lm=True)
        assert (other.lm_weight, other.length_penalty) == (0.9, 0.1)
    unfused = options.for_mode(modes.ATTENTION, with_lm=False)
    assert (unfused.lm_weight, unfused.length_penalty) == (0.9, 0.1)
    # Only what is set replaces the shared value.
    half = DecodeOptions(length_penalty=0.1, lm_weight=0.9, attention_lm_length_penalty=0.3)
    assert (half.for_mode(modes.ATTENTION, True).lm_weight, half.for_mode(modes.ATTENTION, True).length_penalty) == \
        (0.9, 0.3)
    assert "attention_lm_weight" not in DecodeOptions().to_dict()
    assert options.to_dict()["attention_lm_length_penalty"] == 0.3


def test_for_mode_gives_the_joint_mode_its_own_ctc_weight_only_with_an_lm():
    options = DecodeOptions(ctc_weight=0.3, lm_weight=0.9, joint_lm_ctc_weight=0.5)
    assert options.to_dict()["joint_lm_ctc_weight"] == 0.5
    joint = options.for_mode(modes.JOINT, with_lm=True)
    assert (joint.ctc_weight, joint.lm_weight, joint.joint_lm_ctc_weight) == (0.5, 0.9, None)
    assert "joint_lm_ctc_weight" not in joint.to_dict()
    assert options.for_mode(modes.JOINT, with_lm=False).ctc_weight == 0.3  # the weight without an LM
    for mode in (modes.ATTENTION, modes.CTC_GREEDY):
        assert options.for_mode(mode, with_lm=True).ctc_weight == 0.3
    assert DecodeOptions(ctc_weight=0.3).for_mode(modes.JOINT, with_lm=True).ctc_weight == 0.3  # unset: shared
    decode = base_config().decode
    assert DecodeOptions.from_config(decode).joint_lm_ctc_weight is None
    decode.joint_lm_ctc_weight = 0.7
    assert DecodeOptions.from_config(decode).joint_lm_ctc_weight == 0.7
    assert DecodeOptions.from_config(decode, joint_lm_ctc_weight=0.2).joint_lm_ctc_weight == 0.2


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_a_joint_lm_ctc_weight_outside_0_1_is_refused(bad):
    with pytest.raises(ValueError, match="joint_lm_ctc_weight must be in"):
        DecodeOptions(joint_lm_ctc_weight=bad)


def test_the_coverage_term_is_read_checked_and_recorded_only_when_on():
    decode = base_config().decode
    options = DecodeOptions.from_config(decode)
    assert (options.coverage_weight, options.coverage_threshold) == (0.0, 0.5)
    assert "coverage_weight" not in options.to_dict() and "coverage_threshold" not in options.to_dict()
    decode.coverage_weight = 0.05
    on = DecodeOptions.from_config(decode, coverage_threshold=0.3)
    assert (on.coverage_weight, on.coverage_threshold) == (0.05, 0.3)
    assert (on.to_dict()["coverage_weight"], on.to_dict()["coverage_threshold"]) == (0.05, 0.3)
    assert on.for_mode(modes.ATTENTION, with_lm=True).coverage_weight == 0.05  # shared by every beam mode
    old = ml_collections.ConfigDict({"beam": 10, "ctc_weight": 0.5})  # a work dir from before the keys existed
    assert DecodeOptions.from_config(old).coverage_weight == 0.0
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="coverage_weight"):
            DecodeOptions(coverage_weight=bad)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="coverage_threshold"):
            DecodeOptions(coverage_threshold=bad)


@pytest.mark.parametrize("limit", ["max_repeats", "max_attention_stall"])
def test_the_decoding_limits_are_read_checked_and_recorded_only_when_on(limit):
    """The repeat limit and the attention stall limit: integers >= 0, 0 (off) by default and then left out of the
    record, shared by every beam mode."""
    decode = base_config().decode
    options = DecodeOptions.from_config(decode)
    assert getattr(options, limit) == 0 and limit not in options.to_dict()
    decode[limit] = 2
    on = DecodeOptions.from_config(decode)
    assert getattr(on, limit) == 2 and on.to_dict()[limit] == 2
    for mode in (modes.ATTENTION, modes.JOINT):
        assert getattr(on.for_mode(mode, with_lm=True), limit) == 2
    assert getattr(DecodeOptions.from_config(decode, **{limit: 3}), limit) == 3
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match=limit):
            DecodeOptions(**{limit: bad})


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_a_bad_attention_lm_weight_is_refused(bad):
    with pytest.raises(ValueError, match="attention_lm_weight"):
        DecodeOptions(attention_lm_weight=bad)


def test_fused_lm_weight_uses_the_configured_weight_only_with_an_lm():
    assert fused_lm_weight(0.9, None, with_lm=True) == 0.9
    assert fused_lm_weight(0.9, None, with_lm=False) == 0.0  # the weight *when* an LM is fused
    assert fused_lm_weight(0.9, 0.4, with_lm=True) == 0.4  # an explicit weight beats the config's
    assert fused_lm_weight(0.9, 0.0, with_lm=True) == 0.0
    assert fused_lm_weight(0.9, 0.0, with_lm=False) == 0.0
    with pytest.raises(ValueError, match="lm_weight=0.4 needs a language model: pass --lm_workdir"):
        fused_lm_weight(0.0, 0.4, with_lm=False)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_fused_lm_weight_refuses_a_bad_weight_from_either_source(bad):
    for configured, explicit in ((bad, None), (0.5, bad)):
        with pytest.raises(ValueError, match="finite number >= 0"):
            fused_lm_weight(configured, explicit, with_lm=False)


def test_explicit_shared_values_stand_for_every_modes_own_setting():
    asked = explicit_mode_settings({"lm_weight": 0.7, "length_penalty": None, "ctc_weight": 0.2})
    assert asked == {"attention_lm_weight": 0.7, "attention_lm_length_penalty": None, "joint_lm_ctc_weight": 0.2}
    assert set(explicit_mode_settings({}).values()) == {None}  # nothing asked: every mode keeps its own
    # As from_config overrides: an explicit value beats the config's own setting, an unasked one leaves it.
    decode = base_config().decode
    decode.attention_lm_weight, decode.attention_lm_length_penalty = 0.1, 0.3
    options = DecodeOptions.from_config(decode, lm_weight=0.7, **asked)
    attention = options.for_mode(modes.ATTENTION, with_lm=True)
    assert (attention.lm_weight, attention.length_penalty) == (0.7, 0.3)
    assert options.for_mode(modes.JOINT, with_lm=True).ctc_weight == 0.2
