"""bench/recurrent_floor.py: the frames each BLSTM layer runs, and one real (tiny) run of its loops."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

import pytest

_BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def floor():
    # The script imports bench/common.py as `common`; provide it without putting bench/ (which holds names such as
    # export.py) on sys.path.
    added = "common" not in sys.modules
    if added:
        sys.modules["common"] = _load("common", _BENCH / "common.py")
    try:
        yield _load("bench_recurrent_floor", _BENCH / "recurrent_floor.py")
    finally:
        if added:
            del sys.modules["common"]


def test_layer_frames_follow_stacking_and_each_layers_subsampling(floor):
    assert floor.layer_frames(800, 1, (1, 1, 2, 2)) == [800, 800, 400, 200]  # the paper's pyramid
    assert floor.layer_frames(800, 1, (1, 2, 2, 1)) == [800, 400, 200, 200]  # ESPnet's
    assert floor.layer_frames(801, 1, (1, 1, 2, 2)) == [801, 801, 401, 201]  # a factor 2 rounds up
    assert floor.layer_frames(800, 3, (1, 1, 1, 1)) == [267] * 4  # the demo: 3 frames stacked


def test_a_run_prints_one_json_line_of_its_matmuls(floor, capsys):
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # as in a test session where TensorFlow already runs: the thread settings cannot apply
    floor.main(["--arch", "demo", "--frames", "30", "--repeats", "2"])
    record = json.loads(capsys.readouterr().out.strip())
    assert record["layer_frames"] == [10, 10, 10, 10] and record["units"] == 160
    assert record["matmuls"] == 80 and len(record["seconds_all"]) == 2
    # `seconds` is rounded to 0.1 ms in the record, `us_per_matmul` comes from the unrounded median.
    assert 0 < record["us_per_matmul"] and record["us_per_matmul"] * 80 / 1e6 == pytest.approx(record["seconds"],
                                                                                               abs=6e-5)
