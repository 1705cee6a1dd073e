"""Each stage's `mnist_lib` deps in dvc.yaml equal the import closure of the code the stage runs, read with `ast`.

The rule the closure follows (so an edit to any module a stage executes makes that stage stale, and no other):

- A stage runs its command, `mnist SUBCOMMAND ...` (mnist_lib/cli.py, entered through `main`), and for `mnist run`
  also the notebook it names, in a kernel. Both count, as the modules they import, directly or through others.
- Imports followed: `import mnist_lib.x`, `from mnist_lib import x` (when x is a module), `from mnist_lib.x import y`,
  and the relative forms inside the package.
- In library modules and notebooks an import counts wherever it stands, at the top or inside any function: the
  notebook may call any function of a module it imports, and a call graph guessed through Python objects would
  miss some. Over-listing costs a needless rerun; under-listing leaves results stale while `dvc status` is clean.
- cli.py is the exception, because the stage's command names the sub-command and `main` dispatches to exactly one
  handler: its top-level imports count, and the imports inside the functions that run for that sub-command, which
  are `main` and the handler the real parser picks for the stage's arguments, plus every cli.py function they call
  by name, transitively. Other sub-commands' lazy imports never run in the stage and do not count (cli.py itself
  is a dep of every stage, so an edit to any of it still reruns them).
- mnist_lib/__init__.py runs on every import but holds only the version string; it is not listed, and
  `test_package_init_holds_no_code` keeps it that way.
"""

from __future__ import annotations

import ast
import shlex
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from mnist_lib import cli

LIB = REPO / "mnist_lib"
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC["stages"]


def _module_of(node: ast.Import | ast.ImportFrom, package: str, lib: Path) -> set[str]:
    """The mnist_lib modules (file stems) one import statement loads."""
    found = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == package and len(parts) > 1:
                found.add(parts[1])
        return found
    if node.level:  # relative: only meaningful inside the package itself
        base = [package] + ([] if node.module is None else node.module.split("."))
    else:
        base = (node.module or "").split(".")
    if base[0] != package:
        return found
    if len(base) > 1:
        found.add(base[1])
    else:
        found.update(alias.name for alias in node.names if (lib / f"{alias.name}.py").is_file())
    return found


def imports_in(nodes: list[ast.AST], package: str = "mnist_lib", lib: Path = LIB) -> set[str]:
    """Every mnist_lib module imported anywhere inside `nodes` (function bodies included)."""
    found: set[str] = set()
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found |= _module_of(node, package, lib)
    return found


def cli_imports(tree: ast.Module, entries: set[str]) -> set[str]:
    """cli.py's imports that run for one sub-command: top level, then the functions reachable from `entries`."""
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    top = [node for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    reached, todo = set(), list(entries)
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
                todo.append(node.func.id)
    return imports_in(top + [functions[name] for name in reached])


def closure(start: set[str]) -> set[str]:
    """`start` and every mnist_lib module they import, directly or through others."""
    done: set[str] = set()
    todo = list(start)
    while todo:
        module = todo.pop()
        if module in done:
            continue
        done.add(module)
        todo.extend(imports_in([ast.parse((LIB / f"{module}.py").read_text())]) - done)
    return done


def stage_code(stage: dict) -> set[str]:
    """The mnist_lib modules a stage's command runs: cli.py for its sub-command, plus its notebook's imports."""
    words = shlex.split(stage["cmd"])
    assert words[0] == "mnist", f"{stage['cmd']!r}: the closure test knows `mnist` commands only; teach it this one"
    args = cli.parser().parse_args(words[1:])
    start = {"cli"} | cli_imports(ast.parse((LIB / "cli.py").read_text()), {"main", args.handler.__name__})
    if words[1] == "run":
        start |= imports_in([ast.parse((REPO / args.notebook).read_text())])
    return closure(start - {"cli"}) | {"cli"}


def listed(stage: dict) -> set[str]:
    return {Path(dep).stem for dep in stage["deps"] if dep.startswith("mnist_lib/")}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_lists_exactly_the_modules_it_runs(name):
    stage = STAGES[name]
    code, deps = stage_code(stage), listed(stage)
    missing = sorted(f"mnist_lib/{module}.py" for module in code - deps)
    extra = sorted(f"mnist_lib/{module}.py" for module in deps - code)
    assert not missing and not extra, (
        f"dvc.yaml stage {name}: deps must be the import closure of `{shlex.split(stage['cmd'])[:3]}`; "
        f"add {missing or 'nothing'}, remove {extra or 'nothing'}")
    assert all((REPO / dep).is_file() for dep in stage["deps"] if dep.startswith("mnist_lib/"))


def test_package_init_holds_no_code():
    tree = ast.parse((LIB / "__init__.py").read_text())
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds == ["Expr", "Assign"] and tree.body[1].targets[0].id == "__version__", kinds


def test_import_reader_follows_every_form_at_any_depth(tmp_path):
    lib = tmp_path / "pkg"
    lib.mkdir()
    for stem in ("a", "b", "c", "d", "e", "f", "g"):
        (lib / f"{stem}.py").write_text("")
    source = textwrap.dedent("""
        import os
        import pkg.a
        from pkg import b, not_a_module
        from pkg.c import thing
        import pkgextra.h
        def later():
            from pkg import d
            if True:
                import pkg.e as renamed
        class Holder:
            def method(self):
                from .f import other
                from . import g
    """)
    assert imports_in([ast.parse(source)], "pkg", lib) == {"a", "b", "c", "d", "e", "f", "g"}


def test_cli_imports_count_only_for_the_sub_command_that_runs():
    source = textwrap.dedent("""
        import json
        from mnist_lib import paths
        def _one(args):
            from mnist_lib import fetch
            _helper()
        def _helper():
            from mnist_lib import params
        def _two(args):
            from mnist_lib import reports
        def parser():
            return dict(one=_one, two=_two)
        def main():
            parser()
    """)
    tree = ast.parse(source)
    assert cli_imports(tree, {"main", "_one"}) == {"paths", "fetch", "params"}
    assert cli_imports(tree, {"main", "_two"}) == {"paths", "reports"}
