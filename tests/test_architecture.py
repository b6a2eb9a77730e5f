"""The layout is the architecture: packages import only downwards, nothing imports in a circle.

Every module's imports are read with `ast`, including imports inside functions (the lazy
ones that keep cold start short are dependencies all the same). The one exception is an
import under `if TYPE_CHECKING:` of the composition root's `Services`: it never runs, and
it lets a lower package name the object it is handed without depending on how it is built.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: a package may import itself and those before it.
LAYERS = ("plumbing", "protocol", "storage", "conversation", "notifications", "app")
# Top-level modules of shared_code that belong to a layer (kept for an old command line).
LOOSE_MODULES = {"shared_code.notify_cli": "app"}
TYPE_ONLY_ALLOWED = {"shared_code.app.services"}
FUNCTION_FOLDERS = sorted(p.parent.name for p in ROOT.glob("*/function.json"))


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, known: set[str]) -> list[Import]:
    """Every import in `path`, resolved to a module (`from pkg import module` names the module)."""
    importer = module_name(path)
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(importer, alias.name, node.lineno, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importer's package
                package = importer.split(".")[: -node.level] if not path.name == "__init__.py" else importer.split(".")
                if path.name == "__init__.py" and node.level > 1:
                    package = package[: -(node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append(Import(importer, candidate if candidate in known else base, node.lineno, type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return found


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def all_modules() -> set[str]:
    return {module_name(p) for p in python_files("shared_code", "devhost", "stubs", "tests", "bench", "deploy",
                                                   *FUNCTION_FOLDERS)}


def layer_of(module: str) -> str | None:
    if module in LOOSE_MODULES:
        return LOOSE_MODULES[module]
    parts = module.split(".")
    return parts[1] if parts[0] == "shared_code" and len(parts) > 1 and parts[1] in LAYERS else None


def shared_code_imports() -> list[Import]:
    known = all_modules()
    return [imp for path in python_files("shared_code") for imp in imports_of(path, known)
            if imp.target.startswith("shared_code")]


def test_every_module_of_shared_code_lives_in_a_layer():
    loose = [module_name(p) for p in python_files("shared_code")
             if module_name(p) != "shared_code" and layer_of(module_name(p)) is None]
    assert loose == []


def test_every_layer_says_what_lives_there_and_what_it_may_import():
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((ROOT / "shared_code" / layer / "__init__.py").read_text()))
        assert doc and "May import" in doc, layer


def test_packages_import_only_downwards():
    against = []
    for imp in shared_code_imports():
        if imp.target == "shared_code":
            continue
        lower, upper = layer_of(imp.target), layer_of(imp.importer)
        if imp.type_only and imp.target in TYPE_ONLY_ALLOWED:
            continue
        if lower is None or upper is None or LAYERS.index(lower) > LAYERS.index(upper):
            against.append(f"{imp.importer}:{imp.line} imports {imp.target}")
    assert against == []


def test_type_only_imports_name_nothing_but_the_composition_root():
    strays = [f"{imp.importer}:{imp.line} {imp.target}" for imp in shared_code_imports()
              if imp.type_only and imp.target not in TYPE_ONLY_ALLOWED
              and LAYERS.index(layer_of(imp.target) or "app") > LAYERS.index(layer_of(imp.importer) or "app")]
    assert strays == []


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle in the import graph, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_itself_in_a_circle():
    edges: dict[str, set[str]] = {}
    for imp in shared_code_imports():
        if not imp.type_only and imp.target != imp.importer:
            edges.setdefault(imp.importer, set()).add(imp.target)
    assert find_cycle(edges) is None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


@pytest.mark.parametrize("folder", ["devhost", "stubs"])
def test_the_host_and_the_stubs_know_nothing_of_the_bot(folder):
    known = all_modules()
    wrong = [f"{imp.importer}:{imp.line} {imp.target}" for path in python_files(folder)
             for imp in imports_of(path, known) if imp.target.split(".")[0] in {"shared_code", "tests", "bench"}]
    assert wrong == []


def test_shared_code_never_imports_a_function_folder_or_the_tools_around_it():
    known = all_modules()
    outside = set(FUNCTION_FOLDERS) | {"devhost", "stubs", "tests", "bench", "deploy"}
    wrong = [f"{imp.importer}:{imp.line} {imp.target}" for path in python_files("shared_code")
             for imp in imports_of(path, known) if imp.target.split(".")[0] in outside]
    assert wrong == []


@pytest.mark.parametrize("folder", FUNCTION_FOLDERS)
def test_function_folders_are_thin_adapters_over_shared_code(folder):
    known = all_modules()
    path = ROOT / folder / "__init__.py"
    others = [imp.target for imp in imports_of(path, known) if imp.target.split(".")[0] in FUNCTION_FOLDERS]
    assert others == []
    assert len(path.read_text().splitlines()) <= 40
