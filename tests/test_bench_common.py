"""bench/common.py's interleaved rounds: the order the variants run in, and what each round's time covers."""

from __future__ import annotations

import importlib.util
import pathlib
import time

# bench/ is a folder of scripts, not a package, and holds names such as export.py: load common.py by path under
# its own name instead of putting bench/ on sys.path for the whole test session.
_SPEC = importlib.util.spec_from_file_location(
    "bench_common", pathlib.Path(__file__).resolve().parents[1] / "bench" / "common.py")
_COMMON = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_COMMON)
interleaved_rounds = _COMMON.interleaved_rounds


def _recorder(log: list[str], name: str, sleep: float = 0.0):
    def call() -> None:
        log.append(name)
        time.sleep(sleep)

    return call


def test_interleaved_rounds_call_every_variant_once_per_round_in_turn():
    log: list[str] = []
    seconds = interleaved_rounds({name: _recorder(log, name) for name in "abc"}, rounds=3)
    assert log == list("abcabcabc")
    assert {name: len(times) for name, times in seconds.items()} == {"a": 3, "b": 3, "c": 3}


def test_interleaved_rounds_reverse_the_order_every_other_round_when_alternating():
    log: list[str] = []
    interleaved_rounds({name: _recorder(log, name) for name in "ab"}, rounds=4, alternate=True)
    assert log == list("abbaabba")


def test_interleaved_rounds_time_each_variant_alone():
    log: list[str] = []
    seconds = interleaved_rounds({"slow": _recorder(log, "slow", 0.05), "fast": _recorder(log, "fast")}, rounds=2)
    assert all(t >= 0.05 for t in seconds["slow"])
    assert all(t < 0.05 for t in seconds["fast"])  # the slow variant's sleep is not charged to the next one


def test_interleaved_rounds_with_no_rounds_time_nothing():
    log: list[str] = []
    assert interleaved_rounds({"a": _recorder(log, "a")}, rounds=0) == {"a": []}
    assert log == []
