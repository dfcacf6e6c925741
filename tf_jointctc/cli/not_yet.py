"""Entry points whose code lands with a later issue: they say so and exit 2, never print fake results."""

from __future__ import annotations

import sys

_LANDS_WITH = {
    "jointctc-train": "the model and training issue (#3)",
    "jointctc-eval": "the decoding and evaluation issue (#4)",
    "jointctc-export": "the export issue (#5)",
    "jointctc-transcribe": "the export issue (#5)",
}


def not_available(command: str) -> None:
    sys.stderr.write(f"{command}: not available yet; it lands with {_LANDS_WITH[command]}.\n")
    sys.exit(2)
