"""What every benchmark shares: loading a `configs/*.py` file of the repository, `--subsample`, the thread
flags of the training benchmarks, and timing variants in interleaved rounds."""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections.abc import Callable, Mapping

import ml_collections

import tf_jointctc  # noqa: F401  its TensorFlow settings, before a benchmark loads TensorFlow (tf_jointctc/runtime.py)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ARCHITECTURES = {"wsj": "configs/wsj_si284.py", "demo": "configs/demo.py"}


def load_config(name_or_path: str) -> ml_collections.ConfigDict:
    """`get_config()` of a config file: an architecture name (`wsj`, `demo`) or a path relative to the repo."""
    path = os.path.join(REPO, ARCHITECTURES.get(name_or_path, name_or_path))
    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def load_lm_config() -> ml_collections.ConfigDict:
    """`configs/lm_demo.py`: the demo's character LM (its shape is what the decode benchmark times)."""
    return load_config("configs/lm_demo.py")


SUBSAMPLE_HELP = "per-layer encoder subsampling (default: config's; ESPnet: 1,2,2,1)"


def set_subsample(config: ml_collections.ConfigDict, subsample: str | None) -> None:
    """`--subsample 1,2,2,1` -> `config.model.encoder.subsample`; None keeps the config's."""
    if subsample is not None:
        config.model.encoder.subsample = tuple(int(x) for x in subsample.split(","))


def add_thread_flags(parser: argparse.ArgumentParser) -> None:
    """`--threads` (inter-op; intra-op too unless `--intra_threads` is given) and `--intra_threads`."""
    parser.add_argument("--threads", type=int, default=2, help="inter-op threads (intra-op: the same by default)")
    parser.add_argument("--intra_threads", type=int, default=None,
                        help="intra-op threads (default: --threads; configs/demo.py trains with 1)")


def set_threads(args: argparse.Namespace) -> int:
    """Applies `add_thread_flags`' flags with jointctc-train's `set_cpu_threads` (before TensorFlow runs any op);
    returns the intra-op threads."""
    from tf_jointctc.training.strategy import set_cpu_threads

    intra_threads = args.threads if args.intra_threads is None else args.intra_threads
    return set_cpu_threads(intra_threads, args.threads)["intra_op"]


def interleaved_rounds(calls: Mapping[str, Callable[[], object]], rounds: int,
                       alternate: bool = False) -> dict[str, list[float]]:
    """Wall seconds of each call in `calls` ({variant: fn}), `rounds` rounds that call every variant once in
    turn (the order reversed every other round with `alternate`), so that the machine's drift (up to ~1.5x within
    minutes on the project machine) reaches every variant alike: {variant: [seconds per round]}. Warm-up calls
    are the caller's."""
    names = list(calls)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in (names[::-1] if alternate and round_index % 2 else names):
            started = time.perf_counter()
            calls[name]()
            seconds[name].append(time.perf_counter() - started)
    return seconds
