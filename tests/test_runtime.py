"""tf_jointctc.runtime: the oneDNN default is set before TensorFlow loads, and an explicit choice wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tf_jointctc.runtime import ONEDNN_VARIABLE, prefer_onednn

# TensorFlow logs this line when it loads with its oneDNN kernels on (at TF_CPP_MIN_LOG_LEVEL 0).
ONEDNN_ON_LOG = "oneDNN custom operations are on"


def _tensorflow_load_log(code: str, onednn: str | None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != ONEDNN_VARIABLE}
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    if onednn is not None:
        env[ONEDNN_VARIABLE] = onednn
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=env, check=True)


def test_prefer_onednn_sets_the_variable_only_where_it_is_unset():
    unset: dict[str, str] = {"OTHER": "x"}
    prefer_onednn(unset)
    assert unset == {"OTHER": "x", ONEDNN_VARIABLE: "1"}
    for choice in ("0", ""):  # off; TensorFlow's own default
        chosen = {ONEDNN_VARIABLE: choice}
        prefer_onednn(chosen)
        assert chosen == {ONEDNN_VARIABLE: choice}


@pytest.mark.parametrize("onednn, expected_on", [(None, True), ("0", False)])
def test_importing_the_package_first_turns_tensorflows_onednn_kernels_on_unless_the_environment_says_no(
        onednn, expected_on):
    result = _tensorflow_load_log("import tf_jointctc\nimport tensorflow\n", onednn)
    assert (ONEDNN_ON_LOG in result.stderr) is expected_on, result.stderr[-2000:]


def test_prefer_onednn_reports_that_it_is_too_late_once_tensorflow_is_loaded():
    result = _tensorflow_load_log(
        "import tensorflow\nfrom tf_jointctc.runtime import prefer_onednn\nprint(prefer_onednn())\n", None)
    assert result.stdout.split()[-1] == "False"
    fresh = _tensorflow_load_log("from tf_jointctc.runtime import prefer_onednn\nprint(prefer_onednn())\n", None)
    assert fresh.stdout.split()[-1] == "True"
