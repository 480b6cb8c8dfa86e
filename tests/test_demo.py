"""``lianhu demo`` as a user runs it: a real process with its Redis, rq worker and web app."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.helpers import printed_address

START_TIMEOUT = 60.0  # seconds, on a loaded machine
STOP_TIMEOUT = 30.0


def descendants(pid: int) -> set[int]:
    """Return every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def command_lines(pids: set[int]) -> dict[int, bytes]:
    """Return the command line of each of ``pids`` still running (a work horse the worker
    forked may end between the listing and the read: CI met one)."""
    found = {}
    for pid in pids:
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
    return found


def marked(mark: bytes) -> set[int]:
    """Return the live processes whose environment holds ``mark`` (children inherit it)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
            except OSError:
                continue
    return {pid for pid in found if alive(pid)}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def demo(
    data: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start ``lianhu demo`` and yield it with the address it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--port", "0", *args],
        cwd=ROOT,
        # No morning digest mid-test: its time may come while a test runs.
        env={**os.environ, "LIANHU_DATA_DIR": str(data), "LIANHU_DIGEST_AT": "", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process, printed_address(process, "Lianhu demo: ", START_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()  # type: ignore[union-attr]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def console(address: str, form: dict[str, str], path: str = "/demo/signin") -> Any:
    """Sign in to the demo's console by posting ``form`` to ``path``; return a URL opener."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    body = urllib.parse.urlencode(form).encode()
    with opener.open(f"{address}{path}", body, timeout=30) as response:
        assert response.status == 200  # after the redirect to the viewer's first page
    return opener


def port_is_free(address: str) -> bool:
    host, port = address.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


def test_a_first_start_says_the_classifier_is_still_training(tmp_path: Path) -> None:
    """The model trains in the background on a new data folder; until then the rails alone
    classify, and whoever started the demo is told so (the walk by role met a plainly worded
    report answered with silence in the demo's first minutes)."""
    with demo(tmp_path / "data", env={"LIANHU_CLASSIFIER": "tfidf"}) as (process, _):
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert "the classifier is training" in lines[2], lines
        lines += [process.stdout.readline() for _ in range(3)]  # the TF-IDF model trains fast
        assert "the classifier is ready" in lines[5], lines


@pytest.mark.timeout(300)  # the TF-IDF model trains: 30-45 s idle, 2-3x under load
def test_ctrl_c_during_the_first_training_stops_at_once(tmp_path: Path) -> None:
    """Training the model takes minutes on a new data folder; a TF-IDF model classifies
    from the first half minute, and Ctrl-C during the full model's training does not wait."""
    with demo(tmp_path / "data", env={"LIANHU_CLASSIFIER": "model"}) as (process, _):
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert "the classifier is training" in lines[2], lines
        lines += [process.stdout.readline() for _ in range(3)]
        # a TF-IDF model first (half a minute idle): not the rails alone until the full one
        assert "a first model (TF-IDF) classifies now" in lines[5], lines
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=STOP_TIMEOUT) == 0
    # Started again: the TF-IDF model is cached, the full one is not; the first classifies at
    # once (it said the rails alone classified for half a minute).
    with demo(tmp_path / "data", env={"LIANHU_CLASSIFIER": "model"}) as (process, _):
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert "a first model (TF-IDF)" in lines[2] + lines[3], lines
        assert "rails alone" not in "".join(lines), lines
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=STOP_TIMEOUT) == 0


@pytest.mark.timeout(480)  # ten starts (the first trains the model): ~80 s idle, 2-3x under load
def test_started_and_stopped_ten_times_it_leaves_nothing_behind(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tickets = None
    for run in range(10):
        with demo(data, "--seed") as (process, address):
            assert get(f"{address}/healthz") == "ok"
            with console(address, {"as": "p-admin-liu"}).open(
                f"{address}/tickets?state=all", timeout=30
            ) as response:
                page = response.read().decode()
            count = page.count('<tr data-id="')
            assert count > 0 and (tickets is None or count == tickets)  # seeded once, kept
            tickets = count
            children = descendants(process.pid)
            commands = command_lines(children)
            assert any(b"redis-server" in c for c in commands.values()), commands
            worker = [c for c, command in commands.items() if b"worker" in command]
            assert worker, commands
            # What the worker forks later (its scheduler, work horses) inherits its environment.
            mark = f"LIANHU_DATA_DIR={data}".encode()
            assert {process.pid, worker[0]} <= marked(mark)  # the check below can see them
            process.send_signal(signal.SIGINT if run % 2 == 0 else signal.SIGTERM)
            assert process.wait(timeout=STOP_TIMEOUT) == 0
            assert not [c for c in children if alive(c)], f"run {run}: left {children}"
            assert not marked(mark)  # nor any process forked after the snapshot
            assert not (data / "redis.sock").exists()
            assert port_is_free(address)


def test_a_missed_deadline_escalates_through_the_demos_worker(tmp_path: Path) -> None:
    # 4 hours to acknowledge a water outage become 2.9 s.
    env = {"LIANHU_DEADLINE_SCALE": "0.0002", "LIANHU_DEADLINE_FLOOR": "0"}
    with demo(tmp_path / "data", env=env) as (process, address):
        body = post(
            f"{address}/sim/api/send",
            {"as": "p-chen-zhiqiang", "chat": "sim:H-01", "text": "楼下停水两天了"},
        )
        assert body["status"] == "opened"
        deadline = time.monotonic() + START_TIMEOUT
        street: list[dict[str, object]] = []
        while time.monotonic() < deadline and not street:
            time.sleep(0.2)
            found = json.loads(get(f"{address}/sim/api/messages?as=p-luo-bingkun&chat=sim:S-01"))[
                "messages"
            ]
            street = [m for m in found if "#1" in str(m["text"]) and m["buttons"]]
        assert street, "the ticket never reached the street group"
        # The console link the demo's bot sends in a private chat signs the street staff in.
        me = "sim:p-luo-bingkun"
        post(f"{address}/sim/api/send", {"as": "p-luo-bingkun", "chat": me, "text": "/web"})
        link = None
        while time.monotonic() < deadline and link is None:
            time.sleep(0.2)
            said = json.loads(get(f"{address}/sim/api/messages?as=p-luo-bingkun&chat={me}"))
            link = re.search(r"/login/([A-Za-z0-9_-]+)", str(said["messages"]))
        assert link is not None, "no sign-in link in the private chat"
        assert "登录" in get(f"{address}{link[0]}")
        with console(address, {"token": link[1]}, "/login").open(
            f"{address}/tickets/1", timeout=30
        ) as response:
            page = response.read().decode()
        assert 'data-kind="escalated"' in page
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=STOP_TIMEOUT) == 0
