"""Figures: each function returns a matplotlib Figure (callers show or save it)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from mnist_lib.records import Dataset

sns.set_theme(style="whitegrid", context="notebook")
NO_LABELS = "The test split has no labels, so there is nothing to compare the predictions with."


def _tiles(images: np.ndarray, titles: list[str], columns: int, suptitle: str = "", tile_width: float = 1.35,
           title_lines: int = 1, fontsize: float = 9, colour: str = "black", cmap: str = "gray_r",
           vmax: float = 255.0) -> Figure:
    """`images` (N, height, width, 1 or 3 channels) as a grid of tiles, `columns` to a row, each under its title
    (one line per `title_lines`): one axes and one picture, where an axes per image drew the figure 5-10x slower.
    One channel is shown with `cmap` over 0..`vmax`; three as RGB (over 0..`vmax` too). Gaps are white."""
    count, height, width, channels = images.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    gap = max(1, round(width * 0.12))
    inch = tile_width / (width + gap)  # inches per image pixel
    band = round(title_lines * fontsize * 1.35 / 72 / inch) if any(titles) else 0  # title lines, in pixels
    cell_w, cell_h = width + gap, height + gap + band
    rgb = channels == 3
    canvas = np.full((rows * cell_h, columns * cell_w) + ((3,) if rgb else ()), 1.0 if rgb else np.nan, np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * cell_h + band + gap // 2, column * cell_w + gap // 2
        canvas[top:top + height, left:left + width] = np.nan_to_num(image / vmax, nan=1.0) if rgb else image[..., 0]
    head = 0.45 if suptitle else 0.05  # inches above the tiles
    fig = plt.figure(figsize=(columns * cell_w * inch, rows * cell_h * inch + head))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - head / fig.get_figheight()))
    colours = None if rgb else plt.get_cmap(cmap).with_extremes(bad="white")
    ax.imshow(canvas, cmap=colours, vmin=0.0, vmax=1.0 if rgb else vmax, interpolation="nearest", aspect="auto")
    ax.axis("off")
    for index, title in enumerate(titles):
        row, column = divmod(index, columns)
        ax.text(column * cell_w + cell_w / 2 - 0.5, row * cell_h + band + gap // 2 - 1.5, title, ha="center",
                va="bottom", fontsize=fontsize, color=colour, linespacing=1.1)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11, y=1.0 - 0.08 / fig.get_figheight(), va="top")
    return fig


def _fit_class_ticks(ax: plt.Axes) -> None:
    """Slant class names on the x axis when they would run into each other."""
    labels = [label.get_text() for label in ax.get_xticklabels()]
    if sum(len(label) + 2 for label in labels) * 0.075 > ax.get_window_extent().width / ax.figure.dpi:
        ax.tick_params(axis="x", labelrotation=40)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")


def sample_grid(data: Dataset, rows: int = 4, columns: int = 8, seed: int = 0) -> Figure:
    """A grid of random images titled with their labels."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(data), size=min(rows * columns, len(data)), replace=False)
    titles = [data.class_names[data.labels[index]] for index in picks] if data.labels is not None else []
    return _tiles(data.images[picks], titles, columns, "Sample images with their labels", tile_width=1.4, fontsize=11)


def class_distribution(data: Dataset) -> Figure:
    """Seaborn countplot of the labels."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = pd.Categorical([data.class_names[i] for i in data.labels], categories=list(data.class_names))
    sns.countplot(x=names, ax=ax, color="steelblue")
    ax.set(xlabel="class", ylabel="images", title=f"Class distribution ({len(data):,} images)")
    _fit_class_ticks(ax)
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
    """The mean image of each class, each stretched over its own range of values (a class with no image: blank)."""
    means = np.full((data.num_classes,) + data.image_shape, np.nan, np.float32)
    for index in range(data.num_classes):
        members = data.images[data.labels == index]
        if len(members):
            mean = members.mean(axis=0, dtype=np.float64)
            low, high = (mean.min(), mean.max()) if mean.shape[-1] == 1 else (0.0, 255.0)
            means[index] = (mean - low) / max(high - low, 1e-9)
    return _tiles(means, list(data.class_names), data.num_classes, "Mean image per class", tile_width=1.3,
                  fontsize=12, cmap="viridis", vmax=1.0)


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
    ax.legend(title="split", bbox_to_anchor=(1.01, 1), loc="upper left")
    _fit_class_ticks(ax)
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame) -> Figure:
    """Loss and accuracy per epoch, training vs validation (each ensemble member's, when there is a `member`
    column), and the learning rate when it was logged."""
    panels = ("loss", "accuracy") + (("learning_rate",) if "learning_rate" in history else ())
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8))
    groups = history.groupby("member") if "member" in history else [(None, history)]
    for member, rows in groups:
        epochs = rows["epoch"] + 1
        tag = "" if member is None else f" (member {member})"
        for ax, metric in zip(axes, panels[:2]):
            ax.plot(epochs, rows[metric], marker="o", label=f"training{tag}")
            ax.plot(epochs, rows[f"val_{metric}"], marker="o", label=f"validation{tag}")
        if len(panels) == 3:
            axes[2].plot(epochs, rows["learning_rate"], marker="o", label=f"end of epoch{tag}")
    for ax, metric in zip(axes, ("Loss", "Accuracy", "Learning rate")):
        ax.set(title=metric, xlabel="epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def augmentation_grid(examples: np.ndarray) -> Figure:
    """Rows of (original, augmented copies...) images, as `batches.augmentation_examples` returns them."""
    rows, columns = examples.shape[:2]
    titles = ["original"] + [f"augmented {column}" for column in range(1, columns)]
    return _tiles(examples.reshape((rows * columns,) + examples.shape[2:]), titles, columns, tile_width=1.3)


def notice(title: str, message: str) -> Figure:
    """A small figure that says why there is nothing to plot (in place of a figure that needs labels)."""
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def confusion_heatmap(matrix: np.ndarray | None, class_names: tuple[str, ...], normalize: bool = False) -> Figure:
    """Seaborn heatmap of a confusion matrix (rows: true class), counts or row-normalised; a notice if it is None."""
    kind = "Confusion matrix" + (" (row-normalised)" if normalize else "")
    if matrix is None:
        return notice(kind, NO_LABELS)
    values = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    size = len(class_names)
    # Empty cells stay blank so the few errors of a good model stand out; shares in percent keep them visible.
    labels = np.where(matrix > 0, np.vectorize(lambda v: f"{v:.1%}" if normalize else f"{v:d}")(values), "")
    fig, ax = plt.subplots(figsize=(min(0.7 * size + 2, 24), min(0.55 * size + 1.5, 22)))
    sns.heatmap(values, annot=labels if size <= 20 else False, fmt="", cmap="Blues", cbar=size > 20, ax=ax,
                annot_kws={"fontsize": 9}, xticklabels=class_names, yticklabels=class_names)
    ax.set(xlabel="predicted", ylabel="true", title=f"{kind}, {int(matrix.sum()):,} images")
    fig.tight_layout()
    return fig


def gallery(images: np.ndarray, table: pd.DataFrame, columns: int = 8) -> Figure:
    """The images in `table` (from `evaluation.review_table`), in its order, titled true -> predicted and confidence."""
    labeled = "label" in table
    if table.empty:
        return notice("Misclassified test images", "No test image is misclassified." if labeled else "No test images.")
    longest = max(len(str(name)) for name in table["prediction"].tolist() + table.get("label", pd.Series()).tolist())
    wide = longest > 4  # long class names go on lines of their own so neighbouring titles do not overlap
    arrow = "\n\u2192 " if wide else " \u2192 "
    titles = [(f"{row.label}{arrow}{row.prediction}" if labeled else f"{row.prediction}?") + f"\n{row.confidence:.3f}"
              for row in table.itertuples(index=False)]
    return _tiles(images[table["index"].to_numpy()], titles, columns,
                  "Misclassified test images, most confident errors first (true \u2192 predicted, confidence)" if labeled
                  else "Least confident predictions first (predicted?, confidence)",
                  tile_width=max(1.35, 0.09 * longest + 0.4), title_lines=3 if wide else 2,
                  colour="firebrick" if labeled else "black")


def reliability_diagram(table: pd.DataFrame, ece: float | None) -> Figure:
    """Accuracy against confidence per bin (from `evaluation.calibration_table`), with the diagonal and image counts."""
    if table.empty:
        return notice("Reliability diagram", NO_LABELS)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    widths = table["bin_upper"] - table["bin_lower"]
    centres = table["bin_lower"] + widths / 2
    top.bar(centres, table["accuracy"], width=widths, edgecolor="white", color="steelblue", label="accuracy")
    top.bar(centres, table["confidence"] - table["accuracy"], bottom=table["accuracy"], width=widths,
            color="firebrick", alpha=0.35, edgecolor="firebrick", label="gap to confidence")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
            title="Reliability diagram" + (f" (ECE {ece:.4f})" if ece is not None else ""))
    top.legend(loc="upper left")
    bottom.bar(centres, table["images"], width=widths, color="gray", edgecolor="white")
    bottom.set(xlabel="confidence (top-1 probability)", ylabel="images", yscale="log")
    fig.tight_layout()
    return fig


def confidence_histogram(probabilities: np.ndarray, labels: np.ndarray | None = None, bins: int = 40) -> Figure:
    """Histogram of top-1 confidence (log counts), split into right and wrong predictions when labels are known."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    edges = np.linspace(0, 1, bins + 1)
    confidence = probabilities.max(axis=1)
    if labels is None:
        ax.hist(confidence, bins=edges, color="steelblue", label=f"all ({len(confidence):,})")
    else:
        correct = probabilities.argmax(axis=1) == labels
        ax.hist(confidence[correct], bins=edges, color="steelblue", alpha=0.7, label=f"right ({int(correct.sum()):,})")
        ax.hist(confidence[~correct], bins=edges, color="firebrick", alpha=0.7, label=f"wrong ({int((~correct).sum()):,})")
    ax.set(xlabel="confidence (top-1 probability)", ylabel="images", yscale="log", xlim=(0, 1),
           title="How confident the predictions are")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def disagreement_gallery(images: np.ndarray, table: pd.DataFrame, names: tuple[str, str], columns: int = 8) -> Figure:
    """The test images two models predict differently (from `compare.disagreements`), titled with the true class
    and each model's prediction."""
    if table.empty:
        return notice("Where the two models disagree", "The two models predict every test image the same way.")
    titles = [f"true {row.label}\n{names[0][:8]}: {row.first}  {names[1][:8]}: {row.second}"
              for row in table.itertuples(index=False)]
    return _tiles(images[table["index"].to_numpy()], titles, columns,
                  f"Test images {names[0]} and {names[1]} predict differently (first {len(table)})", tile_width=1.9,
                  title_lines=2, fontsize=8)
