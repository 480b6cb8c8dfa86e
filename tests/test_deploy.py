"""deploy/ checked without a Docker engine: compose services, commands, settings, systemd units."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml

from bot.cli import build_parser
from bot.settings import Settings
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def variables() -> set[str]:
    out = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        out.add(alias if isinstance(alias, str) else f"LIANHU_{name.upper()}")
    return out


def test_compose_runs_redis_with_aof_the_bot_workers_and_the_console() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "bot", "worker", "web", "proxy"}
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["volumes"][0].split(":")[0] in compose["volumes"]
    assert services["bot"]["command"][0] == "run" and "--webhook" in services["bot"]["command"]
    assert services["worker"]["command"] == ["worker"]
    assert services["web"]["command"][0] == "web"
    assert services["web"]["ports"] == ["127.0.0.1:8081:8081"]  # the host's loopback only
    for name in ("bot", "worker", "web"):
        service = services[name]
        assert service["command"][0] in subcommands()
        assert service["environment"]["REDIS_URL"].endswith("@redis:6379/0")
        assert (DEPLOY / service["env_file"]).with_suffix(".env.example").exists()
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        for volume in service["volumes"]:  # a folder beside the compose file, or a named volume
            source = volume.split(":")[0]
            assert (DEPLOY / source).is_dir() or source in compose["volumes"], volume


def test_the_example_environment_names_only_real_settings() -> None:
    names = set()
    for line in (DEPLOY / "lianhu.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0])
    extra = {"LIANHU_WEBHOOK_URL", "LIANHU_REDIS_PASSWORD", "LIANHU_SENTINEL_PASSWORD"}
    assert names - extra <= variables()
    assert {"LIANHU_TELEGRAM_TOKEN", "LIANHU_WEBHOOK_SECRET"} <= names


def test_the_dockerfile_installs_the_project_and_runs_lianhu() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / copied).exists(), copied
    assert 'ENTRYPOINT ["lianhu"]' in text and 'CMD ["run"]' in text


def test_systemd_units_run_real_subcommands(tmp_path: Path) -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert [u.name for u in units] == [
        "lianhu-bot.service", "lianhu-web.service", "lianhu-worker@.service"
    ]  # fmt: skip
    for unit in units:
        parser = configparser.ConfigParser(strict=True, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(unit.read_text())
        assert set(parser.sections()) == {"Unit", "Service", "Install"}
        command = parser["Service"]["ExecStart"].split()
        assert command[0].endswith("/lianhu") and command[1] in subcommands()
        assert parser["Service"]["EnvironmentFile"].endswith("lianhu.env")
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    # verify needs the executables to exist: point the units at a stand-in.
    fake = tmp_path / "lianhu"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    copies = []
    for unit in units:
        text = unit.read_text().replace("/opt/lianhu/.venv/bin/lianhu", str(fake))
        text = re.sub(r"^(User|EnvironmentFile)=.*$", "", text, flags=re.M)
        name = unit.name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(text)
        copies.append(str(tmp_path / name))
    result = subprocess.run(
        [analyze, "verify", *copies], capture_output=True, text=True, timeout=60
    )
    problems = [
        line for line in result.stderr.splitlines()
        if str(tmp_path) in line and "lianhu" in line
    ]  # fmt: skip
    assert problems == [], result.stderr


def test_redis_is_guarded_by_a_password_and_reachable_only_by_lianhu() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    redis_service = services["redis"]
    assert "--requirepass" in redis_service["command"]
    assert "ports" not in redis_service  # never published
    assert redis_service["networks"] == ["redis"]
    assert compose["networks"]["redis"]["internal"] is True
    for name in ("bot", "worker", "web"):
        url = services[name]["environment"]["REDIS_URL"]
        assert url.startswith("redis://:${LIANHU_REDIS_PASSWORD}@redis:"), url
    assert "redis" not in services["proxy"]["networks"]  # the proxy never reaches Redis
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "lianhu.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert "LIANHU_REDIS_PASSWORD" in env
    url = env["REDIS_URL"]
    assert url.startswith("unix://:") and "@/run/redis/" in url  # a password and a socket
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text()
        assert "REDIS_URL=redis://" not in text  # no password-less TCP Redis in a unit
        assert "SupplementaryGroups=redis" in text
    guide = (DEPLOY / "README.md").read_text()
    assert "Redis is a trust boundary" in guide and "requirepass" in guide
    assert "port 0" in guide and "unixsocket " in guide


def test_compose_scales_the_bot_behind_the_proxy_and_the_workers() -> None:
    """`--scale bot=N --scale worker=M` works: nothing fixes a replica's name or port."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("bot", "worker"):
        service = services[name]
        assert "container_name" not in service and "ports" not in service, name  # would clash
        assert "--name" not in service["command"]  # each process names its own consumer
    bot = services["bot"]["command"]
    port = bot[bot.index("--port") + 1]
    assert bot[bot.index("--listen") + 1] == "0.0.0.0" and "--webhook" in bot
    proxy = services["proxy"]
    assert proxy["ports"] == [f"127.0.0.1:{port}:{port}"]  # the host's loopback only
    assert set(proxy["networks"]) <= set(services["bot"]["networks"])
    source, target, _ = proxy["volumes"][0].split(":")
    assert target in proxy["command"]
    caddyfile = (DEPLOY / source).read_text()
    upstream = re.search(r"dynamic a \{\s*name (\S+)\s*port (\d+)", caddyfile)
    assert upstream is not None and upstream.groups() == ("bot", port)
    assert re.search(r"health_uri /healthz", caddyfile)
    assert "--scale bot=2 --scale worker=2" in (DEPLOY / "docker-compose.yml").read_text()
    assert "--scale bot=2 --scale worker=2" in (DEPLOY / "README.md").read_text()


def test_every_worker_writes_the_archive_to_one_shared_place() -> None:
    """The sweeper's archive files are on a volume all worker replicas share, and writable."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    worker = compose["services"]["worker"]
    folder = worker["environment"]["LIANHU_ARCHIVE_DIR"]
    assert f"archive:{folder}" in worker["volumes"] and "archive" in compose["volumes"]
    assert f"install -d -o lianhu -m 700 {folder}" in (DEPLOY / "Dockerfile").read_text()
    unit = (DEPLOY / "systemd" / "lianhu-worker@.service").read_text()
    assert "ProtectSystem=strict" in unit  # all read-only but the state directory
    assert "StateDirectory=lianhu/archive" in unit
    assert "Environment=LIANHU_ARCHIVE_DIR=/var/lib/lianhu/archive" in unit


def image_tree(app: Path) -> None:
    """Copy into ``app`` what the Dockerfile's COPY lines put in its WORKDIR (/app)."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert "WORKDIR /app" in text
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, target = line.split()
        for source in sources:
            origin = ROOT / source
            into = app / target / source if target.endswith("/") else app / target
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=skip)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)


def test_the_image_runs_lianhu_with_its_templates_and_rules(tmp_path: Path) -> None:
    """The Dockerfile's own install of Lianhu, done here without Docker: its COPY lines into
    a folder, its pip command into a fresh venv (the locked packages borrowed from this
    one's). Lianhu finds its templates and the rules' seed embeddings beside its package
    (bot/render.py, bot/classifier/engine.py), so a plain install into site-packages left
    them behind (the image's bot failed at its first template); the image installs it in
    place and runs it from /app."""
    app, venv = tmp_path / "app", tmp_path / "venv"
    image_tree(app)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # The locked packages (requirements.txt's layer of the image) from this venv, after its own.
    Path(site, "locked.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    text = (DEPLOY / "Dockerfile").read_text()
    install = re.search(r"^RUN pip install (--no-deps [^&\n]+?)\s*(&&|$)", text, re.M)
    assert install, "the Dockerfile installs Lianhu with pip --no-deps"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
         *install.group(1).split()],
        cwd=app, check=True, capture_output=True, text=True,
    )  # fmt: skip
    env = dict(re.findall(r"(LIANHU_\w+)=(\S+)", text))
    env = {name: value.replace("/app", str(app)) for name, value in env.items()}
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}
    found = subprocess.run(
        [python, "-c", "import json; from bot.render import TEMPLATES, Renderer; "
         "from bot.classifier.engine import SEED_EMBEDDINGS; Renderer(); "
         "print(json.dumps([str(TEMPLATES), str(SEED_EMBEDDINGS)]))"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    templates, seeds = map(Path, json.loads(found.stdout))
    assert templates == app / "templates" and seeds == app / "routing_rules" / "examples"
    assert list(seeds.glob("*.npz")), "no seed embeddings where the image's bot looks"
    for command in (["rules", "check"], ["org", "check"]):
        done = subprocess.run(
            [venv / "bin" / "lianhu", *command], cwd=tmp_path, env=env, capture_output=True,
            text=True,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stdout, done.stderr)
