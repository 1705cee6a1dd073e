"""Render BENCHMARKS.md from every section's JSON in outputs/bench/ (written by the bench_*.py scripts).

    python tests/benchmarks/report.py [--bench-dir outputs/bench] [--output BENCHMARKS.md] [--expect "data pipeline"]

Sections without a JSON are listed as not measured yet, with the command that measures them: every bench_*.py
script here, every name given to --expect (what `make bench` was asked to run), and the suite (`make bench-suite`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import benchlib

HERE = Path(__file__).resolve().parent
KNOWN_ORDER = {"data": 10, "training": 20, "time_to_accuracy": 25, "accuracy": 30, "ensemble": 31, "faster_default": 32, "data_efficiency": 35, "pipeline": 40, "inference": 60, "suite": 90}
COMMANDS = {"suite": "make bench-suite", "accuracy": "make bench SECTIONS=accuracy (hours)",
            "data_efficiency": "make bench SECTIONS=data_efficiency (hours)",
            "ensemble": "make bench SECTIONS=ensemble (hours; resumable)"}
BUSY_CORES = 0.25  # other work above this many cores on average marks a section as measured on a busy machine
RULE = ("Every ratio compares two things measured in the same run on the same machine; absolute times are for "
        "reference only: they depend on the machine and on whatever else it was doing (each section says how much "
        "other work the machine had).")


def number(value) -> str:
    """A readable figure: thousands separators, about three significant digits for fractions, '' for None."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).replace("|", "\\|")
    if isinstance(value, int):
        return f"{value:,}"
    size = abs(value)
    if size >= 100 or value == 0:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(columns: list[str], rows: list[list]) -> list[str]:
    """A markdown table; columns whose cells are all numbers (or empty) are right-aligned."""
    numeric = [all(row[i] is None or (isinstance(row[i], (int, float)) and not isinstance(row[i], bool)) for row in rows)
               for i in range(len(columns))]
    lines = ["| " + " | ".join(str(c).replace("|", "\\|") for c in columns) + " |",
             "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    lines += ["| " + " | ".join(number(cell) for cell in row) + " |" for row in rows]
    return lines


def load_sections(bench_dir: Path) -> list[dict]:
    """Every section JSON in `bench_dir` (files that are not sections are skipped with a message), by order."""
    sections = []
    for path in sorted(bench_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            print(f"report: skipping {path}: {err}", file=sys.stderr)
            continue
        if isinstance(data, dict) and all(key in data for key in benchlib.REQUIRED):
            sections.append(data)
    return sorted(sections, key=lambda s: (s["order"], s["section"]))


def expected_sections(extra: list[str]) -> dict[str, str]:
    """Section name -> the command that measures it: the bench_*.py scripts here, the names asked for, the suite."""
    names = {path.stem.removeprefix("bench_") for path in HERE.glob("bench_*.py")} | set(extra) | {"suite"}
    return {name: COMMANDS.get(name, f"make bench SECTIONS={name}") for name in names}


def machine(env: dict) -> str:
    """One line describing the machine and the versions from a section's environment."""
    ram = f"{env['ram_gib']:g} GiB RAM" if env.get("ram_gib") else "RAM unknown"
    return (f"{env.get('cpu_model', 'unknown CPU')}, {env.get('cpu_count', '?')} cores, {ram}; Python {env.get('python')}, "
            f"TensorFlow {env.get('tensorflow')}, Keras {env.get('keras')}, NumPy {env.get('numpy')}; "
            f"devices: {', '.join(env.get('devices') or ['?'])}")


def previous(text: str) -> tuple[dict[str, list[str]], list[list[str]], str]:
    """An earlier BENCHMARKS.md taken apart: each section's block (title -> its lines, placeholders left out), the
    rows of its targets table (cells as written), and its machine line."""
    blocks: dict[str, list[str]] = {}
    rows, machine_line, current = [], "", None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            blocks[current] = [line]
        elif current == "Targets":
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if len(cells) == 4 and cells[0] not in ("section", "---"):
                rows.append(cells)
        elif current is not None:
            blocks[current].append(line)
        elif line.startswith("**Machine:**"):
            machine_line = line.removeprefix("**Machine:**").strip()
    blocks.pop("Targets", None)
    kept = {title: lines for title, lines in blocks.items() if not any(l.startswith("Not measured yet") for l in lines)}
    return {title: lines[:-1] if lines and not lines[-1] else lines for title, lines in kept.items()}, rows, machine_line


def section_name(block: list[str]) -> str:
    """The section a kept block was measured by, from its command (`python tests/benchmarks/bench_NAME.py`)."""
    found = re.search(r"^`(?:python tests/benchmarks/bench_(\w+)\.py|make bench-(suite))", "\n".join(block), re.MULTILINE)
    return (found.group(1) or found.group(2)) if found else block[0][3:]


KEPT = "Kept from an earlier rendering (no JSON for it in outputs/bench when this file was written); measured on: "


def kept_block(block: list[str], machine_line: str) -> list[str]:
    """A section block carried over from the file as it was, saying so once (with the machine it came from)."""
    if any(line.startswith(KEPT) for line in block):
        return block
    return block[:2] + [f"{KEPT}{machine_line.rstrip('.') or 'a machine not recorded'}; with the code of that time.", ""] + block[2:]


def render(sections: list[dict], expected: dict[str, str], earlier: str = "") -> str:
    """The whole BENCHMARKS.md. Sections measured before (in `earlier`, the file as it was) that have no JSON here
    keep their block and their targets, marked as kept: a session measures one section without losing the rest."""
    lines = ["# Benchmarks", "",
             "Measured by `make bench` (or one section: `make bench SECTIONS=data`); this file is rendered by "
             "`python tests/benchmarks/report.py` from `outputs/bench/*.json`. Do not edit it by hand: rerun the "
             "section. What each figure is and how it was taken is written under its table.", "", RULE, ""]
    machines = {machine(s["environment"]) for s in sections}
    newest = max(sections, key=lambda s: s["measured_at"], default=None)
    if newest:
        lines += [f"**Machine:** {machine(newest['environment'])}.", ""]
        if len(machines) > 1:
            lines += ["Not every section was measured on this machine or with these versions: each section names its own "
                      "where it differs.", ""]
    kept, kept_rows, kept_machine = previous(earlier)
    for section in sections:
        kept.pop(section["title"], None)  # measured now
    lines += ["## Targets", ""]
    targets = [[s["title"], t["target"], t["measured"], "met" if t["met"] else "**missed**"]
               for s in sections for t in s["targets"]]
    targets += [row for row in kept_rows if row[0] in kept]
    lines += table(["section", "target", "measured", "met?"], targets) if targets else ["No section with targets measured yet."]
    measured = {s["section"] for s in sections} | {section_name(block) for block in kept.values()}
    missing = sorted(set(expected) - measured, key=lambda name: (KNOWN_ORDER.get(name, 50), name))
    blocks = [(s["order"], s["section"], section_block(s, newest, len(machines) > 1)) for s in sections]
    blocks += [(KNOWN_ORDER.get(section_name(block), 50), section_name(block), kept_block(block, kept_machine))
               for block in kept.values()]
    blocks += [(KNOWN_ORDER.get(name, 50), name, [f"## {name}", "", f"Not measured yet: run `{expected[name]}`."])
               for name in missing]
    for _, _, block in sorted(blocks, key=lambda b: (b[0], b[1])):
        lines += [""] + block
    return "\n".join(lines) + "\n"


def section_block(section: dict, newest: dict | None, mixed: bool) -> list[str]:
    """One section: title, command and date, its table, its notes."""
    env = section["environment"]
    when = section["measured_at"].replace("T", " ").removesuffix("Z") + " UTC"
    load, others = env.get("load_average"), env.get("other_cores")
    context = ([f"load average {', '.join(map(str, load))}"] if load else []) + \
        ([f"other work {others:.2f} cores"] if others is not None else [])
    lines = [f"## {section['title']}", "",
             f"`{section['command']}`, measured {when}" + (f" ({'; '.join(context)})" if context else "") + ".", ""]
    if others is not None and others > BUSY_CORES:
        lines += [f"**The machine was busy:** other processes took {others:.2f} of its {env.get('cpu_count', '?')} cores "
                  "on average while this ran (the machine's busy CPU time less the benchmark's own, from /proc/stat), so "
                  "its times are slower than on a quiet machine; rerun on an idle machine for clean figures.", ""]
    elif others is None and load and env.get("cpu_count") and max(load) > env["cpu_count"]:
        lines += [f"**The machine may have been busy:** a load average above its {env['cpu_count']} cores (the "
                  "benchmark's own threads count in it, and this section did not measure the other work). Parallel code "
                  "(worker processes, threaded parsers, BLAS) suffers most, so ratios against single-threaded naive code "
                  "are understated; rerun on an idle machine for clean figures.", ""]
    if mixed and newest is not None and machine(env) != machine(newest["environment"]):
        lines += [f"Machine: {machine(env)}.", ""]
    lines += table(section["columns"], section["rows"])
    lines += [""] + section["chart"] if section.get("chart") else []  # optional: Markdown lines (a Mermaid chart)
    notes = section.get("notes") or []
    return lines + ([""] + [f"- {note}" for note in notes] if notes else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, default=benchlib.OUT_DIR, help="the sections' JSON files")
    parser.add_argument("--output", type=Path, default=benchlib.REPO / "BENCHMARKS.md")
    parser.add_argument("--expect", default="", help="section names that should be there (space-separated)")
    args = parser.parse_args(argv)
    sections = load_sections(args.bench_dir)
    earlier = args.output.read_text() if args.output.is_file() else ""
    args.output.write_text(render(sections, expected_sections(args.expect.split()), earlier))
    print(f"{len(sections)} section(s) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
