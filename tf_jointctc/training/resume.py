"""Where a resumed run continues, and the `model.fit` calls that take it from there to the last epoch.

A run resumes at an epoch boundary (the epoch-end checkpoint) or inside an epoch (a mid-epoch checkpoint,
`train.checkpoint_every_steps`): `epoch` epochs finished, then `step` batches of the next one consumed. The
unfinished epoch is then trained as one Keras epoch of the remaining batches, so the callbacks (history, dev
evaluation, best checkpoint) see it once.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """`epoch` finished epochs, then `step` consumed batches of epoch `epoch + 1` (0: at the epoch boundary).

    `path` is the restored checkpoint (None: a fresh start); `seconds` the wall time already spent in the
    unfinished epoch."""

    epoch: int = 0
    step: int = 0
    path: str | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        """The `resuming from ...` line of jointctc-train (it names the epoch, and the step inside an epoch)."""
        text = f"resuming from {self.path} at epoch {self.epoch}"
        if self.step:
            text += f", step {self.step} (epoch {self.epoch + 1} continues after its first {self.step} batches)"
        return text


@dataclasses.dataclass(frozen=True)
class Segment:
    """One `model.fit` call: epochs `first_epoch` .. `stop_epoch - 1` (0-based, Keras' `initial_epoch` and
    `epochs`), the first of them starting after its first `start_batch` batches."""

    first_epoch: int
    stop_epoch: int
    start_batch: int = 0


def fit_segments(resume: ResumePoint, epochs: int, one_call_per_epoch: bool) -> list[Segment]:
    """The `model.fit` calls from `resume` to `epochs` epochs.

    `one_call_per_epoch`: each epoch has its own dataset (a pass over the data shuffled by (seed, epoch)), so
    one call per epoch. Otherwise all epochs read one endless stream with a fixed number of steps per epoch:
    one call, preceded by a call for the rest of a partly trained epoch (it has fewer steps, and Keras fixes
    the steps per epoch for a whole call).
    """
    if resume.epoch >= epochs:
        return []
    if one_call_per_epoch:
        return [Segment(e, e + 1, resume.step if e == resume.epoch else 0) for e in range(resume.epoch, epochs)]
    if not resume.step:
        return [Segment(resume.epoch, epochs)]
    rest = [Segment(resume.epoch + 1, epochs)] if resume.epoch + 1 < epochs else []
    return [Segment(resume.epoch, resume.epoch + 1, resume.step), *rest]
