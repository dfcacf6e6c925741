import pytest

from tf_jointctc import metrics
from tf_jointctc.decoding.options import DecodeOptions
from tf_jointctc.evaluation import UtteranceResult, summarize


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
