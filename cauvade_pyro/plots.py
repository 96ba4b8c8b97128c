"""Figures written by a fit: sample grids per value of x, and P(hue | do(x)) against the truth and bounds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

# the model's panels are the likelihood's means at sampled (y, ε), not pixel draws: the titles say so
PANEL_TITLES = {"observational": "model  P(image | x), means", "do": "model  P(image | do(x)), means",
                "reference": "unconfounded reference (real)"}


def save_sample_grids(path: str | Path, panels: dict, class_names, title: str = "") -> Path:
    """One row per x: the model's observational and do(x) images (means) and real reference images, side by side."""
    columns = [(PANEL_TITLES[key], {x: panels[x][key] for x in panels}) for key in ("observational", "do", "reference")]
    return _save_grids(path, columns, class_names, title, panel_size=(3.0, 3.2), title_size=9)


def save_member_grids(path: str | Path, columns: list[tuple[str, dict]], class_names, title: str = "") -> Path:
    """One row per x, one column per ``(name, {x: images})`` of ``columns``: e.g. observational samples, the do(x)
    samples of several family members and reference samples, side by side."""
    return _save_grids(path, columns, class_names, title, panel_size=(2.9, 3.0), title_size=8)


def _save_grids(path, columns: list[tuple[str, dict]], class_names, title: str, panel_size: tuple[float, float],
                title_size: int) -> Path:
    """The figure of image grids both functions above write: rows x, columns as given."""
    rows = sorted(columns[0][1])
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                             figsize=(panel_size[0] * len(columns), panel_size[1] * len(rows)))
    for row, x in enumerate(rows):
        for col, (name, panels) in enumerate(columns):
            images = panels[x].clamp(0, 1)
            grid = make_grid(images, nrow=int(np.ceil(np.sqrt(len(images)))), padding=1, pad_value=1.0)
            axes[row, col].imshow(grid.permute(1, 2, 0).numpy())
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            if row == 0:
                axes[row, col].set_title(name, fontsize=title_size)
        axes[row, 0].set_ylabel(f"x = {x} ({class_names[x]})")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def save_effect_plot(path: str | Path, per_x: list[dict], title: str = "") -> Path:
    """P(hue bin | do(x)) per x: model (bars), truth, observational, and the sharp-bounds band."""
    fig, axes = plt.subplots(1, len(per_x), figsize=(4 * len(per_x), 3.2), squeeze=False, sharey=True)
    for ax, row in zip(axes[0], per_x):
        bins = np.arange(len(row["p_do_truth"]))
        lower, upper = np.array(row["bounds_lower"]), np.array(row["bounds_upper"])
        ax.bar(bins, upper - lower, bottom=lower, color="0.88", width=0.8, label="sharp bounds")
        model_key = "p_do_model" if "p_do_model" in row else "p_do_from_images"
        ax.bar(bins, row[model_key], width=0.45, color="tab:blue", label="model do(x)")
        ax.plot(bins, row["p_do_truth"], "k_", markersize=18, mew=2.5, label="truth do(x)")
        ax.plot(bins, row["p_observational"], "r.", markersize=10, label="observational P(y|x)")
        ax.set_title(f"x = {row['x']} ({row['class_name']})", fontsize=9)
        ax.set_xlabel("hue bin")
    axes[0, 0].set_ylabel("probability")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)




KIND_COLOURS = {"restart": "tab:gray", "dial": "tab:blue", "vertex": "tab:red", "direction": "tab:orange",
                "cell": "tab:purple", "functional": "tab:green"}


def save_family_plot(path: str | Path, p_do: np.ndarray, kinds: list[str], treatment: str, outcome: str,
                     title: str = "", lower: np.ndarray | None = None, upper: np.ndarray | None = None,
                     truth: np.ndarray | None = None) -> Path:
    """P(outcome | do(treatment = t)) of every member (dots, coloured by how the member was made) per t, the
    family's range (grey bar) and, where given, bounds and truth. ``p_do`` has shape (members, |T|, |O|)."""
    p_do = np.asarray(p_do)
    num_t, num_o = p_do.shape[1:]
    fig, axes = plt.subplots(1, num_t, figsize=(max(3.2, 0.7 * num_o + 1.5) * num_t, 3.2), squeeze=False,
                             sharey=True)
    offsets = np.linspace(-0.3, 0.3, len(p_do)) if len(p_do) > 1 else np.zeros(1)
    for t, ax in enumerate(axes[0]):
        outcomes = np.arange(num_o)
        if lower is not None and upper is not None:
            ax.bar(outcomes, upper[t] - lower[t], bottom=lower[t], width=0.85, color="0.9", label="bounds")
        ax.bar(outcomes, p_do[:, t].max(0) - p_do[:, t].min(0), bottom=p_do[:, t].min(0), width=0.7,
               color="0.7", alpha=0.6, label="family range")
        for kind in dict.fromkeys(kinds):
            index = [i for i, k in enumerate(kinds) if k == kind]
            for o in outcomes:
                ax.plot(o + offsets[index], p_do[index, t, o], ".", color=KIND_COLOURS.get(kind, "k"), markersize=4,
                        label=kind if o == 0 else None)
        if truth is not None:
            ax.plot(outcomes, truth[t], "k_", markersize=18, mew=2.5, label="truth")
        ax.set_title(f"do({treatment} = {t})", fontsize=9)
        ax.set_xlabel(outcome)
        ax.set_xticks(outcomes)
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].set_ylabel(f"P({outcome} | do({treatment}))")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=len(labels))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
