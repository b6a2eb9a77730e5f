"""Build dist/functionapp.zip: the app plus its Linux x86_64 CPython 3.13 dependencies, ready to run from package.

    python -m deploy.build [--out dist/functionapp.zip] [--cache-dir DIR] [--remote-build]
    python -m deploy.build --lock      # regenerate requirements.lock from requirements.txt (needs uv)

The zip holds what the Functions host and the Python worker read, and nothing else:
every folder with a function.json, host.json, requirements.txt, shared_code/, and the
dependencies under .python_packages/lib/site-packages (the worker puts that folder first
on sys.path). Dependencies come from requirements.lock, every transitive one pinned with
its hashes for the target interpreter, installed with --require-hashes: a wheel that is not
the one locked stops the build. They are wheels for the target platform, so the build works
the same from macOS, Windows or Linux; a dependency without such a wheel stops the build
with its name and the two ways out. Entries are sorted and stamped with a fixed time,
so the same sources and wheels give the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("dist") / "functionapp.zip"
SITE_PACKAGES = ".python_packages/lib/site-packages"

# The target the Function App runs: Linux x86_64, CPython 3.13 (functionAppConfig.runtime python 3.13 in
# infra/main.json; tests/deploy/test_infra.py checks that the two agree).
TARGET_PYTHON = "3.13"
TARGET_ABI = "cp" + TARGET_PYTHON.replace(".", "")
PIP_PLATFORM_ARGS = (
    "--platform", "manylinux2014_x86_64",
    "--only-binary=:all:",
    "--python-version", TARGET_PYTHON,
    "--implementation", "cp",
)
LOCK_FILE = "requirements.lock"
# How the lock is made: every transitive dependency of requirements.txt for the target, with hashes.
LOCK_COMMAND = (
    "uv", "pip", "compile", "requirements.txt", "--python-version", TARGET_PYTHON,
    "--python-platform", "x86_64-manylinux_2_28", "--generate-hashes", "--no-annotate",
    "--custom-compile-command", "python -m deploy.build --lock", "-o", LOCK_FILE,
)

# Everything else in the checkout is development-only; an allowlist cannot leak a new dev folder.
TOP_LEVEL_FILES = ("host.json", "requirements.txt")
SHARED_DIRS = ("shared_code",)
# Never inside the zip, even if found under an allowed folder (the test checks the zip against these too).
EXCLUDED_PARTS = frozenset({"__pycache__", ".venv", "node_modules", ".pytest_cache", ".ruff_cache", ".hypothesis"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# pip's console scripts carry a shebang naming the build machine's Python: useless in Azure, and not reproducible.
DROPPED_SITE_DIRS = ("bin",)

# 1980-01-01, the earliest time a zip can hold; SOURCE_DATE_EPOCH overrides it, as for other reproducible builds.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """The package cannot be built; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class FunctionFolder:
    name: str
    script_file: str
    entry_point: str


def function_folders(root: Path = ROOT) -> list[FunctionFolder]:
    """Every top-level folder with a function.json, checked the way the worker will load it."""
    folders: list[FunctionFolder] = []
    for spec in sorted(root.glob("*/function.json")):
        folder = spec.parent
        try:
            data = json.loads(spec.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BuildError(f"{folder.name}/function.json is not valid JSON: {exc}") from exc
        if data.get("disabled") is True:
            continue
        script = data.get("scriptFile") or "__init__.py"
        entry = data.get("entryPoint") or "main"
        if not (folder / script).is_file():
            raise BuildError(
                f"{folder.name}/function.json names scriptFile {script!r}, which does not exist: "
                "the worker could not load this function in Azure"
            )
        folders.append(FunctionFolder(folder.name, script, entry))
    if not folders:
        raise BuildError(f"no folder with a function.json under {root}")
    return folders


def _walk(base: Path, rel: Path) -> Iterator[tuple[Path, str]]:
    """(source file, archive name) under base/rel, minus caches and bytecode."""
    start = base / rel
    if start.is_file():
        yield start, rel.as_posix()
        return
    for dirpath, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_PARTS)
        for filename in sorted(filenames):
            if filename.endswith(EXCLUDED_SUFFIXES):
                continue
            path = Path(dirpath) / filename
            yield path, path.relative_to(base).as_posix()


def app_files(root: Path = ROOT) -> list[tuple[Path, str]]:
    """The app's own files: function folders, host.json, requirements.txt, shared_code/."""
    files: list[tuple[Path, str]] = []
    for name in TOP_LEVEL_FILES:
        if not (root / name).is_file():
            raise BuildError(f"{name} is missing at {root}")
        files.append((root / name, name))
    for folder in function_folders(root):
        files.extend(_walk(root, Path(folder.name)))
    for name in SHARED_DIRS:
        files.extend(_walk(root, Path(name)))
    return files


def _target_matches_host() -> bool:
    return (sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")
            and f"{sys.version_info[0]}.{sys.version_info[1]}" == TARGET_PYTHON)


def _pins(text: str) -> dict[str, str]:
    """{normalized name: version} of the `name==version` lines of a requirements or lock file."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        match = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)\s*(?:;(.*))?$", line)
        if match and (match.group(3) is None or _marker_holds(match.group(3))):
            pins[normalize_name(match.group(1))] = match.group(2)
    return pins


def _marker_holds(marker: str) -> bool:
    """Evaluate a `python_version` marker for the target interpreter (the only kind requirements.txt uses)."""
    target = tuple(int(p) for p in TARGET_PYTHON.split("."))
    terms = re.findall(r"python_version\s*(<=|>=|==|!=|<|>)\s*[\"']([\d.]+)[\"']", marker)
    if not terms or re.sub(r"python_version\s*(<=|>=|==|!=|<|>)\s*[\"'][\d.]+[\"']|\band\b|\s", "", marker):
        raise BuildError(f"requirements.txt: only python_version markers joined by 'and' are understood, not {marker!r}")
    ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
    return all(ops[op](target, tuple(int(p) for p in version.split("."))) for op, version in terms)


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_lock(requirements: Path, lock: Path) -> None:
    """Every pin of requirements.txt that applies to the target is in the lock at the same version."""
    if not lock.is_file():
        raise BuildError(f"{lock.name} is missing: run `python -m deploy.build --lock`")
    locked = _pins(lock.read_text(encoding="utf-8"))
    stale = sorted(f"{name}=={version} (lock: {locked.get(name, 'absent')})"
                   for name, version in _pins(requirements.read_text(encoding="utf-8")).items()
                   if locked.get(name) != version)
    if stale:
        raise BuildError(f"{lock.name} does not match {requirements.name}: {', '.join(stale)}; "
                         "run `python -m deploy.build --lock`")


def _missing_wheel(stderr: str) -> str | None:
    for line in stderr.splitlines():
        for marker in ("No matching distribution found for ", "Could not find a version that satisfies the requirement "):
            if marker in line:
                return line.split(marker, 1)[1].split(" ", 1)[0].strip()
    return None


def install_dependencies(lock: Path, target: Path, cache_dir: Path | None = None) -> None:
    """pip install --target for Linux x86_64 CPython 3.13, wheels only, each checked against its locked hashes."""
    base = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-input", "--disable-pip-version-check",
            "--require-hashes", "--target", str(target), "-r", str(lock)]
    if cache_dir is not None:
        base += ["--cache-dir", str(cache_dir)]
    result = subprocess.run([*base, *PIP_PLATFORM_ARGS], capture_output=True, text=True)
    if result.returncode == 0:
        return
    if "DO NOT MATCH THE HASHES" in result.stderr or "Hashes are required" in result.stderr:
        raise BuildError(f"a dependency is not the one {lock.name} locks (hash mismatch or an unlocked "
                         f"dependency): nothing was packaged\n{result.stderr.strip()}")
    missing = _missing_wheel(result.stderr)
    if missing is None:
        raise BuildError(f"pip could not install {lock.name}:\n{result.stderr.strip()}")
    if _target_matches_host():
        # This machine is the target platform: a source build here gives the binaries Azure needs.
        print(f"warning: no manylinux2014_x86_64 {TARGET_ABI} wheel for {missing}; this host is Linux x86_64 "
              f"Python {TARGET_PYTHON}, so it is built from source here", file=sys.stderr)
        shutil.rmtree(target, ignore_errors=True)
        fallback = subprocess.run(base, capture_output=True, text=True)
        if fallback.returncode == 0:
            return
        raise BuildError(f"pip could not build {missing} from source either:\n{fallback.stderr.strip()}")
    raise BuildError(
        f"no manylinux2014_x86_64 wheel for CPython {TARGET_PYTHON} matches {missing}. Either run this build on "
        f"Linux x86_64 with Python {TARGET_PYTHON} (it then builds that package from source), or let Azure build: "
        "`python -m deploy.build --remote-build` and deploy with "
        "`az functionapp deployment source config-zip ... --build-remote true`."
    )


def _zip_time() -> tuple[int, int, int, int, int, int]:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return ZIP_EPOCH
    stamp = time.gmtime(max(int(epoch), 315532800))  # a zip cannot hold a time before 1980
    return (stamp.tm_year, stamp.tm_mon, stamp.tm_mday, stamp.tm_hour, stamp.tm_min, stamp.tm_sec)


# zlib's default: this app's zip is 0.6% larger than at 9 (8.37 MB, not 8.32), and a build takes 5.6 CPU-s, not 8.1.
COMPRESS_LEVEL = 6


def write_zip(files: Iterable[tuple[Path, str]], out: Path) -> None:
    """Write a deterministic zip: sorted names, one timestamp, modes 644/755, written atomically."""
    entries = sorted(files, key=lambda item: item[1])
    duplicates = sorted(name for name, count in Counter(name for _, name in entries).items() if count > 1)
    if duplicates:
        raise BuildError(f"two sources for the same path in the zip: {duplicates[:5]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = _zip_time()
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as archive:
        for source, name in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the modes below are honoured when the zip is mounted on Linux
            mode = 0o755 if os.access(source, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, source.read_bytes(), compresslevel=COMPRESS_LEVEL)
    os.replace(partial, out)


def dependency_files(site_packages: Path) -> list[tuple[Path, str]]:
    """The installed dependencies, as entries under .python_packages/lib/site-packages."""
    for name in DROPPED_SITE_DIRS:
        shutil.rmtree(site_packages / name, ignore_errors=True)
    return [
        (path, f"{SITE_PACKAGES}/{path.relative_to(site_packages).as_posix()}")
        for path, _ in _walk(site_packages.parent, Path(site_packages.name))
    ]


def build(root: Path = ROOT, out: Path | None = None, *, cache_dir: Path | None = None, remote_build: bool = False) -> Path:
    """Build the package; returns the zip's path. `remote_build` leaves dependencies to Azure (Oryx)."""
    out = out if out is not None else root / DEFAULT_OUT
    files = app_files(root)
    with tempfile.TemporaryDirectory(prefix="functionapp-build-") as work:
        if not remote_build:
            check_lock(root / "requirements.txt", root / LOCK_FILE)
            site_packages = Path(work) / "site-packages"
            install_dependencies(root / LOCK_FILE, site_packages, cache_dir)
            files += dependency_files(site_packages)
        write_zip(files, out)
    return out


def write_lock(root: Path = ROOT) -> None:
    """Regenerate requirements.lock with uv (a dev dependency): the only way the lock changes."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    result = subprocess.run([uv, *LOCK_COMMAND[1:]], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"uv could not lock requirements.txt:\n{result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"the zip to write (default {DEFAULT_OUT})")
    parser.add_argument("--cache-dir", type=Path, default=None, help="pip's wheel cache (default: pip's own)")
    parser.add_argument("--remote-build", action="store_true",
                        help="leave out .python_packages; deploy with --build-remote true so Azure installs requirements.txt")
    parser.add_argument("--lock", action="store_true", help=f"regenerate {LOCK_FILE} from requirements.txt and stop")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.lock:
            write_lock(ROOT)
            print(f"{LOCK_FILE} written")
            return 0
        out = build(ROOT, args.out, cache_dir=args.cache_dir, remote_build=args.remote_build)
    except BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    with zipfile.ZipFile(out) as archive:
        count = len(archive.namelist())
    print(f"{out} {out.stat().st_size / 1e6:.1f} MB, {count} files, sha256 {digest}, {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
