"""The set-up scripts, run for real in a copy of ``scripts/`` with recording stand-ins on PATH.

``id`` says root, ``apt-get``/``apt``/``dpkg-query`` and ``python3`` (and the ``.venv`` it makes) only
log how they were called, so the tests see exactly what ``scripts/run`` and ``scripts/test`` would
install from a clean clone as root, without installing anything.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: A stand-in ``.venv/bin/python`` / ``xfv``: logs its arguments.
FAKE_VENV_TOOL = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'
#: A stand-in ``python3``: ``-m venv DIR`` makes DIR/bin/python, xfv, ruff and mypy (all logging).
FAKE_PYTHON3 = """#!/bin/sh
echo "python3 $*" >> "$CALLS"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  for tool in python xfv ruff mypy; do cp "$FAKES/venv-tool" "$3/bin/$tool"; chmod +x "$3/bin/$tool"; done
fi
"""


def _fake(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture()
def clone(tmp_path: Path) -> Path:
    """A copy of the repository's scripts (a clean clone as far as they can tell: no .venv)."""
    clone = tmp_path / "xfv"
    shutil.copytree(REPO / "scripts", clone / "scripts")
    shutil.copytree(REPO / ".ci", clone / ".ci")
    shutil.copytree(REPO / "tests" / "tfjs", clone / "tests" / "tfjs")
    return clone


def _run(clone: Path, command: list[str], dpkg_installed: bool) -> list[str]:
    """Run a script as a pretend root; returns the logged calls."""
    fakes = clone.parent / "fakes"
    fakes.mkdir(exist_ok=True)
    calls = clone.parent / "calls.log"
    calls.write_text("")
    _fake(fakes, "id", '#!/bin/sh\n[ "$1" = -u ] && echo 0 || echo "uid=0(root) gid=0(root)"\n')
    for tool in ("apt-get", "apt", "npm", "node"):
        _fake(fakes, tool, f'#!/bin/sh\necho "{tool} $*" >> "$CALLS"\n')
    status = "installed" if dpkg_installed else "not-installed"
    _fake(fakes, "dpkg-query", f"#!/bin/sh\nprintf {status}\n")
    _fake(fakes, "python3", FAKE_PYTHON3)
    _fake(fakes, "venv-tool", FAKE_VENV_TOOL)
    env = {"PATH": f"{fakes}:/usr/bin:/bin", "CALLS": str(calls), "FAKES": str(fakes), "HOME": str(clone.parent)}
    done = subprocess.run(["bash", *command], cwd=clone, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return calls.read_text().splitlines()


def test_run_installs_no_debian_package_and_no_test_extras(clone: Path) -> None:
    calls = _run(clone, ["scripts/run"], dpkg_installed=False)
    assert not [call for call in calls if call.startswith("apt")], calls
    assert "python -m pip install -q -e .[web]" in calls
    assert not [call for call in calls if "[all]" in call or "[test" in call or call.startswith("npm")], calls
    assert calls[-1].startswith("xfv evaluate --protocol lfw")


def test_test_setup_installs_the_debian_packages_and_test_extras(clone: Path) -> None:
    calls = _run(clone, [".ci/run"], dpkg_installed=False)
    installs = [call for call in calls if call.startswith("apt-get install")]
    assert installs and installs[0].endswith("chromium chromium-driver postgresql"), calls
    assert "python -m pip install -q -e .[all]" in calls
    assert "npm ci --silent --no-audit --no-fund" in calls  # the TF.js reference runtime, from the lock file
    assert (clone / ".venv" / "tfjs" / "package-lock.json").read_bytes() == (
        clone / "tests" / "tfjs" / "package-lock.json"
    ).read_bytes()
    assert "ruff check src tests bench" in calls and "ruff format --check src tests bench" in calls, calls
    assert "mypy " in calls, calls
    assert calls.index("mypy ") < calls.index("python -m pytest -q") == len(calls) - 1, calls


def test_test_setup_skips_installed_debian_packages(clone: Path) -> None:
    calls = _run(clone, ["scripts/test"], dpkg_installed=True)
    assert not [call for call in calls if call.startswith("apt")], calls
