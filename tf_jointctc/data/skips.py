"""Counting the utterances a data preparation step leaves out, and why.

Preparing a corpus never crashes on one bad utterance: the reader, the audio loader and the shard writer each
record what they skipped in one `SkipReport`, which is logged once at the end (one line per reason) and saved
in the shards' `summary.json`.
"""

from __future__ import annotations

import collections
from typing import Any

from absl import logging

# The reasons used across tf_jointctc.data (free-form reasons are accepted too).
MISSING_FILE = "missing_file"
UNREADABLE_AUDIO = "unreadable_audio"
EMPTY_AUDIO = "empty_audio"
NON_FINITE_AUDIO = "non_finite_audio"
TOO_LONG_AUDIO = "too_long_audio"
EMPTY_TRANSCRIPT = "empty_transcript"
TEXT_NOT_IN_VOCABULARY = "text_not_in_vocabulary"
LABELS_TOO_LONG_FOR_CTC = "labels_too_long_for_ctc"
BAD_MANIFEST_LINE = "bad_manifest_line"
NO_AUDIO_FOR_ID = "no_audio_for_id"
NO_TEXT_FOR_ID = "no_text_for_id"
DUPLICATE_ID = "duplicate_id"
UNSUPPORTED_WAV_SCP_ENTRY = "unsupported_wav_scp_entry"


class SkipReport:
    """Counts skipped utterances per reason and keeps the first few ids of each as examples.

    Args:
      max_examples: how many example ids to keep per reason.
    """

    def __init__(self, max_examples: int = 5):
        self.max_examples = max_examples
        self.counts: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, utterance_id: str, detail: str | None = None) -> None:
        """Records one skipped utterance. `detail` (e.g. the error message) is appended to its example."""
        self.counts[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < self.max_examples:
            examples.append(f"{utterance_id} ({detail})" if detail else utterance_id)

    def update(self, other: SkipReport) -> None:
        """Adds the counts and examples of `other` to this report."""
        self.counts.update(other.counts)
        for reason, examples in other.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(examples[: max(0, self.max_examples - len(mine))])

    @property
    def total(self) -> int:
        """Number of utterances skipped for any reason."""
        return sum(self.counts.values())

    def count(self, reason: str) -> int:
        return self.counts.get(reason, 0)

    def log(self, prefix: str = "") -> None:
        """Logs one WARNING line per reason (count and examples), or one INFO line if nothing was skipped."""
        head = f"{prefix}: " if prefix else ""
        if not self.counts:
            logging.info("%sno utterances skipped", head)
            return
        for reason, count in sorted(self.counts.items()):
            examples = "; ".join(self.examples.get(reason, []))
            logging.warning("%sskipped %d utterance(s) for %s, e.g. %s", head, count, reason, examples)

    def as_dict(self) -> dict[str, Any]:
        """`{"total": n, "reasons": {reason: {"count": n, "examples": [...]}}}`, JSON-serializable."""
        return {
            "total": self.total,
            "reasons": {
                reason: {"count": count, "examples": list(self.examples.get(reason, []))}
                for reason, count in sorted(self.counts.items())
            },
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any], max_examples: int = 5) -> SkipReport:
        """Inverse of `as_dict`."""
        report = cls(max_examples)
        for reason, entry in payload.get("reasons", {}).items():
            report.counts[reason] = int(entry["count"])
            report.examples[reason] = list(entry.get("examples", []))
        return report

    def __repr__(self) -> str:
        return f"SkipReport({dict(self.counts)})"
