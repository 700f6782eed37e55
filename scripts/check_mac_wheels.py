"""Can a Mac install the assistant from wheels alone? Resolve the whole dependency set for macOS
arm64 on each Python, binary wheels only, the way pip would on the Mac itself.

    .venv/bin/python scripts/check_mac_wheels.py                 # 3.10 .. 3.14
    .venv/bin/python scripts/check_mac_wheels.py --python 3.12 --platform macosx_15_0_arm64

For each Python it runs `pip download --only-binary=:all: --platform macosx_14_0_arm64
--python-version 3.X` (with --isolated: no local index or constraints) on the runtime
dependencies and the `menubar` extra, as a Mac evaluates their markers. pip evaluates the
markers of transitive dependencies against the machine it runs on, not the target, so the
closure is checked again from each downloaded wheel's own Requires-Dist with the Mac's markers,
and whatever a Mac would need on top is downloaded too. Prints, per Python, every wheel or the
requirement that has none. It downloads (~250 MB per Python, pip's cache helps): not a test.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename

PACKAGE = "assistant"
EXTRAS = ("menubar",)
# Published as a source distribution only, pure Python (no compiler needed): checked once from
# its sdist, and its own requirements (setup.py install_requires) go into the wheel check.
PURE_PYTHON_SDISTS = {"rumps": ("pyobjc-framework-Cocoa",)}
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
MAX_ROUNDS = 4


def mac_environment(python: str, platform: str) -> dict[str, str]:
    """The marker environment of CPython `python` on an Apple Silicon Mac."""
    major, minor = (int(x) for x in python.split("."))
    macos = re.match(r"macosx_(\d+)_(\d+)_", platform)
    release = f"{macos.group(1)}.{macos.group(2)}" if macos else "14.0"
    env = {key: str(value) for key, value in default_environment().items()}
    env.update(
        sys_platform="darwin",
        platform_system="Darwin",
        os_name="posix",
        platform_machine="arm64",
        platform_release=release,
        python_version=f"{major}.{minor}",
        python_full_version=f"{major}.{minor}.0",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def wanted(req: Requirement, env: dict[str, str], extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate(env | {"extra": e}) for e in extras | {""})


def top_level(env: dict[str, str]) -> list[Requirement]:
    """The package's runtime requirements and its menubar extra, as a Mac sees them."""
    reqs = [Requirement(r) for r in importlib.metadata.requires(PACKAGE) or []]
    keep = [r for r in reqs if wanted(r, env, set(EXTRAS))]
    for r in keep:
        r.marker = None
    pure = [r for r in keep if canonicalize_name(r.name) in PURE_PYTHON_SDISTS]
    keep = [r for r in keep if r not in pure]
    for r in pure:
        keep += [Requirement(dep) for dep in PURE_PYTHON_SDISTS[canonicalize_name(r.name)]]
    return keep


def check_pure_sdist(name: str, dest: Path) -> str:
    """Fetch the sdist and say whether it builds extension modules (it must not)."""
    code, output = pip_download([name], "", "", dest, "--no-binary", ":all:")
    if code != 0:
        return f"cannot download: {output.strip()[-200:]}"
    [archive] = dest.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        setup = next((m for m in tar.getmembers() if m.name.endswith("/setup.py")), None)
        text = tar.extractfile(setup).read().decode() if setup else ""  # type: ignore[union-attr]
    if "ext_modules" in text or "Extension(" in text:
        return f"{archive.name} builds extension modules: needs a compiler"
    requires = re.findall(r"'([^']+)'", text.split("install_requires", 1)[-1].split("]")[0])
    return f"{archive.name}: pure Python, no compiler needed; install_requires {requires}"


@dataclass
class Resolution:
    python: str
    wheels: dict[str, str] = field(default_factory=dict)  # canonical name -> file name
    missing: list[str] = field(default_factory=list)  # requirements without a wheel
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.missing


def pip_download(
    reqs: list[str], python: str, platform: str, dest: Path, *options: str
) -> tuple[int, str]:
    target = ["--platform", platform, "--python-version", python, "--implementation", "cp"]
    binary = ["--only-binary=:all:", *target] if python else ["--no-deps"]
    command = [
        sys.executable,
        "-m",
        "pip",
        "--isolated",
        "download",
        "--disable-pip-version-check",
        *binary,
        "-d",
        str(dest),
        *options,
        *reqs,
    ]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    return run.returncode, run.stdout + run.stderr


def wheel_name(wheel: Path) -> str:
    return canonicalize_name(parse_wheel_filename(wheel.name)[0])


def requirements_of(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(name).decode())
    return [Requirement(r) for r in meta.get_all("Requires-Dist") or []]


def resolve(python: str, platform: str, dest: Path) -> Resolution:
    env = mac_environment(python, platform)
    result = Resolution(python)
    reqs = [str(r) for r in top_level(env)]
    for _ in range(MAX_ROUNDS):
        code, output = pip_download(reqs, python, platform, dest)
        if code != 0:
            found = re.findall(r"No matching distribution found for (\S+)", output)
            result.missing = found
            if not found:
                lines = [line for line in output.splitlines() if line.startswith("ERROR")]
                result.error = " / ".join(lines[-3:]) or output.strip()[-300:]
            return result
        wheels = {wheel_name(w): w for w in dest.glob("*.whl")}
        # What a Mac needs that pip (judging markers by this machine) did not fetch.
        extras_of: dict[str, set[str]] = {}
        for r in map(Requirement, reqs):
            extras_of.setdefault(canonicalize_name(r.name), set()).update(r.extras)
        needed: list[str] = []
        for name, wheel in wheels.items():
            for r in requirements_of(wheel):
                if wanted(r, env, extras_of.get(name, set())) and (
                    canonicalize_name(r.name) not in wheels
                ):
                    r.marker = None
                    needed.append(str(r))
        result.wheels = {n: w.name for n, w in sorted(wheels.items())}
        if not needed:
            return result
        reqs += needed
    result.error = f"the closure did not settle in {MAX_ROUNDS} rounds"
    return result


def every_missing(python: str, platform: str, dest: Path) -> list[str]:
    """When pip's resolution fails it names only the first requirement without a wheel: walk
    the Mac's dependency tree one package at a time (--no-deps, constraints on the same package
    combined) to name them all."""
    env = mac_environment(python, platform)
    specs: dict[str, SpecifierSet] = {}
    extras: dict[str, set[str]] = {}
    queue = top_level(env)
    fetched: dict[str, str] = {}  # name -> the specifier it was fetched with
    missing: dict[str, str] = {}
    while queue:
        r = queue.pop(0)
        name = canonicalize_name(r.name)
        specs[name] = specs.get(name, SpecifierSet()) & r.specifier
        extras.setdefault(name, set()).update(r.extras)
        spec = str(specs[name])
        if fetched.get(name) == spec:
            continue
        fetched[name] = spec
        for old in dest.glob("*.whl"):
            if wheel_name(old) == name:
                old.unlink()
        code, _ = pip_download([f"{r.name}{spec}"], python, platform, dest, "--no-deps")
        if code != 0:
            missing[name] = f"{r.name}{spec}"
            continue
        missing.pop(name, None)
        wheel = next(w for w in dest.glob("*.whl") if wheel_name(w) == name)
        for dep in requirements_of(wheel):
            if wanted(dep, env, extras[name]):
                dep.marker = None
                queue.append(dep)
    return sorted(missing.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", help="e.g. 3.12 (repeatable)")
    parser.add_argument("--platform", default="macosx_14_0_arm64")
    args = parser.parse_args()
    pythons = args.python or list(PYTHONS)
    print(f"# Wheels for {PACKAGE} + [{','.join(EXTRAS)}] on {args.platform}, binary only\n")
    for name in PURE_PYTHON_SDISTS:
        with tempfile.TemporaryDirectory(prefix="sdist-") as tmp:
            print(f"- {name} (source only on PyPI): {check_pure_sdist(name, Path(tmp))}")
    print()
    results = []
    for python in pythons:
        with tempfile.TemporaryDirectory(prefix=f"wheels-{python}-") as tmp:
            r = resolve(python, args.platform, Path(tmp))
        if not r.ok:
            with tempfile.TemporaryDirectory(prefix=f"wheels-{python}-") as tmp:
                r.missing = every_missing(python, args.platform, Path(tmp)) or r.missing
        results.append(r)
        print(f"## Python {python}: {'every dependency has a wheel' if r.ok else 'FAILS'}")
        for name in r.missing:
            print(f"- no wheel: {name}")
        if r.error:
            print(f"- error: {r.error}")
        if r.ok:
            print(f"{len(r.wheels)} wheels:")
            for file in r.wheels.values():
                print(f"- {file}")
        print()
    print("## Summary")
    for r in results:
        verdict = "ok" if r.ok else "no wheel for " + (", ".join(r.missing) or r.error)
        print(f"- {r.python}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
