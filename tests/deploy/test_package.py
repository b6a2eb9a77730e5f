"""The deployment zip: built once per session, unpacked, and run the way the Python worker runs it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from deploy import build as builder

ROOT = Path(__file__).resolve().parents[2]
# A persistent wheel cache: pip downloads ~15 MB once, later sessions build offline in seconds.
PIP_CACHE = ROOT / "dist" / "pip-cache"

DEV_ONLY_PARTS = {
    "tests", "devhost", "stubs", "bench", "deploy", "infra", "dist", "node_modules", "__pycache__",
    ".venv", ".git", ".github", ".ci", ".vscode", ".pytest_cache", ".ruff_cache", ".hypothesis",
}
DEV_ONLY_FILES = {
    "package.json", "package-lock.json", ".npmrc", "Makefile", "pyproject.toml", "requirements-dev.txt",
    ".funcignore", ".gitignore", "README.md",
}


@dataclass(frozen=True)
class Package:
    zip_path: Path
    root: Path  # where it was unpacked, like /home/site/wwwroot
    names: list[str]
    functions: list[builder.FunctionFolder]


def _require_target_python() -> None:
    """The wheels are Linux x86_64 CPython 3.11 binaries: only such an interpreter can run them."""
    if not (sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info[:2] == (3, 11)):
        pytest.fail(
            "the package test runs the zip as Azure does and needs Linux x86_64 CPython 3.11, "
            f"not {sys.platform} {platform.machine()} {platform.python_version()}"
        )


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    _require_target_python()
    out = tmp_path_factory.mktemp("package") / "functionapp.zip"
    try:
        functions = builder.function_folders(ROOT)
        builder.build(ROOT, out, cache_dir=PIP_CACHE)
    except builder.BuildError as error:
        pytest.fail(f"the deployment package cannot be built: {error}")
    unpacked = tmp_path_factory.mktemp("wwwroot")
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
    return Package(out, unpacked, names, functions)


# Runs in `python -I -S`: no site-packages, no PYTHONPATH, no current directory. It sets sys.path as the
# worker does (the package's site-packages, then the app root) and loads each function as the worker's
# loader does (module `__app__.<Folder>`), then reports what it imported and what the HTTP functions answered.
PROBE = r"""
import importlib, importlib.machinery, importlib.util, inspect, json, os, pkgutil, sys, sysconfig, types

root, checkout, functions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
site = os.path.join(root, ".python_packages", "lib", "site-packages")
sys.path[:0] = [site, root]
spec = importlib.machinery.ModuleSpec("__app__", None, is_package=True)
spec.submodule_search_locations = [root]
sys.modules["__app__"] = importlib.util.module_from_spec(spec)

report = {"sys_path": list(sys.path), "entry_points": {}, "calls": {}}
entry_points = {}
for name, script, entry in functions:
    modname = "__app__." + name + ("" if script == "__init__.py" else "." + script[:-3])
    module = importlib.import_module(modname)
    entry_points[name] = getattr(module, entry)
    report["entry_points"][name] = {"file": module.__file__, "callable": callable(entry_points[name])}

# Functions import parts of shared_code lazily (cold start): import all of it now, with its dependencies.
for info in pkgutil.walk_packages([os.path.join(root, "shared_code")], prefix="shared_code."):
    importlib.import_module(info.name)
for name in ("azure.functions", "azure.data.tables", "azure.storage.queue", "requests", "jwt",
             "cryptography.hazmat.primitives.asymmetric.rsa"):
    importlib.import_module(name)
import jwt.algorithms
report["jwt_has_crypto"] = jwt.algorithms.has_crypto

import azure.functions as func

def call(name, url, body):
    req = func.HttpRequest(method="POST", url=url, body=body, headers={"Content-Type": "application/json"})
    main = entry_points[name]
    params = inspect.signature(main).parameters
    bindings = json.load(open(os.path.join(root, name, "function.json")))["bindings"]
    trigger = next(b["name"] for b in bindings if b["type"] == "httpTrigger")
    kwargs = {trigger: req}
    if "context" in params:
        kwargs["context"] = types.SimpleNamespace(invocation_id="probe", function_name=name,
                                                  function_directory=os.path.join(root, name))
    response = main(**kwargs)
    body = response.get_body()
    report["calls"][name] = {"status": response.status_code, "mimetype": response.mimetype,
                             "body": json.loads(body) if body else None}

call("MessagesFunction", "http://localhost/api/messages", b"{not json")
call("NotifyFunction", "http://localhost/api/notify", b"[1, 2]")

stdlib = {os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")}
root_real, checkout_real = os.path.realpath(root), os.path.realpath(checkout)
outside, from_checkout, modules = [], [], {}
for name, module in sorted(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if not path:
        continue
    real = os.path.realpath(path)
    modules[name] = real
    if real.startswith(checkout_real + os.sep):
        from_checkout.append(name)
    if not real.startswith(root_real + os.sep) and not any(real.startswith(s + os.sep) for s in stdlib):
        outside.append(name + " " + real)
report.update(outside=outside, from_checkout=from_checkout, modules=modules)
print(json.dumps(report))
"""


@pytest.fixture(scope="session")
def probe(package: Package) -> dict:
    functions = [[f.name, f.script_file, f.entry_point] for f in package.functions]
    # A clean environment: nothing of the developer's (PYTHONPATH, app settings, venv) leaks in.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(package.root), str(ROOT), json.dumps(functions)],
        capture_output=True, text=True, env=env, cwd=package.root, timeout=120,
    )
    assert result.returncode == 0, f"the unpacked package does not run:\n{result.stderr}"
    return json.loads(result.stdout)


def test_package_loads_every_function_from_the_zip(package: Package, probe: dict) -> None:
    assert sorted(probe["entry_points"]) == sorted(f.name for f in package.functions)
    assert {"MessagesFunction", "NotifyFunction", "NotifyQueueFunction", "TeamsFunction"} <= set(probe["entry_points"])
    for name, loaded in probe["entry_points"].items():
        assert loaded["callable"], name
        assert Path(loaded["file"]).resolve().is_relative_to(package.root.resolve()), loaded["file"]


def test_package_imports_nothing_from_the_checkout_or_a_venv(package: Package, probe: dict) -> None:
    assert probe["from_checkout"] == []
    assert probe["outside"] == []
    site = (package.root / builder.SITE_PACKAGES).resolve()
    for name in ("azure.functions", "azure.data.tables", "azure.storage.queue", "requests", "jwt", "cryptography"):
        assert Path(probe["modules"][name]).is_relative_to(site), (name, probe["modules"][name])
    assert Path(probe["modules"]["shared_code"]).is_relative_to(package.root.resolve())
    assert probe["sys_path"][:2] == [str(package.root / builder.SITE_PACKAGES), str(package.root)]
    assert probe["jwt_has_crypto"] is True  # pyjwt[crypto]: RS256 needs cryptography's binary to load


def test_package_messages_function_answers_invalid_json_with_400(probe: dict) -> None:
    assert probe["calls"]["MessagesFunction"] == {
        "status": 400,
        "mimetype": "application/json",
        "body": {"error": {"code": "bad_request", "message": "the body is not valid JSON"}},
    }


def test_package_notify_function_answers_a_non_object_body_with_400(probe: dict) -> None:
    assert probe["calls"]["NotifyFunction"] == {
        "status": 400,
        "mimetype": "application/json",
        "body": {"error": {"code": "bad_request", "message": "the body must be a JSON object"}},
    }


def test_package_holds_only_what_the_host_and_worker_read(package: Package) -> None:
    allowed_roots = {f.name for f in package.functions} | {"host.json", "requirements.txt", "shared_code", ".python_packages"}
    for name in package.names:
        path = PurePosixPath(name)
        assert path.parts[0] in allowed_roots, name
        assert "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"), name
        if path.parts[0] == ".python_packages":
            # Third-party wheels may carry their own tests/ or README.md: those are theirs, not ours.
            assert name.startswith(builder.SITE_PACKAGES + "/"), name
            assert not name.startswith(builder.SITE_PACKAGES + "/bin/"), name
            continue
        assert not DEV_ONLY_PARTS & set(path.parts), name
        assert path.name not in DEV_ONLY_FILES, name
        assert not path.name.startswith("local.settings"), name


def test_package_app_files_are_the_checkout_files(package: Package) -> None:
    for f in package.functions:
        for file in ("function.json", f.script_file):
            assert (package.root / f.name / file).read_bytes() == (ROOT / f.name / file).read_bytes()
    for file in ("host.json", "requirements.txt"):
        assert (package.root / file).read_bytes() == (ROOT / file).read_bytes()
    shipped = {p.relative_to(package.root).as_posix() for p in (package.root / "shared_code").rglob("*.py")}
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "shared_code").rglob("*.py") if "__pycache__" not in p.parts}
    assert shipped == source


def test_package_has_every_pinned_requirement_at_its_version(package: Package) -> None:
    site = package.root / builder.SITE_PACKAGES
    installed = {}
    for meta in site.glob("*.dist-info/METADATA"):
        fields = dict(line.split(": ", 1) for line in meta.read_text().splitlines()[:3] if ": " in line)
        installed[re.sub(r"[-_.]+", "-", fields["Name"]).lower()] = fields["Version"]
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line).groups()
        assert installed.get(re.sub(r"[-_.]+", "-", name).lower()) == version, line


def test_package_binaries_are_linux_x86_64(package: Package) -> None:
    shared_objects = [n for n in package.names if n.endswith(".so") or ".so." in n]
    assert shared_objects, "cryptography, cffi and friends ship compiled extensions"
    for name in shared_objects:
        head = (package.root / name).read_bytes()[:20]
        assert head[:4] == b"\x7fELF", name
        assert int.from_bytes(head[18:20], "little") == 0x3E, name  # e_machine EM_X86_64


def test_package_zip_is_deterministic(package: Package, tmp_path: Path) -> None:
    with zipfile.ZipFile(package.zip_path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {builder.ZIP_EPOCH}
    again = builder.build(ROOT, tmp_path / "again.zip", cache_dir=PIP_CACHE)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(package.zip_path.read_bytes()).digest()


def test_build_refuses_a_function_whose_script_is_missing(tmp_path: Path) -> None:
    (tmp_path / "Broken").mkdir()
    (tmp_path / "Broken" / "function.json").write_text(json.dumps({"scriptFile": "__init__.py", "bindings": []}))
    with pytest.raises(builder.BuildError, match=r"Broken/function.json names scriptFile '__init__.py'"):
        builder.function_folders(tmp_path)


def test_build_names_the_requirement_that_has_no_wheel() -> None:
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement lxml==0.0.1 (from versions: none)\n"
        "ERROR: No matching distribution found for lxml==0.0.1\n"
    )
    assert builder._missing_wheel(stderr) == "lxml==0.0.1"
    assert builder._missing_wheel("ERROR: something else") is None


def test_funcignore_keeps_dev_only_folders_out_of_func_publish() -> None:
    # `func azure functionapp publish` packs the checkout itself, minus .funcignore: it must leave out what the zip does.
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines() if line.strip()}
    present = {p.name for p in ROOT.iterdir()} & (DEV_ONLY_PARTS | DEV_ONLY_FILES) - {".git", ".gitignore", ".funcignore", "README.md"}
    assert sorted(present - ignored) == []
