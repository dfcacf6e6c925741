"""Figures, monotonicity table and results.md from fake work dirs; run()'s resume/skip logic with fake stages."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from tf_jointctc.reproduce import figures, report, run
from tf_jointctc.reproduce.systems import SPLITS, SYSTEMS, decode_modes, load_demo_config, system_config

UTTS = ("noisy-a", "noisy-b")


def _fake_alignment(tokens: int, frames: int, sharp: float) -> np.ndarray:
    centre = np.arange(tokens)[:, None] * (frames - 1) / (tokens - 1)
    logits = -sharp * (np.arange(frames)[None, :] - centre) ** 2
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def _fake_workdir(out, name: str, epochs: int = 9, with_eval: bool = True) -> None:
    system = SYSTEMS[name]
    workdir = out / name
    (workdir / "alignments").mkdir(parents=True)
    history = []
    for epoch in range(1, epochs + 1):
        entry = {"epoch": epoch, "loss": 10.0 / epoch, "dev_cer": 90.0 - 5 * epoch, "dev_wer": 100.0}
        if system.has_ctc:
            entry["ctc_loss"] = 5.0 / epoch
        if system.has_attention:
            entry.update(attention_loss=4.0 / epoch, attention_accuracy=0.05 * epoch,
                         val_attention_accuracy=0.04 * epoch)
            np.savez(workdir / "alignments" / f"epoch_{epoch:03d}.npz",
                     **{u: _fake_alignment(12 + i, 40 + 10 * i, 0.001 * epoch) for i, u in enumerate(UTTS)})
        history.append(entry)
    (workdir / "history.json").write_text(json.dumps(history))
    (workdir / "train.json").write_text(json.dumps({"epochs": epochs, "train_seconds": 123.4, "parameters": 4321}))
    if with_eval:
        (workdir / "eval").mkdir()
        for split in SPLITS:
            for mode in decode_modes(system):
                (workdir / "eval" / f"{split}-{mode}.json").write_text(json.dumps(
                    {"cer": 12.34, "wer": 45.67, "utterances": 3, "audio_seconds": 9.0, "eval_seconds": 2.0}))


def _fake_checkpoint(workdir, updates: int) -> None:
    """`checkpoints/latest` as training saves it, with the optimizer's step counter at `updates`."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam()
    optimizer.iterations.assign(updates)
    tf.train.Checkpoint(optimizer=optimizer).save(str(workdir / "checkpoints" / "latest" / "ckpt"))


def test_figures_and_report_from_fake_workdirs(tmp_path):
    out, docs = tmp_path / "out", tmp_path / "docs"
    for name in SYSTEMS:
        _fake_workdir(out, name)
    (out / "run.json").write_text(json.dumps({"command": "python -m tf_jointctc.reproduce.run --epochs 9",
                                              "epochs": 9, "corpus": str(tmp_path / "corpus")}))
    paths = figures.write_figures(str(out), str(docs))
    for name in ("fig2_learning_curves.png", "fig3_alignments.png"):
        path = docs / name
        assert str(path) in paths and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mono = json.loads((docs / "monotonicity.json").read_text())
    assert mono["fig3_utterance"] == "noisy-b"  # the longest logged utterance
    assert set(mono["systems"]) == {n for n, s in SYSTEMS.items() if s.has_attention}
    scores = mono["systems"]["mtl_0.2"]
    assert set(scores) == {str(e) for e in range(1, 10)} and set(scores["1"]) == {"mean", *UTTS}
    assert scores["9"]["mean"] > scores["1"]["mean"]  # sharper fake alignments are more diagonal

    # Fig. 2's values: reference-history accuracy for attention/MTL, 100 - CER for CTC.
    history = figures.load_history(str(out / "mtl_0.2"))
    assert figures.character_accuracy("mtl_0.2", history)[1][0] == np.float64(4.0)
    assert figures.character_accuracy("ctc", figures.load_history(str(out / "ctc")))[1][0] == 15.0

    config = system_config("ctc", str(tmp_path / "corpus"), str(out), 9)  # configs/demo.py's recipe
    (out / "ctc" / "config.json").write_text(json.dumps(config.to_dict()))
    _fake_checkpoint(out / "ctc", updates=2345)
    with open(report.write_report(str(out), str(docs))) as f:
        text = f.read()
    encoder = config.model.encoder
    blstm = (f"{encoder.num_layers}-layer BLSTM with {encoder.units} cells per direction (input frames stacked by "
             f"{encoder.input_stack}, layer subsampling {','.join(str(s) for s in encoder.subsample)})")
    assert f"): no convolutional front end, a {blstm}" in text and "convolutions" not in text  # Table 1's systems
    assert "| CTC | 1.0 | – | 4321 | 9 | 2,345 | 123 |" in text  # updates read from the checkpoint
    assert "| Attention(content-based) | 0.0 | content | 4321 | 9 | – | 123 |" in text  # no checkpoint: none
    assert f"or {config.train.max_minutes:g} minutes of training" in text and "pyramidal" not in text
    low, high = config.model.vtlp_warp
    assert (f"VTLP: each train utterance's mel axis warped by a factor uniform in {low:g}-{high:g} with chance "
            f"{config.model.vtlp_probability:g};") in text  # configs/demo.py's VTLP
    for system in SYSTEMS.values():
        assert f"| {system.label}" in text
        if system.is_mtl:
            assert f"| {system.label} + joint decoding" in text
    for paper_number in ("27.41", "20.34", "37.56", "48.79", "23.03", "14.53", "32.08", "44.99", "21.30", "48.34"):
        assert paper_number in text
    assert "12.34" in text and "45.67" in text and "4321" in text and "123" in text
    assert "python -m tf_jointctc.reproduce.run --epochs 9" in text
    assert "## Reading" in text and "fig2_learning_curves.png" in text
    assert f"docs/{report.READING_FILE}" in text  # no reading written yet: says where it goes

    (docs / report.READING_FILE).write_text("MTL beats both baselines here.\n")
    with open(report.write_report(str(out), str(docs))) as f:
        assert "## Reading\n\nMTL beats both baselines here.\n" in f.read()  # kept when regenerated


def test_figures_and_report_without_results(tmp_path):
    paths = figures.write_figures(str(tmp_path / "missing"), str(tmp_path / "docs"))
    assert all(os.path.getsize(p) > 0 for p in paths)
    with open(report.write_report(str(tmp_path / "missing"), str(tmp_path / "docs"))) as f:
        text = f.read()
    assert "| CTC (greedy) | – |" in text


def test_run_trains_evaluates_and_skips_finished_work(tmp_path):
    out, docs, corpus = tmp_path / "out", tmp_path / "docs", tmp_path / "corpus"
    calls = {"train": [], "eval": []}

    def fake_train(config, workdir, verbose=1):
        name = os.path.basename(workdir)
        calls["train"].append((name, config.train.epochs))
        assert config.train.alignment_data == str(corpus / "test_noisy" / "manifest.jsonl")
        assert config.loss.ctc_weight == SYSTEMS[name].ctc_weight
        _fake_workdir(out, name, epochs=config.train.epochs, with_eval=False)
        os.remove(os.path.join(workdir, "train.json"))
        return {"epochs": config.train.epochs, "dev_cer": 50.0, "seconds": 1.0}

    def fake_eval(workdir, data, mode, beam=None, ctc_weight=None, length_penalty=None, output=None, which="best"):
        split = os.path.basename(os.path.dirname(data))
        calls["eval"].append((os.path.basename(workdir), split, mode, beam, length_penalty))
        return {"cer": 10.0, "wer": 20.0, "utterances": 2, "audio_seconds": 5.0}

    run.run(str(corpus), str(out), epochs=9, names=["ctc", "mtl_0.2"], docs=str(docs), command="cmd",
            train_fn=fake_train, eval_fn=fake_eval)
    assert calls["train"] == [("ctc", 9), ("mtl_0.2", 9)]
    assert ("ctc", "dev", "ctc_greedy", 20, 0.1) in calls["eval"]
    assert ("mtl_0.2", "test_noisy", "attention", 20, 0.3) in calls["eval"]
    assert ("mtl_0.2", "test_clean", "joint", 20, 0.1) in calls["eval"]
    assert len(calls["eval"]) == 3 + 6
    record = json.loads((out / "mtl_0.2" / "eval" / "test_noisy-joint.json").read_text())
    assert record["split"] == "test_noisy" and "eval_seconds" in record
    assert json.loads((out / "ctc" / "train.json").read_text())["epochs"] == 9
    assert (docs / "results.md").is_file() and (docs / "fig3_alignments.png").is_file()

    assert run.system_done("ctc", str(out), 9) and run.system_done("mtl_0.2", str(out), 9)
    assert not run.system_done("ctc", str(out), 10) and not run.system_done("mtl_0.5", str(out), 9)
    (out / "mtl_0.2" / "eval" / "dev-joint.json").unlink()
    assert not run.system_done("mtl_0.2", str(out), 9)
    run.evaluate_system("mtl_0.2", str(corpus), str(out), fake_eval)

    # A second run finds everything done and neither trains nor decodes again.
    calls = {"train": [], "eval": []}
    run.run(str(corpus), str(out), epochs=9, names=["ctc", "mtl_0.2"], docs=str(docs), train_fn=fake_train,
            eval_fn=fake_eval)
    assert calls == {"train": [], "eval": []}


def test_a_system_stopped_by_its_time_budget_counts_as_trained(tmp_path):
    out, corpus = tmp_path / "out", tmp_path / "corpus"
    _fake_workdir(out, "ctc", epochs=4)
    record = {"epochs": 4, "train_seconds": 1000.0, "summary": {"epochs": 4, "time_budget_reached": False}}
    (out / "ctc" / "train.json").write_text(json.dumps(record))
    assert not run.system_done("ctc", str(out), 10)  # 4 of 10 epochs, budget not reached: not finished

    record["summary"]["time_budget_reached"] = True
    (out / "ctc" / "train.json").write_text(json.dumps(record))
    assert run.system_done("ctc", str(out), 10)

    def fail_train(config, workdir, verbose=1):
        raise AssertionError("a system that spent its time budget must not be trained again")

    assert run.train_system("ctc", str(corpus), str(out), 10, train_fn=fail_train) == record


def test_report_names_a_front_end_when_the_run_had_one(tmp_path):
    out = tmp_path / "out"
    config = system_config("ctc", str(tmp_path / "corpus"), str(out), 9)
    config.model.encoder.conv_channels = 16
    (out / "ctc").mkdir(parents=True)
    (out / "ctc" / "config.json").write_text(json.dumps(config.to_dict()))
    text = report.render(str(out))
    assert (f"two 3 x 3 convolutions of 16 channels over (frame, mel bin), then a {config.model.encoder.num_layers}"
            f"-layer BLSTM") in text


def test_system_configs_differ_only_in_lambda_and_attention(tmp_path):
    configs = {name: system_config(name, "corpus", str(tmp_path), 10) for name in SYSTEMS}
    reference = configs["mtl_0.2"].to_dict()
    for name, config in configs.items():
        d = config.to_dict()
        assert d["train"]["epochs"] == 10 and d["data"]["cache_dir"] == os.path.join(str(tmp_path), "cache")
        assert d["train"]["alignment_data"] == os.path.join("corpus", "test_noisy", "manifest.jsonl")
        d["loss"]["ctc_weight"], d["model"]["attention"] = 0.2, "location"
        assert d == reference, name
    assert configs["att_content"].model.attention == "content"
    assert configs["ctc"].loss.ctc_weight == 1.0 and configs["att_location"].loss.ctc_weight == 0.0
    # configs/demo.py trains with intermediate CTC and the front end; Table 1 trains the paper's loss without both.
    demo = load_demo_config()
    assert demo.loss.intermediate_ctc_weight > 0.0 and demo.model.encoder.conv_channels > 0
    assert all(config.loss.intermediate_ctc_weight == 0.0 for config in configs.values())
    assert all(config.model.encoder.conv_channels == 0 for config in configs.values())
    # Everything else of the demo's encoder stays.
    assert configs["ctc"].model.encoder.units == demo.model.encoder.units


def test_run_in_parallel_limits_jobs_and_names_failed_logs(tmp_path):
    """Real processes: each records its start/end time; at most 2 overlap, and a failure names its log."""
    script = (
        "import json, sys, time; start = time.time(); time.sleep(0.6); "
        "json.dump([start, time.time()], open(sys.argv[1], 'w')); sys.exit(int(sys.argv[2]))"
    )
    commands = {name: [sys.executable, "-c", script, str(tmp_path / f"{name}.json"), "0"] for name in "abc"}
    run.run_in_parallel(commands, str(tmp_path), jobs=2, poll_seconds=0.05)
    spans = [json.loads((tmp_path / f"{name}.json").read_text()) for name in "abc"]
    for moment in (start + 0.01 for start, _ in spans):
        assert sum(start <= moment <= end for start, end in spans) <= 2
    assert spans[2][0] >= min(spans[0][1], spans[1][1]) - 0.01  # c waited for a free slot

    commands["b"][-1] = "3"
    with pytest.raises(SystemExit, match=r"\['b'\] failed.*b\.log"):
        run.run_in_parallel(commands, str(tmp_path), jobs=3, poll_seconds=0.05)


def test_child_command_trains_one_system_without_the_report():
    command = run.child_command("mtl_0.5", "/c", "/o", 9, None)
    assert command[1:3] == ["-m", "tf_jointctc.reproduce.run"]
    assert command[command.index("--systems") + 1] == "mtl_0.5" and "--no_report" in command
    assert command[command.index("--jobs") + 1] == "1"


def test_fig3_epochs_spread_over_the_run():
    from tf_jointctc.reproduce.figures import fig3_epochs

    assert fig3_epochs(9) == (1, 3, 5, 7, 9)
    assert fig3_epochs(4) == (1, 2, 3, 4)
    assert fig3_epochs(13) == (1, 4, 7, 10, 13)
    assert fig3_epochs(1) == (1,)
