"""The import layers of docs/architecture.md hold: no upward import, no circle, and no
function-local import of a project module to hide either (STYLE.md, "Imports form a
tree"). The contracts are import-linter's, in pyproject.toml."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "demo", "activities", "crm", "common")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_are_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _function_local_project_imports(root: Path) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom):
                        names = [node.module or ""] if not node.level else ["."]
                    elif isinstance(node, ast.Import):
                        names = [alias.name for alias in node.names]
                    else:
                        continue
                    if any(name == "." or name.split(".")[0] in PACKAGES for name in names):
                        found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_function_local_imports_of_project_modules():
    assert _function_local_project_imports(ROOT) == []


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_contracts_refuse_an_upward_import(project_copy: Path):
    _append(project_copy / "activities/selectors.py", "\nfrom activities.services import emails\n")
    result = _lint_imports(project_copy)
    assert result.returncode != 0
    assert "activities.selectors -> activities.services.emails" in result.stdout


def test_the_contracts_refuse_an_app_importing_the_one_above(project_copy: Path):
    _append(project_copy / "crm/services.py", "\nimport activities.models\n")
    result = _lint_imports(project_copy)
    assert result.returncode != 0
    assert "crm.services -> activities.models" in result.stdout


def test_the_contracts_refuse_a_circle_inside_a_layer(project_copy: Path):
    # services.emails imports services.attachments; the way back closes a circle.
    _append(project_copy / "activities/services/attachments.py", "\nfrom . import emails\n")
    result = _lint_imports(project_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "circle" in result.stdout.lower()


def test_a_function_local_project_import_is_found(project_copy: Path):
    _append(
        project_copy / "activities/policies.py", "\n\ndef later():\n    from . import selectors\n"
    )
    assert _function_local_project_imports(project_copy) == [
        "activities/policies.py:"
        + str(len((project_copy / "activities/policies.py").read_text().splitlines()))
    ]
