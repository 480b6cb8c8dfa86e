"""``lianhu demo``: the whole system on one machine, with no accounts and no Redis to install.

Starts, in this order, the embedded Redis (in ``LIANHU_DATA_DIR``), optionally
seeds a week of tickets, an rq worker with its scheduler and sweeper (``lianhu
worker`` as a child process), and the web app with the simulator's Sender; prints
the address; and on Ctrl-C or SIGTERM stops them in the reverse order, leaving
no process and no socket behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from bot.settings import Settings

DEMO_SCALE = 0.002
"""The demo's LIANHU_DEADLINE_SCALE unless one is set: 4 h become 29 s, 24 h 2.9 min."""

WORKER_STOP_TIMEOUT = 10.0


def register(commands: Any) -> None:
    """Add ``demo``."""
    parser = commands.add_parser(
        "demo", help="run the web simulator and ticket views on an embedded Redis"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    parser.add_argument(
        "--seed", action="store_true", help="fill an empty database with a week of tickets"
    )
    parser.set_defaults(func=cmd_demo)


def demo_settings() -> Settings:
    """Return the settings with the demo's short deadlines unless LIANHU_DEADLINE_SCALE is set."""
    if "LIANHU_DEADLINE_SCALE" in os.environ:
        return Settings()
    return Settings(deadline_scale=DEMO_SCALE)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or SIGTERM."""
    from bot.logs import setup_logging
    from bot.redis_server import RedisServerError, redis_url_or_embedded

    settings = demo_settings()
    setup_logging(secrets=settings.secret_values())
    previous = signal.signal(signal.SIGTERM, _terminate)  # until the event loop takes over
    embedded = None
    worker: subprocess.Popen[bytes] | None = None
    try:
        try:
            url, embedded = redis_url_or_embedded(settings.redis_url, settings.data_dir)
        except RedisServerError as exc:
            print(f"lianhu demo: {exc}", file=sys.stderr)
            return 1
        if args.seed:
            _seed(settings, url)
        worker = _start_worker(settings, url)
        return asyncio.run(_serve(settings, url, args.host, args.port))
    except KeyboardInterrupt:
        return 0
    finally:
        if worker is not None:
            _stop_worker(worker)
        if embedded is not None:
            embedded.stop()
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C


def _seed(settings: Settings, url: str) -> None:
    from bot.seed import AlreadySeeded, seed

    try:
        states = asyncio.run(seed(settings, url))
    except AlreadySeeded:
        print("lianhu demo: the data folder already holds tickets; not seeding", flush=True)
        return
    summary = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
    print(f"seeded a week of tickets: {summary}", flush=True)


def _start_worker(settings: Settings, url: str) -> subprocess.Popen[bytes]:
    """Start ``lianhu worker`` on the same Redis, rules, tree and deadline scale."""
    from bot.redis_server import pdeathsig_setup

    env = {
        **os.environ,
        "REDIS_URL": url,
        "LIANHU_RULES_DIR": str(Path(settings.rules_dir).resolve()),
        "LIANHU_ORG_FILE": str(Path(settings.org_file).resolve()),
        "LIANHU_DEADLINE_SCALE": repr(settings.deadline_scale),
        "LIANHU_DEADLINE_FLOOR": repr(settings.deadline_floor),
        "LIANHU_QUEUE": settings.queue,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "worker", "--log-level", "WARNING"],  # no line per job
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches only us; we stop the worker in order
        preexec_fn=pdeathsig_setup(),  # and it stops if we are killed
    )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Ask the worker to stop (rq's warm shutdown), then make sure its whole group is gone."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    # The worker's scheduler and work horses are in its process group: none may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.pid, signal.SIGKILL)


async def _serve(settings: Settings, url: str, host: str, port: int) -> int:
    from bot.cli.common import serve_until_stopped
    from bot.web.app import PARTS, init_app

    app = init_app(settings, url, listen=host, demo=True)

    def started(address: str) -> None:
        if not settings.web_url:  # /web in the simulator's private chat links here
            app[PARTS].service.web_url = address
        print(
            f"Lianhu demo: {address}/  (deadlines x{settings.deadline_scale:g}; Ctrl-C to stop)\n"
            f"  console: send /web (登录后台) to 联户助手 in a private chat of the simulator,\n"
            f"  or press 以此身份打开工单后台 under the person switcher",
            flush=True,
        )
        classifier = app[PARTS].service.classifier
        job = classifier.training if classifier is not None else None
        if classifier is not None and job is not None:
            if classifier.model is not None:  # its TF-IDF model was cached, not the full one
                print(
                    "  the classifier is training (a few minutes); a first model (TF-IDF)\n"
                    "  classifies meanwhile",
                    flush=True,
                )
            else:
                print(
                    "  the classifier is training (the first start only, a few minutes): for\n"
                    "  its first half minute the keyword rails alone classify, and plainly\n"
                    "  worded reports may meet silence",
                    flush=True,
                )
                classifier.interim.add_done_callback(
                    lambda _: print(
                        "  a first model (TF-IDF) classifies now; the full one is still training",
                        flush=True,
                    )
                )
            job.add_done_callback(lambda _: print("  the classifier is ready", flush=True))

    return await serve_until_stopped(app, host, port, "lianhu demo", started, access_log=False)
