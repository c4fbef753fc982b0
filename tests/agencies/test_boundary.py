"""The agency systems are clients: they use the public SDK, never the gateway's internals."""

from __future__ import annotations

import ast

from gateway.settings import PROJECT_ROOT

ALLOWED = ("gateway.sdk",)


def test_agencies_import_only_the_sdk_from_the_gateway() -> None:
    offending = []
    for path in sorted((PROJECT_ROOT / "agencies").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if (name == "gateway" or name.startswith("gateway.")) and not name.startswith(ALLOWED):
                    offending.append(f"{path.relative_to(PROJECT_ROOT)}: {name}")
    assert offending == []
