"""Paired comparison of two evaluations of one test split: accuracies with intervals, discordant counts, McNemar."""

from __future__ import annotations

import base64
import html
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from mnist_lib import stats


@dataclass(frozen=True)
class Comparison:
    """Two models' results on the same labeled test images, and whether their difference is more than chance."""

    names: tuple[str, str]
    n_test: int
    correct: tuple[int, int]
    intervals: tuple[tuple[float, float], tuple[float, float]]  # 95% Wilson
    only_first: int  # images the first model gets right and the second wrong
    only_second: int  # and the reverse
    both_wrong: int
    disagree: int  # images the two predict differently (right or wrong)
    p_value: float  # McNemar's exact test on only_first vs only_second

    def as_dict(self) -> dict:
        """Plain types for --json."""
        return {**asdict(self), "accuracies": [count / self.n_test for count in self.correct],
                "ci_method": f"{stats.CI_METHOD}, 95%", "test": "McNemar's exact test (two-sided)"}

    def as_text(self) -> str:
        """The comparison as a few aligned lines."""
        width = max(len(name) for name in self.names)
        lines = [f"{self.n_test:,} test images, the same for both"]
        for name, count, (low, high) in zip(self.names, self.correct, self.intervals):
            lines.append(f"  {name:<{width}}  {count / self.n_test:.2%} correct (95% CI {low:.2%} to {high:.2%}), "
                         f"{self.n_test - count:,} errors")
        lines += [
            f"  right only in {self.names[0]}: {self.only_first:,}; right only in {self.names[1]}: {self.only_second:,}; "
            f"both wrong: {self.both_wrong:,}; predicted differently: {self.disagree:,}",
            f"  McNemar's exact test: p = {self.p_value:.4g} "
            + ("(a difference this large is unlikely by chance alone)" if self.p_value < 0.05
               else "(no evidence that one is more accurate than the other)"),
        ]
        return "\n".join(lines)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """The predictions.csv of an evaluation (its folder or the file itself)."""
    path = Path(path)
    csv = path / "predictions.csv" if path.is_dir() else path
    if not csv.is_file():
        raise FileNotFoundError(f"{path}: no predictions.csv there; give an evaluate output folder (outputs/evaluate) "
                                "or a predictions.csv file")
    table = pd.read_csv(csv, dtype={"label": str, "prediction": str}, keep_default_na=False)
    missing = {"label", "prediction"} - set(table)
    if missing:
        raise ValueError(f"{csv}: no {', '.join(sorted(missing))} column; comparing needs the predictions of a "
                         "labeled test split")
    return table


def check_same_test_set(first: pd.DataFrame, second: pd.DataFrame, names: tuple[str, str]) -> None:
    """Raise unless both tables hold the same test images in the same order, with the same labels."""
    if len(first) != len(second):
        raise ValueError(f"{names[0]} has {len(first):,} test images and {names[1]} has {len(second):,}: "
                         "compare evaluations of the same test split")
    classes = [sorted(column for column in table if column.startswith("p_")) for table in (first, second)]
    if classes[0] != classes[1]:
        raise ValueError(f"{names[0]} predicts the classes {', '.join(c[2:] for c in classes[0])} and {names[1]} "
                         f"{', '.join(c[2:] for c in classes[1])}: compare evaluations of the same test split")
    for column, what in (("source", "image"), ("label", "label")):
        if column in first and column in second:
            differ = (first[column].to_numpy() != second[column].to_numpy()).nonzero()[0]
            if len(differ):
                row = int(differ[0])
                raise ValueError(f"row {row + 1} of the predictions: {names[0]}'s {what} is {first[column].iloc[row]!r}, "
                                 f"{names[1]}'s is {second[column].iloc[row]!r} ({len(differ):,} rows differ): "
                                 "compare evaluations of the same test split")


def compare(first: pd.DataFrame, second: pd.DataFrame, names: tuple[str, str] = ("A", "B")) -> Comparison:
    """Pair the two evaluations image by image (after `check_same_test_set`)."""
    check_same_test_set(first, second, names)
    right = [table["prediction"].to_numpy() == table["label"].to_numpy() for table in (first, second)]
    correct = (int(right[0].sum()), int(right[1].sum()))
    only_first, only_second = int((right[0] & ~right[1]).sum()), int((~right[0] & right[1]).sum())
    return Comparison(
        names=names, n_test=len(first), correct=correct,
        intervals=tuple(stats.wilson_interval(count, len(first)) for count in correct),
        only_first=only_first, only_second=only_second, both_wrong=int((~right[0] & ~right[1]).sum()),
        disagree=int((first["prediction"].to_numpy() != second["prediction"].to_numpy()).sum()),
        p_value=stats.mcnemar_exact(only_first, only_second),
    )


def disagreements(first: pd.DataFrame, second: pd.DataFrame, limit: int = 32) -> pd.DataFrame:
    """The test images the two predict differently, in test order: row index, label, both predictions."""
    differ = (first["prediction"].to_numpy() != second["prediction"].to_numpy()).nonzero()[0][:limit]
    return pd.DataFrame({"index": differ, "label": first["label"].to_numpy()[differ],
                         "first": first["prediction"].to_numpy()[differ], "second": second["prediction"].to_numpy()[differ]})


def to_html(comparison: Comparison, gallery_png: bytes | None = None) -> str:
    """A small self-contained HTML report: the comparison and, when given, the gallery of disagreements."""
    names = " vs ".join(html.escape(name) for name in comparison.names)
    figure = (f'<img alt="test images the two models predict differently" style="max-width:100%" '
              f'src="data:image/png;base64,{base64.b64encode(gallery_png).decode()}">' if gallery_png else "")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{names}</title></head>'
            f'<body style="font-family:sans-serif;max-width:70em;margin:2em auto"><h1>{names}</h1>'
            f"<pre>{html.escape(comparison.as_text())}</pre>{figure}</body></html>\n")
