"""Maintainer tool: regenerates the committed sentence lists in `sentences/` from Debian packages.

Not needed to build the corpus (the lists are committed). To rerun it:

    apt-get download r-cran-janeaustenr wordnet-base
    for f in r-cran-janeaustenr_*.deb wordnet-base_*.deb; do dpkg-deb -x "$f" extracted; done
    python -m tf_jointctc.data.synth.extract_sentences --root extracted

`--lm_out tf_jointctc/data/lm_corpus/demo_lm.txt.gz` also writes the demo language model's text (`lm_lines`):
the normalized transcripts of every candidate sentence of the train pool, 1-60 words (over-long sentences
split into clauses at `;` and `:`), with the same cleaning; see `tf_jointctc/data/lm_corpus/SOURCES.md`.

Austen's novels are read from the R package's lazy-load database (`data/Rdata.rdb`/`.rdx`) with the pip
package `rdata` (no R needed); WordNet's example sentences are the double-quoted parts of the glosses in
`data.{noun,verb,adj,adv}`. Sentences are cleaned (`clean_sentence`), filtered to 4-20 words, deduplicated
on their normalized transcript and split into disjoint pools by a hash of that transcript (`pool_of`), so the
split of a sentence never depends on which other sentences exist.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import zlib

from tf_jointctc.data.synth import sentences as sentences_lib

AUSTEN_DATA = "usr/lib/R/site-library/janeaustenr/data"
WORDNET_DIR = "usr/share/wordnet"
AUSTEN_BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")

# Percent of sentences (by hash of the normalized text) per pool; the rest is train.
POOL_PERCENT = (("dev", 5), ("test", 5), ("babble", 3))
# Caps per source, to keep the committed text small (well under 2 MB in total).
MAX_PER_SOURCE = {"austen": 11000, "wordnet": 8000}
# Words per sentence: spoken sentences, and lines of the language model's text (any length an LM can take).
SENTENCE_WORDS = (4, 20)
LM_WORDS = (1, 60)

_ABBREVIATIONS = ("Mr.", "Mrs.", "Dr.", "St.", "Messrs.", "Col.", "Capt.", "Rev.", "Lt.", "Gen.")
_SENTENCE_END = re.compile(r'(?<=[.!?])["\')\]]*\s+(?=["\'(]*[A-Z])')
_ALLOWED = re.compile(r"^[A-Za-z ,;:.!?'\-]+$")
_CLAUSE_END = re.compile(r"(?<=[;:])\s+")


def read_austen(root: str) -> list[str]:
    """Paragraphs of the six novels, in order (lines joined; chapter headings dropped)."""
    import rdata  # only this maintainer tool needs it

    folder = os.path.join(root, AUSTEN_DATA)
    with open(os.path.join(folder, "Rdata.rdx"), "rb") as handle:
        index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(handle.read())))
    with open(os.path.join(folder, "Rdata.rdb"), "rb") as handle:
        database = handle.read()
    paragraphs: list[str] = []
    for book in AUSTEN_BOOKS:
        offset, length = (int(v) for v in index["variables"][book])
        chunk = database[offset : offset + length]
        lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(chunk[4:])))
        current: list[str] = []
        for line in list(lines) + [""]:
            line = str(line).strip()
            if not line:
                if current:
                    paragraphs.append(" ".join(current))
                current = []
            elif not re.match(r"^(CHAPTER|Chapter|VOLUME|Volume)\b", line):
                current.append(line)
    return paragraphs


def split_sentences(paragraph: str) -> list[str]:
    protected = paragraph
    for abbreviation in _ABBREVIATIONS:
        protected = protected.replace(abbreviation + " ", abbreviation.replace(".", "\x01") + " ")
    return [s.replace("\x01", ".") for s in _SENTENCE_END.split(protected)]


def clean_sentence(text: str) -> str:
    """Text to speak: quotes and underscores removed, `--` as a pause, apostrophes only inside words."""
    text = text.replace("_", "").replace('"', "").replace("--", ", ")
    text = re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", "", text)
    text = re.sub(r"\s+([,;:.!?])", r"\1", text)
    text = re.sub(r"([.!?]),", r"\1", text)
    text = re.sub(r"([,;:])\s*[,;:]+", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip(" ,;:-")
    return text


def acceptable(text: str, word_range: tuple[int, int] = SENTENCE_WORDS) -> bool:
    """Whether a cleaned sentence is kept: only allowed characters, `word_range` words, no all-capital word."""
    if not _ALLOWED.match(text):  # digits, '&', brackets and other symbols: dropped
        return False
    words = text.split()
    if not word_range[0] <= len(words) <= word_range[1]:
        return False
    # Roman numerals and shouted words read badly; `I` is fine.
    return not any(len(w.strip(",;:.!?")) > 1 and w.strip(",;:.!?").isupper() for w in words)


def read_wordnet(root: str) -> list[str]:
    examples: list[str] = []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(root, WORDNET_DIR, f"data.{pos}"), encoding="latin-1") as handle:
            for line in handle:
                if line.startswith("  ") or " | " not in line:
                    continue
                gloss = line.split(" | ", 1)[1]
                for example in re.findall(r'"([^"]+)"', gloss):
                    example = example.strip()
                    if example and example[0].isalpha():
                        example = example[0].upper() + example[1:]
                        if example[-1] not in ".!?":
                            example += "."
                        examples.append(example)
    return examples


def read_candidates(root: str) -> dict[str, list[str]]:
    """The raw candidate sentences per source (not cleaned), in source order."""
    return {
        "austen": [s for p in read_austen(root) for s in split_sentences(p)],
        "wordnet": read_wordnet(root),
    }


def pool_of(transcript: str) -> str:
    bucket = int(hashlib.sha1(transcript.encode("utf-8")).hexdigest()[:8], 16) % 100
    for pool, percent in POOL_PERCENT:
        if bucket < percent:
            return pool
        bucket -= percent
    return "train"


def _clauses(sentence: str, max_words: int) -> list[str]:
    """`sentence` alone if it has at most `max_words` words, else its clauses (split after `;` and `:`)."""
    if len(sentence.split()) <= max_words:
        return [sentence]
    return [clean_sentence(clause) for clause in _CLAUSE_END.split(sentence)]


def _phrase_finder(phrases: set[str]):
    """A function telling whether a normalized line holds one of `phrases` as a run of whole words."""
    by_first_word: dict[str, list[list[str]]] = {}
    for phrase in phrases:
        words = phrase.split()
        by_first_word.setdefault(words[0], []).append(words)

    def contains(line: str) -> bool:
        words = line.split()
        for i, word in enumerate(words):
            for phrase in by_first_word.get(word, ()):
                if words[i : i + len(phrase)] == phrase:
                    return True
        return False

    return contains


def lm_lines(candidates: dict[str, list[str]], held_out: set[str]) -> tuple[list[str], dict[str, int]]:
    """The language model's text: normalized transcripts of every train-pool candidate.

    Each candidate is cleaned as for the sentence lists (`clean_sentence`, `acceptable`) but may have 1-60
    words (`LM_WORDS`); a longer one is split into clauses at `;` and `:` first. A line is kept if its pool
    (`pool_of`, the hash of the transcript) is train, so no transcript that is or would be a dev, test or
    babble sentence is kept, capped away or not. Lines containing a `held_out` transcript (the transcripts of
    the dev, test and babble lists) as a run of whole words are dropped as well.

    Returns:
      The lines, deduplicated, ordered by the sha1 of the line (any prefix is a sample of the whole), and
      counts of what was dropped per reason.
    """
    contains_held_out = _phrase_finder(held_out)
    dropped = {"rejected": 0, "duplicate": 0, "not_train_pool": 0, "contains_held_out": 0}
    seen: set[str] = set()
    kept: list[tuple[str, str]] = []
    for raw in candidates.values():
        for sentence in raw:
            for clause in _clauses(clean_sentence(sentence), LM_WORDS[1]):
                transcript = sentences_lib.transcript(clause)
                if not acceptable(clause, LM_WORDS) or not transcript:
                    dropped["rejected"] += 1
                elif transcript in seen:
                    dropped["duplicate"] += 1
                else:
                    seen.add(transcript)
                    if pool_of(transcript) != "train":
                        dropped["not_train_pool"] += 1
                    elif contains_held_out(transcript):
                        dropped["contains_held_out"] += 1
                    else:
                        kept.append((hashlib.sha1(transcript.encode("utf-8")).hexdigest(), transcript))
    return [line for _, line in sorted(kept)], dropped


def write_lm_text(path: str, lines: list[str]) -> None:
    """Writes `lines` gzipped with mtime 0 (the same lines give the same bytes, with the same zlib)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode("ascii")
    with open(path, "wb") as handle:
        handle.write(gzip.compress(data, compresslevel=9, mtime=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, help="folder the .deb packages were extracted into")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "sentences"))
    parser.add_argument("--lm_out", default=None, help="also write the language model's text here (.txt.gz)")
    args = parser.parse_args()
    candidates = read_candidates(args.root)
    seen: set[str] = set()
    pools: dict[str, list[str]] = {name: [] for name in ("train", "dev", "test", "babble")}
    for source, raw in candidates.items():
        kept: list[tuple[str, str]] = []
        for sentence in raw:
            sentence = clean_sentence(sentence)
            if not acceptable(sentence):
                continue
            transcript = sentences_lib.transcript(sentence)
            if transcript in seen or not transcript:
                continue
            seen.add(transcript)
            kept.append((hashlib.sha1(transcript.encode()).hexdigest(), sentence))
        # Deterministic subsample (by hash) when a source has more than its cap.
        kept = sorted(kept)[: MAX_PER_SOURCE[source]]
        print(f"{source}: {len(raw)} candidates, {len(kept)} kept")
        for _, sentence in kept:
            pools[pool_of(sentences_lib.transcript(sentence))].append(sentence)
    os.makedirs(args.out, exist_ok=True)
    for pool, items in pools.items():
        with open(os.path.join(args.out, f"{pool}.txt"), "w", encoding="ascii") as handle:
            handle.writelines(item + "\n" for item in sorted(items))
        print(f"{pool}: {len(items)} sentences")
    if args.lm_out:
        held_out = {sentences_lib.transcript(s) for pool in ("dev", "test", "babble") for s in pools[pool]}
        lines, dropped = lm_lines(candidates, held_out)
        write_lm_text(args.lm_out, lines)
        print(
            f"language model text: {len(lines)} lines, {sum(map(len, lines))} characters, "
            f"{sum(len(line.split()) for line in lines)} words; dropped {dropped} -> {args.lm_out}"
        )


if __name__ == "__main__":
    main()
