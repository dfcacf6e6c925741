"""One small data set seeded with every data fault we know of, next to a few good utterances.

The same entries are written twice: as a JSONL manifest (plus one line that is not JSON) and as a Kaldi data
dir (plus one id only in `text` and one only in `wav.scp`). `FaultySet` says, per entry, what training and
evaluation are expected to do with it.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil

import numpy as np
import pytest
import soundfile

from tf_jointctc.data import skips

RATE = 16000
NUM_GOOD = 6
# 41 characters without doubled letters: 1 s of audio gives 98 feature frames (enough at subsampling 1, the
# one evaluation uses) but only 25 encoder frames at 4x (too few for CTC in training).
SHORT_SENTENCE = "the quick brown fox jumps over a lazy dog"
LONG_TRANSCRIPT = ("abcd efgh " * 30).strip()  # 299 characters: too many for 1 s at any subsampling


@dataclasses.dataclass
class Entry:
    id: str
    audio: str  # absolute path
    text: str
    train: str | None  # None: usable in training, else the skip reason
    eval: str | None  # the same for jointctc-eval (max_seconds=None, no CTC length filter)


@dataclasses.dataclass
class FaultySet:
    root: pathlib.Path
    manifest: pathlib.Path
    kaldi: pathlib.Path
    entries: list[Entry]
    # Entries only one of the two forms has, with their reason (train and eval alike).
    manifest_only: dict[str, int]  # reason -> count (lines without an id)
    kaldi_only: dict[str, str]  # utterance id -> reason

    def usable(self, stage: str) -> set[str]:
        return {e.id for e in self.entries if getattr(e, stage) is None}

    def skip_counts(self, stage: str, form: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.entries:
            reason = getattr(entry, stage)
            if reason is not None:
                counts[reason] = counts.get(reason, 0) + 1
        extra = self.manifest_only if form == "manifest" else {}
        for reason, count in extra.items():
            counts[reason] = counts.get(reason, 0) + count
        if form == "kaldi":
            for reason in self.kaldi_only.values():
                counts[reason] = counts.get(reason, 0) + 1
        return counts


def _write(path: pathlib.Path, samples: np.ndarray, rate: int = RATE, subtype: str | None = None,
           format: str | None = None) -> str:
    soundfile.write(str(path), samples, rate, subtype=subtype, format=format)
    return str(path)


def build_faulty_set(corpus: pathlib.Path, root: pathlib.Path) -> FaultySet:
    audio = root / "audio"
    audio.mkdir(parents=True)
    lines = [json.loads(line) for line in (corpus / "train" / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) >= NUM_GOOD + 2, "tiny_corpus train split too small for the fault set"
    entries: list[Entry] = []
    for line in lines[:NUM_GOOD]:
        target = audio / f"{line['id']}.wav"
        shutil.copyfile(corpus / "train" / line["audio"], target)
        entries.append(Entry(line["id"], str(target), line["text"], None, None))
    donor = lines[NUM_GOOD]  # the good utterance the faulty files are made of
    donor_pcm, donor_rate = soundfile.read(str(corpus / "train" / donor["audio"]), dtype="int16")
    assert donor_rate == RATE and donor_pcm.ndim == 1
    donor_float = donor_pcm.astype(np.float32) / 32768.0

    def add(name, path, text, train, eval_=None):
        entries.append(Entry(name, str(path), text, train, eval_ if eval_ != "same" else train))

    # Missing file.
    add("fault-missing-file", audio / "does-not-exist.wav", donor["text"], skips.MISSING_FILE, "same")
    # Truncated WAV: the data chunk declares more bytes than the file holds.
    good_wav = audio / "donor.wav"
    _write(good_wav, donor_pcm)
    data = good_wav.read_bytes()
    truncated = audio / "truncated.wav"
    truncated.write_bytes(data[: len(data) * 2 // 3 + 1])
    good_wav.unlink()
    add("fault-truncated-wav", truncated, donor["text"], skips.UNREADABLE_AUDIO, "same")
    # FLAC with a corrupt frame: bytes in the middle overwritten. libsndfile reports "flac decoder lost sync"
    # (or "unknown error in flac decoder" for a single flipped byte: the frame CRC fails), it does not decode
    # garbage silently, so the file counts as unreadable.
    flac = _write(audio / "corrupt.flac", donor_pcm, format="FLAC")
    blob = bytearray(pathlib.Path(flac).read_bytes())
    middle = len(blob) // 2
    blob[middle : middle + 64] = bytes(b ^ 0x5A for b in blob[middle : middle + 64])
    pathlib.Path(flac).write_bytes(bytes(blob))
    add("fault-corrupt-flac", flac, donor["text"], skips.UNREADABLE_AUDIO, "same")
    # A WAV with a header and no samples.
    empty = _write(audio / "empty.wav", np.zeros(0, np.int16))
    add("fault-zero-samples", empty, donor["text"], skips.EMPTY_AUDIO, "same")
    # A float WAV full of NaNs.
    nans = _write(audio / "nan.wav", np.full(RATE, np.nan, np.float32), subtype="FLOAT")
    add("fault-nan-float", nans, donor["text"], skips.NON_FINITE_AUDIO, "same")
    # Usable: 8 kHz stereo (resampled to 16 kHz, first channel kept) and 24-bit PCM.
    import soxr

    at_8k = soxr.resample(donor_float, RATE, 8000)
    stereo = _write(audio / "stereo-8k.wav", np.stack([at_8k, np.zeros_like(at_8k)], axis=1), rate=8000,
                    subtype="PCM_16")
    add("ok-8k-stereo", stereo, donor["text"], None, None)
    pcm24 = _write(audio / "pcm24.wav", donor_float, subtype="PCM_24")
    add("ok-24-bit", pcm24, donor["text"], None, None)
    # 10 minutes of low-amplitude noise: longer than data.max_seconds for training; evaluation keeps it.
    rng = np.random.default_rng(7)
    long_pcm = rng.integers(-40, 41, size=10 * 60 * RATE, dtype=np.int16)
    ten_minutes = _write(audio / "ten-minutes.wav", long_pcm)
    add("fault-ten-minutes", ten_minutes, "a very long recording", skips.TOO_LONG_AUDIO, None)
    # Transcripts: empty, and nothing but out-of-vocabulary characters (normalize() drops digits and "!", so
    # this is an empty transcript too: text_not_in_vocabulary only arises with a narrower vocabulary).
    add("fault-empty-transcript", pathlib.Path(entries[0].audio), "", skips.EMPTY_TRANSCRIPT, "same")
    add("fault-oov-transcript", pathlib.Path(entries[1].audio), "1234 !!", skips.EMPTY_TRANSCRIPT, "same")
    # Transcripts too long for CTC on a 1-second file.
    one_second = _write(audio / "one-second.wav", donor_pcm[:RATE])
    add("fault-labels-too-long", one_second, LONG_TRANSCRIPT, skips.LABELS_TOO_LONG_FOR_CTC, None)
    add("fault-labels-too-long-at-4x", one_second, SHORT_SENTENCE, skips.LABELS_TOO_LONG_FOR_CTC, None)

    manifest = root / "manifest.jsonl"
    with manifest.open("w") as f:
        for i, entry in enumerate(entries):
            f.write(json.dumps({"id": entry.id, "audio": entry.audio, "text": entry.text}) + "\n")
            if i == NUM_GOOD:
                f.write('{"id": "fault-not-json", "audio": "x.wav", "text": \n')  # cut-off JSON

    kaldi = root / "kaldi"
    kaldi.mkdir()
    scp = [f"{e.id} {e.audio}" for e in entries] + [f"fault-audio-only {entries[2].audio}"]
    text = [f"{e.id} {e.text}".rstrip() for e in entries] + ["fault-text-only hello there"]
    (kaldi / "wav.scp").write_text("\n".join(scp) + "\n")
    (kaldi / "text").write_text("\n".join(text) + "\n")
    return FaultySet(
        root=root,
        manifest=manifest,
        kaldi=kaldi,
        entries=entries,
        manifest_only={skips.BAD_MANIFEST_LINE: 1},
        kaldi_only={"fault-audio-only": skips.NO_TEXT_FOR_ID, "fault-text-only": skips.NO_AUDIO_FOR_ID},
    )


@pytest.fixture(scope="session")
def faulty_set(tiny_corpus, tmp_path_factory) -> FaultySet:
    return build_faulty_set(tiny_corpus, tmp_path_factory.mktemp("faulty"))
