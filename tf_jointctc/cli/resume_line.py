"""The `resuming from ...` line that jointctc-train and jointctc-train-lm print on stdout."""

from __future__ import annotations

import sys

from tf_jointctc.training.resume import ResumePoint


def print_resume(point: ResumePoint) -> None:
    """Prints `point.describe()` on stdout, flushed (a log follower sees it at once)."""
    sys.stdout.write(point.describe() + "\n")
    sys.stdout.flush()
