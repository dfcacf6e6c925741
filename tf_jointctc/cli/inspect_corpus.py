"""`python -m tf_jointctc.cli.inspect_corpus --corpus D`: reads every split of a corpus through the data
pipeline (manifest, audio decoding, TFRecord shards, features) and prints one JSON line of what it found.

Shards are written as the config's `data` section says (`data.cache_dir/<split>`, `num_shards`, `max_seconds`)
with the labels-too-long-for-CTC limit of the config's encoder (`config.encoder_time_reduction`), so
`jointctc-train` with the same config reuses them.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from tf_jointctc.config import encoder_time_reduction
from tf_jointctc.data.synth import SPLITS

_CORPUS = flags.DEFINE_string("corpus", None, "Folder with one sub-folder (data set) per split.")
_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "Config whose data section applies.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", "", "Where shards are written; default: the config's data.cache_dir.")
_SPLITS = flags.DEFINE_list(
    "splits", [], "Splits to inspect (default: the splits corpus.json lists, else the split folders present)."
)


def corpus_splits(corpus: str) -> list[str]:
    """The splits `corpus.json` lists (a jointctc-synth corpus), else the known split folders present."""
    record = os.path.join(corpus, "corpus.json")
    if os.path.exists(record):
        with open(record, encoding="utf-8") as handle:
            return list(json.load(handle)["splits"])
    return [s for s in SPLITS if os.path.isdir(os.path.join(corpus, s))]


def inspect(corpus: str, cache_dir: str, splits: list[str], data_config, subsampling: int) -> dict:
    from tf_jointctc.data import make_dataset, prepare_dataset
    from tf_jointctc.text import Vocabulary

    vocab = Vocabulary()
    report = {"corpus": os.path.abspath(corpus), "splits": {}}
    for split in splits:
        summary = prepare_dataset(
            os.path.join(corpus, split), os.path.join(cache_dir, split), vocab, num_shards=data_config.num_shards,
            max_seconds=data_config.max_seconds, subsampling=subsampling,
        )
        split_report = {
            "utterances": summary["num_utterances"],
            "skipped": summary["num_skipped"],
            "skip_reasons": {reason: entry["count"] for reason, entry in summary["skips"]["reasons"].items()},
            "hours": round(summary["total_seconds"] / 3600, 3),
            "frames": {k: summary["num_frames"][k] for k in ("min", "max", "mean")},
            "labels": {k: summary["num_labels"][k] for k in ("min", "max", "mean")},
        }
        if summary["num_utterances"]:
            batch = next(iter(make_dataset(summary["shards"], batch_size=8, training=False)))
            lengths = batch["feature_lengths"].numpy()
            valid = np.concatenate([f[:n] for f, n in zip(batch["features"].numpy(), lengths)])
            split_report["feature_dim"] = int(valid.shape[-1])
            split_report["features_finite"] = bool(np.isfinite(valid).all())
            split_report["log_mel_mean"] = round(float(valid[:, :40].mean()), 3)
        report["splits"][split] = split_report
    return report


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    corpus = _CORPUS.value
    data_config = _CONFIG.value.data
    default_cache = os.path.join(os.path.dirname(os.path.abspath(corpus)), "cache")
    cache_dir = _CACHE_DIR.value or data_config.cache_dir or default_cache
    splits = _SPLITS.value or corpus_splits(corpus)
    report = inspect(corpus, cache_dir, splits, data_config, encoder_time_reduction(_CONFIG.value))
    sys.stdout.write(json.dumps(report) + "\n")


def run() -> None:
    flags.mark_flags_as_required(["corpus"])
    app.run(main)


if __name__ == "__main__":
    run()
