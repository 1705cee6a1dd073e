"""Figures of a sweep: each metric against the swept values, the best runs' curves, accuracy against training images."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from mnist_lib.plots import notice


def metric_vs_parameters(table: pd.DataFrame, swept: list[str], metrics: list[str]) -> Figure:
    """One panel per swept parameter: each metric of the finished runs against that parameter's values."""
    done = table[table["status"] == "done"]
    metrics = [metric for metric in metrics if metric in done]
    fig, axes = plt.subplots(1, max(1, len(swept)), figsize=(4.5 * max(1, len(swept)), 3.6), squeeze=False)
    for ax, name in zip(axes.flat, swept):
        long = done.melt(id_vars=[name], value_vars=metrics, var_name="metric", value_name="value")
        long[name] = long[name].astype(str)
        sns.stripplot(data=long, x=name, y="value", hue="metric", dodge=True, size=7, ax=ax)
        sns.pointplot(data=long, x=name, y="value", hue="metric", dodge=0.4, errorbar=None, markers="_",
                      linestyles="none", ax=ax, legend=False)
        ax.set(title=f"by {name}", ylabel="")
        if ax.get_legend():
            ax.get_legend().remove()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles[: len(metrics)], labels[: len(metrics)], loc="lower center", ncol=len(metrics), frameon=False)
    fig.suptitle(f"Finished runs by swept parameter (dash: mean), {len(done)} of {len(table)} runs")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def overlaid_curves(histories: dict[str, pd.DataFrame]) -> Figure:
    """Validation loss and accuracy per epoch of several runs on shared axes."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, history in histories.items():
        for ax, metric in zip(axes, ("val_loss", "val_accuracy")):
            ax.plot(history["epoch"] + 1, history[metric], marker="o", label=name)
    for ax, metric in zip(axes, ("Validation loss", "Validation accuracy")):
        ax.set(title=metric, xlabel="epoch")
    if histories:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


SIZE_COLUMN = "split.train_images"  # the training images each run used, from the split stage's summary.json


def accuracy_by_train_size(table: pd.DataFrame, metrics: list[str], swept: list[str]) -> Figure:
    """Learning curve over data: each metric's mean +- sd over seeds against the training images (log axis), one
    line per combination of the swept parameters other than seed and train_size (a sweep file such as
    params/sweeps/data_efficiency.yaml); a notice when the runs did not vary the training images."""
    done = table[table["status"] == "done"] if "status" in table else table
    metrics = [metric for metric in metrics if metric in done]
    if SIZE_COLUMN not in done or done[SIZE_COLUMN].nunique() < 2 or not metrics:
        return notice("Accuracy against training images", "The runs did not vary the training images: sweep "
                      "train_size with the split notebook in the chain (params/sweeps/data_efficiency.yaml).")
    groups = [name for name in swept if name not in ("seed", "train_size") and name in done]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, rows in done.groupby(groups) if groups else [((), done)]:
        label = ", ".join(f"{name}={value}" for name, value in zip(groups, key if isinstance(key, tuple) else (key,)))
        for metric in metrics:
            stats = rows.groupby(SIZE_COLUMN)[metric].agg(["mean", "std", "count"]).sort_index()
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                        label=f"{label}: {metric}" if label else metric)
    ax.set(xscale="log", xlabel="training images (log scale)", ylabel="accuracy",
           title="Accuracy against training images (mean +- sd over seeds)")
    sizes = sorted(done[SIZE_COLUMN].unique())
    ax.set_xticks(sizes, [f"{size:,.0f}" for size in sizes], minor=False)
    ax.set_xticks([], minor=True)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
