"""`python -m tf_jointctc.reproduce.run --corpus data/corpus --out runs/reproduce [--epochs N] [--systems a,b]
[--jobs 2] [--report_only]`: the paper's Table 1 and Figs. 2-3 at CPU scale (what `make reproduce` runs).

With `--jobs N` > 1, N systems train and decode at once, each in its own process (`--systems <name>
--no_report`, log in `<out>/<name>.log`): the CPU-sized model keeps only ~1.2 of 2 cores busy, and two at once
gave 1.6x the throughput of one (measured: 140 s per epoch each, against ~110 s alone). The shared TFRecord
caches are built once, before the processes start. Children die with the parent (PR_SET_PDEATHSIG), so a killed
run leaves no trainer behind to collide with the next one.

For each system of `systems.SYSTEMS` it trains `<out>/<system>` with `train()` (which resumes from the work
dir's last checkpoint, so a killed run continues epoch by epoch), then decodes dev, test_clean and test_noisy
with the paper's decoding (CTC greedy for CTC; attention beam 20 with a length penalty of 0.1 on dev/test_clean
like WSJ and 0.3 on test_noisy like CHiME-4; plus joint CTC/attention decoding, CTC weight 0.3, for the MTL
systems). Every finished step leaves a file (`<system>/train.json`, `<system>/eval/<split>-<mode>.json`) and is
skipped when that file exists. Then it writes docs/fig2_learning_curves.png, docs/fig3_alignments.png,
docs/monotonicity.json and docs/results.md.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from tf_jointctc.reproduce import systems as sysmod

# None: every system trains the base config's `train.epochs` (configs/demo.py: the demo's own budget).
DEFAULT_EPOCHS = None


def log(message: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, payload) -> None:
    from tf_jointctc.training import atomic

    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic.write_json(path, payload)


def _count_parameters(workdir: str) -> int | None:
    try:
        from tf_jointctc.trained_model import load_trained_model

        model = load_trained_model(workdir, "latest")[0]
        return int(model.count_params())
    except Exception as error:  # noqa: BLE001 - the count is informative only
        log(f"could not count parameters of {workdir}: {error}")
        return None


def _trained(record: dict, epochs: int) -> bool:
    """A train.json record of a finished system: trained to `epochs`, or stopped earlier by its wall-time budget
    (`train.max_minutes`; training it again would add nothing)."""
    return record.get("epochs", 0) >= epochs or bool(record.get("summary", {}).get("time_budget_reached"))


def train_system(name: str, corpus: str, out: str, epochs: int, train_fn: Callable | None = None,
                 base_config: str | None = None) -> dict:
    """Trains (or resumes) `<out>/<name>` to `epochs` epochs or its time budget; returns `<out>/<name>/train.json`'s
    content."""
    workdir = os.path.join(out, name)
    record_path = os.path.join(workdir, "train.json")
    if os.path.exists(record_path):
        record = _read_json(record_path)
        if _trained(record, epochs):
            log(f"{name}: trained ({record['epochs']} epochs), skipping")
            return record
    else:
        record = {}
    default_train = train_fn is None
    if default_train:
        from tf_jointctc.training.loop import train as train_fn
    base = sysmod.load_demo_config(base_config) if base_config else None
    config = sysmod.system_config(name, corpus, out, epochs, base)
    log(f"{name}: training to {epochs} epochs in {workdir} (lambda={config.loss.ctc_weight}, "
        f"attention={config.model.attention})")
    started = time.time()
    summary = train_fn(config, workdir, verbose=2)
    seconds = time.time() - started
    record = {
        "system": name,
        "epochs": summary.get("epochs", epochs),
        # Wall time of the train() calls that finished; the part of a run that was killed is not counted.
        "train_seconds": round(record.get("train_seconds", 0.0) + seconds, 1),
        "parameters": _count_parameters(workdir),
        "summary": summary,
    }
    _write_json(record_path, record)
    if default_train:  # six systems in one process: drop the finished one's graphs and layers
        import keras

        keras.backend.clear_session()
    log(f"{name}: trained {record['epochs']} epochs in {seconds:.0f} s, dev CER {summary.get('dev_cer')}")
    return record


def evaluate_system(name: str, corpus: str, out: str, eval_fn: Callable | None = None) -> list[dict]:
    """Decodes dev/test_clean/test_noisy with the system's modes; caches `<out>/<name>/eval/<split>-<mode>.json`."""
    system = sysmod.SYSTEMS[name]
    workdir = os.path.join(out, name)
    results = []
    for split in sysmod.SPLITS:
        for mode in sysmod.decode_modes(system):
            path = os.path.join(workdir, "eval", f"{split}-{mode}.json")
            if os.path.exists(path):
                results.append(_read_json(path))
                continue
            if eval_fn is None:
                from tf_jointctc.evaluation import evaluate_workdir as eval_fn
            log(f"{name}: decoding {split} ({mode})")
            started = time.time()
            summary = eval_fn(
                workdir, os.path.join(corpus, split, "manifest.jsonl"), mode, beam=sysmod.BEAM,
                ctc_weight=sysmod.JOINT_CTC_WEIGHT, length_penalty=sysmod.LENGTH_PENALTY[split],
                output=os.path.join(workdir, "eval", f"{split}-{mode}.jsonl"), which="best",
            )
            summary.update(system=name, split=split, eval_seconds=round(time.time() - started, 1))
            _write_json(path, summary)
            log(f"{name}: {split} {mode}: CER {summary['cer']:.2f} WER {summary['wer']:.2f} "
                f"({summary['eval_seconds']:.0f} s)")
            results.append(summary)
    return results


def system_done(name: str, out: str, epochs: int) -> bool:
    """True when `<out>/<name>` is trained (to `epochs`, or to its time budget) and every decoding of it is on
    disk."""
    workdir = os.path.join(out, name)
    record_path = os.path.join(workdir, "train.json")
    if not os.path.exists(record_path) or not _trained(_read_json(record_path), epochs):
        return False
    modes = sysmod.decode_modes(sysmod.SYSTEMS[name])
    return all(os.path.exists(os.path.join(workdir, "eval", f"{split}-{mode}.json"))
               for split in sysmod.SPLITS for mode in modes)


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def child_command(name: str, corpus: str, out: str, epochs: int, base_config: str | None) -> list[str]:
    """The command that trains and decodes one system in its own process, without writing the report."""
    command = [sys.executable, "-m", "tf_jointctc.reproduce.run", "--corpus", corpus, "--out", out,
               "--epochs", str(epochs), "--systems", name, "--jobs", "1", "--no_report"]
    return command + (["--config", base_config] if base_config else [])


def prepare_shared_caches(corpus: str, out: str, epochs: int, base_config: str | None) -> None:
    """Builds the TFRecord caches that all systems share (same data, same cache dir) before any trains."""
    from tf_jointctc.text import Vocabulary
    from tf_jointctc.training.loop import prepare_data

    base = sysmod.load_demo_config(base_config) if base_config else None
    name = next(iter(sysmod.SYSTEMS))
    prepare_data(sysmod.system_config(name, corpus, out, epochs, base), os.path.join(out, name), Vocabulary())


def run_in_parallel(commands: dict[str, list[str]], out: str, jobs: int, poll_seconds: float = 5.0) -> None:
    """Runs {system: command} with at most `jobs` at once; raises SystemExit naming the log of a failure."""
    pending, running, failed = list(commands), {}, []
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            log_path = os.path.join(out, f"{name}.log")
            log(f"{name}: started in its own process (log: {log_path})")
            with open(log_path, "a") as log_file:
                running[name] = subprocess.Popen(commands[name], stdout=log_file, stderr=subprocess.STDOUT,
                                                 preexec_fn=_die_with_parent)
        time.sleep(poll_seconds)
        for name, process in list(running.items()):
            if process.poll() is not None:
                del running[name]
                log(f"{name}: process finished with exit code {process.returncode}")
                if process.returncode != 0:
                    failed.append(name)
    if failed:
        logs = ", ".join(os.path.join(out, f"{n}.log") for n in failed)
        raise SystemExit(f"systems {failed} failed; see {logs}")


def run(corpus: str, out: str, epochs: int | None = DEFAULT_EPOCHS, names: Sequence[str] | None = None,
        report_only: bool = False, docs: str = "docs", command: str | None = None,
        train_fn: Callable | None = None, eval_fn: Callable | None = None, base_config: str | None = None,
        jobs: int = 1, write_report: bool = True) -> str | None:
    """Runs everything pending (`jobs` systems at a time), then writes the figures and results.md; returns the
    results.md path (None with `write_report=False`)."""
    from tf_jointctc.reproduce import figures, report

    names = list(names or sysmod.SYSTEMS)
    if epochs is None:
        epochs = int(sysmod.load_demo_config(base_config or sysmod.DEMO_CONFIG).train.epochs)
    unknown = [n for n in names if n not in sysmod.SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; choose from {', '.join(sysmod.SYSTEMS)}")
    corpus, out = os.path.abspath(corpus), os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    meta_path = os.path.join(out, "run.json")
    meta = _read_json(meta_path) if os.path.exists(meta_path) else {}
    if not report_only:
        if write_report:  # the top-level run; the per-system processes of --jobs leave its command in place
            meta.update(corpus=corpus, epochs=epochs, command=command or meta.get("command"))
            _write_json(meta_path, meta)
        started = time.time()
        pending = [n for n in names if not system_done(n, out, epochs)]
        if jobs > 1 and len(pending) > 1:
            prepare_shared_caches(corpus, out, epochs, base_config)
            run_in_parallel({n: child_command(n, corpus, out, epochs, base_config) for n in pending}, out, jobs)
        else:
            for name in names:
                train_system(name, corpus, out, epochs, train_fn, base_config)
                evaluate_system(name, corpus, out, eval_fn)
        log(f"all systems done ({time.time() - started:.0f} s this run)")
    if not write_report:
        return None
    paths = figures.write_figures(out, docs)
    for path in paths:
        log(f"wrote {path}")
    results = report.write_report(out, docs)
    log(f"wrote {results}")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tf_jointctc.reproduce.run", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="data/corpus", help="The built-in corpus (jointctc-synth --out_dir).")
    parser.add_argument("--out", default="runs/reproduce", help="One work dir per system goes here.")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help="Training epochs of every system (default: the base config's train.epochs).")
    parser.add_argument("--systems", default="", help=f"Comma-separated subset of {','.join(sysmod.SYSTEMS)}.")
    parser.add_argument("--docs", default="docs", help="Where the figures, monotonicity.json and results.md go.")
    parser.add_argument("--config", default="", help="Base config file (default configs/demo.py); for smoke tests.")
    parser.add_argument("--jobs", type=int, default=1, help="Systems trained at once, each in its own process.")
    parser.add_argument("--report_only", action="store_true", help="Only write figures and results.md.")
    parser.add_argument("--no_report", action="store_true", help="Train and decode only (used by --jobs).")
    args = parser.parse_args(argv)
    command = "python -m tf_jointctc.reproduce.run " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    names = [n.strip() for n in args.systems.split(",") if n.strip()] or None
    run(args.corpus, args.out, args.epochs, names, args.report_only, args.docs, command,
        base_config=args.config or None, jobs=args.jobs, write_report=not args.no_report)


if __name__ == "__main__":
    main()
