"""The summary of a finished sweep: one table of every run's status, swept values and scalar results, the spread
over seeds, the best runs' learning curves, and the best configuration paired with the runner-up."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from mnist_lib import executors, reports
from mnist_lib.params import ParameterError
from mnist_lib.sweeps import Sweep

SEED_METRICS = ("train.best_val_accuracy", "evaluate.test_accuracy")  # summarized over seeds in by_configuration.csv


def _key_figures(path: Path, prefix: str) -> dict[str, Any]:
    """A stage's key figures (the report index's rule, `reports.key_figures`), named `prefix.figure`."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {f"{prefix}.{key}": value for key, value in reports.key_figures(data).items()}


def summarize(sweep: Sweep, out_dir: Path) -> pd.DataFrame:
    """One row per run: id, status, seconds, error, the values it used for every swept parameter, and every scalar of
    each stage's JSON results (e.g. `train.best_val_accuracy`, `evaluate.test_accuracy`); written to summary.csv.
    When seeds were swept, by_configuration.csv holds each other combination's mean, sd and count over seeds."""
    rows = []
    for run in sweep.runs:
        folder = out_dir / run.run_id
        record = executors.status(folder)
        used = {name: next((values[name] for values in run.values if name in values), None) for name in sweep.swept_names}
        row = {"run_id": run.run_id, "status": record.get("status", "pending"), "seconds": record.get("seconds"),
               "error": record.get("error", ""), **used}
        for stage in sorted(p for p in folder.glob("*/") if p.name != "notebooks"):
            for result in reports.KEY_FILES:
                row.update(_key_figures(stage / result, stage.name))
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "summary.csv", index=False)
    by_configuration = seed_statistics(table, sweep.swept_names, [name for name in SEED_METRICS if name in table])
    if not by_configuration.empty:  # mean, sd and count of seeds per combination of the other swept values
        by_configuration.columns = [f"{metric} {stat}" for metric, stat in by_configuration.columns]
        by_configuration.to_csv(out_dir / "by_configuration.csv")
    (out_dir / "sweep.json").write_text(json.dumps({"name": sweep.name, "file": str(sweep.path),
                                                    "swept": sweep.swept_names, "runs": len(sweep.runs)}, indent=2) + "\n")
    return table


def read_summary(sweep_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """The summary table of a finished sweep and its description (name, swept parameter names)."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "summary.csv").is_file():
        raise FileNotFoundError(f"{sweep_dir / 'summary.csv'} does not exist: run `mnist sweep params/sweeps/NAME.yaml` first")
    return pd.read_csv(sweep_dir / "summary.csv", keep_default_na=False, na_values=[""]), json.loads(
        (sweep_dir / "sweep.json").read_text())


def histories(sweep_dir: str | Path, table: pd.DataFrame, rank_by: str, top: int) -> dict[str, pd.DataFrame]:
    """Training histories (history.csv) of the `top` finished runs by `rank_by` (a validation figure, never test)."""
    if rank_by not in table:
        raise ParameterError(f"rank_by {rank_by!r} is not a column of the summary; columns: {', '.join(table.columns)}")
    best = table[table["status"] == "done"].sort_values(rank_by, ascending=False).head(top)
    return {run: pd.read_csv(Path(sweep_dir) / run / "train" / "history.csv") for run in best["run_id"]
            if (Path(sweep_dir) / run / "train" / "history.csv").is_file()}


def seed_statistics(table: pd.DataFrame, swept: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean and standard deviation of `metrics` over seeds, per combination of the other swept parameters
    (empty when seed was not swept)."""
    done = table[table["status"] == "done"]
    if "seed" not in swept or done.empty:
        return pd.DataFrame()
    others = [name for name in swept if name != "seed"]
    present = [metric for metric in metrics if metric in done]
    grouped = done.groupby(others, dropna=False)[present] if others else done.assign(all="all").groupby("all")[present]
    stats = grouped.agg(["mean", "std", "count"])
    return stats.sort_values((present[0], "mean"), ascending=False) if present else stats


def sortable_html(table: pd.DataFrame) -> str:
    """The table as HTML whose column headers sort the rows when clicked (a few lines of inline script)."""
    table_id = "sweep-" + hashlib.sha256(table.to_csv().encode()).hexdigest()[:8]
    html = table.to_html(index=False, table_id=table_id, na_rep="", float_format=lambda value: f"{value:.4g}")
    script = (
        "<script>(function(){const t=document.getElementById('%s');t.querySelectorAll('th').forEach((th,i)=>{"
        "th.style.cursor='pointer';th.title='click to sort';th.onclick=()=>{const b=t.tBodies[0];"
        "const rows=[...b.rows];const up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';"
        "const key=r=>{const v=r.cells[i].innerText;const n=parseFloat(v);return isNaN(n)?v:n;};"
        "rows.sort((a,c)=>{const x=key(a),y=key(c);return (x>y?1:x<y?-1:0)*(up?1:-1);});"
        "rows.forEach(r=>b.appendChild(r));};});})();</script>" % table_id
    )
    return html + script


def best_against_runner_up(sweep_dir: str | Path, table: pd.DataFrame, swept: list[str], rank_by: str) -> pd.DataFrame:
    """The best configuration (by its mean `rank_by` over seeds, a validation figure) against the runner-up, paired
    on the test images with McNemar's exact test, one row per seed both ran (one row when seeds were not swept)."""
    from mnist_lib import compare

    done = table[table["status"] == "done"]
    others = [name for name in swept if name != "seed"]
    if rank_by not in done or not others:
        return pd.DataFrame()
    configuration = done[others].astype(str).agg(", ".join, axis=1)  # one key per combination of the other values
    ranked = done.groupby(configuration)[rank_by].mean().sort_values(ascending=False, kind="stable")
    if len(ranked) < 2:
        return pd.DataFrame()
    picks = [done[configuration == key] for key in ranked.index[:2]]
    seeds = sorted(set(picks[0]["seed"]) & set(picks[1]["seed"])) if "seed" in swept else [None]
    rows = []
    for seed in seeds:
        runs = [pick if seed is None else pick[pick["seed"] == seed] for pick in picks]
        ids = [run["run_id"].iloc[0] for run in runs]
        result = compare.compare(*(compare.read_predictions(Path(sweep_dir) / run_id / "evaluate") for run_id in ids),
                                 names=tuple(ids))
        rows.append({"seed": seed, "best": ids[0], "runner_up": ids[1],
                     "best_test_accuracy": result.correct[0] / result.n_test,
                     "runner_up_test_accuracy": result.correct[1] / result.n_test,
                     "right_only_in_best": result.only_first, "right_only_in_runner_up": result.only_second,
                     "mcnemar_p": result.p_value})
    return pd.DataFrame(rows)
