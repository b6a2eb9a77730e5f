"""Import a function's scriptFile/entryPoint the way the Python worker does."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.app import AppError, FunctionSpec


@dataclass(frozen=True)
class EntryPoint:
    """The function's Python callable and what it takes."""

    func: Callable[..., Any]
    trigger_param: str
    wants_context: bool
    is_async: bool


def _forget_stale_modules(package: str, directory: Path) -> None:
    # Another app hosted earlier in this process (tests build many) may have left a package of the
    # same name in sys.modules; importing would silently reuse it, so drop it and its submodules.
    loaded = sys.modules.get(package)
    if loaded is None:
        return
    origin = getattr(loaded, "__file__", None)
    if origin and Path(origin).resolve().parent == directory.resolve():
        return
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _forget_other_roots(root: Path) -> None:
    # Same reason for top-level packages next to the functions (shared_code) of another app root.
    for child in root.iterdir():
        if child.is_dir() and (child / "__init__.py").exists():
            _forget_stale_modules(child.name, child)


def import_module(spec: FunctionSpec, root: Path) -> Any:
    """The app root goes on sys.path and the folder is imported as a package named after it,
    so `from . import x` and `from shared_code import y` both work, as under the real worker."""
    root_text = str(root.resolve())
    if root_text not in sys.path:
        sys.path.insert(0, root_text)
    importlib.invalidate_caches()
    _forget_other_roots(root)
    script = spec.script_file.resolve()
    directory = spec.directory.resolve()
    if script.parent != directory:
        raise AppError(f"Function '{spec.name}': scriptFile {spec.script_file} must be inside the function folder")
    package = directory.name
    if script.name == "__init__.py":
        return importlib.import_module(package)
    module_name = f"{package}.{script.stem}"
    if (directory / "__init__.py").exists():
        return importlib.import_module(module_name)
    # A folder without __init__.py: load the script file on its own under the package-like name.
    loader_spec = importlib.util.spec_from_file_location(module_name, script)
    if loader_spec is None or loader_spec.loader is None:
        raise AppError(f"Function '{spec.name}': cannot import {script}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    loader_spec.loader.exec_module(module)
    return module


def load_entry_point(spec: FunctionSpec, root: Path) -> EntryPoint:
    """The callable, checked against function.json like the worker does at load time."""
    module = import_module(spec, root)
    func = getattr(module, spec.entry_point, None)
    if not callable(func):
        raise AppError(f"Function '{spec.name}': {spec.script_file.name} has no callable '{spec.entry_point}'")
    params = inspect.signature(func).parameters
    trigger_name = str(spec.trigger.get("name", ""))
    in_names = {str(b.get("name")) for b in spec.bindings if b.get("direction", "in") == "in"}
    out_names = {str(b.get("name")) for b in spec.bindings if b.get("direction") == "out" and b.get("name") != "$return"}
    unknown = [p for p in params if p != "context" and p not in in_names | out_names]
    if unknown:
        raise AppError(f"Function '{spec.name}': parameters {unknown} of {spec.entry_point}() are not bindings "
                       f"in function.json (bindings: {sorted(in_names | out_names)})")
    if trigger_name not in params:
        raise AppError(f"Function '{spec.name}': {spec.entry_point}() has no parameter '{trigger_name}' "
                       f"for its {spec.trigger_type} binding")
    return EntryPoint(func=func, trigger_param=trigger_name, wants_context="context" in params,
                      is_async=inspect.iscoroutinefunction(func))
