"""The layout is the architecture: packages import only downwards, nothing imports in a circle.

Every module's imports are read with `ast`: imports inside functions (the lazy ones that keep
cold start short) and imports under `if TYPE_CHECKING:` are dependencies all the same. A lower
package that is handed the app's services names its own `Protocol` of them (`conversation.ports`,
`notifications.ports`), never the composition root.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: a package may import itself and those before it.
LAYERS = ("plumbing", "protocol", "storage", "conversation", "notifications", "portal", "app")
# Inside notifications, lowest first: a room may import itself and those before it. `api` and
# `queue_runner` are the package's entry points and share the top.
NOTIFICATION_ROOMS = ("jobs", "records", "ports", "audience", "sending", "after_send", "upkeep",
                      ("api", "queue_runner"))
FUNCTION_FOLDERS = sorted(p.parent.name for p in ROOT.glob("*/function.json"))


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports_of(path: Path, known: set[str]) -> list[Import]:
    """Every import in `path`, wherever it stands, resolved to a module (`from pkg import module` names the module)."""
    importer = module_name(path)
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(Import(importer, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importer's package
                package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append(Import(importer, candidate if candidate in known else base, node.lineno))
    return found


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def all_modules() -> set[str]:
    return {module_name(p) for p in python_files("shared_code", "devhost", "stubs", "tests", "bench", "deploy",
                                                   *FUNCTION_FOLDERS)}


def layer_of(module: str) -> str | None:
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
        if lower is None or upper is None or LAYERS.index(lower) > LAYERS.index(upper):
            against.append(f"{imp.importer}:{imp.line} imports {imp.target}")
    assert against == []


def test_no_lower_package_names_the_app_even_for_a_type():
    naming = [f"{imp.importer}:{imp.line} {imp.target}" for imp in shared_code_imports()
              if imp.target.startswith("shared_code.app") and layer_of(imp.importer) != "app"]
    assert naming == []


def room_of(module: str) -> int | None:
    """The rank of a notifications module's room (its sub-package, or itself at the top); None outside."""
    parts = module.split(".")
    if parts[:2] != ["shared_code", "notifications"]:
        return None
    if len(parts) == 2:
        return 0  # the package's docstring
    for rank, room in enumerate(NOTIFICATION_ROOMS):
        if parts[2] == room or (isinstance(room, tuple) and parts[2] in room):
            return rank
    raise AssertionError(f"{module} is in no room of NOTIFICATION_ROOMS")


def test_every_notifications_module_lives_in_a_room():
    for path in python_files("shared_code/notifications"):
        assert room_of(module_name(path)) is not None


def test_inside_notifications_rooms_import_only_downwards():
    against = []
    for imp in shared_code_imports():
        lower, upper = room_of(imp.target), room_of(imp.importer)
        if lower is not None and upper is not None and lower > upper:
            against.append(f"{imp.importer}:{imp.line} imports {imp.target}")
    assert against == []


def test_no_folder_is_a_flat_room_of_more_than_a_dozen_modules():
    crowded = {}
    for folder in (ROOT / "shared_code").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__":
            modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
            if len(modules) > 12:
                crowded[str(folder.relative_to(ROOT))] = len(modules)
    assert crowded == {}


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
        if imp.target != imp.importer:
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


def test_a_test_file_never_imports_another_test_file():
    known = all_modules()
    borrowed = [f"{imp.importer}:{imp.line} {imp.target}" for path in python_files("tests", "bench")
                for imp in imports_of(path, known)
                if imp.target.split(".")[0] == "tests" and imp.target.split(".")[-1].startswith("test_")]
    assert borrowed == []  # what two test files share belongs in tests/support/
