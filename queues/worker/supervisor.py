"""The worker: one supervisor process and N handler processes.

The supervisor is a single-threaded loop. It claims due jobs (one short transaction), hands
each to an idle handler process, enforces time limits and leases with its monotonic clock,
heartbeats, redelivers other workers' orphaned jobs, and acknowledges outcomes (fenced by
lease token, successes in batches). It never holds a transaction while a handler runs.

Signals: SIGTERM/SIGINT = stop claiming, let in-flight jobs finish within SHUTDOWN_GRACE,
hand back what is left, exit 0. A second signal stops in-flight jobs at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from django.db import DatabaseError, InterfaceError, connections

from queues import store
from queues.conf import RelaySettings, relay_settings
from queues.exceptions import HandlerCrashed
from queues.models import Outcome
from queues.registry import registry
from queues.store import Claimed, Failure, Success
from queues.worker.child import child_main, error_type_name
from queues.worker.context import REASON_CANCEL, REASON_LEASE, REASON_SHUTDOWN, REASON_TIMEOUT

logger = logging.getLogger("queues.worker")

_OUTCOME_FOR_REASON = {
    REASON_TIMEOUT: Outcome.TIMEOUT,
    REASON_CANCEL: Outcome.CANCELLED,
    REASON_LEASE: Outcome.LOST,
    REASON_SHUTDOWN: Outcome.LOST,
}
_DB_ERRORS = (DatabaseError, InterfaceError)
# Successes are acknowledged in batches: when this many are waiting, when the oldest has
# waited this long, or when nothing else is running.
ACK_BATCH = 200
ACK_DELAY = 0.02
# Prefetch adapts to how long jobs take: hold as many as the handlers are expected to start
# within this window (none for slow jobs, up to WORKER_PREFETCH for very short ones).
PREFETCH_WINDOW = 0.05
# SQLite: how often an idle worker checks whether another connection committed something.
SQLITE_PROBE_INTERVAL = 0.01


@dataclass
class Slot:
    """One handler process and the delivery it is running."""

    index: int
    process: Any = None
    channel: Connection | None = None
    interrupt: Any = None  # shared [job_id, reason]
    job: Claimed | None = None
    started: float = 0.0  # monotonic, taken before the claim
    time_limit_at: float | None = None
    lease_until: float = 0.0  # monotonic, a safety margin before the database's deadline
    reason: int = 0  # why the supervisor stopped this attempt, 0 if it did not
    kill_at: float | None = None


class Worker:
    def __init__(self, *, queues: list[str], concurrency: int, burst: bool = False,
                 name: str | None = None) -> None:
        self.conf: RelaySettings = relay_settings()
        self.queues = queues
        self.concurrency = concurrency
        self.burst = burst
        self.host = socket.gethostname()
        self.name = name or f"{self.host}:{os.getpid()}"
        self.tasks = registry.names()
        self.worker_id: int | None = None
        self.slots = [Slot(index=i) for i in range(concurrency)]
        # Claimed ahead of free handlers (claimed job, monotonic claim time), started in order.
        self.ready: deque[tuple[Claimed, float]] = deque()
        self.prefetch_cap = max(0, self.conf.WORKER_PREFETCH)
        self.prefetch = 0  # current target, from the recent average duration of jobs
        self.avg_duration: float | None = None
        self.successes: list[tuple[Success, Slot | None, Claimed, float]] = []
        self.successes_since = 0.0  # monotonic time of the oldest unacknowledged success
        self.failures: list[tuple[Failure, Claimed, float]] = []
        self.stop_signals = 0
        self.stopping_since: float | None = None
        self.db_backoff_until = 0.0
        self.db_failures = 0
        self._ctx = multiprocessing.get_context("fork")
        self.listener = (store.Listener(queues, name=self.name) if store.Listener.supported()
                         else None)
        self.woken = False  # a notification said a job of ours is due
        self.probe = connections["default"].vendor == "sqlite"
        self.seen_version: int | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        self.worker_id = self._register()
        logger.info(
            "worker %s started: queues=%s concurrency=%d tasks=%d",
            self.name, ",".join(self.queues), self.concurrency, len(self.tasks),
            extra={"worker": self.name},
        )
        connections.close_all()  # never fork with an open connection
        for slot in self.slots:
            self._spawn(slot)
        try:
            self._loop()
        finally:
            if self.listener is not None:
                self.listener.close()
            self._stop_children()
            self._flush(final=True)
            self._quietly(store.stop_worker, self.worker_id)
            logger.info("worker %s stopped", self.name, extra={"worker": self.name})
        return 0

    def _register(self) -> int:
        while True:
            try:
                return store.register_worker(
                    name=self.name, host=self.host, pid=os.getpid(), queues=self.queues,
                    tasks=self.tasks, concurrency=self.concurrency,
                ).pk
            except _DB_ERRORS as exc:
                if self.stop_signals:
                    raise
                logger.error("cannot register worker, database unavailable: %s", exc)
                connections.close_all()
                time.sleep(min(5.0, self.conf.POLL_INTERVAL * 5))

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)

        def on_stop(signum: int, frame: Any) -> None:
            self.stop_signals += 1

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)

    # --- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        conf = self.conf
        now = time.monotonic()
        next_heartbeat = now + conf.HEARTBEAT_INTERVAL
        next_rescue = now  # rescue once at start: the previous worker on this box may have died
        next_claim = now
        next_probe = now
        while True:
            now = time.monotonic()
            if self.stop_signals and self.stopping_since is None:
                self.stopping_since = now
                logger.info("worker %s stopping: finishing %d in-flight job(s)", self.name,
                            len(self._busy()))
                next_heartbeat = now
            stopping = self.stopping_since is not None
            # Done draining. Reports that cannot reach the database yet keep the worker trying
            # (their leases would otherwise expire into redeliveries) -- unless told twice.
            if stopping and self.ready:
                self._release_ready(list(self.ready))
            if stopping and not self._busy() and (not self._pending() or self.stop_signals > 1):
                return
            if stopping:
                self._enforce_shutdown(now)
            self._flush()
            self._start_ready(now)  # needs no database: runs even while it is unreachable
            if now >= self.db_backoff_until:
                if now >= next_heartbeat:
                    self._heartbeat(stopping)
                    next_heartbeat = now + conf.HEARTBEAT_INTERVAL
                if now >= next_rescue and not stopping:
                    self._db(store.rescue, stale_after=conf.WORKER_STALE_AFTER)
                    next_rescue = now + conf.RESCUE_INTERVAL
                if self.probe and now >= next_probe and next_claim > now and self._want():
                    version = self._db(store.data_version)
                    if version is not None and version != self.seen_version:
                        self.seen_version = version
                        self.woken = bool(self._db(store.has_due, self.queues, self.tasks))
                    next_probe = now + SQLITE_PROBE_INTERVAL
                if self.woken:
                    self.woken = False
                    next_claim = min(next_claim, now)
                want = self._want()
                if not stopping and want and now >= next_claim:
                    claimed = self._claim(want, now)
                    if claimed is None:
                        next_claim = now + conf.POLL_INTERVAL
                    elif len(claimed) < want:
                        next_claim = now + conf.POLL_INTERVAL
                        if (not claimed and self.burst and not self._busy() and not self.ready
                                and not self._pending()):
                            return
                    else:
                        next_claim = now  # there may be more: claim again when there is room
                self._hold_expired(now)
            self._enforce_deadlines(time.monotonic())
            timers = [next_heartbeat]
            if not stopping:
                timers.append(next_rescue)
                if self._want():
                    timers.append(next_claim)
                    if self.probe:
                        timers.append(next_probe)
                if self.ready:
                    timers.append(self.ready[0][1] + self.conf.PREFETCH_HOLD)
            self._wait(self._wait_timeout(timers))

    def _wait_timeout(self, timers: list[float]) -> float:
        """Seconds until the next thing to do: 0 if something is already due."""
        if self.failures or (self.successes and not self._busy() and not self.ready):
            return 0.0
        candidates = list(timers)
        if self.successes:
            candidates.append(self.successes_since + ACK_DELAY)
        for slot in self._busy():
            if slot.reason:  # already told to stop: only the kill deadline is left
                if slot.kill_at is not None:
                    candidates.append(slot.kill_at)
                continue
            candidates.append(slot.lease_until)
            if slot.time_limit_at is not None:
                candidates.append(slot.time_limit_at)
        if self.stopping_since is not None and self.stop_signals < 2:
            grace_ends = self.stopping_since + self.conf.SHUTDOWN_GRACE
            if grace_ends > time.monotonic():
                candidates.append(grace_ends)
        deadline = max(min(candidates), self.db_backoff_until)
        return min(max(0.0, deadline - time.monotonic()), self.conf.HEARTBEAT_INTERVAL)

    def _wait(self, timeout: float) -> None:
        waitables: list[Any] = [self._wake_r]
        listen_fd = self.listener.fileno() if self.listener is not None and not (
            self.stopping_since) else None
        if listen_fd is not None:
            waitables.append(listen_fd)
            if self.listener.take_resumed():
                self.woken = True  # what was announced while it was away is due now
                timeout = 0
        by_object: dict[Any, Slot] = {}
        for slot in self.slots:
            if slot.channel is not None:
                waitables.append(slot.channel)
                by_object[slot.channel] = slot
            if slot.process is not None:
                waitables.append(slot.process.sentinel)
                by_object[slot.process.sentinel] = slot
        ready = wait(waitables, timeout=timeout)
        dead = []
        for obj in ready:
            if listen_fd is not None and obj == listen_fd:
                if self.listener.drain():
                    self.woken = True
                continue
            if obj is self._wake_r:
                try:
                    while self._wake_r.recv(512):
                        pass
                except (BlockingIOError, OSError):
                    pass
                continue
            slot = by_object[obj]
            if obj is slot.channel:
                self._read(slot)
            else:
                dead.append(slot)
        for slot in dead:
            if slot.process is not None and not slot.process.is_alive():
                self._read(slot)  # a report sent just before the exit still counts
                self._on_child_death(slot)

    # --- claiming and dispatching -------------------------------------------------------------

    def _claim(self, limit: int, now: float) -> list[Claimed] | None:
        claimed = self._db(
            store.claim, worker_id=self.worker_id, queues=self.queues, tasks=self.tasks,
            limit=limit,
        )
        if claimed is None:
            return None
        self.ready.extend((job, now) for job in claimed)
        self._start_ready(now)
        return claimed

    def _observe(self, duration: float) -> None:
        self.avg_duration = duration if self.avg_duration is None else (
            0.8 * self.avg_duration + 0.2 * duration)
        expected = self.concurrency * PREFETCH_WINDOW / max(self.avg_duration, 1e-4)
        self.prefetch = min(self.prefetch_cap, int(expected))

    def _want(self) -> int:
        """How many jobs to claim now: enough for the free handlers plus the prefetch buffer,
        asked for only once the buffer is at most half full (so claims come in batches)."""
        free = len(self._free())
        if self.ready and len(self.ready) > self.prefetch // 2:
            return 0
        room = free + self.prefetch - len(self.ready)
        return room if (free and not self.ready) or room > self.prefetch // 2 else 0

    def _start_ready(self, now: float) -> None:
        free = self._free()
        while free and self.ready:
            job, claimed_at = self.ready.popleft()
            self._dispatch(free.pop(0), job, claimed_at, now)

    def _hold_expired(self, now: float) -> None:
        """Jobs held in the buffer while every handler stays busy go back to the queue."""
        stale = [entry for entry in self.ready if now - entry[1] >= self.conf.PREFETCH_HOLD]
        if stale:
            self._release_ready(stale)
            # The handlers are on long work: hold nothing more until one of them finishes.
            self.prefetch = 0

    def _release_ready(self, entries: list[tuple[Claimed, float]]) -> None:
        released = self._db(store.release_unstarted,
                            [(job.id, job.lease_token) for job, _ in entries])
        if released is None:
            return  # database away: keep them; their leases expire into redeliveries
        for entry in entries:
            self.ready.remove(entry)
        logger.info("handed back %d prefetched job(s) unstarted", released,
                    extra={"worker": self.name, "released": released})

    def _dispatch(self, slot: Slot, job: Claimed, claimed_at: float, now: float) -> None:
        slot.job = job
        slot.started = now
        slot.reason = 0
        slot.kill_at = None
        slot.time_limit_at = now + job.timeout if job.timeout else None
        # The lease runs from the claim, not from the start.
        slot.lease_until = claimed_at + job.ack_timeout - self._lease_margin(job.ack_timeout)
        slot.interrupt[0] = 0
        slot.interrupt[1] = 0
        payload = {
            "id": job.id, "task": job.task, "queue": job.queue, "args": job.args,
            "kwargs": job.kwargs, "attempt": job.attempt, "max_attempts": job.max_attempts,
            "lease_token": job.lease_token, "ack_timeout": job.ack_timeout,
        }
        try:
            slot.channel.send(payload)
        except (OSError, ValueError):
            self._on_child_death(slot)

    @staticmethod
    def _lease_margin(ack_timeout: float) -> float:
        # Stop a handler this long before its lease ends, so the report reaches the database
        # while the lease is still ours and two deliveries never overlap.
        return min(2.0, ack_timeout * 0.1)

    # --- reports from handler processes ---------------------------------------------------------

    def _read(self, slot: Slot) -> None:
        while slot.channel is not None:
            try:
                if not slot.channel.poll():
                    return
                message = slot.channel.recv()
            except (EOFError, OSError):
                return
            kind, job_id = message[0], message[1]
            job = slot.job
            if job is None or job.id != job_id:
                continue
            if kind == "done":
                self._on_done(slot, message[2])
            elif kind == "progress":
                self._db(store.set_progress, job.id, job.lease_token, message[2])
            elif kind == "extend":
                self._extend(slot, seconds=message[2], progress=message[3])

    def _extend(self, slot: Slot, *, seconds: float, progress: Any) -> None:
        job = slot.job
        asked = time.monotonic()
        held = self._db(store.extend_lease, job.id, job.lease_token, seconds, progress,
                        set_progress=progress is not None)
        if held:
            slot.lease_until = max(slot.lease_until, asked + seconds - self._lease_margin(seconds))
        elif held is False and not slot.reason:
            self._interrupt(slot, REASON_LEASE)

    def _on_done(self, slot: Slot, report: dict) -> None:
        job = slot.job
        duration = time.monotonic() - slot.started
        self._observe(duration)
        if report["kind"] == "success":
            if not self.successes:
                self.successes_since = time.monotonic()
            self.successes.append((Success(job.id, job.lease_token, report["output"]), slot, job,
                                   duration))
        else:
            self.failures.append((self._failure(slot, report), job, duration))
        self._free_slot(slot)

    def _failure(self, slot: Slot, report: dict) -> Failure:
        job = slot.job
        if slot.reason:
            # The supervisor stopped this attempt: its reason, not the handler's exception,
            # decides the outcome.
            return Failure(
                job_id=job.id, lease_token=job.lease_token,
                outcome=_OUTCOME_FOR_REASON[slot.reason],
                error_type=report.get("error_type", ""),
                error_message=self._reason_message(slot),
                traceback=report.get("traceback", ""),
                retryable=True,
                release=slot.reason == REASON_SHUTDOWN,
            )
        return Failure(
            job_id=job.id, lease_token=job.lease_token, outcome=Outcome.ERROR,
            error_type=report["error_type"], error_message=report["error_message"],
            traceback=report["traceback"], retryable=report["retryable"],
        )

    def _reason_message(self, slot: Slot) -> str:
        job = slot.job
        return {
            REASON_TIMEOUT: f"time limit of {job.timeout:g}s exceeded" if job.timeout else "",
            REASON_CANCEL: "cancelled by request",
            REASON_LEASE: f"lease of {job.ack_timeout:g}s ran out without an extension",
            REASON_SHUTDOWN: "worker shut down before the job finished; released",
        }.get(slot.reason, "")

    def _on_child_death(self, slot: Slot) -> None:
        process = slot.process
        if process is not None:
            process.join(timeout=1)
        if slot.job is not None:
            code = process.exitcode if process is not None else None
            how = (f"killed by signal {-code}" if code is not None and code < 0
                   else f"exited with code {code}")
            report = {
                "kind": "error",
                "error_type": error_type_name(HandlerCrashed),
                "error_message": f"handler process {how} while running the job",
                "traceback": "",
                "retryable": True,
            }
            self.failures.append((self._failure(slot, report), slot.job,
                                  time.monotonic() - slot.started))
            self._free_slot(slot)
        if slot.channel is not None:
            slot.channel.close()
        slot.process = slot.channel = None
        if self.stopping_since is None:
            connections.close_all()
            self._spawn(slot)

    def _free_slot(self, slot: Slot) -> None:
        slot.job = None
        slot.reason = 0
        slot.kill_at = None
        slot.time_limit_at = None

    # --- deadlines, cancels, shutdown ---------------------------------------------------------

    def _enforce_deadlines(self, now: float) -> None:
        for slot in self._busy():
            if slot.kill_at is not None:
                if now >= slot.kill_at and slot.process is not None and slot.process.is_alive():
                    logger.warning("job %s ignored its stop request; killing its process",
                                   slot.job.id, extra={"job_id": slot.job.id})
                    os.kill(slot.process.pid, signal.SIGKILL)
                    slot.kill_at = None
                continue
            if slot.time_limit_at is not None and now >= slot.time_limit_at:
                self._interrupt(slot, REASON_TIMEOUT)
            elif now >= slot.lease_until:
                self._interrupt(slot, REASON_LEASE)

    def _enforce_shutdown(self, now: float) -> None:
        hard = self.stop_signals > 1 or now >= self.stopping_since + self.conf.SHUTDOWN_GRACE
        if hard:
            for slot in self._busy():
                if not slot.reason:
                    self._interrupt(slot, REASON_SHUTDOWN)

    def _interrupt(self, slot: Slot, reason: int) -> None:
        if slot.reason or slot.job is None or slot.process is None:
            return
        slot.reason = reason
        slot.kill_at = time.monotonic() + self.conf.KILL_GRACE
        slot.interrupt[0] = slot.job.id
        slot.interrupt[1] = reason
        try:
            os.kill(slot.process.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass

    def _heartbeat(self, stopping: bool) -> None:
        revived = self._db(store.heartbeat, self.worker_id, stopping=stopping)
        if revived:
            logger.warning("worker %s was presumed dead (frozen or cut off); its jobs were "
                           "redelivered, resuming", self.name, extra={"worker": self.name})
        busy = {slot.job.id: slot for slot in self._busy()}
        held = {job.id: (job, claimed_at) for job, claimed_at in self.ready}
        if not busy and not held:
            return
        leases = {job_id: slot.job.lease_token for job_id, slot in busy.items()}
        leases.update({job_id: entry[0].lease_token for job_id, entry in held.items()})
        result = self._db(store.lease_report, self.worker_id, leases)
        if result is None:
            return
        gone, cancel = result
        for job_id in gone:
            if job_id in held:
                self.ready.remove(held[job_id])  # never started here; nothing to stop
                continue
            logger.warning("job %s: lease taken over by another delivery; stopping it here",
                           job_id, extra={"job_id": job_id})
            self._interrupt(busy[job_id], REASON_LEASE)
        for job_id in cancel:
            if job_id in held:
                job, _ = held[job_id]
                self.ready.remove(held[job_id])
                self.failures.append((Failure(
                    job_id=job.id, lease_token=job.lease_token, outcome=Outcome.CANCELLED,
                    error_type="queues.exceptions.JobCancelled",
                    error_message="cancelled by request before it started"), job, 0.0))
                continue
            self._interrupt(busy[job_id], REASON_CANCEL)

    # --- acknowledging --------------------------------------------------------------------------

    def _flush(self, final: bool = False) -> None:
        idle = not self._busy() and not self.ready
        due = (final or idle or len(self.successes) >= ACK_BATCH
               or time.monotonic() - self.successes_since >= ACK_DELAY)
        if self.successes and due:
            batch = self.successes
            rejected = self._db(store.ack_success, [entry[0] for entry in batch])
            if rejected is None:
                if final:
                    logger.error("could not acknowledge %d job(s) before exit; they will be "
                                 "redelivered", len(batch))
                return
            self.successes = []
            rejected_ids = {r.job_id for r in rejected}
            for report, _, job, duration in batch:
                self._log(job, "success" if report.job_id not in rejected_ids else "rejected",
                          duration, outcome=Outcome.SUCCESS)
        while self.failures:
            report, job, duration = self.failures[0]
            state = self._db(store.finish_failure, report)
            if state is None and self.db_backoff_until > time.monotonic():
                return
            self.failures.pop(0)
            self._log(job, state or "rejected", duration, outcome=report.outcome,
                      error=f"{report.error_type}: {report.error_message}")

    def _log(self, job: Claimed, state: str, duration: float, *, outcome: str,
             error: str = "") -> None:
        level = logging.INFO if state in ("success", "scheduled") else logging.WARNING
        logger.log(
            level,
            "job %s %s attempt %d: %s -> %s in %.3fs%s",
            job.id, job.task, job.attempt, outcome, state, duration,
            f" ({error})" if error else "",
            extra={"job_id": job.id, "task": job.task, "queue": job.queue,
                   "attempt": job.attempt, "outcome": str(outcome), "state": str(state),
                   "duration": round(duration, 4), "worker": self.name},
        )

    # --- handler processes ----------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        slot.interrupt = self._ctx.RawArray("q", 2)
        inherited = self.listener.fileno() if self.listener is not None else None
        process = self._ctx.Process(
            target=_child_entry, args=(child_end, slot.interrupt, os.getpid(), inherited),
            name=f"relay-handler-{slot.index}", daemon=True,
        )
        process.start()
        child_end.close()
        slot.process, slot.channel = process, parent_end

    def _stop_children(self) -> None:
        for slot in self.slots:
            if slot.channel is not None:
                try:
                    slot.channel.send(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 2
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join(timeout=1)

    # --- helpers --------------------------------------------------------------------------------

    def _busy(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.job is not None]

    def _free(self) -> list[Slot]:
        return [s for s in self.slots if s.job is None and s.process is not None]

    def _pending(self) -> bool:
        return bool(self.successes or self.failures)

    def _db(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a store call; on a database error log it, drop the connection and back off
        (reports stay queued and are sent once the database is back)."""
        try:
            result = func(*args, **kwargs)
        except _DB_ERRORS as exc:
            self.db_failures += 1
            delay = min(10.0, 0.2 * 2 ** min(self.db_failures, 6))
            self.db_backoff_until = time.monotonic() + delay
            logger.error("database error in %s: %s (retrying in %.1fs)",
                         getattr(func, "__name__", func), exc, delay)
            self._quietly(connections.close_all)
            return None
        self.db_failures = 0
        return result

    @staticmethod
    def _quietly(func: Any, *args: Any) -> None:
        try:
            func(*args)
        except _DB_ERRORS as exc:
            logger.error("database error during shutdown: %s", exc)


def _child_entry(channel: Any, interrupt: Any, parent_pid: int, inherited_fd: int | None) -> None:
    if inherited_fd is not None:
        try:
            os.close(inherited_fd)  # the supervisor's LISTEN socket is not the handler's
        except OSError:
            pass
    child_main(channel, interrupt, parent_pid)
