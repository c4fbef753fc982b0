"""The benchmarks' own modules (``bench/``, not a package), loaded from their files for the tests that check them."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from gateway.settings import PROJECT_ROOT


def load_bench_module(relative: str) -> ModuleType:
    """``bench/<relative>`` loaded afresh as ``bench_<folder>_<name>``, as its runner has it: its folder
    on ``sys.path`` while it loads (it imports its neighbours), and the module in ``sys.modules``
    (dataclasses look their module up there)."""
    path = PROJECT_ROOT / "bench" / relative
    name = "bench_" + "_".join(path.relative_to(PROJECT_ROOT / "bench").with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module
