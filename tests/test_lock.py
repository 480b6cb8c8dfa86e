"""Every install comes from the lock files, and the lock pins everything pyproject.toml asks for."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)(?:\s*;\s*([^\\\n]+))?")


def pins(name: str) -> dict[str, str]:
    """Return {package: version} of a lock file for this interpreter and platform.

    The lock is universal: a package may have one pin per Python version range (its
    environment marker); only the pin whose marker holds here counts. Every pin carries hashes.
    """
    text = (ROOT / name).read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=\S)", text)
    found = {}
    for block in blocks:
        match = PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{name}: {match[1]} has no hash"
            if match[3] is None or Marker(match[3].strip()).evaluate():
                found[canonicalize_name(match[1])] = match[2]
    return found


def project() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_lock_pins_every_dependency_within_its_range() -> None:
    run, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    meta = project()
    for spec, lock in [(s, run) for s in meta["dependencies"]] + [
        (s, dev) for s in meta["optional-dependencies"]["dev"]
    ]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is not locked"
        assert requirement.specifier.contains(lock[name], prereleases=True), (name, lock[name])
    assert "setuptools" in run  # the build backend, for --no-build-isolation


def test_run_and_dev_agree_on_every_shared_version() -> None:
    run, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    assert set(run) <= set(dev)
    assert {name: run[name] for name in run} == {name: dev[name] for name in run}


def test_this_environment_is_the_locked_one() -> None:
    for name, version in pins("requirements-dev.txt").items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a marker excluded it on this platform (checked below for the core ones)
        assert installed == version, f"{name}: installed {installed}, locked {version}"
    for name in ("redis", "rq", "aiohttp", "python-telegram-bot", "pydantic", "mypy"):
        assert metadata.version(name) == pins("requirements-dev.txt")[name]


def test_every_installer_reads_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet --require-hashes -r requirements.txt" in makefile
    assert "pip install --quiet --require-hashes -r requirements-dev.txt" in makefile
    assert not re.search(r'pip install[^\n]*-e "?\.\[dev\]', makefile)
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --require-hashes -r requirements.txt" in dockerfile
    assert "pip install --no-deps" in dockerfile
    guide = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements.txt" in guide
    others = (ROOT / "scripts" / "test-pythons").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements-dev.txt" in others
