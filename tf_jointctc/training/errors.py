"""Why a training run cannot go on: exceptions that `jointctc-train` turns into a message and an exit code.

Library code raises these (never `SystemExit`); each message says what went wrong and what to do.
"""

from __future__ import annotations


class TrainingError(Exception):
    """A training run cannot start or go on; `str(error)` is the message for the user."""


class NoUsableDataError(TrainingError):
    """A data set (train, dev or alignment data) holds no utterance that training can use."""


class NonFiniteLossError(TrainingError):
    """Training stopped after `train.max_non_finite_steps` consecutive non-finite losses."""


class SharedCacheTimeoutError(TrainingError):
    """A non-chief worker waited too long for the chief to prepare the shared `data.cache_dir`."""


class ConfigError(TrainingError, ValueError):
    """A config setting that training cannot honour (for example a time budget under several workers)."""
