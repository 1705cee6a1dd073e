"""Shared helpers of the benchmark sections: the machine, commands measured for wall time and
peak memory, and writing a section's JSON (`outputs/bench/<section>.json`, rendered by report.py)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mnist_lib import runtime  # TensorFlow is imported only when runtime.environment() is called

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter in every section and its commands


REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "outputs" / "bench"
RUNS_DIR = Path(__file__).resolve().parent / "runs"  # long sections' finished runs, one small JSON each, committed
REQUIRED = ("section", "title", "order", "command", "columns", "rows", "notes", "targets")


def total_ram_gib() -> float | None:
    """Total physical memory in GiB (None where the OS does not say)."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def busy_cpu_seconds(stat: str = "/proc/stat") -> float | None:
    """CPU seconds the whole machine has spent busy since boot, from the first line of `stat` (user, nice, system,
    irq, softirq and steal: time the hypervisor gave to other machines counts, idle and iowait do not); None where
    there is no such file."""
    try:
        fields = [int(value) for value in Path(stat).read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds this process (all its threads) and its finished child processes have used."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class OtherWork:
    """Other work on the machine while a benchmark ran: the busy CPU time of everything but this process (and its
    finished children) since the object was made, in cores on average. A load average cannot tell this: it counts
    the benchmark's own threads, so a benchmark that keeps 2 cores busy reads as a busy 2-core machine."""

    def __init__(self, stat: str = "/proc/stat", clock=time.monotonic, own=own_cpu_seconds):
        self.stat, self.clock, self.own = stat, clock, own
        self.started = (clock(), busy_cpu_seconds(stat), own())

    def cores(self) -> float | None:
        """Cores' worth of other work since the start, on average (None where the machine's CPU time is unknown)."""
        wall, busy, own = self.clock(), busy_cpu_seconds(self.stat), self.own()
        if busy is None or self.started[1] is None or wall <= self.started[0]:
            return None
        return round(max(0.0, (busy - self.started[1]) - (own - self.started[2])) / (wall - self.started[0]), 2)


STARTED = OtherWork()  # when this benchmark process started: a section's other work is measured from here


def environment() -> dict:
    """mnist_lib.runtime.environment() (versions, threads, devices, the CPU) plus the CPU model on its own (the key
    report.py reads), the total RAM, the load average when the section was written, and the other work on the
    machine since this process started (`OtherWork`: other work slows every figure)."""
    settings = runtime.environment()
    return {**settings, "cpu_model": settings["cpu"]["model"], "ram_gib": total_ram_gib(), "platform": platform.platform(),
            "load_average": [round(value, 2) for value in os.getloadavg()],  # 1, 5, 15 min, this process included
            "other_cores": STARTED.cores()}


@dataclass(frozen=True)
class Measured:
    """One command: wall seconds, peak resident memory of its largest process, exit status and output."""

    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


def tool_env() -> dict[str, str]:
    """This environment's scripts (mnist, dvc, pytest) first on PATH, TensorFlow quiet, as `make` does."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


def run_command(args: list[str], cwd: str | Path | None = None, timeout: float | None = None, check: bool = True) -> Measured:
    """Run a command and measure it. The peak RSS is Linux's ru_maxrss from wait4: the largest single process of the
    command's tree (a process counts once its parent has waited for it), not the sum of processes alive together."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, cwd=cwd, env=tool_env(), stdout=out, stderr=err)
        timer = threading.Timer(timeout, process.kill) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            if timer:
                timer.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = Measured(seconds, usage.ru_maxrss / 1024, process.returncode,
                        out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    if check and done.returncode != 0:
        raise RuntimeError(f"{shlex.join(map(str, args))} exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def timed_command(args: list[str], repeats: int = 3, cwd: str | Path | None = None, timeout: float | None = None) -> Measured:
    """The fastest of `repeats` runs of a command (its peak RSS is the largest seen)."""
    runs = [run_command(args, cwd, timeout) for _ in range(repeats)]
    best = min(runs, key=lambda run: run.seconds)
    return Measured(best.seconds, max(run.peak_rss_mib for run in runs), best.returncode, best.stdout, best.stderr)


def command_line(script: str | Path, argv: list[str] | None) -> str:
    """The command that reproduces a section: `python tests/benchmarks/NAME.py` and the arguments it was given."""
    script = Path(script).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    return shlex.join(["python", shown.as_posix(), *(argv if argv is not None else sys.argv[1:])])


def ratio(slow: float | None, fast: float | None) -> str:
    """`slow / fast` as a speed-up such as '4.6x' (empty when either is missing)."""
    if not slow or not fast:
        return ""
    value = slow / fast
    return f"{value:.1f}x" if value >= 1.95 else f"{value:.2f}x"


def write_section(section: dict, out_dir: str | Path | None = None, filename: str | None = None) -> Path:
    """Fill in `measured_at` (UTC) and `environment`, check the schema's keys and write `<section>.json` into
    `out_dir` (default: outputs/bench of this repo); return the path."""
    missing = [key for key in REQUIRED if key not in section]
    if missing:
        raise ValueError(f"a benchmark section needs {', '.join(missing)}")
    widths = {len(row) for row in section["rows"]}
    if widths - {len(section["columns"])}:
        raise ValueError(f"section {section['section']}: rows of {sorted(widths)} cells for {len(section['columns'])} columns")
    section = {**section, "measured_at": section.get("measured_at") or utc_now(),
               "environment": section.get("environment") or environment()}
    out_dir = Path(out_dir) if out_dir else OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (filename or f"{section['section']}.json")
    path.write_text(json.dumps(section, indent=2) + "\n")
    print(f"{section['title']}: -> {path}")
    return path


def run_provenance(other: OtherWork) -> dict:
    """What a kept run records about where and when it ran: versions and threads, the load average at its end (its
    own work included), the other work since `other` started, and when it finished."""
    return {"environment": runtime.environment(), "load_average": os.getloadavg(), "other_cores": other.cores(),
            "measured": utc_now()}


def kept_runs_provenance(runs: list[dict]) -> dict:
    """`measured_at` and `environment` of a section whose rows come from kept runs (`kept_run_options`), which may be
    written long after they ran: when the newest run finished (or its sitting began, for runs that did not record
    the end), its machine and versions, no load average (each run's is in its record), and the most other work any
    run saw (`OtherWork`; None when no run measured it)."""
    if not runs:
        return {}
    newest = max(runs, key=lambda run: run.get("measured") or run.get("sitting") or "")
    others = [run["other_cores"] for run in runs if run.get("other_cores") is not None]
    settings = newest.get("environment") or {}
    cpu = settings.get("cpu") or {}
    return {"measured_at": newest.get("measured") or newest.get("sitting"),
            "environment": {**environment(), **settings, **({"cpu_model": cpu["model"]} if cpu.get("model") else {}),
                            "load_average": None, "other_cores": max(others) if others else None}}


def utc_now() -> str:
    """The current time as ISO 8601 UTC with a Z, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def evict(paths: list[Path]) -> bool:
    """Ask the kernel to drop these files from the page cache (posix_fadvise DONTNEED; no root needed), so the next
    read comes from the disk; False where the OS cannot."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def kept_run_options(parser, runs: str, what: str = "runs' records") -> None:
    """The options of a section that keeps its finished runs (RUNS_DIR/`runs`, committed) and resumes from them:
    --seeds, --out-dir, --runs-dir and --table-only."""
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where the section's JSON (and plot) go")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR / runs,
                        help=f"finished {what} (committed: a later session resumes from them)")
    parser.add_argument("--table-only", action="store_true", help="train nothing: write the table of the finished runs")


def changed_parameters(kept: dict, now: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The parameters in which a kept run's configuration differs from its recipe's now (`now`: the parameters with
    an effect, `TrainConfig.effective`; those the kept run's version did not have yet, and `ignore`, are not
    compared): such a run is trained again."""
    return sorted(key for key, value in kept.items() if key not in ignore and key in now and now[key] != value)


def accuracy(model, data) -> float:
    """Share of `data` (a Dataset) whose most probable class is its label."""
    from mnist_lib import evaluation  # TensorFlow: only for the benchmarks that train

    return float((evaluation.predict_proba(model, data.images).argmax(axis=1) == data.labels).mean())


def tta_figures(model, val, test) -> dict:
    """Validation and test accuracy of one trained network on its own (`*_without`) and averaged over its input's
    one-pixel shifts (what `tta: true` saves): training does not depend on `tta`, so one run gives both."""
    from mnist_lib import models

    shifted = models.combine([model], val.image_shape, tta=True)
    return {"val_accuracy": accuracy(shifted, val), "test_accuracy": accuracy(shifted, test),
            "val_accuracy_without": accuracy(model, val), "test_accuracy_without": accuracy(model, test)}


def as_configured(run: dict, tta: bool) -> dict | None:
    """`run` as its recipe stands now, whose `tta` may differ from the run's: its test accuracy and final validation
    accuracy taken from the run's `with_tta` figures (`tta_figures`; the same network either way); None when the
    run lacks the figures that setting needs (it is trained again)."""
    if run["config"].get("tta", False) == tta:
        return run
    figures = run.get("with_tta", {})
    test, val = ("test_accuracy", "val_accuracy") if tta else ("test_accuracy_without", "val_accuracy_without")
    if test not in figures:
        return None
    return {**run, "test_accuracy": figures[test], "final_val_accuracy": figures[val]}


def stale_parameters(run: dict, config) -> list[str]:
    """Why a kept run must be trained again for its recipe's configuration now (`config`, a TrainConfig): the
    parameters with an effect that differ (`changed_parameters`; `tta` aside, training does not depend on it),
    `max_images_seen` when it changed the epochs the run's `train_images` train for (or the run lacks that count),
    and `tta` when the run lacks the figures `as_configured` needs for the recipe's setting."""
    from mnist_lib import recipe  # TensorFlow: only for the benchmarks that train

    stale = changed_parameters(run["config"], config.effective(), ignore=("tta", "max_images_seen"))
    kept = run["config"].get("max_images_seen", 0)  # a run kept from before it existed trained every epoch
    images = run.get("train_images")
    if kept != config.max_images_seen and (images is None or recipe.epochs_for(config.epochs, kept, images)
                                           != recipe.epochs_for(config.epochs, config.max_images_seen, images)):
        stale.append("max_images_seen")
    return stale + (["tta"] if as_configured(run, config.tta) is None else [])


def mean_sd(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    """'mean +- sd' of `values` times `scale` (sd over seeds, ddof 1; '-' for one value)."""
    import numpy as np

    values = np.asarray(values) * scale
    sd = f"{values.std(ddof=1):.{digits}f}" if len(values) > 1 else "-"
    return f"{values.mean():.{digits}f} +- {sd}"


def tta_note(label: str, runs: list[dict]) -> str | None:
    """One line: what averaging over one-pixel shifts does to the same networks' validation and test accuracy
    (`tta_figures` of each run that has them), or None when no run has them."""
    figures = [run["with_tta"] for run in runs if "test_accuracy_without" in run.get("with_tta", {})]
    if not figures:
        return None
    return (f"{label}, the same networks averaged over one-pixel shifts (tta: true): val "
            f"{mean_sd([f['val_accuracy_without'] for f in figures])} -> {mean_sd([f['val_accuracy'] for f in figures])}, "
            f"test {mean_sd([f['test_accuracy_without'] for f in figures])} -> "
            f"{mean_sd([f['test_accuracy'] for f in figures])} ({len(figures)} seeds)")


def train_config(files: list[str], **overrides):
    """The training configuration of a recipe: params/train.yaml, then the profile `files` over it, then
    `overrides` (run from the project root)."""
    from mnist_lib import params, recipe  # TensorFlow: only for the benchmarks that train

    values, _ = params.load_files(["params/train.yaml"])
    profile, _ = params.load_files(files)  # each file on its own: load_files refuses a parameter set twice
    return recipe.TrainConfig(**{**values, **profile, **overrides})


INKS = {"red": (220, 40, 40), "green": (30, 170, 60), "blue": (40, 70, 220), "orange": (240, 150, 20),
        "purple": (150, 50, 190), "teal": (20, 160, 170)}


def write_colour_digit_folder(root: str | Path, images, labels, classes: int = 15, per_class: int = 150,
                              seed: int = 0) -> Path:
    """A many-class RGB image folder made from gray digit images: class k is digit k % 5 in ink colour k // 5
    (`0-red`, ..., `4-green`, ...), so both shape and colour matter. Every picture is a different digit image,
    resized to its own width and height (20 to 64 pixels), inked in its class colour with some jitter on a random
    light background, and saved as RGB PNG, RGBA PNG or JPG in turn: ROOT/train/<class>/<n>.<suffix>."""
    import numpy as np
    from PIL import Image

    if classes > 5 * len(INKS):
        raise ValueError(f"at most {5 * len(INKS)} classes (5 digits x {len(INKS)} inks)")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    pools = {digit: list(rng.permutation(np.flatnonzero(labels == digit))) for digit in range(5)}
    inks = list(INKS.items())
    for label in range(classes):
        digit, (ink_name, ink) = label % 5, inks[label // 5]
        folder = Path(root) / "train" / f"{digit}-{ink_name}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            if not pools[digit]:
                raise ValueError(f"not enough images of digit {digit} for {classes} classes of {per_class}")
            gray = np.asarray(images[pools[digit].pop()], np.float64).reshape(images.shape[1], images.shape[2]) / 255
            width, height = (int(v) for v in rng.integers(20, 65, size=2))
            alpha = np.asarray(Image.fromarray((gray * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)) / 255
            background = rng.integers(150, 256, size=3) + rng.normal(0, 8, size=(height, width, 3))
            colour = np.clip(np.array(ink) + rng.normal(0, 20, size=3), 0, 255)
            pixels = background * (1 - alpha[..., None]) + colour * alpha[..., None]
            picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
            kind = index % 3
            if kind == 1:
                picture.putalpha(255)
            picture.save(folder / f"{index}.{'jpg' if kind == 2 else 'png'}", **({"quality": 90} if kind == 2 else {}))
    return Path(root)
