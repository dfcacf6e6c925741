"""The monotonicity score of attention alignments (tf_jointctc/reproduce/alignment.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tf_jointctc.reproduce import alignment


def _diagonal_weights(tokens: int, frames: int) -> np.ndarray:
    weights = np.zeros([tokens, frames])
    centre = np.round(alignment.diagonal(tokens, frames)).astype(int)
    weights[np.arange(tokens), centre] = 1.0
    return weights


@pytest.mark.parametrize("tokens,frames", [(20, 80), (50, 60), (7, 200), (1, 30)])
def test_perfect_diagonal_scores_one(tokens, frames):
    assert alignment.monotonicity(_diagonal_weights(tokens, frames)) == pytest.approx(1.0)


def test_uniform_scores_the_band_share():
    tokens, frames = 40, 100
    score = alignment.monotonicity(np.full([tokens, frames], 1.0 / frames))
    expected = alignment.band_mask(tokens, frames).mean()
    assert score == pytest.approx(expected)
    # +-10 frames of 100: at most 21 % of the frames, less where the band is cut at the corners.
    assert 0.15 < score <= 21 / 100


def test_anti_diagonal_scores_low():
    weights = _diagonal_weights(30, 120)[:, ::-1]
    assert alignment.monotonicity(weights) < 0.25
    assert alignment.monotonicity(weights) < alignment.monotonicity(_diagonal_weights(30, 120))


def test_rows_need_not_be_normalized_and_band_is_configurable():
    weights = 5.0 * _diagonal_weights(10, 50)
    assert alignment.monotonicity(weights) == pytest.approx(1.0)
    uniform = np.ones([10, 50])
    assert alignment.monotonicity(uniform, band=0.3) > alignment.monotonicity(uniform, band=0.1)


def test_shapes_and_edge_cases():
    assert alignment.band_mask(12, 40).shape == (12, 40)
    assert alignment.band_width(40) == 4 and alignment.band_width(3) == 1
    assert alignment.diagonal(5, 9).tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert np.isnan(alignment.monotonicity(np.zeros([0, 10])))
    assert alignment.monotonicity(np.zeros([3, 10])) == 0.0  # no mass at all
    with pytest.raises(ValueError):
        alignment.monotonicity(np.ones([2, 3, 4]))
