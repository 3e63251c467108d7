"""Issue 16, point 6: what runs in production is what the packages say. The station's packages never
import the training code or torch (not even lazily inside a function), the review fixtures live in
the tests, and no module shadows the standard library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ("forms", "ocr", "output", "review_ui", "formstation", "simulate")


def _imports(path: Path) -> set[str]:
    """Every module name an `import` or `from ... import` anywhere in the file names (top package)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_no_runtime_module_imports_training_code_or_torch():
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & {"training", "torch"})
                 for pkg in RUNTIME for p in (ROOT / pkg).rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert not list((ROOT / "ocr").glob("train_*.py")) and (ROOT / "training" / "train_ensemble.py").is_file()


def test_the_station_runs_without_the_training_package_loaded():
    code = ("import sys, importlib, pkgutil\n"
            f"for pkg in {RUNTIME!r}:\n"
            "    m = importlib.import_module(pkg)\n"
            "    for i in pkgutil.iter_modules(m.__path__):\n"
            "        if pkg == 'review_ui' and i.name in ('app', 'server_app'):\n"
            "            continue  # Streamlit scripts: they draw a page when imported\n"
            "        importlib.import_module(f'{pkg}.{i.name}')\n"
            "print(sorted(n for n in sys.modules if n.split('.')[0] in ('training', 'torch')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_no_module_shadows_the_standard_library_and_fixtures_are_in_the_tests():
    # `streamlit run review_ui/app.py` puts review_ui/ itself first on sys.path: a module there named
    # like one of the standard library's would be imported in its place (as queue.py was)
    stdlib = set(sys.stdlib_module_names)
    assert [p.name for p in (ROOT / "review_ui").glob("*.py") if p.stem in stdlib] == []
    assert not (ROOT / "review_ui" / "sample.py").exists() and (ROOT / "tests" / "review_sample.py").is_file()
