"""Builds the synthesized corpus: `train`, `dev`, `test_clean` and `test_noisy` under one folder.

Each split folder holds `manifest.jsonl`, Kaldi `wav.scp`, `text`, `utt2spk`, `spk2utt` and `wavs/*.wav`
(16 kHz mono 16-bit). Paths in `manifest.jsonl` and `wav.scp` are relative to the split folder.

Determinism: utterance i of a split is fully defined by (seed, split, i): its sentence, pseudo-speaker and
augmentation come from a numpy Generator seeded with that triple, so worker scheduling does not matter. A
split takes the shortest prefix of its utterance sequence whose audio reaches the split's share of
`minutes`. test_noisy holds the test_clean utterances (same ids, same text) mixed with babble or coloured
noise at 0-15 dB SNR.

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
SPLITS = ("train", "dev", "test_clean", "test_noisy")
FRACTIONS = {"train": 0.8, "dev": 0.1, "test_clean": 0.1}
_SENTENCE_POOL = {"train": "train", "dev": "dev", "test_clean": "test"}
_SPEAKER_SET = {"train": "train", "dev": "dev", "test_clean": "test"}
_ID_TAG = {"train": "tr", "dev": "dv", "test_clean": "te"}
_SPLIT_CODE = {"train": 1, "dev": 2, "test_clean": 3, "test_noisy": 4, "babble": 5}
_PLAN, _AUGMENT = 0, 1
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """What a build depends on; recorded in `corpus.json` (all but `workers`)."""

    minutes: float = 60.0
    seed: int = 0
    engines: tuple[str, ...] = ()  # empty: every available engine
    reverb_fraction: float = 0.3
    reverb_rt60: tuple[float, float] = (0.1, 0.4)
    noise_fraction: float = 0.3
    train_snr_db: tuple[float, float] = (10.0, 25.0)
    test_snr_db: tuple[float, float] = (0.0, 15.0)
    babble_talkers: tuple[int, int] = (3, 6)
    babble_bank: int = 40
    noisy_types: tuple[str, ...] = ("babble", "white", "pink", "brown")
    noisy_weights: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)


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
        colour = str(rng.choice(sorted(augment.NOISE_COLOURS)))
        snr = float(rng.uniform(*task["train_snr_db"]))
        if do_reverb:
            audio = augment.reverberate(audio, augment.synthetic_rir(rng, rt60))
            entry["reverb_rt60"] = round(rt60, 3)
        if do_noise:
            audio = augment.mix_at_snr(audio, augment.coloured_noise(rng, len(audio), colour), snr)
            entry["noise"], entry["snr_db"] = colour, round(snr, 2)
    entry["duration"] = _write_wav(os.path.join(task["folder"], entry["audio"]), augment.limit_peak(audio))
    return entry


def _babble_task(task: dict) -> np.ndarray:
    return engines.synthesize(engines.Speaker(**task["speaker"]), task["sentence"]).astype(np.float64)


@functools.cache
def _babble_bank(seed: int, engine_names: tuple[str, ...], size: int) -> tuple[np.ndarray, ...]:
    """Utterances of held-out `babble` sentences by all pseudo-speakers; built once per worker process."""
    return tuple(_babble_task(task) for task in _babble_plan(seed, engine_names, size))


def _babble_plan(seed: int, engine_names: tuple[str, ...], size: int) -> list[dict]:
    pool = sentences.load_pool("babble")
    speakers = [s for split in ("train", "dev", "test") for s in engines.speakers_for(split, list(engine_names))]
    rng = rng_for(seed, "babble", 0, _PLAN)
    order, who = rng.permutation(len(pool)), rng.integers(len(speakers), size=size)
    return [
        {"sentence": pool[order[j % len(pool)]], "speaker": dataclasses.asdict(speakers[who[j]])} for j in range(size)
    ]


def _noisy_task(task: dict) -> dict:
    entry = dict(task["entry"])
    clean = _read_wav(os.path.join(task["clean_folder"], entry["audio"]))
    rng = rng_for(task["seed"], "test_noisy", task["index"], _AUGMENT)
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


def _speech_split(runner: _Runner, config: SynthConfig, names: tuple[str, ...], split: str, folder: str) -> list:
    pool = sentences.load_pool(_SENTENCE_POOL[split])
    speakers = engines.speakers_for(_SPEAKER_SET[split], list(names))
    plan_rng = rng_for(config.seed, split, 0, _PLAN)
    order, speaker_order = plan_rng.permutation(len(pool)), plan_rng.permutation(len(speakers))
    target = max(config.minutes * 60.0 * FRACTIONS[split], 1e-3)
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


def _noisy_split(runner: _Runner, config: SynthConfig, names: tuple[str, ...], clean_folder: str, folder: str):
    clean = sorted(_read_entries(clean_folder), key=lambda e: e["id"])
    tasks = [
        {
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
    return json.loads(json.dumps(record))  # tuples -> lists, as read back from disk


def _summary(out_dir: str) -> dict:
    splits, speakers = {}, {}
    for split in SPLITS:
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
    available = engines.available_engines()
    names = tuple(e for e in (config.engines or available) if e in available)
    missing = sorted(set(config.engines) - set(available))
    if missing:
        logging.warning("TTS engines not available here, skipped: %s", ", ".join(missing))
    if not names:
        raise RuntimeError("no text-to-speech engine available: pip install ttspico (or apt-get install flite)")
    logging.info("TTS engines used: %s (available: %s)", ", ".join(names), ", ".join(available))
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
        payload = {"config": record, "complete": complete, "splits": list(SPLITS)}
        payload["speakers"] = {
            split: [s.id for s in engines.speakers_for(_SPEAKER_SET[split], list(names))] for split in _SPEAKER_SET
        }
        with open(corpus_json + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1)
        os.replace(corpus_json + ".tmp", corpus_json)

    save_record()
    runner = _Runner(workers)
    try:
        for split in SPLITS:
            final = os.path.join(out_dir, split)
            if split in complete:
                logging.info("%s: already complete, skipped", split)
                continue
            split_start = time.time()
            temporary = os.path.join(out_dir, f".tmp-{split}")
            shutil.rmtree(temporary, ignore_errors=True)
            os.makedirs(os.path.join(temporary, "wavs"))
            if split == "test_noisy":
                entries = _noisy_split(runner, config, names, os.path.join(out_dir, "test_clean"), temporary)
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
    summary = {"out_dir": os.path.abspath(out_dir), **_summary(out_dir), "engines": list(names)}
    summary["seconds_elapsed"] = round(time.time() - started, 1)
    return summary
