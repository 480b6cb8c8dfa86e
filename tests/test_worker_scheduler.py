"""A ``lianhu worker`` keeps rq's scheduler running when Redis goes away and comes back.

rq's scheduler is a child process of the worker that exits on its first Redis error, and rq
starts it again only at its maintenance, every 10 minutes: until then no scheduled job (a
deadline) is queued, and only our sweeper (every 30 s) catches the overdue deadlines. The
worker looks every few seconds instead. Each test runs a real worker process on a real
redis-server, breaks the server (a restart; a Sentinel failover), schedules a job due in two
seconds and waits for rq to run it: the job is no deadline, so only rq can.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from bot.cli.worker import KeptWorker
from bot.redis_clients import sync_client
from bot.redis_server import EmbeddedRedis
from tests import test_sentinel
from tests.conftest import ROOT, RULES_DIR
from tests.telegram_fixtures import ORG
from tests.test_sentinel import Servers

STARTED = "Scheduler for lianhu started"
DIED = "raised an exception"
DUE_IN = 2.0
# The job must run this soon after it is due: rq's own restart would come after 10 minutes,
# the sweeper never runs it. The worker retries Redis with a growing pause (1, 2, 4 s).
RAN_WITHIN = 8.0
T = TypeVar("T")


class WorkerProcess:
    """``lianhu worker`` as a subprocess, logging to a file."""

    def __init__(self, redis_url: str, log: Path) -> None:
        self.log = log
        env = {
            **os.environ, "REDIS_URL": redis_url, "LIANHU_RULES_DIR": str(RULES_DIR),
            "LIANHU_ORG_FILE": str(ORG), "LIANHU_DIGEST_AT": "",
        }  # fmt: skip
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "worker"], env=env, cwd=ROOT,
                stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip

    def said(self, text: str) -> int:
        return self.log.read_text(errors="replace").count(text)

    def wait_said(self, text: str, times: int, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self.said(text) < times:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            assert time.monotonic() < end, f"no {text!r} x{times}:\n" + self.log.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def worker_log(tmp_path: Path) -> Path:
    return tmp_path / "worker.log"


def retried(call: Callable[[], T], seconds: float = 10.0) -> T:
    """Return what ``call`` returns once Redis answers (a new master may take a moment)."""
    end = time.monotonic() + seconds
    while True:
        try:
            return call()
        except (redis.exceptions.ConnectionError, redis.exceptions.ReadOnlyError):
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def schedule_and_wait(connection: redis.Redis, worker: WorkerProcess) -> float:
    """Schedule a job due in DUE_IN seconds; return how long after its time rq finished it
    (rq schedules to the whole second, so a job may run up to a second early)."""
    due = datetime.now(UTC) + timedelta(seconds=DUE_IN)
    queue = Queue("lianhu", connection=connection)
    job = retried(lambda: queue.enqueue_at(due, "time.sleep", 0, result_ttl=600))
    end = time.monotonic() + DUE_IN + RAN_WITHIN
    while retried(lambda: job.get_status(refresh=True)) != JobStatus.FINISHED:
        assert time.monotonic() < end, (
            f"rq did not run a job due {DUE_IN} s after Redis came back within {RAN_WITHIN} s "
            f"of its time (status {job.get_status()}):\n" + worker.log.read_text()
        )
        assert worker.proc.poll() is None, worker.log.read_text()
        time.sleep(0.1)
    return (datetime.now(UTC) - due).total_seconds()


def test_the_scheduler_comes_back_after_a_redis_restart(
    restartable_redis: EmbeddedRedis, worker_log: Path
) -> None:
    worker = WorkerProcess(restartable_redis.url, worker_log)
    try:
        worker.wait_said(STARTED, 1, 60)
        restartable_redis.stop()  # the AOF keeps rq's keys, the scheduler's lock among them
        worker.wait_said(DIED, 1, 20)  # its next beat (every second) finds no Redis
        restartable_redis.start()
        connection = redis.Redis.from_url(restartable_redis.url)
        try:
            late = schedule_and_wait(connection, worker)
        finally:
            connection.close()
        assert worker.said(STARTED) == 2
        print(f"after a restart: ran {late:.1f} s after its time")
    finally:
        worker.stop()


servers = test_sentinel.servers  # a master, a replica and a sentinel, started for the test


def test_the_scheduler_comes_back_after_a_sentinel_failover(
    servers: Servers, worker_log: Path
) -> None:
    worker = WorkerProcess(servers.url, worker_log)
    connection = sync_client(servers.url)
    try:
        worker.wait_said(STARTED, 1, 60)
        assert connection.execute_command("WAIT", 1, 5000) == 1  # the lock is on the replica
        servers.kill("master")
        worker.wait_said(DIED, 1, 20)
        end = time.monotonic() + 30
        while servers.master_port() != servers.ports["replica"]:
            assert time.monotonic() < end, "the sentinel promoted no replica within 30 s"
            time.sleep(0.1)
        late = schedule_and_wait(connection, worker)
        assert worker.said(STARTED) >= 2  # started again (twice if it met no master again)
        print(f"after a failover: ran {late:.1f} s after its time")
    finally:
        connection.close()
        worker.stop()


def test_the_worker_outlives_a_failover_in_its_maintenance(tmp_path: Path) -> None:
    """rq quits its work loop on an error in its maintenance (the cleaning of its registries
    at start met a master just killed: the full suite caught it once); ours logs and goes on."""
    with EmbeddedRedis(tmp_path / "r") as url:
        connection = sync_client(url)
        worker = KeptWorker([Queue("lianhu", connection=connection)], connection=connection)
    worker.run_maintenance_tasks()  # Redis is gone: no error escapes
    assert worker.last_cleaned_at is None  # not done: it runs again at the next turn


def test_the_worker_waits_for_redis_where_rq_writes_its_state(
    restartable_redis: EmbeddedRedis,
) -> None:
    """rq writes the worker's state before its loop that waits for Redis: a failover at that
    moment ended the worker (CI met it). Ours waits there, then takes the job queued once
    Redis is back."""
    connection = sync_client(restartable_redis.url)
    queue = Queue("lianhu", connection=connection)
    worker = KeptWorker([queue], connection=connection)
    worker.last_cleaned_at = datetime.now(UTC)  # type: ignore[assignment]  # state first
    restartable_redis.stop()
    got: list[tuple[Job, Queue] | None] = []
    waiting = threading.Thread(target=lambda: got.append(worker.dequeue_job_and_maintain_ttl(1)))
    waiting.start()
    time.sleep(1.5)  # it has met no Redis at least once
    assert waiting.is_alive()
    restartable_redis.start()
    job = queue.enqueue("time.sleep", 0)
    waiting.join(30)
    assert not waiting.is_alive(), "the worker did not take the job once Redis was back"
    assert got and got[0] is not None, "the worker's wait ended without a job"
    assert got[0][0].id == job.id
    connection.close()


def test_the_worker_waits_for_redis_where_rq_looks_for_a_suspension(
    restartable_redis: EmbeddedRedis,
) -> None:
    """rq's look for ``rq suspend`` opens each turn of its loop, outside its wait for Redis."""
    connection = sync_client(restartable_redis.url)
    worker = KeptWorker([Queue("lianhu", connection=connection)], connection=connection)
    restartable_redis.stop()
    failed: list[BaseException] = []

    def look() -> None:
        try:
            worker.check_for_suspension(False)
        except BaseException as exc:  # the test reports it
            failed.append(exc)

    looking = threading.Thread(target=look)
    looking.start()
    time.sleep(1.5)
    assert looking.is_alive(), f"the look ended with Redis away: {failed}"
    restartable_redis.start()
    looking.join(30)
    assert not looking.is_alive() and not failed
    connection.close()
