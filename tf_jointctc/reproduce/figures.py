"""The paper's Figs. 2 and 3 from the reproduction's work dirs, plus the monotonicity table.

Fig. 2 (`fig2_learning_curves.png`): dev character accuracy per epoch. For attention and MTL systems it is
`val_attention_accuracy` of history.json, the teacher-forced token accuracy (reference history, as the
paper); for CTC, which has no history to force, 100 - the greedy dev CER.

Fig. 3 (`fig3_alignments.png`): the attention weights of one fixed noisy (test_noisy) utterance at epochs
1, 3, 5, 7 and 9, location-based attention (row 1) against MTL lambda = 0.2 (row 2, the paper's best) and
lambda = 0.8 (row 3, the most CTC), each panel titled with
its epoch and monotonicity score (`alignment.monotonicity`). `monotonicity.json` holds the score of every
alignment utterance at every epoch for every system that has attention.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

from tf_jointctc.reproduce import alignment
from tf_jointctc.reproduce.systems import SYSTEMS

FIG3_EPOCHS = (1, 3, 5, 7, 9)  # for 9 epochs; `fig3_epochs` spreads five columns over any other count


def fig3_epochs(total: int, columns: int = 5) -> tuple[int, ...]:
    """Up to `columns` epochs spread evenly over 1..total, first and last included (9 -> 1, 3, 5, 7, 9)."""
    if total <= columns:
        return tuple(range(1, total + 1))
    return tuple(sorted({1 + round(i * (total - 1) / (columns - 1)) for i in range(columns)}))
FIG3_SYSTEMS = ("att_location", "mtl_0.2", "mtl_0.8")


def load_history(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "history.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def character_accuracy(name: str, history: list[dict]) -> tuple[list[int], list[float]]:
    """(epochs, accuracy in %) of Fig. 2 for the system."""
    epochs, values = [], []
    for entry in history:
        if SYSTEMS[name].has_attention:
            value = entry.get("val_attention_accuracy")
            value = None if value is None else 100.0 * float(value)
        else:
            value = entry.get("dev_cer")
            value = None if value is None else 100.0 - float(value)
        if value is not None and np.isfinite(value):
            epochs.append(int(entry["epoch"]))
            values.append(value)
    return epochs, values


def load_alignments(workdir: str) -> dict[int, dict[str, np.ndarray]]:
    """{epoch: {utt_id: [tokens, frames] weights}} from `<workdir>/alignments/epoch_NNN.npz`."""
    found = {}
    for path in sorted(glob.glob(os.path.join(workdir, "alignments", "epoch_*.npz"))):
        match = re.search(r"epoch_(\d+)\.npz$", path)
        if match:
            with np.load(path) as data:
                found[int(match.group(1))] = {name: data[name] for name in data.files}
    return found


def monotonicity_table(out: str) -> dict[str, dict[str, dict[str, float]]]:
    """{system: {epoch: {"mean": score, utt_id: score, ...}}} for every system with alignments."""
    table = {}
    for name in SYSTEMS:
        per_epoch = {}
        for epoch, arrays in load_alignments(os.path.join(out, name)).items():
            scores = {utt: alignment.monotonicity(w) for utt, w in arrays.items()}
            if scores:
                per_epoch[str(epoch)] = {"mean": float(np.mean(list(scores.values()))), **scores}
        if per_epoch:
            table[name] = per_epoch
    return table


def fig3_utterance(out: str, names=FIG3_SYSTEMS) -> str | None:
    """The alignment utterance Fig. 3 shows: the one with the most encoder frames among those every shown
    system logged (the paper chose a long noisy utterance); None without alignments."""
    common = None
    frames = {}
    for name in names:
        utts = set()
        for arrays in load_alignments(os.path.join(out, name)).values():
            for utt, weights in arrays.items():
                utts.add(utt)
                frames[utt] = weights.shape[1]
        if utts:
            common = utts if common is None else common & utts
    if not common:
        return None
    return max(sorted(common), key=lambda u: frames[u])


def plot_fig2(out: str, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.5))
    plotted = 0
    for name, system in SYSTEMS.items():
        epochs, values = character_accuracy(name, load_history(os.path.join(out, name)))
        if epochs:
            style = "--" if system.attention == "content" and system.has_attention else "-"
            ax.plot(epochs, values, style, marker="o", markersize=3, label=system.label)
            plotted += 1
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev character accuracy (%)")
    ax.set_title("Fig. 2: learning curves (attention/MTL: reference history; CTC: 100 - greedy CER)", fontsize=9)
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no history.json yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_fig3(out: str, path: str, epochs=None, names=FIG3_SYSTEMS) -> str:
    import matplotlib

    if epochs is None:  # the run's epoch count (run.json), else the paper-recipe default
        meta_path = os.path.join(out, "run.json")
        total = None
        if os.path.exists(meta_path):
            with open(meta_path) as handle:
                total = json.load(handle).get("epochs")
        epochs = fig3_epochs(int(total)) if total else FIG3_EPOCHS

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    utt = fig3_utterance(out, names)
    fig, axes = plt.subplots(len(names), len(epochs), figsize=(3 * len(epochs), 2.8 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        alignments = load_alignments(os.path.join(out, name))
        for col, epoch in enumerate(epochs):
            ax = axes[row][col]
            weights = alignments.get(epoch, {}).get(utt) if utt else None
            if weights is None:
                ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
                ax.set_title(f"{SYSTEMS[name].label}\nepoch {epoch}", fontsize=8)
            else:
                ax.imshow(weights, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
                score = alignment.monotonicity(weights)
                ax.set_title(f"{SYSTEMS[name].label}\nepoch {epoch}, monotonicity {score:.2f}", fontsize=8)
            if row == len(names) - 1:
                ax.set_xlabel("encoder frame", fontsize=8)
            if col == 0:
                ax.set_ylabel("character", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"Fig. 3: attention alignments of noisy utterance {utt or '(none yet)'}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_figures(out: str, docs: str) -> list[str]:
    """Writes fig2_learning_curves.png, fig3_alignments.png and monotonicity.json into `docs`."""
    os.makedirs(docs, exist_ok=True)
    paths = [
        plot_fig2(out, os.path.join(docs, "fig2_learning_curves.png")),
        plot_fig3(out, os.path.join(docs, "fig3_alignments.png")),
    ]
    table = monotonicity_table(out)
    mono_path = os.path.join(docs, "monotonicity.json")
    payload = {
        "definition": "share of attention mass within +-w encoder frames of the diagonal (0,0)-(U-1,L-1), "
                      f"w = max(1, round({alignment.DEFAULT_BAND} * L)), averaged over tokens",
        "fig3_utterance": fig3_utterance(out),
        "systems": table,
    }
    with open(mono_path, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=False)
        f.write("\n")
    paths.append(mono_path)
    return paths
