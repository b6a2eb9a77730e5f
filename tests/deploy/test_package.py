"""The deployment zip: built once per session, unpacked, and run the way the Python worker runs it."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from deploy import build as builder

ROOT = Path(__file__).resolve().parents[2]
# One worker runs them all (`make test` runs in parallel, `--dist loadgroup`): the zip is built once per
# worker that needs it, and building it is most of what these tests cost.
pytestmark = pytest.mark.xdist_group("deployment-zip")
# A persistent wheel cache: pip downloads ~15 MB once, later sessions build offline in seconds.
PIP_CACHE = ROOT / "dist" / "pip-cache"

DEV_ONLY_PARTS = {
    "tests", "devhost", "stubs", "bench", "deploy", "infra", "dist", "docs", "node_modules", "__pycache__",
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


@functools.cache
def target_interpreter() -> str:
    """A CPython of the version the zip is built for (3.13): the wheels are its binaries, only it can run them.

    This interpreter when it is that version, else `python3.13` on PATH, else pyenv's. The suite itself may
    run on 3.11: the zip is still imported and called on the target interpreter, as the worker would.
    """
    if not (sys.platform == "linux" and platform.machine() == "x86_64"):
        pytest.fail(f"the package test runs the zip as Azure does and needs Linux x86_64, not {sys.platform} "
                    f"{platform.machine()}")
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == builder.TARGET_PYTHON:
        return sys.executable
    name = f"python{builder.TARGET_PYTHON}"
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(name), *sorted(str(p) for p in pyenv.glob(f"{builder.TARGET_PYTHON}.*/bin/{name}"))]
    for candidate in filter(None, candidates):
        # A pyenv shim is on PATH even where that version is not selected: ask the interpreter itself.
        check = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if check.returncode == 0 and check.stdout.strip() == builder.TARGET_PYTHON:
            return candidate
    pytest.fail(f"the package test imports the zip on CPython {builder.TARGET_PYTHON}, the Function App's runtime; "
                f"install it ({name} on PATH, or `pyenv install {builder.TARGET_PYTHON}`)")


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    target_interpreter()
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
for name in ("azure.functions", "azure.data.tables", "azure.storage.queue", "azure.identity", "requests", "jwt",
             "cryptography.hazmat.primitives.asymmetric.rsa"):
    importlib.import_module(name)
report["python"] = "%d.%d" % sys.version_info[:2]
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
        [target_interpreter(), "-I", "-S", "-c", PROBE, str(package.root), str(ROOT), json.dumps(functions)],
        capture_output=True, text=True, env=env, cwd=package.root, timeout=120,
    )
    assert result.returncode == 0, f"the unpacked package does not run:\n{result.stderr}"
    return json.loads(result.stdout)


def test_package_runs_on_the_target_interpreter(probe: dict) -> None:
    assert probe["python"] == builder.TARGET_PYTHON == "3.13"


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
    for name in ("azure.functions", "azure.data.tables", "azure.storage.queue", "azure.identity", "requests", "jwt",
                 "cryptography"):
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


def _installed(package: Package) -> dict[str, str]:
    installed = {}
    for meta in (package.root / builder.SITE_PACKAGES).glob("*.dist-info/METADATA"):
        fields = dict(line.split(": ", 1) for line in meta.read_text().splitlines()[:3] if ": " in line)
        installed[builder.normalize_name(fields["Name"])] = fields["Version"]
    return installed


def test_package_has_every_pinned_requirement_at_its_version(package: Package) -> None:
    installed = _installed(package)
    pins = builder._pins((ROOT / "requirements.txt").read_text())
    assert pins["azure-functions"].startswith("2.") and "azure-functions-runtime-v1" in pins  # the 3.13 branch
    for name, version in pins.items():
        assert installed.get(name) == version, name


def test_package_holds_exactly_the_locked_dependencies(package: Package) -> None:
    locked = builder._pins((ROOT / builder.LOCK_FILE).read_text())
    assert len(locked) > len(builder._pins((ROOT / "requirements.txt").read_text()))  # transitive ones too
    assert _installed(package) == locked


def test_lock_pins_every_dependency_with_a_hash() -> None:
    text = (ROOT / builder.LOCK_FILE).read_text()
    entries = re.split(r"\n(?=[A-Za-z])", text.split("\n", 2)[2].strip())
    assert entries
    for entry in entries:
        assert re.match(r"[A-Za-z0-9_.-]+==\S+ \\", entry), entry
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry


def test_package_binaries_are_built_for_the_target_interpreter(package: Package) -> None:
    tagged = [n for n in package.names if re.search(r"\.cpython-\d+-", n)]
    assert tagged, "cffi ships a version-specific extension"
    assert {re.search(r"\.cpython-(\d+)-", n).group(1) for n in tagged} == {builder.TARGET_ABI.removeprefix("cp")}


def test_package_binaries_are_linux_x86_64(package: Package) -> None:
    shared_objects = [n for n in package.names if n.endswith(".so") or ".so." in n]
    assert shared_objects, "cryptography, cffi and friends ship compiled extensions"
    for name in shared_objects:
        head = (package.root / name).read_bytes()[:20]
        assert head[:4] == b"\x7fELF", name
        assert int.from_bytes(head[18:20], "little") == 0x3E, name  # e_machine EM_X86_64


@pytest.mark.slow
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


def test_build_refuses_a_stale_lock(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text('requests==2.34.2\nazure-functions==1.26.0; python_version < "3.13"\n')
    (tmp_path / "requirements.lock").write_text("requests==2.0.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(builder.BuildError, match=r"does not match requirements.txt: requests==2.34.2 \(lock: 2.0.0\)"):
        builder.check_lock(tmp_path / "requirements.txt", tmp_path / "requirements.lock")


def test_build_refuses_a_dependency_whose_hash_does_not_match(tmp_path: Path) -> None:
    # The right name and version, the wrong hash: what a tampered index or mirror would serve.
    lock = tmp_path / "requirements.lock"
    version = builder._pins((ROOT / builder.LOCK_FILE).read_text())["typing-extensions"]
    lock.write_text(f"typing-extensions=={version} \\\n    --hash=sha256:{'0' * 64}\n")
    with pytest.raises(builder.BuildError, match="hash mismatch"):
        builder.install_dependencies(lock, tmp_path / "site", PIP_CACHE)
    assert not list((tmp_path / "site").glob("typing_extensions*"))


def test_funcignore_keeps_dev_only_folders_out_of_func_publish() -> None:
    # `func azure functionapp publish` packs the checkout itself, minus .funcignore: it must leave out what the zip does.
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines() if line.strip()}
    present = {p.name for p in ROOT.iterdir()} & (DEV_ONLY_PARTS | DEV_ONLY_FILES) - {".git", ".gitignore", ".funcignore", "README.md"}
    assert sorted(present - ignored) == []
