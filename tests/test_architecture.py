"""The import rules of docs/architecture.md hold in the code (every import, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = {"errors", "io_utils"}  # everyone may use these (and generative)

# human3d subpackage -> the other human3d subpackages it may import (docs/architecture.md, "Layers")
ALLOWED = {
    "geometry": set(), "config": set(), "fields": set(), "metrics": set(), "plots": set(), "assets": set(),
    "errors": set(), "io_utils": set(),
    "data": {"geometry"},
    "body": {"geometry"},
    "render": {"geometry", "body"},
    "motion": {"body", "data", "geometry"},
    "train": {"config", "data", "geometry", "metrics", "plots", "render"},
    "nerf": {"train", "config", "fields", "geometry", "data", "metrics"},
    "splat": {"train", "config", "fields", "geometry", "data", "metrics"},
    "implicit": {"train", "config", "fields", "geometry", "metrics", "render", "body", "data"},
    "fitting": {"body", "config", "data", "geometry", "motion", "plots", "render"},
    "synth": {"body", "fitting", "geometry", "motion", "render", "data"},
    "pose2d": {"train", "config", "synth", "geometry", "metrics", "data", "body"},
    "dvr": {"train", "config", "fields", "geometry", "data", "metrics", "implicit", "render", "body"},
    "hmr": {"train", "config", "fitting", "synth", "body", "geometry", "metrics", "data", "motion", "render", "plots"},
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _unit(path: Path) -> str:
    rel = path.relative_to(ROOT / "human3d").parts
    return rel[0].removesuffix(".py") if len(rel) > 1 or rel[0] != "__init__.py" else "__init__"


def test_layers_of_human3d():
    bad = []
    for path in sorted((ROOT / "human3d").rglob("*.py")):
        unit = _unit(path)
        if unit in ("cli", "__init__"):
            continue
        assert unit in ALLOWED, f"{path}: new module '{unit}': add it to docs/architecture.md and ALLOWED here"
        for mod in _imports(path):
            if mod.split(".")[0] != "human3d" or mod == "human3d":
                continue
            dst = mod.split(".")[1]
            if dst != unit and dst not in BASE and dst not in ALLOWED[unit]:
                bad.append(f"{path.relative_to(ROOT)} imports {mod} ({unit} -> {dst})")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_cli_and_generative_never_imports_human3d():
    bad = []
    for path in sorted((ROOT / "human3d").rglob("*.py")):
        if _unit(path) != "cli" and any(m.startswith("human3d.cli") for m in _imports(path)):
            bad.append(f"{path.relative_to(ROOT)} imports the CLI")
    for path in sorted((ROOT / "generative").rglob("*.py")):
        if any(m.split(".")[0] == "human3d" for m in _imports(path)):
            bad.append(f"{path.relative_to(ROOT)} imports human3d")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("folder,forbidden", [("tools", "tests"), ("tests", "tools")])
def test_tools_and_tests_do_not_import_each_other(folder, forbidden):
    bad = [str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.py")
           if any(m.split(".")[0] == forbidden for m in _imports(p))]  # fmt: skip
    assert not bad, bad
