"""`FeatureAugmentation`: the augmentations keep the `[B, T]` mask and the features' shape."""

import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc.layers.feature_augmentation import FeatureAugmentation
from tf_jointctc.layers.spec_augment import SpecAugment
from tf_jointctc.layers.spectral_tilt import SpectralTilt
from tf_jointctc.layers.vtlp import VocalTractLengthPerturbation


@pytest.mark.parametrize("layer", [SpecAugment(freq_masks=1), VocalTractLengthPerturbation((0.9, 1.1)),
                                   SpectralTilt(1.0)], ids=lambda layer: type(layer).__name__)
def test_augmentations_pass_the_mask_through_and_keep_the_shape(layer):
    features = tf.zeros([2, 5, 120])
    mask = tf.constant(np.arange(5)[None, :] < np.array([[5], [3]]))
    assert isinstance(layer, FeatureAugmentation) and layer.supports_masking
    assert layer.compute_mask(features, tf.constant([5, 3]), mask=mask) is mask
    assert layer.compute_output_shape((2, None, 120), (2,)) == (2, None, 120)
