"""quantjobs' modules import one another one way: no loop, even through late imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for path in (ROOT / "quantjobs").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        # Every import, at the top or inside a function: a late import is still a
        # dependency a reader has to follow.
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [
                    node.module,
                    *(f"{node.module}.{a.name}" for a in node.names),
                ]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name].update(
                t for t in targets if t in modules and t != name and t != "quantjobs"
            )
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append(path[path.index(node) :] + [node])
            return
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_quantjobs_modules_import_each_other_without_a_loop() -> None:
    graph = _graph()
    assert "quantjobs.runner" in graph["quantjobs.services"]
    assert _cycles(graph) == []


def test_the_runner_decides_and_nothing_below_it_calls_back_up() -> None:
    graph = _graph()
    assert "quantjobs.services" not in graph["quantjobs.runner"]
    assert "quantjobs.tasks" not in graph["quantjobs.broker"]
    for module, imports in graph.items():
        if module != "quantjobs.services":
            assert "quantjobs.tasks" not in imports, module


def test_the_cycle_finder_finds_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
