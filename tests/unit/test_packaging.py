"""What `pip install raftkv` gets: the server and client with their runtime
dependencies only (no plotting stack, no top-level `jepsen` package), the console's
assets, a license, and a command that says what it is."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import setuptools

import raftkv

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_runtime_dependencies_exclude_harness_only_packages() -> None:
    deps = " ".join(PYPROJECT["project"]["dependencies"]).lower()
    for harness_only in ("matplotlib", "numpy", "pillow", "pytest", "hypothesis", "playwright"):
        assert harness_only not in deps
    assert any("matplotlib" in d for d in PYPROJECT["project"]["optional-dependencies"]["jepsen"])


def test_only_raftkv_packages_are_installed_with_the_console_assets() -> None:
    cfg = PYPROJECT["tool"]["setuptools"]
    found = setuptools.find_packages(str(ROOT), include=cfg["packages"]["find"]["include"])
    assert "raftkv" in found and "raftkv.server.ui" in found
    assert not [p for p in found if not p.startswith("raftkv")], found
    assert cfg["package-data"]["raftkv.server.ui"] == ["static/*"]
    assert (ROOT / "raftkv/server/ui/static/index.html").exists()


def test_license_is_declared_and_shipped() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def test_the_command_says_what_it_is() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "raftkv", *args], capture_output=True, text=True, timeout=60
        )

    for flag in ("--version", "-V"):
        v = run(flag)
        assert v.returncode == 0 and v.stdout.strip() == f"raftkv {raftkv.__version__}"
    bare = run()
    assert bare.returncode == 0
    for word in ("serve", "get", "put", "watch", "lock", "--version"):
        assert word in bare.stdout
    serve = run("serve", "--help")
    assert serve.returncode == 0 and "--data-dir" in serve.stdout
