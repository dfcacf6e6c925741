"""How well a trained character LM predicts a text: bits per character and perplexity (`jointctc-eval-lm`,
issue 13), the figure `jointctc-train-lm` logs for its dev text, for any text (test transcripts, other books).

Every label and the end of sentence are scored, weighted by count: bits per character = -sum log2 p(y_u | y_<u) /
(characters + sentences), by the model's own `test_step` metric, the one training logs as `val_bits_per_char`.
"""

from __future__ import annotations

from collections.abc import Sequence

from tf_jointctc.data.lm_batches import make_lm_dataset
from tf_jointctc.data.lm_text import read_lm_text
from tf_jointctc.language_model import CharacterLanguageModel
from tf_jointctc.text import Vocabulary
from tf_jointctc.trained_model import load_trained_lm


class NoUsableTextError(ValueError):
    """The text to score holds no sentence the LM's vocabulary can encode."""


def bits_per_character(model: CharacterLanguageModel, vocab: Vocabulary, sentences: Sequence[Sequence[int]],
                       batch_size: int = 64) -> float:
    """Bits per scored position (labels and eos) of `sentences` (label ids, without sos/eos) under `model`:
    `model.evaluate`'s `bits_per_char` over one unshuffled pass."""
    if not model.compiled:
        model.compile()
    dataset = make_lm_dataset(sentences, batch_size=batch_size, sos_id=vocab.sos_id, eos_id=vocab.eos_id,
                              pad_id=vocab.blank_id, first_batch=None)
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["bits_per_char"])


def score_text(lm_workdir: str, sources: Sequence[str], which: str = "best", batch_size: int = 64) -> dict:
    """Scores the text files or manifests `sources` (read as `jointctc-train-lm` reads text: bad lines skipped
    and counted per reason) with the `which` checkpoint of a jointctc-train-lm work dir.

    Returns:
      {"bits_per_char", "perplexity" (per character), "sentences", "characters", "skipped", "lm_checkpoint"}.
    Raises:
      NoUsableTextError: no sentence left to score. ValueError: not an LM work dir.
    """
    model, _, vocab, checkpoint = load_trained_lm(lm_workdir, which)
    text = read_lm_text(list(sources), vocab)
    if not text.sentences:
        raise NoUsableTextError(f"no usable sentence in {list(sources)} (skipped: {dict(text.skipped)})")
    bits = bits_per_character(model, vocab, text.sentences, batch_size)
    return {
        "bits_per_char": round(bits, 4),
        "perplexity": round(2.0 ** bits, 4),
        "sentences": len(text.sentences),
        "characters": sum(len(s) for s in text.sentences),
        "skipped": dict(text.skipped),
        "lm_checkpoint": checkpoint,
    }
