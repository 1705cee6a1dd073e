"""Figures: each function returns a matplotlib Figure (callers show or save it)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from mnist_lib.datasets import Dataset

sns.set_theme(style="whitegrid", context="notebook")


def _gray(image: np.ndarray) -> np.ndarray:
    return image[..., 0] if image.shape[-1] == 1 else image


def sample_grid(data: Dataset, rows: int = 4, columns: int = 8, seed: int = 0) -> Figure:
    """A grid of random images titled with their labels."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(data), size=min(rows * columns, len(data)), replace=False)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows))
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, picks):
        ax.imshow(_gray(data.images[index]), cmap="gray_r")
        if data.labels is not None:
            ax.set_title(data.class_names[data.labels[index]], fontsize=11)
    fig.suptitle("Sample images with their labels")
    fig.tight_layout()
    return fig


def class_distribution(data: Dataset) -> Figure:
    """Seaborn countplot of the labels."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = pd.Categorical([data.class_names[i] for i in data.labels], categories=list(data.class_names))
    sns.countplot(x=names, ax=ax, color="steelblue")
    ax.set(xlabel="class", ylabel="images", title=f"Class distribution ({len(data):,} images)")
    fig.tight_layout()
    return fig


def pixel_histogram(data: Dataset, sample: int = 2000, seed: int = 0) -> Figure:
    """Distribution of pixel intensities (all pixels, and the non-zero ones)."""
    rng = np.random.default_rng(seed)
    pixels = data.images[rng.choice(len(data), size=min(sample, len(data)), replace=False)].ravel()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].hist(pixels, bins=64, color="steelblue")
    axes[0].set(title="All pixels", xlabel="intensity (0-255)", ylabel="count", yscale="log")
    axes[1].hist(pixels[pixels > 0], bins=64, color="darkorange")
    axes[1].set(title=f"Non-zero pixels ({(pixels > 0).mean():.0%})", xlabel="intensity (0-255)")
    fig.tight_layout()
    return fig


def mean_images(data: Dataset) -> Figure:
    """The mean image of each class."""
    fig, axes = plt.subplots(1, data.num_classes, figsize=(1.3 * data.num_classes, 1.8))
    for index, ax in enumerate(np.atleast_1d(axes)):
        members = data.images[data.labels == index]
        if len(members):
            ax.imshow(_gray(members.mean(axis=0)).astype(np.float32) / 255, cmap="viridis")
        ax.set_title(data.class_names[index])
        ax.axis("off")
    fig.suptitle("Mean image per class")
    fig.tight_layout()
    return fig


def projection(points: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], title: str) -> Figure:
    """Scatter of 2-D points coloured by class."""
    fig, ax = plt.subplots(figsize=(7, 6))
    names = [class_names[i] for i in labels]
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=names, hue_order=list(class_names), s=6, linewidth=0,
                    palette="tab10" if len(class_names) <= 10 else "tab20", ax=ax)
    ax.set(title=title, xlabel="component 1", ylabel="component 2")
    ax.legend(title="class", markerscale=3, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def split_counts(counts: pd.DataFrame) -> Figure:
    """Grouped bars of images per class in each split (a table from `split.class_counts`)."""
    long = counts.reset_index().melt(id_vars="class", var_name="split", value_name="images")
    fig, ax = plt.subplots(figsize=(9, 3.5))
    sns.barplot(data=long, x="class", y="images", hue="split", ax=ax)
    ax.set(title="Images per class in each split")
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame) -> Figure:
    """Loss and accuracy per epoch, training vs validation."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    epochs = history["epoch"] + 1
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[metric], marker="o", label="training")
        ax.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        ax.set(title=metric.capitalize(), xlabel="epoch")
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_heatmap(matrix: np.ndarray, class_names: tuple[str, ...], normalize: bool = False) -> Figure:
    """Seaborn heatmap of a confusion matrix (rows: true class), counts or row-normalised."""
    values = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    fig, ax = plt.subplots(figsize=(0.6 * len(class_names) + 2, 0.55 * len(class_names) + 1.5))
    sns.heatmap(values, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=class_names, yticklabels=class_names)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix" + (" (row-normalised)" if normalize else ""))
    fig.tight_layout()
    return fig


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
        ax.get_legend().remove()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles[: len(metrics)], labels[: len(metrics)], loc="lower center", ncol=len(metrics), frameon=False)
    fig.suptitle("Finished runs by swept parameter (dash: mean)")
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
