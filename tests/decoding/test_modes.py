"""tf_jointctc.decoding.modes: the one table of decoding modes (jointctc-eval and the exported signatures)."""

import types

import numpy as np
import pytest

from tf_jointctc.decoding import beam_search_decode, ctc_greedy_decode, modes
from tf_jointctc.decoding.options import DecodeOptions


def fake_model(ctc=True, attention=True):
    return types.SimpleNamespace(compute_ctc=ctc, compute_attention=attention)


def test_the_mode_names_are_those_of_the_cli_contract():
    assert modes.MODES == ("ctc_greedy", "attention", "joint")


@pytest.mark.parametrize(
    ("mode", "ctc", "attention", "message"),
    [
        ("joint", False, True, "lambda = 0"),
        ("joint", True, False, "lambda = 1"),
        ("ctc_greedy", False, True, "lambda = 0"),
        ("attention", True, False, "lambda = 1"),
        ("beam", True, True, "unknown mode"),
        ("joint_beam", True, True, "unknown mode"),
    ],
)
def test_modes_the_model_cannot_do_are_refused(mode, ctc, attention, message):
    with pytest.raises(ValueError, match=message):
        modes.check_mode(fake_model(ctc, attention), mode, DecodeOptions())
    assert message in modes.unsupported_reason(fake_model(ctc, attention), mode, DecodeOptions())


def test_joint_needs_a_ctc_weight_strictly_between_0_and_1():
    modes.check_mode(fake_model(), "joint", DecodeOptions(ctc_weight=0.3))
    for weight in (0.0, 1.0):
        with pytest.raises(ValueError, match="ctc_weight"):
            modes.check_mode(fake_model(), "joint", DecodeOptions(ctc_weight=weight))
    # The other modes do not use the weight.
    for mode in ("ctc_greedy", "attention"):
        assert modes.unsupported_reason(fake_model(), mode, DecodeOptions(ctc_weight=1.0)) is None


def test_beam_search_uses_the_ctc_weight_in_joint_mode_only():
    options = DecodeOptions(ctc_weight=0.4)
    assert modes.beam_ctc_weight(modes.JOINT, options) == 0.4
    assert modes.beam_ctc_weight(modes.ATTENTION, options) == 0.0


def test_decode_dispatches_to_the_decoder_of_each_mode():
    from tests.decoding.test_beam_search import encode, tiny_model

    model = tiny_model(ctc_weight=0.5, seed=1)
    h, lengths = encode(model, [12, 9])
    options = DecodeOptions(beam=3, ctc_weight=0.4, length_penalty=0.2)
    beam = dict(beam=3, length_penalty=0.2, max_length_ratio=1.0, min_length_ratio=0.0)
    expected = {
        "ctc_greedy": ctc_greedy_decode(model.ctc_logits(h), lengths),
        "attention": beam_search_decode(model, h, lengths, ctc_weight=0.0, **beam),
        "joint": beam_search_decode(model, h, lengths, ctc_weight=0.4, **beam),
    }
    for mode in modes.MODES:
        got = modes.decode(model, h, lengths, mode, options)
        for a, b in zip(got, expected[mode]):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=mode)
