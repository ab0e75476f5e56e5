import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_digitlab_does_not_load_streamlit():
    code = "import sys, digitlab; print('streamlit' in sys.modules, 'digitlab.ui' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_only_digitlab_ui_imports_streamlit():
    offenders = []
    for path in (REPO / "digitlab").rglob("*.py"):
        if "ui" in path.relative_to(REPO / "digitlab").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] in ("streamlit", "streamlit_drawable_canvas") for name in names):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_public_api():
    import digitlab

    for name in ("list_models", "create_model", "TrainConfig", "train", "load_run", "list_runs",
                 "preprocess_canvas", "predict"):
        assert callable(getattr(digitlab, name)), name
