"""The six systems of the paper's Table 1 as overrides of configs/demo.py.

All share the encoder, data, epochs and seed of the demo config; they differ only in lambda (eq. 14,
`loss.ctc_weight`) and the attention type (eq. 9, `model.attention`). Two of the demo's additions are off in
every system (`TABLE1_RECIPE`): intermediate CTC, since Table 1 compares the paper's loss and the attention-only
systems have no CTC branch to give it; and the convolutional front end, which the demo adopted together with
intermediate CTC and which, without it, slowed Table 1's systems at the demo's budget (docs/results.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pathlib

import ml_collections

REPO = pathlib.Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "configs" / "demo.py"


@dataclasses.dataclass(frozen=True)
class System:
    name: str
    label: str  # Table 1 row label
    ctc_weight: float  # lambda
    attention: str  # "location" or "content"

    @property
    def has_ctc(self) -> bool:
        return self.ctc_weight > 0.0

    @property
    def has_attention(self) -> bool:
        return self.ctc_weight < 1.0

    @property
    def is_mtl(self) -> bool:
        return self.has_ctc and self.has_attention

    def overrides(self) -> dict:
        """Dotted config keys -> values that make configs/demo.py this system."""
        return {"loss.ctc_weight": self.ctc_weight, "model.attention": self.attention, **TABLE1_RECIPE}


# What every system changes in configs/demo.py besides lambda and the attention type (module docstring).
TABLE1_RECIPE = {"loss.intermediate_ctc_weight": 0.0, "model.encoder.conv_channels": 0}


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in (
        System("ctc", "CTC", 1.0, "location"),  # the attention type is irrelevant without a decoder
        System("att_content", "Attention(content-based)", 0.0, "content"),
        System("att_location", "Attention(location-based)", 0.0, "location"),
        System("mtl_0.2", "MTL(λ = 0.2)", 0.2, "location"),
        System("mtl_0.5", "MTL(λ = 0.5)", 0.5, "location"),
        System("mtl_0.8", "MTL(λ = 0.8)", 0.8, "location"),
    )
}

# Splits of the built-in corpus and the paper's data sets they stand in for.
SPLITS = ("dev", "test_clean", "test_noisy")
# Length penalty per output token for attention/joint beam search: 0.1 like WSJ, 0.3 like CHiME-4 (section 3.2).
LENGTH_PENALTY = {"dev": 0.1, "test_clean": 0.1, "test_noisy": 0.3}
BEAM = 20
JOINT_CTC_WEIGHT = 0.3


def decode_modes(system: System) -> list[str]:
    """The paper's decoding for the system (CTC greedy, or attention beam), plus joint decoding for MTL."""
    if not system.has_attention:
        return ["ctc_greedy"]
    return ["attention", "joint"] if system.is_mtl else ["attention"]


def load_demo_config(path: str | os.PathLike = DEMO_CONFIG) -> ml_collections.ConfigDict:
    spec = importlib.util.spec_from_file_location("reproduce_demo_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def system_config(name: str, corpus: str, out: str, epochs: int, base: ml_collections.ConfigDict | None = None
                  ) -> ml_collections.ConfigDict:
    """configs/demo.py (or `base`) with the system's overrides, the corpus' train/dev data, a TFRecord cache
    shared by the six systems under `out`, and the first test_noisy utterances as the alignment utterances."""
    system = SYSTEMS[name]
    config = ml_collections.ConfigDict((base or load_demo_config()).to_dict())
    config.data.train = os.path.join(corpus, "train", "manifest.jsonl")
    config.data.dev = os.path.join(corpus, "dev", "manifest.jsonl")
    config.data.cache_dir = os.path.join(out, "cache")
    config.train.epochs = int(epochs)
    config.train.alignment_data = os.path.join(corpus, "test_noisy", "manifest.jsonl")
    config.update_from_flattened_dict(system.overrides())
    return config
