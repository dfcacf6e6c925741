"""Builds the synthesized corpus: `train`, `dev`, `test_clean`, `test_noisy`, `test_unseen_voice`,
`dev_unseen_voice` and `dev_noisy`.

Each split folder holds `manifest.jsonl`, Kaldi `wav.scp`, `text`, `utt2spk`, `spk2utt` and `wavs/*.wav`
(16 kHz mono 16-bit). Paths in `manifest.jsonl` and `wav.scp` are relative to the split folder.

Determinism: utterance i of a split is fully defined by (seed, split, i): its sentence, pseudo-speaker and
augmentation come from a numpy Generator seeded with that triple, so worker scheduling does not matter. A
split takes the shortest prefix of its utterance sequence whose audio reaches the split's share of
`minutes`. test_noisy holds the test_clean utterances (same ids, same text) mixed with babble or coloured
noise at 0-15 dB SNR; dev_noisy is its development counterpart, the dev utterances mixed the same way (its own
draws of noise type, SNR and babble talkers, from the same bank of babble sources), so that noise robustness
is judged on dev. test_unseen_voice speaks test sentences with the base voices `engines.UNSEEN_VOICES`,
which never speak train, dev or test (its size is test_clean's). dev_unseen_voice is its development
counterpart: dev sentences spoken by `engines.DEV_UNSEEN_VOICES`, which speak no other split (its size is dev's),
so that what helps on voices never heard in training can be chosen without looking at a test split.

Voices: train, dev and test share the engines' base voices (at disjoint rates and pitches). With
`extra_train_voices`, train is also spoken by `engines.EXTRA_TRAIN_VOICES`, and with the engine `festival` by
`engines.TRAIN_ONLY_VOICES`; neither speaks another split or any babble, so the other splits are then
byte-identical to those of a corpus built without them.

Sizes: `minutes` is train + dev + test_clean. By default dev and test_clean get 10 % of it each; with
`heldout_minutes` > 0 they get that many minutes each and train gets the rest.

Engines: the corpus expects every engine of `SynthConfig.engines` (default: pico, flite, espeak-ng and piper,
which speaks only dev_unseen_voice; festival, which speaks only train, on request). A missing one is an error
that says how to install it, unless `allow_missing_engines` is set; then the build goes on without it with a
warning, and `corpus.json` records the engines and voices it used.

Train augmentation (drawn per utterance): reverberation with probability `reverb_fraction`, then noise with
probability `noise_fraction`: babble of 3-6 talkers (train sentences by the base voices' train speakers, never
the held-out babble pool of test_noisy; the same with `extra_train_voices` or festival) or coloured noise, at
`train_snr_db`.

Robustness: a split is written to `.tmp-<split>` and renamed when complete; `corpus.json` records the
arguments and the completed splits, and a rerun with the same arguments skips them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
import shutil
import time

import numpy as np
import soundfile as sf
from absl import logging

from tf_jointctc.data.synth import augment, engines, sentences

SAMPLE_RATE = engines.SAMPLE_RATE
SPLITS = ("train", "dev", "test_clean", "test_noisy", "test_unseen_voice", "dev_unseen_voice", "dev_noisy")
_NOISY_SOURCE = {"test_noisy": "test_clean", "dev_noisy": "dev"}  # noisy split -> the clean split it mixes
FRACTIONS = {"train": 0.8, "dev": 0.1, "test_clean": 0.1, "test_unseen_voice": 0.1, "dev_unseen_voice": 0.1}
_SENTENCE_POOL = {"train": "train", "dev": "dev", "test_clean": "test", "test_unseen_voice": "test",
                  "dev_unseen_voice": "dev"}
_SPEAKER_SET = {"train": "train", "dev": "dev", "test_clean": "test", "test_unseen_voice": "unseen_voice",
                "dev_unseen_voice": "dev_unseen_voice"}
_ID_TAG = {"train": "tr", "dev": "dv", "test_clean": "te", "test_unseen_voice": "uv", "dev_unseen_voice": "du"}
_SPLIT_CODE = {"train": 1, "dev": 2, "test_clean": 3, "test_noisy": 4, "babble": 5, "test_unseen_voice": 6,
               "train_babble": 7, "dev_unseen_voice": 8, "dev_noisy": 9}
_PLAN, _AUGMENT = 0, 1
FORMAT_VERSION = 2


class MissingEngineError(RuntimeError):
    """An engine the corpus expects is not installed."""


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """What a build depends on; recorded in `corpus.json` (all but `workers`)."""

    minutes: float = 60.0
    seed: int = 0
    heldout_minutes: float = 0.0  # > 0: minutes of dev and of test_clean each; 0: 10 % of `minutes` each
    engines: tuple[str, ...] = engines.ENGINES
    allow_missing_engines: bool = False  # build without missing engines (warned, recorded) instead of failing
    reverb_fraction: float = 0.3
    reverb_rt60: tuple[float, float] = (0.1, 0.4)
    noise_fraction: float = 0.5
    train_snr_db: tuple[float, float] = (0.0, 20.0)
    train_noise_types: tuple[str, ...] = ("babble", "white", "pink", "brown")
    train_noise_weights: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)
    test_snr_db: tuple[float, float] = (0.0, 15.0)
    babble_talkers: tuple[int, int] = (3, 6)
    babble_bank: int = 40
    noisy_types: tuple[str, ...] = ("babble", "white", "pink", "brown")
    noisy_weights: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)
    extra_train_voices: bool = False  # train is also spoken by `engines.EXTRA_TRAIN_VOICES` (train only)


def rng_for(seed: int, split: str, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLIT_CODE[split], int(index), purpose])


def _write_wav(path: str, audio: np.ndarray) -> float:
    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype("<i2")
    sf.write(path, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return round(len(pcm) / SAMPLE_RATE, 4)


def _read_wav(path: str) -> np.ndarray:
    audio, _ = sf.read(path, dtype="int16")
    return audio.astype(np.float64) / 32767.0


# ----------------------------------------------------------------------------------------------------------
# Worker tasks (module level, picklable). Every random draw comes from the utterance's own Generator.


def _speech_task(task: dict) -> dict:
    split, index, seed = task["split"], task["index"], task["seed"]
    speaker = engines.Speaker(**task["speaker"])
    audio = engines.synthesize(speaker, task["sentence"]).astype(np.float64)
    entry = {
        "id": task["id"],
        "audio": f"wavs/{task['id']}.wav",
        "text": sentences.transcript(task["sentence"]),
        "duration": 0.0,
        "speaker": speaker.id,
        "engine": speaker.engine,
        "sentence": task["sentence"],
    }
    if split == "train":
        rng = rng_for(seed, split, index, _AUGMENT)
        do_reverb = rng.random() < task["reverb_fraction"]
        rt60 = float(rng.uniform(*task["reverb_rt60"]))
        do_noise = rng.random() < task["noise_fraction"]
        weights = np.asarray(task["train_noise_weights"], np.float64)
        kind = str(rng.choice(task["train_noise_types"], p=weights / weights.sum()))
        snr = float(rng.uniform(*task["train_snr_db"]))
        if do_reverb:
            audio = augment.reverberate(audio, augment.synthetic_rir(rng, rt60))
            entry["reverb_rt60"] = round(rt60, 3)
        if do_noise:
            if kind == "babble":
                talkers = int(rng.integers(task["babble_talkers"][0], task["babble_talkers"][1] + 1))
                bank = _babble_bank(seed, tuple(task["engines"]), task["babble_bank"], "train")
                noise = augment.babble(rng, list(bank), len(audio), talkers)
                entry["babble_talkers"] = talkers
            else:
                noise = augment.coloured_noise(rng, len(audio), kind)
            audio = augment.mix_at_snr(audio, noise, snr)
            entry["noise"], entry["snr_db"] = kind, round(snr, 2)
    entry["duration"] = _write_wav(os.path.join(task["folder"], entry["audio"]), augment.limit_peak(audio))
    return entry


def _babble_task(task: dict) -> np.ndarray:
    return engines.synthesize(engines.Speaker(**task["speaker"]), task["sentence"]).astype(np.float64)


@functools.cache
def _babble_bank(seed: int, engine_names: tuple[str, ...], size: int, use: str = "test") -> tuple[np.ndarray, ...]:
    """Babble sources, built once per worker process. `use="test"` (test_noisy): held-out `babble` sentences
    by the train, dev and test pseudo-speakers; `use="train"`: train sentences by train pseudo-speakers."""
    return tuple(_babble_task(task) for task in _babble_plan(seed, engine_names, size, use))


def _babble_plan(seed: int, engine_names: tuple[str, ...], size: int, use: str = "test") -> list[dict]:
    """Who says what in the babble bank; `engines.TRAIN_ONLY_VOICES` never talk in it."""
    if use == "train":
        pool = sentences.load_pool("train")
        speakers = engines.speakers_for("train", list(engine_names))
        rng = rng_for(seed, "train_babble", 0, _PLAN)
    else:
        pool = sentences.load_pool("babble")
        speakers = [s for split in ("train", "dev", "test") for s in engines.speakers_for(split, list(engine_names))]
        rng = rng_for(seed, "babble", 0, _PLAN)
    speakers = [s for s in speakers if s.voice not in engines.TRAIN_ONLY_VOICES[s.engine]]
    order, who = rng.permutation(len(pool)), rng.integers(len(speakers), size=size)
    return [
        {"sentence": pool[order[j % len(pool)]], "speaker": dataclasses.asdict(speakers[who[j]])} for j in range(size)
    ]


def _noisy_task(task: dict) -> dict:
    entry = dict(task["entry"])
    clean = _read_wav(os.path.join(task["clean_folder"], entry["audio"]))
    rng = rng_for(task["seed"], task["split"], task["index"], _AUGMENT)
    kind = str(rng.choice(task["noisy_types"], p=np.asarray(task["noisy_weights"]) / sum(task["noisy_weights"])))
    snr = float(rng.uniform(*task["test_snr_db"]))
    if kind == "babble":
        talkers = int(rng.integers(task["babble_talkers"][0], task["babble_talkers"][1] + 1))
        bank = _babble_bank(task["seed"], tuple(task["engines"]), task["babble_bank"])
        noise = augment.babble(rng, list(bank), len(clean), talkers)
        entry["babble_talkers"] = talkers
    else:
        noise = augment.coloured_noise(rng, len(clean), kind)
    entry["noise"], entry["snr_db"] = kind, round(snr, 2)
    noisy = augment.limit_peak(augment.mix_at_snr(clean, noise, snr))
    entry["duration"] = _write_wav(os.path.join(task["folder"], entry["audio"]), noisy)
    return entry


# ----------------------------------------------------------------------------------------------------------


def _write_split(folder: str, entries: list[dict]) -> None:
    entries = sorted(entries, key=lambda e: e["id"])
    with open(os.path.join(folder, "manifest.jsonl"), "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(e, sort_keys=False) + "\n" for e in entries)
    with open(os.path.join(folder, "wav.scp"), "w", encoding="utf-8") as handle:
        handle.writelines(f"{e['id']} {e['audio']}\n" for e in entries)
    with open(os.path.join(folder, "text"), "w", encoding="utf-8") as handle:
        handle.writelines(f"{e['id']} {e['text']}\n" for e in entries)
    with open(os.path.join(folder, "utt2spk"), "w", encoding="utf-8") as handle:
        handle.writelines(f"{e['id']} {e['speaker']}\n" for e in entries)
    spk2utt: dict[str, list[str]] = {}
    for e in entries:
        spk2utt.setdefault(e["speaker"], []).append(e["id"])
    with open(os.path.join(folder, "spk2utt"), "w", encoding="utf-8") as handle:
        handle.writelines(f"{s} {' '.join(ids)}\n" for s, ids in sorted(spk2utt.items()))


def _read_entries(folder: str) -> list[dict]:
    with open(os.path.join(folder, "manifest.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class _Runner:
    """Maps tasks in order, over a process pool or inline (workers <= 1)."""

    def __init__(self, workers: int):
        self._pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None

    def map(self, fn, tasks: list[dict]) -> list:
        if self._pool is None:
            return [fn(t) for t in tasks]
        return self._pool.map(fn, tasks, chunksize=max(1, min(8, len(tasks) // 16)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()


def split_minutes(config: SynthConfig, split: str) -> float:
    """Target minutes of a speech split (see the module docstring)."""
    if config.heldout_minutes <= 0:
        return config.minutes * FRACTIONS[split]
    if split == "train":
        return config.minutes - 2 * config.heldout_minutes
    return config.heldout_minutes


def _speech_split(runner: _Runner, config: SynthConfig, names: tuple[str, ...], split: str, folder: str) -> list:
    pool = sentences.load_pool(_SENTENCE_POOL[split])
    speakers = engines.speakers_for(_SPEAKER_SET[split], list(names), config.extra_train_voices)
    plan_rng = rng_for(config.seed, split, 0, _PLAN)
    order, speaker_order = plan_rng.permutation(len(pool)), plan_rng.permutation(len(speakers))
    target = max(split_minutes(config, split) * 60.0, 1e-3)
    entries: list[dict] = []
    total, next_index, mean = 0.0, 0, 3.0
    while total < target:
        count = max(2, int(np.ceil((target - total) / mean * 1.05)))
        tasks = []
        for index in range(next_index, next_index + count):
            speaker = speakers[speaker_order[index % len(speakers)]]
            tasks.append(
                {
                    "split": split,
                    "index": index,
                    "seed": config.seed,
                    "id": f"{speaker.id}-{_ID_TAG[split]}{index:06d}",
                    "sentence": pool[order[index % len(pool)]],
                    "speaker": dataclasses.asdict(speaker),
                    "folder": folder,
                    "reverb_fraction": config.reverb_fraction,
                    "reverb_rt60": config.reverb_rt60,
                    "noise_fraction": config.noise_fraction,
                    "train_snr_db": config.train_snr_db,
                    "train_noise_types": list(config.train_noise_types),
                    "train_noise_weights": list(config.train_noise_weights),
                    "babble_talkers": config.babble_talkers,
                    "babble_bank": config.babble_bank,
                    "engines": list(names),
                }
            )
        next_index += count
        for entry in runner.map(_speech_task, tasks):
            if total >= target:  # past the deterministic prefix: an extra from this batch
                os.remove(os.path.join(folder, entry["audio"]))
                continue
            entries.append(entry)
            total += entry["duration"]
        mean = total / len(entries)
        logging.info("%s: %d utterances, %.1f of %.1f s", split, len(entries), total, target)
    return entries


def _noisy_split(runner: _Runner, config: SynthConfig, names: tuple[str, ...], split: str, clean_folder: str,
                 folder: str):
    clean = sorted(_read_entries(clean_folder), key=lambda e: e["id"])
    tasks = [
        {
            "split": split,
            "entry": entry,
            "index": index,
            "seed": config.seed,
            "clean_folder": clean_folder,
            "folder": folder,
            "engines": list(names),
            "noisy_types": list(config.noisy_types),
            "noisy_weights": list(config.noisy_weights),
            "test_snr_db": config.test_snr_db,
            "babble_talkers": config.babble_talkers,
            "babble_bank": config.babble_bank,
        }
        for index, entry in enumerate(clean)
    ]
    return runner.map(_noisy_task, tasks)


def _config_record(config: SynthConfig, names: tuple[str, ...]) -> dict:
    record = dataclasses.asdict(config) | {"engines": list(names), "format_version": FORMAT_VERSION}
    record.pop("allow_missing_engines")  # how the build treats a missing engine, not what it builds
    if not config.extra_train_voices:
        record.pop("extra_train_voices")  # absent from corpora built before it existed: they stay complete
    return json.loads(json.dumps(record))  # tuples -> lists, as read back from disk


def resolve_engines(config: SynthConfig) -> tuple[str, ...]:
    """The engines a build uses: `config.engines` in order.

    Raises:
      MissingEngineError: one of them is not installed and `allow_missing_engines` is off, or none is.
      ValueError: an engine is unknown, or none of them has a voice for train, dev or test (piper speaks only
        dev_unseen_voice, festival only train).
    """
    unknown = sorted(set(config.engines) - set(engines.KNOWN_ENGINES))
    if unknown:
        raise ValueError(f"unknown TTS engines {unknown}; expected some of {list(engines.KNOWN_ENGINES)}")
    available = engines.available_engines()
    missing = [e for e in config.engines if e not in available]
    hints = "; ".join(f"{e}: {engines.INSTALL_HINT[e]}" for e in missing)
    if missing and not config.allow_missing_engines:
        raise MissingEngineError(
            f"TTS engines expected by the corpus are not installed: {', '.join(missing)} ({hints}). Install "
            "them, or choose the engines explicitly (--engines), or build without them (--allow_missing_engines)"
        )
    names = tuple(e for e in config.engines if e in available)
    if missing:
        logging.warning("BUILDING WITHOUT MISSING TTS ENGINES %s (%s): fewer voices than the default corpus",
                        ", ".join(missing), hints)
    if not names:
        raise MissingEngineError(f"no text-to-speech engine available among {list(config.engines)}")
    for speaker_set in ("train", "dev", "test"):
        if not engines.speakers_for(speaker_set, list(names)):
            raise ValueError(
                f"none of the TTS engines {list(names)} has a voice for {speaker_set}; add pico, flite or espeak")
    return names


def _built_splits(names: tuple[str, ...]) -> tuple[str, ...]:
    """SPLITS without test_unseen_voice (dev_unseen_voice) when none of the engines has a voice for it."""
    return tuple(s for s in SPLITS if s not in _SPEAKER_SET or engines.speakers_for(_SPEAKER_SET[s], list(names)))


def _summary(out_dir: str, splits_built: tuple[str, ...]) -> dict:
    splits, speakers = {}, {}
    for split in splits_built:
        entries = _read_entries(os.path.join(out_dir, split))
        splits[split] = {
            "utterances": len(entries),
            "minutes": round(sum(e["duration"] for e in entries) / 60.0, 3),
        }
        speakers[split] = len({e["speaker"] for e in entries})
    return {"splits": splits, "speakers": speakers}


def build_corpus(out_dir: str, config: SynthConfig, workers: int = 2) -> dict:
    """Builds (or completes) the corpus in `out_dir`; returns a summary dict (counts and minutes per split)."""
    started = time.time()
    names = resolve_engines(config)
    splits_built = _built_splits(names)
    for split in sorted(set(SPLITS) - set(splits_built)):
        logging.warning("no voice for %s among engines %s: it is not built", split, list(names))
    logging.info("TTS engines used: %s", ", ".join(names))
    os.makedirs(out_dir, exist_ok=True)
    record = _config_record(config, names)
    corpus_json = os.path.join(out_dir, "corpus.json")
    complete: list[str] = []
    if os.path.exists(corpus_json):
        with open(corpus_json, encoding="utf-8") as handle:
            previous = json.load(handle)
        if previous.get("config") == record:
            complete = [s for s in previous.get("complete", []) if os.path.isdir(os.path.join(out_dir, s))]
            logging.info("resuming: splits already complete: %s", ", ".join(complete) or "none")
        else:
            logging.warning("%s was built with other arguments; rebuilding every split", out_dir)

    def save_record() -> None:
        payload = {"config": record, "complete": complete, "splits": list(splits_built)}
        payload["voices"] = {
            speaker_set: {e: engines.voices(e, speaker_set, config.extra_train_voices) for e in names}
            for speaker_set in engines.SPEAKER_SETS
        }
        payload["speakers"] = {
            split: [s.id for s in engines.speakers_for(_SPEAKER_SET[split], list(names), config.extra_train_voices)]
            for split in _SPEAKER_SET
            if split in splits_built
        }
        with open(corpus_json + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1)
        os.replace(corpus_json + ".tmp", corpus_json)

    save_record()
    runner = _Runner(workers)
    try:
        for split in splits_built:
            final = os.path.join(out_dir, split)
            if split in complete:
                logging.info("%s: already complete, skipped", split)
                continue
            split_start = time.time()
            temporary = os.path.join(out_dir, f".tmp-{split}")
            shutil.rmtree(temporary, ignore_errors=True)
            os.makedirs(os.path.join(temporary, "wavs"))
            if split in _NOISY_SOURCE:
                clean_folder = os.path.join(out_dir, _NOISY_SOURCE[split])
                entries = _noisy_split(runner, config, names, split, clean_folder, temporary)
            else:
                entries = _speech_split(runner, config, names, split, temporary)
            _write_split(temporary, entries)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(temporary, final)
            complete.append(split)
            save_record()
            logging.info(
                "%s: %d utterances, %.2f min, written in %.1f s",
                split,
                len(entries),
                sum(e["duration"] for e in entries) / 60.0,
                time.time() - split_start,
            )
    finally:
        runner.close()
    summary = {"out_dir": os.path.abspath(out_dir), **_summary(out_dir, splits_built), "engines": list(names)}
    summary["seconds_elapsed"] = round(time.time() - started, 1)
    return summary
