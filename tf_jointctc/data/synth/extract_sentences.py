"""Maintainer tool: regenerates the committed sentence lists in `sentences/` from Debian packages.

Not needed to build the corpus (the lists are committed). To rerun it:

    apt-get download r-cran-janeaustenr wordnet-base
    for f in r-cran-janeaustenr_*.deb wordnet-base_*.deb; do dpkg-deb -x "$f" extracted; done
    python -m tf_jointctc.data.synth.extract_sentences --root extracted

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

_ABBREVIATIONS = ("Mr.", "Mrs.", "Dr.", "St.", "Messrs.", "Col.", "Capt.", "Rev.", "Lt.", "Gen.")
_SENTENCE_END = re.compile(r'(?<=[.!?])["\')\]]*\s+(?=["\'(]*[A-Z])')
_ALLOWED = re.compile(r"^[A-Za-z ,;:.!?'\-]+$")


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


def acceptable(text: str) -> bool:
    if not _ALLOWED.match(text):  # digits, '&', brackets and other symbols: dropped
        return False
    words = text.split()
    if not 4 <= len(words) <= 20:
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


def pool_of(transcript: str) -> str:
    bucket = int(hashlib.sha1(transcript.encode("utf-8")).hexdigest()[:8], 16) % 100
    for pool, percent in POOL_PERCENT:
        if bucket < percent:
            return pool
        bucket -= percent
    return "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, help="folder the .deb packages were extracted into")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "sentences"))
    args = parser.parse_args()
    candidates = {
        "austen": [s for p in read_austen(args.root) for s in split_sentences(p)],
        "wordnet": read_wordnet(args.root),
    }
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


if __name__ == "__main__":
    main()
