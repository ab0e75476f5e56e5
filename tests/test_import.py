"""The layers, enforced: pages -> digitlab.dashboard.ui -> digitlab.dashboard -> the library. The library is what
``import digitlab`` gives a notebook; it never imports the dashboard's wing or the benchmark, and only
digitlab/dashboard/ui/ imports streamlit."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "digitlab"
UPPER_WINGS = ("digitlab.dashboard", "digitlab.bench")  # never imported by the library
CLI = "digitlab.__main__"  # an entry point like the pages: it may start the benchmark, never the dashboard


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_within_package(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that a file imports, anywhere in it: ``from digitlab.dashboard import live`` imports
    digitlab.dashboard.live (not the package digitlab.dashboard), and an imported name that is not a module counts
    as its module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module_name(path):
                found.add(name)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm): each is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while (member := stack.pop()) != module:
                component.append(member)
            if component:
                cycles.append(sorted([module, *component]))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, anywhere in it (function-level imports too), as dotted names."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def library_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if not module_name(p).startswith(UPPER_WINGS) and module_name(p) != CLI]


def test_import_digitlab_does_not_load_streamlit_or_the_dashboard():
    code = ("import sys, digitlab; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('streamlit', 'plotly', 'pandas') or m.startswith(('digitlab.dashboard', 'digitlab.bench'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_server_imports_the_pages_modules_ahead_but_declares_no_component_off_a_script_run():
    """What bootstrap imports for a page's first visit: pandas and pyarrow at once, on the caller's thread (plotly
    and narwhals find them in sys.modules, where a half-imported pandas failed a figure), then on its own thread
    every dashboard module outside ui/, and nothing of ui/ (a component declared off a script run warns)."""
    code = ("import sys; from digitlab.dashboard.ui import bootstrap; before = set(sys.modules); "
            "timer = bootstrap.import_pages_in_background(); "
            "print(sorted(m for m in set(sys.modules) - before if m in ('pandas', 'pyarrow'))); "
            "print('digitlab.dashboard.compare' in sys.modules); timer.join(); "
            "new = set(sys.modules) - before; print(sorted(m for m in new if m.startswith('digitlab.dashboard.ui.'))); "
            "print(all(m in sys.modules for m in ('digitlab.dashboard.compare', 'digitlab.dashboard.board')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:4] == ["['pandas', 'pyarrow']", "False", "[]", "True"], out.stdout
    assert "ScriptRunContext" not in out.stderr


def test_the_library_never_imports_the_dashboard_or_the_benchmark():
    offenders = {
        module_name(path): sorted({name for name in imported_modules(path) if name.startswith(UPPER_WINGS)})
        for path in library_files()
    }
    assert {module: names for module, names in offenders.items() if names} == {}
    # The check has something to check: the library modules the issue names are all here.
    assert {"digitlab.store", "digitlab.recorder", "digitlab.engine", "digitlab.predict",
            "digitlab.preprocess", "digitlab.models", "digitlab.data"} <= {module_name(p) for p in library_files()}


def test_the_dashboard_never_imports_the_benchmark_nor_the_cli_the_dashboard():
    offenders = [module_name(path) for path in (PACKAGE / "dashboard").rglob("*.py")
                 if any(name.startswith(("digitlab.bench", CLI)) for name in imported_modules(path))]
    assert offenders == []
    assert not [name for name in imported_modules(PACKAGE / "__main__.py") if name.startswith("digitlab.dashboard")]


def test_only_the_dashboard_ui_imports_streamlit():
    offenders = [
        module_name(path) for path in PACKAGE.rglob("*.py")
        if not module_name(path).startswith("digitlab.dashboard.ui")
        and any(name.split(".")[0] in ("streamlit", "streamlit_drawable_canvas") for name in imported_modules(path))
    ]
    assert offenders == []


def test_public_api():
    import digitlab

    for name in ("list_models", "create_model", "TrainConfig", "train", "load_run", "list_runs",
                 "preprocess_canvas", "predict", "preset"):
        assert callable(getattr(digitlab, name)), name
    assert callable(digitlab.TrainConfig().validate)


def test_no_module_imports_itself_through_others():
    """No import cycle in the package (the dashboard's job manager and studies module once imported each other)."""
    modules = package_modules()
    graph = {name: imports_within_package(path, modules) for name, path in modules.items()}
    assert import_cycles(graph) == []
    # The check can see a cycle, and each edge it is built from.
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "digitlab.dashboard.jobs.follow" in graph["digitlab.dashboard.jobs.coordinator"]
    assert "digitlab.dashboard.live" in graph["digitlab.dashboard.ui.live_chart"]
