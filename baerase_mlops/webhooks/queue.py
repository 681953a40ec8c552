"""The receiver's durable queue: SQLite, so that a restart or a crash loses nothing.

* ``deliveries`` remembers every accepted delivery id: a second delivery with the same id
  is a replay. The id and the jobs it asks for are written in one transaction.
* ``jobs`` holds scans (``scan``) and protected-alias checks (``aliases``). A worker claims
  a job with a lease and renews it while it works; a job whose lease ran out (its worker
  crashed or was killed) can be claimed again, up to ``max_attempts`` claims.
* ``alias_holders`` remembers, per protected alias, the last version seen holding it that
  passed, to move the alias back to.

Why not huey (SQLite-backed, already installed with MLflow, which runs its server jobs on
it)? Weighed against the crash, lease and burst tests, huey 3.5 would need as much code of
ours around it, not less:

* No lease. ``SqliteStorage.dequeue`` deletes the task row when a consumer takes it, so a
  receiver killed mid-scan loses the job (test_a_scan_killed_mid_way_is_finished_after_a_restart);
  we would have to keep a "running" record and a reaper beside it, i.e. this table.
* No replay check in the same transaction. The delivery id must be remembered and the jobs
  queued atomically before the 200 (a crash between the two either loses a delivery or lets a
  replay through); huey's enqueue is its own write on its own connection.
* No "absorb a duplicate waiting job" (a burst of alias and tag events for one version queues
  one check, not fifty), no per-version "a scan is running, skip", no attempt count visible to
  the health check and to the metrics: all of these are queries on this schema.
* Its consumer is a separate process model (``huey_consumer``) with its own signal handling;
  our workers already run each scan in a child process and renew its lease.

So the queue stays: about 150 lines of SQL whose every property has a test.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    alias TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    worker TEXT NOT NULL DEFAULT '',
    delivery_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    result TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_queued_once ON jobs (kind, name, version, alias) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (kind, state, id);
CREATE TABLE IF NOT EXISTS alias_holders (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (name, alias)
);
"""

KINDS = ("scan", "aliases")
STATES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class JobSpec:
    """What a delivery asks for: a scan of a version, or a check of its protected aliases
    (``alias`` empty: every protected alias that points at the version)."""

    kind: str
    name: str
    version: str
    alias: str = ""


@dataclass(frozen=True)
class Job:
    id: int
    spec: JobSpec
    attempts: int
    state: str = "running"
    result: str = ""


class JobQueue:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def accept(self, delivery_id: str, event: str, jobs: list[JobSpec], now: float | None = None) -> bool:
        """Remember the delivery and queue its jobs; False (and nothing queued) for a replay."""
        now = time.time() if now is None else now
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO deliveries (delivery_id, event, received_at) VALUES (?, ?, ?)",
                    (delivery_id, event, now),
                )
                self._insert(db, jobs, delivery_id, now)
        except sqlite3.IntegrityError:
            return False
        return True

    def enqueue(self, jobs: list[JobSpec], now: float | None = None) -> None:
        """Queue jobs that no delivery asked for (a scan the alias check wants)."""
        with self._transaction() as db:
            self._insert(db, jobs, None, time.time() if now is None else now)

    @staticmethod
    def _insert(db: sqlite3.Connection, jobs: list[JobSpec], delivery_id: str | None, now: float) -> None:
        for job in jobs:
            if job.kind not in KINDS:
                raise ValueError(f"unknown job kind {job.kind!r}")
            if (
                job.kind == "scan"
                and db.execute(
                    "SELECT 1 FROM jobs WHERE kind = 'scan' AND name = ? AND version = ? AND state = 'running'",
                    (job.name, job.version),
                ).fetchone()
            ):
                continue  # a scan of that version is under way: a second one would find its verdict
            # A job already waiting for the same thing absorbs this one.
            db.execute(
                "INSERT OR IGNORE INTO jobs (kind, name, version, alias, delivery_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.kind, job.name, job.version, job.alias, delivery_id, now, now),
            )

    def claim(self, kind: str, worker: str, lease_s: float, max_attempts: int, now: float | None = None) -> Job | None:
        """The oldest job of ``kind`` that is waiting or whose lease ran out, leased to ``worker``."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            while True:
                row = db.execute(
                    "SELECT id, name, version, alias, attempts FROM jobs WHERE kind = ? AND "
                    "((state = 'queued' AND not_before <= ?) OR (state = 'running' AND lease_until < ?)) "
                    "ORDER BY id LIMIT 1",
                    (kind, now, now),
                ).fetchone()
                if row is None:
                    return None
                job_id, name, version, alias, attempts = row
                if attempts >= max_attempts:
                    db.execute(
                        "UPDATE jobs SET state = 'failed', updated_at = ?, result = ? WHERE id = ?",
                        (now, f"gave up after {attempts} attempts (its worker stopped before finishing)", job_id),
                    )
                    continue
                db.execute(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, worker = ?, "
                    "updated_at = ? WHERE id = ?",
                    (now + lease_s, worker, now, job_id),
                )
                return Job(job_id, JobSpec(kind, name, version, alias), attempts + 1)

    def renew(self, job: Job, worker: str, lease_s: float) -> bool:
        """Extend the lease; False when the job is no longer this worker's."""
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET lease_until = ?, updated_at = ? WHERE id = ? AND worker = ? AND state = 'running'",
                (now + lease_s, now, job.id, worker),
            )
            return cursor.rowcount == 1

    def finish(self, job: Job, worker: str, state: str, result: str) -> None:
        """Mark the job ``done`` or ``failed`` with what became of it."""
        if state not in ("done", "failed"):
            raise ValueError(f"a job finishes done or failed, not {state!r}")
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, result = ?, updated_at = ?, lease_until = 0 "
                "WHERE id = ? AND worker = ? AND state = 'running'",
                (state, result, time.time(), job.id, worker),
            )

    def release(
        self, job: Job, worker: str, delay_s: float = 0.0, count_attempt: bool = True, result: str = ""
    ) -> None:
        """Put a claimed job back, to be claimed again after ``delay_s`` (a retry, or a shutdown:
        ``count_attempt=False``); absorbed into an identical waiting job if there is one."""
        now = time.time()
        with self._transaction() as db:
            try:
                db.execute(
                    "UPDATE jobs SET state = 'queued', not_before = ?, lease_until = 0, worker = '', "
                    "attempts = attempts - ?, result = ?, updated_at = ? "
                    "WHERE id = ? AND worker = ? AND state = 'running'",
                    (now + delay_s, 0 if count_attempt else 1, result, now, job.id, worker),
                )
            except sqlite3.IntegrityError:
                db.execute(
                    "UPDATE jobs SET state = 'done', result = 'superseded by the same job queued again', "
                    "updated_at = ? WHERE id = ?",
                    (now, job.id),
                )

    def forget_deliveries(self, before: float) -> int:
        """Drop delivery ids older than ``before``: deliveries that old are refused as stale anyway."""
        with self._transaction() as db:
            return db.execute("DELETE FROM deliveries WHERE received_at < ?", (before,)).rowcount

    def record_holder(self, name: str, alias: str, version: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO alias_holders (name, alias, version, seen_at) VALUES (?, ?, ?, ?)",
                (name, alias, version, time.time()),
            )

    def last_holder(self, name: str, alias: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT version FROM alias_holders WHERE name = ? AND alias = ?", (name, alias)).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, dict[str, int]]:
        """Jobs per kind and state, and the deliveries remembered."""
        with self._connect() as db:
            rows = db.execute("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state").fetchall()
            deliveries = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        counts: dict[str, dict[str, int]] = {kind: dict.fromkeys(STATES, 0) for kind in KINDS}
        for kind, state, n in rows:
            counts.setdefault(kind, dict.fromkeys(STATES, 0))[state] = n
        return {**counts, "deliveries": {"remembered": deliveries}}

    def jobs(self, kind: str | None = None) -> list[Job]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, kind, name, version, alias, attempts, state, result FROM jobs "
                "WHERE ? IS NULL OR kind = ? ORDER BY id",
                (kind, kind),
            ).fetchall()
        return [Job(r[0], JobSpec(r[1], r[2], r[3], r[4]), r[5], r[6], r[7]) for r in rows]
