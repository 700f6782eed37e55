"""scripts/find_python.sh and scripts/setup.sh choosing a Python, on fake Macs and Linuxes.

Every command the scripts probe (each Python, uname, sysctl, uv) is a small fake in a folder
that is the whole PATH, and the fixed install locations (Homebrew, python.org) live under
--root, so nothing on this machine can be picked by accident.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIND = REPO / "scripts" / "find_python.sh"
BASH = shutil.which("bash") or "/bin/bash"


def fake_python(
    path: Path, version: str, machine: str = "arm64", venv: bool = True, impl: str = "cpython"
) -> Path:
    """A Python that answers the probe like the real one, makes venvs and logs pip runs. Its
    pip installs a uv (into the venv, beside it) that logs its runs too; unless FAKE_NO_UV is
    set, and that uv's installs fail where FAKE_UV_FAILS is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mkdir, cp, chmod, dirname = (shutil.which(t) for t in ("mkdir", "cp", "chmod", "dirname"))
    uv = f'#!{BASH}\necho "uv $*" >> "$FAKE_LOG"\n[[ -z "$FAKE_UV_FAILS" ]]\n'
    path.write_text(
        "#!" + BASH + "\n"
        f'if [[ "$1" == -c ]]; then echo "{version} {machine} '
        f'{"venv" if venv else "no-venv"} {impl}"; exit 0; fi\n'
        f'if [[ "$1" == --version ]]; then echo "Python {version}.1"; exit 0; fi\n'
        f'if [[ "$1 $2" == "-m venv" ]]; then {mkdir} -p "$3/bin"; '
        f'{cp} "$0" "$3/bin/python"; echo "venv $0" >> "$FAKE_LOG"; exit 0; fi\n'
        'if [[ "$1 $2" == "-m pip" ]]; then shift 2; echo "pip $*" >> "$FAKE_LOG"\n'
        '  if [[ "${@: -1}" == uv ]]; then [[ -n "$FAKE_NO_UV" ]] && exit 1\n'
        f'    uv="$({dirname} "$0")/uv"; printf %s {shlex.quote(uv)} > "$uv"; {chmod} +x "$uv"\n'
        "  fi; exit 0; fi\n"
        "exit 3\n"
    )
    path.chmod(0o755)
    return path


@dataclass
class Machine:
    """A fake machine: its PATH folder, its filesystem root, its log."""

    base: Path
    os: str = "Darwin"
    apple_silicon: bool = True
    rosetta_shell: bool = False

    def __post_init__(self) -> None:
        self.bin = self.base / "bin"
        self.root = self.base / "root"
        self.log = self.base / "log.txt"
        self.bin.mkdir(parents=True)
        self.root.mkdir()
        self.log.touch()
        self._script("uname", f'echo "{self.os}"')
        arm64 = "1" if self.apple_silicon else "0"
        translated = "1" if self.rosetta_shell else "0"
        self._script(
            "sysctl",
            f'case "$2" in hw.optional.arm64) echo {arm64};; '
            f"sysctl.proc_translated) echo {translated};; *) exit 1;; esac",
        )
        # setup.sh also needs these few real tools.
        for tool in ("dirname", "rm"):
            real = shutil.which(tool)
            assert real is not None
            (self.bin / tool).symlink_to(real)

    def _script(self, name: str, body: str) -> Path:
        path = self.bin / name
        path.write_text(f"#!{BASH}\n{body}\n")
        path.chmod(0o755)
        return path

    def on_path(self, name: str, version: str, **kw) -> Path:
        return fake_python(self.bin / name, version, **kw)

    def at(self, location: str, version: str, **kw) -> Path:
        return fake_python(self.root / location.lstrip("/"), version, **kw)

    def uv(self, installs: str | None = None) -> None:
        """uv that finds nothing, and can install `installs` (a version) into its own folder."""
        managed = self.base / "uv-python" / "bin" / "python3.12"
        make = ""
        if installs is not None:
            mkdir, cp = shutil.which("mkdir"), shutil.which("cp")
            template = fake_python(self.base / "uv-template" / "python", installs)
            make = f"{mkdir} -p {managed.parent}; {cp} {template} {managed}; exit 0"
        self._script(
            "uv",
            f'echo "uv $*" >> "{self.log}"\n'
            f'if [[ "$1 $2" == "python find" ]]; then [[ -x {managed} ]] && '
            f"echo {managed} && exit 0; exit 2; fi\n"
            f'if [[ "$1 $2" == "python install" ]]; then {make or "exit 1"}; fi\n'
            "exit 1",
        )

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": str(self.bin), "HOME": str(self.base), "FAKE_LOG": str(self.log), **extra}

    def find(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [BASH, str(FIND), "--root", str(self.root), *args],
            capture_output=True,
            text=True,
            env=self.env(**env),
            timeout=60,
        )


@pytest.fixture
def mac(tmp_path: Path) -> Machine:
    return Machine(tmp_path / "mac")


def chosen(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_homebrew_312_is_chosen_over_a_newer_python3(mac: Machine) -> None:
    # Homebrew's python3 is 3.13 today; python@3.12 sits in its keg.
    mac.on_path("python3", "3.13")
    keg = mac.at("/opt/homebrew/opt/python@3.12/bin/python3.12", "3.12")
    assert chosen(mac.find()) == str(keg)


def test_versioned_names_on_path_come_first_newest_first(mac: Machine) -> None:
    mac.on_path("python3", "3.11")
    py312 = mac.on_path("python3.12", "3.12")
    mac.on_path("python3.10", "3.10")
    assert chosen(mac.find()) == str(py312)


def test_python_org_framework_build(mac: Machine) -> None:
    mac.on_path("python3", "3.14")
    framework = mac.at("/Library/Frameworks/Python.framework/Versions/3.11/bin/python3.11", "3.11")
    assert chosen(mac.find()) == str(framework)


def test_nothing_fits_says_exactly_what_to_install(mac: Machine) -> None:
    mac.on_path("python3", "3.13")
    mac.at("/opt/homebrew/bin/python3.14", "3.14")
    intel = mac.at("/usr/local/bin/python3.12", "3.12", machine="x86_64")  # Intel Homebrew
    result = mac.find()
    assert result.returncode == 1 and result.stdout == ""
    err = result.stderr
    assert err.startswith("error: no Python 3.10-3.12 found to install the assistant on.")
    assert f"{mac.bin / 'python3'}: Python 3.13 is too new" in err
    assert "sentencepiece 0.2.0" in err
    assert f"{intel}: Python 3.12 runs as x86_64" in err and "native arm64" in err
    assert "brew install python@3.12" in err and "uv python install 3.12" in err
    assert "python.org" in err and "PYTHON=/path/to/python3.12" in err
    assert "Rosetta;" not in err  # this terminal is native


def test_a_rosetta_terminal_is_named(tmp_path: Path) -> None:
    mac = Machine(tmp_path / "mac", rosetta_shell=True)
    mac.on_path("python3.12", "3.12", machine="x86_64")  # a universal Python run from Rosetta
    result = mac.find()
    assert result.returncode == 1
    assert "runs as x86_64" in result.stderr and "runs under Rosetta; open it natively" in (
        result.stderr
    )


def test_intel_mac_is_refused(tmp_path: Path) -> None:
    mac = Machine(tmp_path / "mac", apple_silicon=False)
    mac.on_path("python3.12", "3.12", machine="x86_64")
    result = mac.find()
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: MLX needs an Apple Silicon Mac (M1 or later); this Mac has an Intel processor"
    )


def test_uv_fetches_312_when_nothing_else_fits(mac: Machine) -> None:
    mac.on_path("python3", "3.13")
    mac.uv(installs="3.12")
    result = mac.find()
    assert chosen(result) == str(mac.base / "uv-python" / "bin" / "python3.12")
    assert "Fetching Python 3.12 with uv" in result.stderr
    assert mac.log.read_text().splitlines() == [
        "uv python find >=3.10,<3.13",
        "uv python install 3.12",
        "uv python find 3.12",
    ]


def test_uv_that_cannot_install_is_reported(mac: Machine) -> None:
    mac.uv(installs=None)
    result = mac.find()
    assert result.returncode == 1 and "uv python install 3.12` failed" in result.stderr


def test_explicit_python_is_the_only_one_tried(mac: Machine) -> None:
    mac.on_path("python3.12", "3.12")
    wrong = mac.on_path("python3.13", "3.13")
    result = mac.find(PYTHON=str(wrong))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: PYTHON={wrong} cannot be used: Python 3.13 is too new")
    ok = mac.on_path("mine", "3.10")
    assert chosen(mac.find(PYTHON=str(ok))) == str(ok)


def test_linux_without_venv_module_is_skipped_with_the_package_to_install(tmp_path: Path) -> None:
    linux = Machine(tmp_path / "linux", os="Linux")
    bare = linux.on_path("python3.12", "3.12", machine="x86_64", venv=False)
    py311 = linux.on_path("python3.11", "3.11", machine="x86_64")  # x86_64 is fine off a Mac
    assert chosen(linux.find()) == str(py311)
    check = linux.find("--check", str(bare))
    assert check.returncode == 1
    assert "no venv/ensurepip module (on Debian/Ubuntu: apt install python3.12-venv)" in (
        check.stderr
    )


def test_pypy_and_old_pythons_are_refused(mac: Machine) -> None:
    pypy = mac.on_path("python3.11", "3.11", impl="pypy")
    old = mac.on_path("python3", "3.9")
    err = mac.find().stderr
    assert f"{pypy}: pypy 3.11, not CPython" in err
    assert f"{old}: Python 3.9 is too old (needs 3.10-3.12)" in err


def test_check_mode(mac: Machine) -> None:
    good = mac.on_path("python3.12", "3.12")
    assert mac.find("--check", str(good)).returncode == 0
    missing = mac.find("--check", str(mac.bin / "gone"))
    assert missing.returncode == 1 and missing.stderr.strip() == f"{mac.bin / 'gone'}: does not run"


# --- setup.sh: the venv is rebuilt when its Python is wrong ---------------------------------------
@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the two scripts, so setup.sh works on a throwaway .venv."""
    repo = tmp_path / "checkout"
    (repo / "scripts").mkdir(parents=True)
    for name in ("setup.sh", "find_python.sh"):
        shutil.copy(REPO / "scripts" / name, repo / "scripts" / name)
    return repo


def run_setup(repo: Path, machine: Machine, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH, str(repo / "scripts" / "setup.sh")],
        capture_output=True,
        text=True,
        env=machine.env(**env),
        timeout=60,
    )


# How setup.sh installs: uv, fetched into the venv by its pip; pip where uv can't do it.
FETCH_UV = "pip install -q --disable-pip-version-check uv"
UPGRADE_PIP = "pip install -q --disable-pip-version-check --upgrade pip"


def test_setup_rebuilds_a_venv_on_a_wrong_python(checkout: Path, mac: Machine) -> None:
    mac.on_path("python3", "3.13")
    good = mac.on_path("python3.12", "3.12")
    fake_python(checkout / ".venv" / "bin" / "python", "3.13")  # made earlier with python3
    result = run_setup(checkout, mac)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Rebuilding .venv: Python 3.13 is too new" in out
    assert f"Creating .venv with {good} (Python 3.12.1)" in out
    log = mac.log.read_text().splitlines()
    assert log[0] == f"venv {good}"
    # Runtime only (the test tools come with scripts/test.sh); on a Mac the menu-bar extra too.
    assert log[-2:] == [
        FETCH_UV,
        "uv pip install -q --python .venv/bin/python --compile-bytecode -e .[menubar]",
    ]
    # Run again: the venv fits now and is kept.
    again = run_setup(checkout, mac)
    assert again.returncode == 0 and "Rebuilding" not in again.stdout
    assert "Creating" not in again.stdout


def test_the_test_tools_come_only_when_asked(checkout: Path, mac: Machine) -> None:
    mac.on_path("python3.12", "3.12")
    assert run_setup(checkout, mac).returncode == 0
    playwright = checkout / ".venv" / "bin" / "playwright"  # what the dev extra would bring
    playwright.write_text(f'#!{BASH}\necho "playwright $*" >> {mac.log}\n')
    playwright.chmod(0o755)
    result = subprocess.run(
        [BASH, str(checkout / "scripts" / "setup.sh"), "--test-tools"],
        capture_output=True,
        text=True,
        env=mac.env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    log = mac.log.read_text().splitlines()
    assert log[-2:] == [
        # (no compiling: scripts/test.sh keeps a cache of its own)
        "uv pip install -q --python .venv/bin/python -e .[dev,menubar]",
        "playwright install chromium",  # the browser tests' Chromium
    ]
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    assert "bash scripts/setup.sh --test-tools" in test_sh  # what CI and the README run


def test_setup_installs_again_only_when_pyproject_changed(checkout: Path, mac: Machine) -> None:
    mac.on_path("python3.12", "3.12")
    (checkout / "pyproject.toml").write_text('[project]\nname = "assistant"\n')

    def installs() -> int:
        return sum(line.endswith(" -e .[menubar]") for line in mac.log.read_text().splitlines())

    assert run_setup(checkout, mac).returncode == 0
    assert installs() == 1
    command = checkout / ".venv" / "bin" / "assistant"  # what the real install makes
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    again = run_setup(checkout, mac)
    assert again.returncode == 0 and "ready" in again.stdout, again.stderr
    assert installs() == 1  # nothing changed: nothing run
    (checkout / "pyproject.toml").write_text('[project]\nname = "assistant"\nversion = "2"\n')
    assert run_setup(checkout, mac).returncode == 0
    assert installs() == 2  # changed: installed again
    command.unlink()  # the install is gone (removed by hand, a broken venv)
    assert run_setup(checkout, mac).returncode == 0
    assert installs() == 3
    # uv was fetched once: the venv kept it.
    assert mac.log.read_text().splitlines().count(FETCH_UV) == 1


@pytest.mark.parametrize("fault", ["FAKE_NO_UV", "FAKE_UV_FAILS"])
def test_pip_installs_where_uv_cannot(checkout: Path, mac: Machine, fault: str) -> None:
    mac.on_path("python3.12", "3.12")
    result = run_setup(checkout, mac, **{fault: "1"})
    assert result.returncode == 0, result.stderr
    why = "uv could not be installed" if fault == "FAKE_NO_UV" else "uv could not install it"
    assert f"({why}" in result.stdout
    log = mac.log.read_text().splitlines()
    assert log[-2:] == [UPGRADE_PIP, "pip install -q --disable-pip-version-check -e .[menubar]"]
    # The test tools without compiling, by pip too (on a Mac, then Chromium for the browser tests).
    for made in ("assistant", "playwright"):
        (checkout / ".venv" / "bin" / made).write_text(f"#!{BASH}\n")
        (checkout / ".venv" / "bin" / made).chmod(0o755)
    tools = subprocess.run(
        [BASH, str(checkout / "scripts" / "setup.sh"), "--test-tools"],
        capture_output=True,
        text=True,
        env=mac.env(**{fault: "1"}),
        timeout=60,
    )
    assert tools.returncode == 0, tools.stderr
    assert mac.log.read_text().splitlines()[-1] == (
        "pip install -q --disable-pip-version-check --no-compile -e .[dev,menubar]"
    )


def test_setup_with_nothing_suitable_stops_with_the_message(checkout: Path, mac: Machine) -> None:
    mac.on_path("python3", "3.14")
    result = run_setup(checkout, mac)
    assert result.returncode == 1
    assert "error: no Python 3.10-3.12 found" in result.stderr
    assert not (checkout / ".venv").exists()


def test_requires_python_states_the_same_range() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.10,<3.13"' in text
    script = FIND.read_text()
    assert "MIN_MINOR=10" in script and "MAX_MINOR=12" in script
    assert os.access(FIND, os.R_OK)
