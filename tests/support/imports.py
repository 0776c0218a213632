"""The import graph between a package's units (its top-level modules and subpackages), read from
the source with ast: every import counts, module-level or inside a function, except those under
`if TYPE_CHECKING:` (they never run). A function-level import that dodges a cycle is a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

Edges = dict[str, dict[str, set[str]]]  # unit -> imported unit -> the modules that import it


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterable[tuple[str, tuple[str, ...]]]:
    """(module, names) for every import anywhere in the tree: `import x.y` as ("x.y", ()),
    `from x import a, b` as ("x", ("a", "b")); relative imports stay inside a unit."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, tuple(alias.name for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def _units(root: Path, package: str) -> set[str]:
    found = set()
    for path in (root / package).iterdir():
        if path.name.startswith((".", "__")):
            continue
        if (path.is_dir() and (path / "__init__.py").exists()) or path.suffix == ".py":
            found.add(path.stem)
    return found


def import_graph(root: Path, package: str, *, whole: Sequence[str] = ()) -> Edges:
    """Edges between the units of `package` (its modules and subpackages; the package itself,
    its __init__, is the unit named like it). Packages in `whole` (e.g. jobs) count as one unit
    each, importers only: nothing in `package` may import them."""
    units = _units(root, package)

    def unit(module: str) -> str | None:
        parts = module.split(".")
        if parts[0] in whole:
            return parts[0]
        if parts[0] != package:
            return None
        return parts[1] if len(parts) > 1 and parts[1] in units else package

    edges: Edges = defaultdict(lambda: defaultdict(set))
    for top in (package, *whole):
        for path in sorted((root / top).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            source = unit(module)
            for name, names in _imports(ast.parse(path.read_text(), str(path))):
                # `from api import idempotency` imports the unit idempotency, not the app factory.
                targets = {unit(f"{name}.{n}") for n in names} if name == package else {unit(name)}
                for target in targets:
                    if source is not None and target is not None and target != source:
                        edges[source][target].add(module)
    return {unit: dict(targets) for unit, targets in edges.items()}


def cycles(edges: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(edges) | {t for targets in edges.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


def against_order(edges: Edges, order: Sequence[Sequence[str]]) -> list[str]:
    """Imports that go up (or sideways) in `order`, a list of layers, lowest first; a unit may
    import only units of lower layers. Unlisted units are reported too."""
    layer = {unit: i for i, units in enumerate(order) for unit in units}
    problems = []
    for source, targets in sorted(edges.items()):
        for target, modules in sorted(targets.items()):
            missing = [u for u in (source, target) if u not in layer]
            if missing:
                problems.append(f"{', '.join(missing)}: not in the declared order")
            elif layer[target] >= layer[source]:
                problems.append(f"{source} -> {target} (in {', '.join(sorted(modules))})")
    return sorted(set(problems))
