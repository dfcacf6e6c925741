"""`jointctc-transcribe` (CONTRACT.md). Placeholder until its issue lands: exits 2 with a clear message."""

from tf_jointctc.cli.not_yet import not_available


def run() -> None:
    not_available("jointctc-transcribe")
