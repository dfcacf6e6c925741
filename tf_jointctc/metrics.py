"""Edit distance and error rates (CER over characters, WER over words), as the paper's tables report them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tf_jointctc.text import normalize


@dataclasses.dataclass(frozen=True)
class EditCounts:
    """Levenshtein alignment of a hypothesis to a reference: substitutions, deletions, insertions."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_length + other.reference_length,
        )

    def rate(self) -> float:
        """Errors per reference unit, in percent (the paper's tables). An empty reference scores 0 or 100."""
        if self.reference_length == 0:
            return 0.0 if self.errors == 0 else 100.0
        return 100.0 * self.errors / self.reference_length


def edit_counts(reference: Sequence, hypothesis: Sequence) -> EditCounts:
    """Minimum-edit alignment counts; among equal-cost alignments prefers substitutions over del+ins pairs."""
    rows, cols = len(reference), len(hypothesis)
    # Each cell: (cost, substitutions, deletions, insertions); tuples compare by cost first.
    previous = [(j, 0, 0, j) for j in range(cols + 1)]
    for i in range(1, rows + 1):
        current = [(i, 0, i, 0)]
        for j in range(1, cols + 1):
            diag = previous[j - 1]
            same = reference[i - 1] == hypothesis[j - 1]
            candidates = (
                (diag[0] + (0 if same else 1), diag[1] + (0 if same else 1), diag[2], diag[3]),
                (previous[j][0] + 1, previous[j][1], previous[j][2] + 1, previous[j][3]),
                (current[j - 1][0] + 1, current[j - 1][1], current[j - 1][2], current[j - 1][3] + 1),
            )
            current.append(min(candidates))
        previous = current
    _, subs, dels, ins = previous[cols]
    return EditCounts(subs, dels, ins, rows)


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance between two sequences."""
    return edit_counts(reference, hypothesis).errors


def char_counts(reference: str, hypothesis: str) -> EditCounts:
    """Character edit counts of normalized texts (spaces count as characters, as in the paper's CER)."""
    return edit_counts(normalize(reference), normalize(hypothesis))


def word_counts(reference: str, hypothesis: str) -> EditCounts:
    """Word edit counts of normalized texts."""
    return edit_counts(normalize(reference).split(), normalize(hypothesis).split())


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus CER and WER in percent: total errors over total reference length."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    chars, words = EditCounts(), EditCounts()
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        chars += char_counts(reference, hypothesis)
        words += word_counts(reference, hypothesis)
    return {"cer": chars.rate(), "wer": words.rate()}
