"""Tests of the synthesized corpus builder (real TTS; about 30 s)."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("ttspico")

from tf_jointctc.data.synth import (  # noqa: E402
    SPLITS,
    MissingEngineError,
    SynthConfig,
    augment,
    build_corpus,
    builder,
    engines,
    sentences,
)
from tf_jointctc.text import normalize  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog."


def _every_voice(engine: str) -> list[str]:
    """The engine's base voices over every speaker set (piper has none in train, festival only train)."""
    return list(dict.fromkeys(v for split in engines.SPEAKER_SETS for v in engines.voices(engine, split)))


@pytest.mark.parametrize("engine", engines.KNOWN_ENGINES)
def test_engine_speaks_16k_non_silent(engine):
    if engine not in engines.available_engines():
        pytest.skip(f"{engine} is not installed")
    assert _every_voice(engine)
    for voice in _every_voice(engine)[:2]:
        audio = engines.synthesize(engines.Speaker(engine, voice, 1.1, 0.9), SENTENCE)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert 1.0 < len(audio) / engines.SAMPLE_RATE < 8.0
        assert np.sqrt(np.mean(audio**2)) > 0.01 and np.max(np.abs(audio)) <= 1.0


@pytest.mark.parametrize("engine,voice", [("pico", "en-US"), ("piper", "joe"), ("festival", "ked")])
def test_rate_changes_duration(engine, voice):
    if engine not in engines.available_engines():
        pytest.skip(f"{engine} is not installed")
    fast = engines.synthesize(engines.Speaker(engine, voice, 1.3, 1.0), SENTENCE)
    slow = engines.synthesize(engines.Speaker(engine, voice, 0.8, 1.0), SENTENCE)
    assert len(slow) > 1.2 * len(fast)


def test_piper_speaks_only_dev_unseen_voice_and_the_same_audio_every_time():
    assert engines.voices("piper", "dev_unseen_voice") == ["joe"]
    for split in set(engines.SPEAKER_SETS) - {"dev_unseen_voice"}:
        assert engines.voices("piper", split, extra_train_voices=True) == []
    assert {s.pitch for s in engines.speakers_for("dev_unseen_voice", ["piper"])} == {1.0}  # no pitch knob
    if "piper" not in engines.available_engines():
        pytest.skip("piper is not installed")
    speaker = engines.Speaker("piper", "joe", 0.93, 1.0)
    first, again = engines.synthesize(speaker, SENTENCE), engines.synthesize(speaker, SENTENCE)
    assert first.shape == again.shape and np.array_equal(first, again)


def _median_f0(audio: np.ndarray) -> float:
    """Median F0 in Hz of the voiced 40 ms frames (autocorrelation peak at 60-400 Hz)."""
    found = []
    for start in range(0, len(audio) - 640, 320):
        frame = audio[start : start + 640] - audio[start : start + 640].mean()
        if np.sqrt(np.mean(frame**2)) < 0.02:
            continue
        corr = np.correlate(frame, frame, "full")[639:]
        lag = 40 + int(np.argmax(corr[40:267]))
        if corr[lag] > 0.5 * corr[0]:
            found.append(engines.SAMPLE_RATE / lag)
    return float(np.median(found))


def test_festival_speaks_train_only_at_the_speakers_pitch():
    assert engines.voices("festival", "train") == ["ked"] == list(engines.TRAIN_ONLY_VOICES["festival"])
    for split in set(engines.SPEAKER_SETS) - {"train"}:
        assert engines.voices("festival", split, extra_train_voices=True) == []
    assert "festival" not in engines.ENGINES  # a corpus asks for it; the default one does not
    if "festival" not in engines.available_engines():
        pytest.skip("festival or its voice ked is not installed")
    low, high = (engines.synthesize(engines.Speaker("festival", "ked", 1.0, pitch), SENTENCE) for pitch in (0.9, 1.1))
    assert _median_f0(high) > 1.1 * _median_f0(low)


def test_engines_without_a_voice_for_train_dev_or_test_are_refused(monkeypatch):
    monkeypatch.setattr(engines, "available_engines", lambda: list(engines.KNOWN_ENGINES))
    with pytest.raises(ValueError, match="has a voice for train"):
        builder.resolve_engines(SynthConfig(engines=("piper",), allow_missing_engines=True))
    with pytest.raises(ValueError, match="has a voice for dev"):
        builder.resolve_engines(SynthConfig(engines=("festival", "piper"), allow_missing_engines=True))


@pytest.mark.parametrize("snr_db", [0.0, 7.5, 20.0])
def test_mix_at_snr(snr_db):
    rng = np.random.default_rng(0)
    speech = np.sin(np.arange(16000) * 0.05) * 0.3
    noise = augment.coloured_noise(rng, 5000, "pink")  # shorter than speech: tiled
    mixed = augment.mix_at_snr(speech, noise, snr_db)
    assert mixed.shape == speech.shape
    measured = 10 * np.log10(augment.power(speech) / augment.power(mixed - speech))
    assert abs(measured - snr_db) < 0.5


def test_coloured_noise_spectra():
    rng = np.random.default_rng(1)
    slopes = {}
    for colour in ("white", "pink", "brown"):
        x = augment.coloured_noise(rng, 1 << 16, colour)
        assert np.isfinite(x).all() and abs(augment.power(x) - 1.0) < 1e-6
        spectrum = np.abs(np.fft.rfft(x)) ** 2
        low, high = spectrum[100:1000].mean(), spectrum[10000:20000].mean()
        slopes[colour] = low / high
    assert slopes["white"] < slopes["pink"] < slopes["brown"]


def test_reverb_keeps_length_and_is_finite():
    rng = np.random.default_rng(2)
    speech = engines.synthesize(engines.Speaker("pico", "en-GB", 1.0, 1.0), SENTENCE).astype(np.float64)
    for rt60 in (0.1, 0.4):
        rir = augment.synthetic_rir(rng, rt60)
        assert rir[0] == 1.0 and len(rir) == int(rt60 * 16000)
        wet = augment.reverberate(speech, rir)
        assert wet.shape == speech.shape and np.isfinite(wet).all()
        assert abs(augment.power(wet) / augment.power(speech) - 1.0) < 1e-6
        assert not np.allclose(wet, speech)


def test_sentence_pools_are_clean_and_disjoint():
    pools = {pool: {sentences.transcript(s) for s in sentences.load_pool(pool)} for pool in sentences.POOLS}
    for pool, texts in pools.items():
        assert len(texts) == len(sentences.load_pool(pool)), f"{pool} has duplicate transcripts"
        for text in texts:
            assert normalize(text) == text and not any(c.isdigit() for c in text)
            assert 4 <= len(text.split()) <= 20
    names = list(pools)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not pools[a] & pools[b], f"{a} and {b} share sentences"
    size = sum(os.path.getsize(os.path.join(sentences.SENTENCE_DIR, f"{p}.txt")) for p in sentences.POOLS)
    assert size < 1_500_000


def _read(folder):
    with open(os.path.join(folder, "manifest.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _table(path):
    with open(path, encoding="utf-8") as handle:
        return dict(line.rstrip("\n").split(" ", 1) for line in handle)


def _digest(out_dir):
    """Hashes of every manifest and audio file, by relative path."""
    digests = {}
    for split in BUILT:
        folder = os.path.join(out_dir, split)
        for name in ["manifest.jsonl", "wav.scp", "text"] + [e["audio"] for e in _read(folder)]:
            with open(os.path.join(folder, name), "rb") as handle:
                digests[f"{split}/{name}"] = hashlib.sha256(handle.read()).hexdigest()
    return digests


# `make test` installs flite and espeak-ng (as root, from Debian); where it could not, the corpus tests run on
# the engines that are here and the held-out-voice test is skipped.
ENGINES_HERE = tuple(e for e in engines.ENGINES if e in engines.available_engines())


BUILT = builder._built_splits(ENGINES_HERE)  # SPLITS, without test_unseen_voice if no held-out voice is here


def _config(**kwargs) -> SynthConfig:
    return SynthConfig(engines=ENGINES_HERE, **kwargs)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("synth") / "a")
    summary = build_corpus(out_dir, _config(minutes=0.5, seed=3), workers=2)
    return out_dir, summary


def test_corpus_layout_and_consistency(corpus):
    out_dir, summary = corpus
    assert set(summary["splits"]) == set(BUILT)
    for split in BUILT:
        folder = os.path.join(out_dir, split)
        entries = _read(folder)
        assert entries and summary["splits"][split]["utterances"] == len(entries)
        assert len({e["id"] for e in entries}) == len(entries)
        for entry in entries:
            assert set(entry) >= {"id", "audio", "text", "duration"}
            assert entry["text"] and normalize(entry["text"]) == entry["text"]
            info = sf.info(os.path.join(folder, entry["audio"]))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert abs(info.frames / 16000 - entry["duration"]) < 1e-3
        assert _table(os.path.join(folder, "wav.scp")) == {e["id"]: e["audio"] for e in entries}
        assert _table(os.path.join(folder, "text")) == {e["id"]: e["text"] for e in entries}
    minutes = {split: summary["splits"][split]["minutes"] for split in BUILT}
    assert minutes["train"] > minutes["dev"] and 0.3 < minutes["train"] < 0.6


def test_corpus_splits_are_disjoint(corpus):
    out_dir, _ = corpus
    data = {split: _read(os.path.join(out_dir, split)) for split in BUILT}
    train_texts = {e["text"] for e in data["train"]}
    train_speakers = {e["speaker"] for e in data["train"]}
    for split in ("dev", "test_clean", "test_noisy"):
        assert not train_texts & {e["text"] for e in data[split]}
        assert not train_speakers & {e["speaker"] for e in data[split]}
    # Held-out speakers for the whole speaker sets too, not only the ones this tiny build drew.
    names = engines.available_engines()
    train_ids = {s.id for s in engines.speakers_for("train", names)}
    assert len(train_ids) >= 8
    for split in ("dev", "test"):
        assert not train_ids & {s.id for s in engines.speakers_for(split, names)}


@pytest.mark.parametrize(("noisy_split", "clean_split"), [("test_noisy", "test_clean"), ("dev_noisy", "dev")])
def test_noisy_splits_match_their_clean_split(corpus, noisy_split, clean_split):
    out_dir, _ = corpus
    clean = _read(os.path.join(out_dir, clean_split))
    noisy = _read(os.path.join(out_dir, noisy_split))
    assert [(e["id"], e["text"]) for e in clean] == [(e["id"], e["text"]) for e in noisy]
    for entry in noisy:
        assert entry["noise"] in ("babble", "white", "pink", "brown") and 0.0 <= entry["snr_db"] <= 15.0
        audio, _ = sf.read(os.path.join(out_dir, noisy_split, entry["audio"]))
        original, _ = sf.read(os.path.join(out_dir, clean_split, entry["audio"]))
        assert audio.shape == original.shape and not np.array_equal(audio, original)


def test_dev_noisy_draws_its_own_noise(corpus):
    out_dir, _ = corpus
    draws = {split: [(e["noise"], e["snr_db"]) for e in _read(os.path.join(out_dir, split))]
             for split in ("dev_noisy", "test_noisy")}
    count = min(len(draws["dev_noisy"]), len(draws["test_noisy"]))
    assert draws["dev_noisy"][:count] != draws["test_noisy"][:count]


def test_same_seed_is_byte_identical_and_other_seed_differs(corpus, tmp_path):
    out_dir, _ = corpus
    again = str(tmp_path / "b")
    build_corpus(again, _config(minutes=0.5, seed=3), workers=1)  # other scheduling, same result
    assert _digest(out_dir) == _digest(again)
    other = str(tmp_path / "c")
    build_corpus(other, _config(minutes=0.5, seed=4), workers=2)
    with (
        open(os.path.join(out_dir, "train", "manifest.jsonl"), "rb") as a,
        open(os.path.join(other, "train", "manifest.jsonl"), "rb") as b,
    ):
        assert a.read() != b.read()


def test_rerun_skips_complete_splits(corpus):
    out_dir, summary = corpus
    before = os.path.getmtime(os.path.join(out_dir, "train", "manifest.jsonl"))
    again = build_corpus(out_dir, _config(minutes=0.5, seed=3), workers=1)
    assert os.path.getmtime(os.path.join(out_dir, "train", "manifest.jsonl")) == before
    assert again["splits"] == summary["splits"]


@pytest.mark.skipif(ENGINES_HERE != engines.ENGINES, reason="flite, espeak-ng or piper is not installed")
def test_unseen_voice_split_has_only_held_out_base_voices_and_sentences(corpus):
    out_dir, summary = corpus
    data = {split: _read(os.path.join(out_dir, split)) for split in SPLITS}
    assert summary["splits"]["test_unseen_voice"]["utterances"] > 0

    def base_voices(entries):
        return {tuple(e["speaker"].split("-")[:2]) for e in entries}

    unseen = base_voices(data["test_unseen_voice"])
    assert unseen and unseen <= {("flite", "rms"), ("espeak", "engbscotland")}
    for split in ("train", "dev", "test_clean"):
        assert not unseen & base_voices(data[split])
        # Whatever this tiny build drew: the held-out voices are in no speaker set of train, dev or test.
        names = engines.available_engines()
        held_out = {(s.engine, s.voice) for s in engines.speakers_for("unseen_voice", names)}
        for speaker_set in ("train", "dev", "test"):
            assert not held_out & {(s.engine, s.voice) for s in engines.speakers_for(speaker_set, names)}
    texts = {e["text"] for e in data["test_unseen_voice"]}
    assert not texts & {e["text"] for e in data["train"] + data["dev"]}
    with open(os.path.join(out_dir, "corpus.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["config"]["engines"] == ["pico", "flite", "espeak", "piper"]
    assert record["voices"]["unseen_voice"] == {"pico": [], "flite": ["rms"], "espeak": ["en-gb-scotland"],
                                                "piper": []}
    assert "rms" not in record["voices"]["train"]["flite"]
    assert set(record["complete"]) == set(SPLITS) == set(record["splits"])


def test_missing_engine_is_an_error_unless_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(engines, "available_engines", lambda: ["pico"])
    with pytest.raises(MissingEngineError, match=r"flite, espeak, piper .*apt-get install flite.*pip install piper"):
        build_corpus(str(tmp_path / "a"), SynthConfig(minutes=0.2, seed=1), workers=1)
    assert not os.path.exists(tmp_path / "a" / "train")
    with pytest.raises(ValueError, match="unknown TTS engines"):
        build_corpus(str(tmp_path / "b"), SynthConfig(minutes=0.2, engines=("pico", "mbrola")), workers=1)
    summary = build_corpus(str(tmp_path / "c"), SynthConfig(minutes=0.2, seed=1, allow_missing_engines=True), workers=1)
    assert summary["engines"] == ["pico"] and "test_unseen_voice" not in summary["splits"]  # no held-out pico voice
    with open(tmp_path / "c" / "corpus.json", encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["config"]["engines"] == ["pico"] and "test_unseen_voice" not in record["splits"]


def test_heldout_minutes_fix_the_held_out_split_sizes():
    config = SynthConfig(minutes=300, heldout_minutes=6)
    assert [builder.split_minutes(config, s) for s in ("train", "dev", "test_clean", "test_unseen_voice")] == [
        288, 6, 6, 6
    ]
    assert builder.split_minutes(SynthConfig(minutes=60), "train") == pytest.approx(48)
    assert builder.split_minutes(SynthConfig(minutes=60), "test_unseen_voice") == pytest.approx(6)


def test_train_only_voices_never_talk_in_the_babble():
    names = (*engines.ENGINES, "festival")
    for use in ("train", "test"):
        plan = builder._babble_plan(1, names, 200, use)
        assert plan == builder._babble_plan(1, engines.ENGINES, 200, use)
        assert all(p["speaker"]["engine"] != "festival" for p in plan)


def test_train_noise_includes_babble_of_train_sentences_only():
    plan = builder._babble_plan(1, ("pico", "flite", "espeak"), 20, "train")
    train_pool = set(sentences.load_pool("train"))
    train_speakers = {s.id for s in engines.speakers_for("train", ["pico", "flite", "espeak"])}
    assert all(p["sentence"] in train_pool for p in plan)
    assert all(engines.Speaker(**p["speaker"]).id in train_speakers for p in plan)


def _base(voice: str) -> str:
    return voice.split("+")[0]  # an espeak-ng variant (`en-us+m3`) speaks its base voice's accent


def test_voice_sets_are_disjoint_where_they_must_be():
    for engine in engines.KNOWN_ENGINES:
        held_out = set(engines.UNSEEN_VOICES[engine]) | set(engines.DEV_UNSEEN_VOICES[engine])
        trained = engines.voices(engine, "train", extra_train_voices=True)
        assert not held_out & set(trained)
        # No trained voice is a variant of test_unseen_voice's (dev_unseen_voice's en-us+m7 is a timbre of the
        # trained en-us accent on purpose: it mirrors test_unseen_voice's flite rms, a new US male voice).
        assert not set(engines.UNSEEN_VOICES[engine]) & {_base(v) for v in trained}
        assert not set(engines.UNSEEN_VOICES[engine]) & set(engines.DEV_UNSEEN_VOICES[engine])
        for speaker_set in ("dev", "test"):  # the extra and the train-only voices speak train only
            train_only = set(engines.EXTRA_TRAIN_VOICES[engine]) | set(engines.TRAIN_ONLY_VOICES[engine])
            assert not train_only & set(engines.voices(engine, speaker_set))
    assert engines.voices("espeak", "train", extra_train_voices=True)[: len(engines.voices("espeak"))] == (
        engines.voices("espeak"))


@pytest.mark.skipif(ENGINES_HERE != engines.ENGINES, reason="flite, espeak-ng or piper is not installed")
def test_dev_unseen_voice_split_has_only_its_own_voices_and_dev_sentences(corpus):
    out_dir, summary = corpus
    data = {split: _read(os.path.join(out_dir, split)) for split in SPLITS}
    assert summary["splits"]["dev_unseen_voice"]["utterances"] > 0
    voices_of = {split: {tuple(e["speaker"].split("-")[:2]) for e in entries} for split, entries in data.items()}
    expected = {(engine, "".join(c for c in v if c.isalnum()).lower())
                for engine, held_out in engines.DEV_UNSEEN_VOICES.items() for v in held_out}
    assert voices_of["dev_unseen_voice"] and voices_of["dev_unseen_voice"] <= expected
    for split in SPLITS:
        if split != "dev_unseen_voice":
            assert not voices_of[split] & expected
    dev_pool = set(sentences.load_pool("dev"))
    assert all(e["sentence"] in dev_pool for e in data["dev_unseen_voice"])
    with open(os.path.join(out_dir, "corpus.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["voices"]["dev_unseen_voice"] == {e: list(engines.DEV_UNSEEN_VOICES[e]) for e in ENGINES_HERE}
    assert {s.split("-")[0] for s in record["speakers"]["dev_unseen_voice"]} == {"espeak", "piper"}
    assert "extra_train_voices" not in record["config"]  # a corpus built before the option stays complete


@pytest.mark.skipif(ENGINES_HERE != engines.ENGINES, reason="flite, espeak-ng or piper is not installed")
def test_extra_train_voices_speak_train_only_and_leave_every_other_split_identical(corpus, tmp_path):
    out_dir, _ = corpus
    wide = str(tmp_path / "wide")
    build_corpus(wide, _config(minutes=0.5, seed=3, extra_train_voices=True), workers=2)
    digests, wide_digests = _digest(out_dir), _digest(wide)
    held_out = {k for k in digests if not k.startswith("train/")}
    assert held_out and {k: digests[k] for k in held_out} == {k: wide_digests[k] for k in held_out}
    extra_ids = {s.id for s in engines.speakers_for("train", list(ENGINES_HERE), extra_train_voices=True)}
    base_ids = {s.id for s in engines.speakers_for("train", list(ENGINES_HERE))}
    assert base_ids < extra_ids and len(extra_ids) == len(base_ids) + 6 * len(engines.EXTRA_TRAIN_VOICES["espeak"])
    assert {e["speaker"] for e in _read(os.path.join(wide, "train"))} <= extra_ids
    with open(os.path.join(wide, "corpus.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["config"]["extra_train_voices"] is True
    assert record["voices"]["train"]["espeak"][-len(engines.EXTRA_TRAIN_VOICES["espeak"]):] == list(
        engines.EXTRA_TRAIN_VOICES["espeak"])
    assert set(record["speakers"]["train"]) == extra_ids
    assert record["voices"]["dev"] == {e: engines.voices(e, "dev") for e in ENGINES_HERE}


@pytest.mark.skipif(ENGINES_HERE != engines.ENGINES, reason="flite, espeak-ng or piper is not installed")
def test_festival_speaks_train_only_and_leaves_every_other_split_identical(corpus, tmp_path):
    if "festival" not in engines.available_engines():
        pytest.skip("festival or its voice ked is not installed")
    out_dir, _ = corpus
    with_ked = str(tmp_path / "ked")
    build_corpus(with_ked, SynthConfig(engines=(*ENGINES_HERE, "festival"), minutes=0.5, seed=3), workers=2)
    digests, ked_digests = _digest(out_dir), _digest(with_ked)
    held_out = {k for k in digests if not k.startswith("train/")}
    assert held_out and {k: digests[k] for k in held_out} == {k: ked_digests[k] for k in held_out}
    train = _read(os.path.join(with_ked, "train"))
    assert any(e["engine"] == "festival" and e["speaker"].startswith("festival-ked-") for e in train)
    with open(os.path.join(with_ked, "corpus.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["config"]["engines"] == [*ENGINES_HERE, "festival"]
    assert record["voices"]["train"]["festival"] == ["ked"]
    assert all(record["voices"][s]["festival"] == [] for s in engines.SPEAKER_SETS if s != "train")


def test_a_larger_noise_fraction_adds_noisy_train_utterances_and_changes_nothing_else(corpus, tmp_path):
    """`noise_fraction` (jointctc-synth --noise_fraction) draws the same per-utterance choices at any value: the
    train utterances noisy at 0.5 stay byte-identical at 1.0, every train utterance is noisy at 1.0, and the
    other splits do not change."""
    out_dir, _ = corpus
    noisier = str(tmp_path / "noisier")
    build_corpus(noisier, _config(minutes=0.5, seed=3, noise_fraction=1.0), workers=2)
    digests, noisier_digests = _digest(out_dir), _digest(noisier)
    held_out = {k for k in digests if not k.startswith("train/")}
    assert held_out and {k: digests[k] for k in held_out} == {k: noisier_digests[k] for k in held_out}
    base = {e["id"]: e for e in _read(os.path.join(out_dir, "train"))}
    every = {e["id"]: e for e in _read(os.path.join(noisier, "train"))}
    assert set(base) == set(every) and all("noise" in e for e in every.values())
    noisy_before = [i for i, e in base.items() if "noise" in e]
    assert 0 < len(noisy_before) < len(base)
    for i in noisy_before:
        assert every[i] == base[i]
        assert digests[f"train/{base[i]['audio']}"] == noisier_digests[f"train/{base[i]['audio']}"]
    with open(os.path.join(noisier, "corpus.json"), encoding="utf-8") as handle:
        assert json.load(handle)["config"]["noise_fraction"] == 1.0
