import importlib.util
import pathlib

import pytest

ALL_CONFIGS = sorted((pathlib.Path(__file__).parent.parent / "configs").glob("*.py"))
CONFIGS = [p for p in ALL_CONFIGS if not p.stem.startswith("lm_")]  # recognizers
LM_CONFIGS = [p for p in ALL_CONFIGS if p.stem.startswith("lm_")]  # character LMs (jointctc-train-lm)
# Keys that the public contract (docs/interfaces.md) promises in every config.
CONTRACT_KEYS = [
    "data.train", "data.dev", "train.epochs", "train.batch_size", "loss.ctc_weight", "model.attention", "seed",
]


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def lookup(config, dotted):
    for part in dotted.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_has_the_contract_keys(path):
    config = load(path)
    for key in CONTRACT_KEYS:
        lookup(config, key)
    assert config.model.attention in ("location", "content")
    assert 0.0 <= config.loss.ctc_weight <= 1.0


@pytest.mark.parametrize("path", LM_CONFIGS, ids=lambda p: p.stem)
def test_every_lm_config_has_the_lm_keys(path):
    from tf_jointctc.config import lm_base_config

    config = load(path)
    for key in ("data.train", "data.dev", "model.layers", "model.units", "train.epochs", "train.batch_size", "seed"):
        lookup(config, key)
    assert set(config.keys()) == set(lm_base_config().keys())
    assert config.model.layers >= 1 and config.train.batch_size >= 1


def test_the_four_contract_configs_exist():
    assert {"demo", "wsj_si284", "wsj_si84", "chime4"} <= {p.stem for p in CONFIGS}
    assert "lm_demo" in {p.stem for p in LM_CONFIGS}


@pytest.mark.parametrize("name", ["wsj_si284", "wsj_si84", "chime4"])
def test_paper_configs_carry_section_3_2(name):
    config = load(pathlib.Path(__file__).parent.parent / "configs" / f"{name}.py")
    encoder = config.model.encoder
    assert (encoder.num_layers, encoder.units, tuple(encoder.subsample)) == (4, 320, (1, 1, 2, 2))
    assert (config.model.attention_filters, config.model.attention_width, config.model.sharpening) == (10, 100, 2.0)
    assert config.model.decoder_units == 320 and config.model.init_scale == 0.1
    assert config.optimizer.name == "adadelta" and config.decode.beam == 20
    assert config.loss.ctc_weight == 0.2
    # Nothing of the small-compute recipe (issue 12) leaks into the paper's settings.
    assert encoder.input_stack == 1 and encoder.input_dims == 0 and config.loss.label_smoothing == 0.0
    assert config.optimizer.schedule == "constant" and config.train.steps_per_epoch == 0
    assert config.train.max_frames_per_batch == 0
    assert config.data.train_noise.probability == 0.0 and config.train.shuffle_buffer == 2000
    assert config.loss.intermediate_ctc_weight == 0.0 and config.data.speed_perturbation == (1.0,)
    assert not config.model.ctc_self_conditioning and tuple(config.model.vtlp_warp) == (1.0, 1.0)
    assert config.model.spectral_tilt == 0.0
    assert config.decode.length_penalty == (0.3 if name == "chime4" else 0.1)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_passes_the_train_noise_check(path):
    """What `jointctc-train` checks before any work: noise drawn each pass needs the features computed per batch."""
    from tf_jointctc.training.loop import train_noise_settings

    settings = train_noise_settings(load(path))
    if path.stem == "demo":  # row tn of docs/accuracy.md, over the clean train split `make demo` builds
        assert settings.probability == 0.5


def test_demo_trains_with_intermediate_ctc_on_a_layer_below_the_top():
    """Row ic of docs/accuracy.md: 0.3 of the CTC term on encoder layer 2 of 4; the model accepts the setting."""
    from tf_jointctc.model import build_model
    from tf_jointctc.text import Vocabulary

    config = load(pathlib.Path(__file__).parent.parent / "configs" / "demo.py")
    assert (config.loss.intermediate_ctc_weight, config.loss.intermediate_ctc_layer) == (0.3, 2)
    model = build_model(config.model, config.loss, Vocabulary())
    assert model.uses_intermediate_ctc and model.intermediate_ctc_layer == 2 < config.model.encoder.num_layers


def test_the_demo_config_holds_its_tuned_lm_weights_and_paper_configs_none():
    """`make demo` passes only `--lm_workdir`: every fused-LM weight it decodes with comes from configs/demo.py
    (joint beta and CTC weight, the attention mode's own beta and bonus); the paper's configs decode without an LM."""
    from tf_jointctc.decoding.options import DecodeOptions

    root = pathlib.Path(__file__).parent.parent / "configs"
    demo = DecodeOptions.from_config(load(root / "demo.py").decode)
    assert demo.for_mode("joint", with_lm=True).lm_weight == 0.9
    # joint decoding's CTC weight: 0.5 with the LM, 0.3 without it (each tuned on dev)
    assert (demo.for_mode("joint", with_lm=True).ctc_weight, demo.for_mode("joint", with_lm=False).ctc_weight) == \
        (0.5, 0.3)
    attention = demo.for_mode("attention", with_lm=True)
    assert (attention.lm_weight, attention.length_penalty) == (0.1, 0.3)
    # eos not before 0.1 tokens per encoder frame in every mode (row ml), the paper's configs without a floor
    assert all(demo.for_mode(mode, with_lm).min_length_ratio == 0.1 for mode in ("attention", "joint")
               for with_lm in (False, True))
    # the loop limits of every beam mode (rows rl and as), the paper's configs without them
    assert all((demo.for_mode(mode, with_lm).max_repeats, demo.for_mode(mode, with_lm).max_attention_stall) == (2, 8)
               for mode in ("attention", "joint") for with_lm in (False, True))
    for name in ("wsj_si84.py", "wsj_si284.py", "chime4.py"):
        paper = load(root / name).decode
        assert paper.lm_weight == 0.0 and paper.min_length_ratio == 0.0
        assert paper.max_repeats == 0 and paper.max_attention_stall == 0


@pytest.mark.parametrize("native_bfloat16, units", [(True, 256), (False, 128)])
def test_the_demo_lm_width_follows_the_cpu(monkeypatch, native_bfloat16, units):
    """256 cells where the CPU multiplies bfloat16 natively, 128 where the LM trains in float32 (row lm128a)."""
    from tf_jointctc.layers import fused_lstm

    monkeypatch.setattr(fused_lstm, "cpu_has_native_bfloat16", lambda: native_bfloat16)
    config = load(pathlib.Path(__file__).parent.parent / "configs" / "lm_demo.py")
    assert config.model.units == units and config.model.training_dtype == "auto"
