"""docs/results.md: the paper's Table 1 layout with our CER/WER next to the paper's, plus the set-up."""

from __future__ import annotations

import json
import os

from tf_jointctc.reproduce import figures
from tf_jointctc.reproduce.systems import BEAM, JOINT_CTC_WEIGHT, LENGTH_PENALTY, SPLITS, SYSTEMS, decode_modes

# The paper's Table 1 (CER %): WSJ train_si84 (15 h) dev93 / eval92 and CHiME-4 tr05_multi dt05_real / et05_real.
PAPER_CER = {
    "ctc": {"si84_dev93": 27.41, "si84_eval92": 20.34, "chime4_dt05": 37.56, "chime4_et05": 48.79},
    "att_content": {"si84_dev93": 28.02, "si84_eval92": 20.06, "chime4_dt05": 43.45, "chime4_et05": 54.25},
    "att_location": {"si84_dev93": 24.98, "si84_eval92": 17.01, "chime4_dt05": 35.01, "chime4_et05": 47.58},
    "mtl_0.2": {"si84_dev93": 23.03, "si84_eval92": 14.53, "chime4_dt05": 32.08, "chime4_et05": 44.99},
    "mtl_0.5": {"si84_dev93": 26.28, "si84_eval92": 16.24, "chime4_dt05": 34.56, "chime4_et05": 46.49},
    "mtl_0.8": {"si84_dev93": 32.21, "si84_eval92": 21.30, "chime4_dt05": 35.41, "chime4_et05": 48.34},
}
PAPER_COLUMNS = ("si84_dev93", "si84_eval92", "chime4_dt05", "chime4_et05")
# The "Reading" section is written by a person, so it lives in its own file beside results.md and survives
# regenerating the tables (`--report_only`).
READING_FILE = "results_reading.md"
SPLIT_ROLE = {"dev": "dev (≈ dev93)", "test_clean": "test_clean (≈ WSJ eval92)", "test_noisy": "test_noisy (≈ CHiME-4)"}


def _read(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _read_text(path: str) -> str | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def load_results(out: str) -> dict:
    """{system: {"train": train.json or None, "eval": {(split, mode): summary}, "history": [...], "updates": the
    optimizer steps in its newest checkpoint or None}}."""
    from tf_jointctc.training.checkpoint import updates_done  # reads checkpoints with TensorFlow: only here

    results = {}
    for name in SYSTEMS:
        workdir = os.path.join(out, name)
        evals = {}
        for split in SPLITS:
            for mode in ("ctc_greedy", "attention", "joint"):
                summary = _read(os.path.join(workdir, "eval", f"{split}-{mode}.json"))
                if summary is not None:
                    evals[(split, mode)] = summary
        results[name] = {"train": _read(os.path.join(workdir, "train.json")), "eval": evals,
                         "history": figures.load_history(workdir), "updates": updates_done(workdir)}
    return results


def _table(results: dict, metric: str, with_paper: bool) -> list[str]:
    header = ["Model (decoding)", *(f"{metric.upper()} {SPLIT_ROLE[s]}" for s in SPLITS)]
    if with_paper:
        header += ["paper WSJ si84 dev93", "paper WSJ si84 eval92", "paper CHiME-4 dt05_real",
                   "paper CHiME-4 et05_real"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = []
    for name, system in SYSTEMS.items():
        rows.append((name, decode_modes(system)[0], system.label, True))
    for name, system in SYSTEMS.items():
        if system.is_mtl:
            rows.append((name, "joint", f"{system.label} + joint decoding (CTC weight {JOINT_CTC_WEIGHT})", False))
    for name, mode, label, paper_row in rows:
        evals = results[name]["eval"]
        cells = [label + ("" if mode != "ctc_greedy" else " (greedy)")]
        cells += [_fmt(evals.get((split, mode), {}).get(metric)) for split in SPLITS]
        if with_paper:
            cells += [_fmt(PAPER_CER[name][c]) if paper_row else "–" for c in PAPER_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _corpus_lines(out: str, results: dict) -> list[str]:
    meta = _read(os.path.join(out, "run.json")) or {}
    corpus = meta.get("corpus", "data/corpus")
    corpus_json = _read(os.path.join(corpus, "corpus.json")) or {}
    minutes = (corpus_json.get("config") or {}).get("minutes")
    lines = [f"- Corpus: `{corpus}`, built by `jointctc-synth --minutes {_fmt(minutes, 0)} --seed "
             f"{(corpus_json.get('config') or {}).get('seed', '?')}` (test_clean plays WSJ eval92, test_noisy the "
             "same utterances with babble/coloured noise at 0-15 dB SNR plays CHiME-4)."]
    for split in ("train", "dev"):
        summary = _read(os.path.join(out, "cache", split, "summary.json"))
        if summary:
            lines.append(f"  - {split}: {summary['num_utterances']} utterances used "
                         f"({summary['total_seconds'] / 60:.1f} min), {summary['num_skipped']} skipped")
    for split in ("test_clean", "test_noisy"):
        for entry in results.values():
            found = [s for (sp, _), s in entry["eval"].items() if sp == split]
            if found:
                seconds = found[0].get("audio_seconds")
                minutes_text = "" if seconds is None else f" ({seconds / 60:.1f} min)"
                lines.append(f"  - {split}: {found[0].get('utterances')} utterances{minutes_text}")
                break
    return lines


def _model_text(out: str) -> str:
    """The systems' shared recipe as the first work dir's config.json records it (convolutional front end,
    encoder, decoder, VTLP, optimizer, batches, CTC warm-up, epochs and time budget)."""
    for name in SYSTEMS:
        config = _read(os.path.join(out, name, "config.json"))
        if config:
            model, optimizer, train = config["model"], config["optimizer"], config["train"]
            encoder = model["encoder"]
            subsample = ",".join(str(s) for s in encoder.get("subsample", ()))
            stack = int(encoder.get("input_stack", 1))
            frames = f"input frames stacked by {stack}, " if stack > 1 else ""
            conv = int(encoder.get("conv_channels", 0))
            front = (f"two 3 x 3 convolutions of {conv} channels over (frame, mel bin), then a " if conv
                     else "no convolutional front end, a ")
            schedule = optimizer.get("schedule", "constant")
            warmup = int(config.get("loss", {}).get("ctc_warmup_steps", 0))
            budget = float(train.get("max_minutes", 0.0))
            steps = int(train.get("steps_per_epoch", 0))
            parts = [
                f"{front}{encoder['num_layers']}-layer BLSTM with {encoder['units']} cells per direction "
                f"({frames}layer subsampling {subsample})",
                f"{model['decoder_units']}-cell LSTM decoder",
            ]
            low, high = model.get("vtlp_warp", (1.0, 1.0))
            if (low, high) != (1.0, 1.0):
                chance = float(model.get("vtlp_probability", 1.0))
                parts.append(f"VTLP: each train utterance's mel axis warped by a factor uniform in {low:g}-{high:g}"
                             f" with chance {chance:g}")
            parts += [
                f"{optimizer['name']} lr {optimizer['learning_rate']} ({schedule} schedule)",
                f"batch {train['batch_size']}",
            ]
            if warmup:
                parts.append(f"the first {warmup} updates of an MTL system train CTC alone")
            limits = f"at most {train['epochs']} epochs" + (f" of {steps} updates" if steps else "")
            if budget:
                limits += f" or {budget:g} minutes of training (dev evaluations included), whichever ends first"
            parts.append(limits)
            return "; ".join(parts)
    return "no work dir yet"


def render(out: str, reading: str | None = None) -> str:
    """results.md's text; `reading` (markdown) fills the "Reading" section."""
    results = load_results(out)
    meta = _read(os.path.join(out, "run.json")) or {}
    mono = figures.monotonicity_table(out)
    lines = [
        "# Reproducing Table 1 and Figs. 2-3 at CPU scale",
        "",
        "Generated by `python -m tf_jointctc.reproduce.run` (`make reproduce`); re-running only fills in what is "
        "missing. Numbers are from a small synthesized corpus and a CPU-sized model, so compare the *ordering* "
        "of systems with the paper's, not the absolute CERs.",
        "",
        "## Table 1: character error rate (%)",
        "",
        "Our dev / test_clean / test_noisy next to the paper's WSJ train_si84 (15 h; dev93 / eval92) and CHiME-4 "
        "(18 h; dt05_real / et05_real) columns. Decoding as the paper: CTC greedy for CTC; attention beam "
        f"{BEAM} with length penalty {LENGTH_PENALTY['dev']} per token on dev/test_clean (WSJ) and "
        f"{LENGTH_PENALTY['test_noisy']} on test_noisy (CHiME-4). Joint-decoding rows are ours (not in the paper). "
        "The best dev-CER checkpoint of each system is decoded.",
        "",
        *_table(results, "cer", with_paper=True),
        "",
        "## Word error rate (%)",
        "",
        "The paper gives one WER only: MTL(λ = 0.2) 18.2 % on WSJ1 (si284) eval92.",
        "",
        *_table(results, "wer", with_paper=False),
        "",
        "## Set-up",
        "",
        f"- Command: `{meta.get('command') or 'make reproduce'}`",
        *_corpus_lines(out, results),
        f"- Recipe: configs/demo.py with only λ and the attention type changed, and its intermediate CTC off (same "
        f"encoder, data and seed; {meta.get('epochs', '?')} epochs at most): {_model_text(out)}.",
        "",
        "| System | λ | attention | parameters | epochs | updates | train wall time (s) | eval wall time (s) | "
        "best dev CER (greedy) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, system in SYSTEMS.items():
        train = results[name]["train"] or {}
        eval_seconds = sum(s.get("eval_seconds", 0.0) for s in results[name]["eval"].values())
        history = results[name]["history"]
        best = min((h["dev_cer"] for h in history if "dev_cer" in h), default=None)
        attention = system.attention if system.has_attention else "–"
        lines.append(
            f"| {system.label} | {system.ctc_weight} | {attention} | {train.get('parameters') or '–'} | "
            f"{len(history) or '–'} | {_count(results[name]['updates'])} | {_fmt(train.get('train_seconds'), 0)} | "
            f"{_fmt(eval_seconds if results[name]['eval'] else None, 0)} | {_fmt(best)} |"
        )
    lines += [
        "",
        "Wall time is on a shared 2-core CPU and counts only train() calls that finished (a killed and resumed "
        "run loses the killed part).",
        "",
        "## Fig. 2: learning curves",
        "",
        "![Fig. 2](fig2_learning_curves.png)",
        "",
        "Dev character accuracy per epoch: teacher-forced (reference history) token accuracy for attention and "
        "MTL, as the paper; 100 - greedy CER for CTC.",
        "",
        "## Fig. 3: attention alignments of a noisy utterance",
        "",
        "![Fig. 3](fig3_alignments.png)",
        "",
        "Monotonicity: share of attention mass within ±10 % of the encoder length around the diagonal, averaged "
        "over characters (`tf_jointctc/reproduce/alignment.py`; 1 = on the diagonal, about 0.2 for attention "
        "spread evenly over the utterance, as an untrained model's). Mean over the logged "
        "test_noisy alignment utterances (per utterance in `monotonicity.json`):",
        "",
    ]
    epochs = sorted({int(e) for table in mono.values() for e in table})
    if mono:
        lines += ["| System | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
                  "|---|" + "---|" * len(epochs)]
        for name, table in mono.items():
            cells = [_fmt(table.get(str(e), {}).get("mean")) for e in epochs]
            lines.append(f"| {SYSTEMS[name].label} | " + " | ".join(cells) + " |")
    else:
        lines.append("(no alignments yet)")
    reading = (reading or "").strip() or f"_Not written yet: put it in docs/{READING_FILE}._"
    lines += ["", "## Reading", "", reading, ""]
    return "\n".join(lines)


def write_report(out: str, docs: str) -> str:
    os.makedirs(docs, exist_ok=True)
    path = os.path.join(docs, "results.md")
    reading = _read_text(os.path.join(docs, READING_FILE))
    with open(path, "w") as f:
        f.write(render(out, reading))
    return path
