"""The layers' arrows point down: the platform and real time never import the API (what both need is in
fantasize.web), and fantasize.web imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fantasize"


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


LOWER = sorted([*PACKAGE.joinpath("platform").rglob("*.py"), *PACKAGE.joinpath("realtime").rglob("*.py"),
                PACKAGE / "web.py"])


@pytest.mark.parametrize("path", LOWER, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_arrow_up_into_the_api(path: Path) -> None:
    upward = {m for m in imported_modules(path) if m == "fantasize.api" or m.startswith("fantasize.api.")}
    assert not upward, f"{path.relative_to(PACKAGE)} imports {sorted(upward)}: move what it needs to fantasize.web"


def test_web_stands_below_platform_and_realtime() -> None:
    upward = {m for m in imported_modules(PACKAGE / "web.py")
              if m.startswith(("fantasize.platform", "fantasize.realtime", "fantasize.services"))}
    assert not upward
