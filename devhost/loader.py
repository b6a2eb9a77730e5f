"""Import a function's scriptFile/entryPoint the way the Python worker does."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.app import AppError, FunctionSpec

APP_NAMESPACE = "__app__"


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
    own_package = __name__.split(".")[0]  # never swap out the running host itself
    for child in root.iterdir():
        if child.is_dir() and child.name != own_package and (child / "__init__.py").exists():
            _forget_stale_modules(child.name, child)


def _app_namespace(root_text: str) -> None:
    # The worker imports functions as submodules of the `__app__` namespace package, whose
    # search path is the app root; a namespace left by another root is dropped first.
    package = sys.modules.get(APP_NAMESPACE)
    if package is not None and list(getattr(package, "__path__", [])) == [root_text]:
        return
    for name in [n for n in sys.modules if n == APP_NAMESPACE or n.startswith(APP_NAMESPACE + ".")]:
        del sys.modules[name]
    spec = importlib.machinery.ModuleSpec(APP_NAMESPACE, None, is_package=True)
    spec.submodule_search_locations = [root_text]
    sys.modules[APP_NAMESPACE] = importlib.util.module_from_spec(spec)


def import_module(spec: FunctionSpec, root: Path) -> Any:
    """Import the script as the worker does: the app root on sys.path, the folder a package
    `__app__.<Folder>`, so `from . import x` and `from shared_code import y` both work."""
    root_text = str(root.resolve())
    if root_text not in sys.path:
        sys.path.insert(0, root_text)
    importlib.invalidate_caches()
    _forget_other_roots(root)
    _app_namespace(root_text)
    script = spec.script_file.resolve()
    directory = spec.directory.resolve()
    if script.parent != directory or script.suffix != ".py":
        raise AppError(f"Function '{spec.name}': scriptFile {spec.script_file} must be a .py file in the function folder")
    module_name = f"{APP_NAMESPACE}.{directory.name}"
    if script.name != "__init__.py":
        module_name += f".{script.stem}"
    return importlib.import_module(module_name)


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
    if out_names or len(in_names) > 1:
        extra = sorted(out_names | (in_names - {trigger_name}))
        # Only the trigger and an http $return are wired here; better skipped than called half-bound.
        raise AppError(f"Function '{spec.name}': bindings {extra} are not supported by devhost "
                       "(only the trigger and an http $return output)")
    unknown = [p for p in params if p != "context" and p not in in_names | out_names]
    if unknown:
        raise AppError(f"Function '{spec.name}': parameters {unknown} of {spec.entry_point}() are not bindings "
                       f"in function.json (bindings: {sorted(in_names | out_names)})")
    if trigger_name not in params:
        raise AppError(f"Function '{spec.name}': {spec.entry_point}() has no parameter '{trigger_name}' "
                       f"for its {spec.trigger_type} binding")
    return EntryPoint(func=func, trigger_param=trigger_name, wants_context="context" in params,
                      is_async=inspect.iscoroutinefunction(func))
