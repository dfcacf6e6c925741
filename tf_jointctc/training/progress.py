"""How much progress `model.fit` prints: a progress bar on a terminal, one line per epoch in a log file."""

from __future__ import annotations


def fit_verbosity(requested: int | str | None, stdout_is_tty: bool) -> int | str:
    """The `verbose` argument of `model.fit`.

    `requested` (0 silent, 1 progress bar, 2 one line per epoch, or "auto") wins when given. Otherwise: "auto"
    (Keras' progress bar) on a terminal, and 2 when stdout is redirected (`nohup ... > log`), where the bar's
    carriage returns would fill the log file with one partial line per update.
    """
    if requested is not None:
        return requested
    return "auto" if stdout_is_tty else 2
