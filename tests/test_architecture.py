"""The layers of docs/architecture.md: imports point one way, with no cycle.

The imports of every module under fastdif/ are read with ``ast`` (nothing
is imported), so a cycle hidden in a function body is found too.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "fastdif"

#: Each module's layer, bottom (0) to top, as docs/architecture.md lists them.
#: A module may import modules of lower layers, and modules of its own
#: package (engine/, io/, backends/, pipelines/) in its own layer.
LAYERS = {
    "fastdif._version": 0,
    "fastdif.params": 0,
    "fastdif.progress": 0,
    "fastdif.trash": 0,
    "fastdif.kernel_cache": 0,
    "fastdif.io.files": 0,
    "fastdif.io.store": 1,
    "fastdif.io.decisions": 1,
    "fastdif.model": 2,
    "fastdif.engine": 3,
    "fastdif.engine.kernels": 3,
    "fastdif.engine.matching": 3,
    "fastdif.engine.grouping": 3,
    "fastdif.engine.keep": 3,
    "fastdif.engine.warmup": 3,
    "fastdif.engine.numpy_kernels": 3,
    "fastdif.engine.transforms": 3,
    "fastdif.engine.near": 1,
    "fastdif.io": 3,
    "fastdif.io.resample": 3,
    "fastdif.io.decode": 3,
    "fastdif.io.discover": 3,
    "fastdif.io.cache": 3,
    "fastdif.io.partial": 3,
    "fastdif.io.metadata": 3,
    "fastdif.io.copies": 3,
    "fastdif.actions": 3,
    "fastdif.verify": 4,
    "fastdif.backends": 5,
    "fastdif.backends.base": 5,
    "fastdif.backends.pool": 5,
    "fastdif.backends.spread": 5,
    "fastdif.backends.local": 5,
    "fastdif.backends.dask": 5,
    "fastdif.report": 6,
    "fastdif.result": 7,
    "fastdif.pipelines": 8,
    "fastdif.pipelines.library": 8,
    "fastdif.pipelines.build": 8,
    "fastdif.pipelines.search": 8,
    "fastdif.api": 9,
    "fastdif.cli": 10,
    "fastdif.__main__": 11,
    "fastdif": 11,
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The fastdif module ``name`` refers to: itself, or the package it is in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str):
    """``(target module, line, inside a function)`` for each fastdif import of ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return list(imports_in(path.read_text(encoding="utf-8"), package))


def imports_in(source: str, package: str):
    """The fastdif imports of the code ``source`` of a module in ``package``."""
    tree = ast.parse(source)

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "fastdif":
                        yield resolve(alias.name), child.lineno, inner
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                if source.split(".")[0] == "fastdif":
                    for alias in child.names:
                        # ``from . import x`` imports the module x when there is one.
                        yield resolve(f"{source}.{alias.name}"), child.lineno, inner
            yield from visit(child, inner)

    yield from visit(tree, False)


GRAPH = {module: sorted({t for t, _, _ in imports(module) if t != module}) for module in MODULES}


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or MODULES[module].name == "__init__.py" else ""


def test_every_module_has_a_layer():
    assert sorted(set(MODULES) - set(LAYERS)) == []
    assert sorted(set(LAYERS) - set(MODULES)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    wrong = [
        target
        for target in GRAPH[module]
        if not (
            LAYERS[target] < LAYERS[module]
            or (LAYERS[target] == LAYERS[module] and package_of(target) == package_of(module) != "")
        )
    ]
    assert wrong == [], f"{module} (layer {LAYERS[module]}) imports {wrong}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_fastdif_module_is_imported_inside_a_function(module):
    late = [(target, line) for target, line, inside in imports(module) if inside]
    assert late == [], f"{module} imports inside a function: {late}"


def find_cycle(graph):
    """One cycle of ``graph`` as a list of nodes (first repeated at the end), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_there_is_no_import_cycle_among_fastdif_modules():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_the_checks_find_what_they_look_for():
    # A graph with a cycle this redesign removed, and an import in a function.
    graph = {
        "fastdif.repository": ["fastdif.store"],
        "fastdif.store": ["fastdif.repository"],
        "fastdif.search": ["fastdif.cluster"],
        "fastdif.cluster": ["fastdif.search"],
    }
    assert find_cycle(graph) == ["fastdif.cluster", "fastdif.search", "fastdif.cluster"]
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    source = "from .model import Repository\ndef f():\n    from .io import store\n"
    assert list(imports_in(source, "fastdif")) == [
        ("fastdif.model", 1, False),
        ("fastdif.io.store", 3, True),
    ]


def test_the_facade_only_checks_parameters_and_runs_a_pipeline():
    """api.py stays a facade (issue 26): short, and importing few modules of fastdif's."""
    lines = MODULES["fastdif.api"].read_text(encoding="utf-8").count("\n")
    assert lines <= 350
    assert len(GRAPH["fastdif.api"]) <= 8, GRAPH["fastdif.api"]


def graph_markdown() -> str:
    """The module graph as docs/architecture.md lists it: layer by layer, top first."""
    lines = []
    for layer in sorted(set(LAYERS.values()), reverse=True):
        names = sorted(m for m in MODULES if LAYERS.get(m) == layer)
        lines.append(f"- layer {layer}")
        for module in names:
            imported = ", ".join(f"`{t}`" for t in GRAPH[module] if t != module) or "nothing"
            lines.append(f"  - `{module}`: {imported}")
    return "\n".join(lines)


def test_docs_list_the_module_graph_the_code_has():
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    start, end = "<!-- graph:start -->\n", "<!-- graph:end -->"
    listed = doc[doc.index(start) + len(start) : doc.index(end)]
    assert listed == graph_markdown() + "\n", (
        "docs/architecture.md should list:\n" + graph_markdown()
    )


def test_no_plain_python_function_is_over_120_lines():
    """Numba kernels are exempt (one loop nest reads best whole)."""
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                jitted = any("njit" in ast.unparse(d) or "jit" in ast.unparse(d)
                             for d in node.decorator_list)  # fmt: skip
                if not jitted and node.end_lineno - node.lineno + 1 > 120:
                    long.append(f"{module}.{node.name}")
    assert long == []
