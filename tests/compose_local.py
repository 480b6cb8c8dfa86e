"""The compose set-up read as Compose reads it, and its Lianhu services run as local processes.

``merged`` applies deploy/docker-compose.sentinel.yml over deploy/docker-compose.yml (maps
merged key by key, ``depends_on`` and ``volumes`` lists joined, anything else replaced) and
fills in ``${VAR}`` and ``${VAR:?why}`` from an env. ``local`` turns a service into the
command line and variables of a process on this machine: the container's addresses become
the test's (its port, loopback, the test's Redis URL and folders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
FILES = (DEPLOY / "docker-compose.yml", DEPLOY / "docker-compose.sentinel.yml")
VARIABLE = re.compile(r"\$\{(\w+)(?::\?[^}]*)?\}")


def interpolate(value: Any, env: dict[str, str], used: set[str]) -> Any:
    """Replace ``${NAME}`` and ``${NAME:?why}`` as Compose does, noting each name used."""
    if isinstance(value, str):

        def one(found: re.Match[str]) -> str:
            used.add(found[1])
            return env[found[1]]

        return VARIABLE.sub(one, value)
    if isinstance(value, list):
        return [interpolate(v, env, used) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env, used) for k, v in value.items()}
    return value


@dataclass
class Compose:
    """The merged services and named volumes, and the variables they used."""

    services: dict[str, Any]
    volumes: dict[str, Any]
    used: set[str]


def merged(env: dict[str, str], files: tuple[Path, ...] = FILES) -> Compose:
    """Return the services of ``files``, each later one applied over the ones before."""
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for path in files:
        found = yaml.safe_load(path.read_text())
        assert set(found.get("volumes") or {}).isdisjoint(volumes), path
        volumes |= found.get("volumes") or {}
        for name, extra in found["services"].items():
            service = services.setdefault(name, {})
            for key, value in extra.items():
                if isinstance(value, dict) and isinstance(service.get(key), dict):
                    service[key] = {**service[key], **value}
                elif key in ("depends_on", "volumes") and isinstance(service.get(key), list):
                    service[key] = service[key] + [v for v in value if v not in service[key]]
                else:
                    service[key] = value  # command, entrypoint: replaced
    used: set[str] = set()
    filled = {name: interpolate(service, env, used) for name, service in services.items()}
    return Compose(filled, volumes, used)


@dataclass(frozen=True)
class Local:
    """A service as a local process: ``lianhu`` arguments and the variables compose sets."""

    args: list[str]
    env: dict[str, str]


def local(service: dict[str, Any], redis_url: str, folder: Path, port: int | None = None) -> Local:
    """Map a Lianhu service to this machine: loopback and ``port`` for what it listens on,
    ``redis_url`` for its Redis, folders under ``folder`` for its volumes."""
    args = list(service["command"])
    for flag, value in (("--listen", "127.0.0.1"), ("--port", str(port))):
        if flag in args:
            assert port is not None, f"{args}: which port?"
            args[args.index(flag) + 1] = value
    env = {**service.get("environment", {}), "REDIS_URL": redis_url}
    for volume in service.get("volumes", ()):
        source, target = volume.split(":")[:2]
        for key, value in env.items():
            if value == target:  # a named volume's mount point, e.g. LIANHU_ARCHIVE_DIR
                env[key] = str(folder / source)
    return Local(args, env)
