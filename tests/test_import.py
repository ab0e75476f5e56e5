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
