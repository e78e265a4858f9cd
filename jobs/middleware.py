"""Dramatiq middleware of Steward's own, in Dramatiq's style."""

import logging
import os
import random
import threading
import time
from contextlib import ExitStack

from django import db
from django_dramatiq.middleware import DbConnectionsMiddleware
from dramatiq.common import current_millis
from dramatiq.middleware import Middleware, SkipMessage, prometheus
from dramatiq.middleware.prometheus import Prometheus
from periodiq import PeriodiqMiddleware

from jobs.conf import conf
from jobs.control_state import controls_view, slot_returned, slot_taken
from jobs.lanes import base_queue, message_again

logger = logging.getLogger("steward.controls")

# The message option that says when the message was sent for a worker to take.
ENQUEUED_AT = "enqueued_at"

shutdown_requested = threading.Event()


class SlotTicks(PeriodiqMiddleware):
    """periodiq's middleware with a skip delay long enough that a busy worker never drops a
    tick: each tick only records its (job, slot) run, and the unique constraint makes a late
    or repeated tick harmless.

    Parameters:
      skip_delay(int): Seconds after which a tick message is dropped. Defaults to the
        ``STEWARD_TICK_SKIP_DELAY_SECONDS`` setting.
    """

    def __init__(self, *, skip_delay: int | None = None) -> None:
        super().__init__(skip_delay=skip_delay or conf.TICK_SKIP_DELAY_SECONDS)


class GracefulShutdown(Middleware):
    """Tells running jobs that the worker is shutting down, so a sweep stops after the batch
    it is in (each batch is its own transaction) and its run is retried to finish the rest."""

    def after_worker_boot(self, broker, worker) -> None:
        shutdown_requested.clear()

    def before_worker_shutdown(self, broker, worker) -> None:
        shutdown_requested.set()

    def after_worker_shutdown(self, broker, worker) -> None:
        # Its threads have stopped; other code in this process (tests) runs on undisturbed.
        shutdown_requested.clear()


class DatabaseConnections(DbConnectionsMiddleware):
    """django_dramatiq's connection hygiene around each message (a connection that failed or
    outlived its age is closed), without the health check Django runs before it reuses a kept
    connection while the thread's connection served a message moments ago. That check is a
    `SELECT 1`, a round trip per message; a busy thread's connection has just proved itself,
    and an idle one's is still checked, so a restarted database is reconnected to.

    Parameters:
      fresh_seconds(float): How recently a thread's last message must have ended, without an
        error, for its connection to be reused unchecked.
    """

    def __init__(self, *, fresh_seconds: float = 5.0) -> None:
        self.fresh_seconds = fresh_seconds
        self._last_ended = threading.local()

    def before_process_message(self, broker, message) -> None:
        db.close_old_connections()
        ended_at = getattr(self._last_ended, "at", None)
        if ended_at is not None and time.monotonic() - ended_at < self.fresh_seconds:
            for connection in db.connections.all(initialized_only=True):
                if connection.connection is not None:
                    connection.health_check_done = True

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        db.close_old_connections()
        self._last_ended.at = None if exception is not None else time.monotonic()


class EnqueueTimes(Middleware):
    """Stamps each message with when it is sent, or, delayed, when it comes due
    (`enqueued_at`, milliseconds since the epoch), so its run's attempt records how long it
    waited for a worker."""

    def before_enqueue(self, broker, message, delay) -> None:
        message.options[ENQUEUED_AT] = current_millis() + (delay or 0)


class QueueControls(Middleware):
    """Obeys the operators' controls before a worker starts a message: a paused queue's (or,
    while the fleet drains, any) message goes back to its queue untouched; a run beyond its
    queue's fleet-wide concurrency or rate limit goes back for a moment. Either way it keeps
    its id and its retries, and it is acknowledged here only once it is back in Redis.

    Parameters:
      paused_delay(int): Milliseconds before a message held back by a pause is looked at
        again. Idle consumers of a paused queue fetch nothing meanwhile.
      limited_delay(int): Milliseconds, with up to as much again at random, before a run held
        back by a limit is tried again.
    """

    def __init__(self, *, paused_delay: int = 1_000, limited_delay: int = 500) -> None:
        self.paused_delay = paused_delay
        self.limited_delay = limited_delay
        self._held = threading.local()
        self._slot_ttl_ms: int | None = None

    def before_process_message(self, broker, message) -> None:
        if shutdown_requested.is_set():
            # A stopping worker starts nothing new (an idle thread may still be handed a
            # prefetched message): it goes back at once, for a worker that stays.
            self._put_back(broker, message, None)
        controls = controls_view.current()
        queue = base_queue(message.queue_name)
        if not controls.accepting(queue):
            self._put_back(broker, message, self.paused_delay)
        if not message.actor_name.startswith("run_"):
            return
        slots = ExitStack()
        if limit := controls.concurrency.get(queue):
            # Imported late: Django's settings are not loaded when the broker is built.
            from jobs.ratelimits import concurrency_limiter

            limiter = concurrency_limiter(queue, limit, ttl_ms=self._slot_ttl(broker))
            if not slots.enter_context(limiter.acquire(raise_on_failure=False)):
                self._put_back(broker, message, self._limited_delay())
            slot_taken(queue)
            slots.callback(slot_returned, queue)
        if controls.rate_limits.get(queue):
            from jobs.ratelimits import rate_limiter

            with rate_limiter(queue).acquire(raise_on_failure=False) as allowed:
                if not allowed:
                    slots.close()
                    self._put_back(broker, message, self._limited_delay())
        self._held.slots = slots

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        slots = getattr(self._held, "slots", None)
        if slots is not None:
            self._held.slots = None
            slots.close()

    after_skip_message = after_process_message

    def _put_back(self, broker, message, delay: int | None) -> None:
        broker.enqueue(message_again(message), delay=delay)
        # Read by the log filter that keeps Dramatiq's "skipped" line for real skips only.
        message.held_back = True
        raise SkipMessage("held back by a queue control")

    def _limited_delay(self) -> int:
        return self.limited_delay + random.randint(0, self.limited_delay)

    def _slot_ttl(self, broker) -> int:
        """Longer than any run may take (the longest time limit of the run actors), so a
        running run's slot never expires under it."""
        if self._slot_ttl_ms is None:
            limits = [
                actor.options.get("time_limit") or conf.DEFAULT_TIME_LIMIT_MS
                for name, actor in broker.actors.items()
                if name.startswith("run_")
            ]
            self._slot_ttl_ms = max(limits, default=conf.DEFAULT_TIME_LIMIT_MS) + 60_000
        return self._slot_ttl_ms


class WorkerHeartbeats(Middleware):
    """Records this worker process's heartbeat (host, pid, queues, threads, the attempts it
    is executing) from boot until its threads have stopped, when the row is removed."""

    heartbeat = None

    def after_worker_boot(self, broker, worker) -> None:
        # The broker and its middleware are built before Django's models can be imported.
        from jobs.heartbeats import Heartbeat

        queues = worker.consumer_whitelist or broker.get_declared_queues()
        self.heartbeat = Heartbeat(queues=list(queues), threads=worker.worker_threads)
        self.heartbeat.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        if self.heartbeat is not None:
            self.heartbeat.drain()

    def after_worker_shutdown(self, broker, worker) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None


class WorkerMetrics(Prometheus):
    """Dramatiq's Prometheus middleware, inert in processes that never booted as a worker
    process (the web app, in-process test workers), where its metrics do not exist."""

    booted = False

    @property
    def forks(self):
        return [serve_worker_metrics]

    def after_process_boot(self, broker) -> None:
        super().after_process_boot(broker)
        self.booted = True

    def after_nack(self, broker, message) -> None:
        if self.booted:
            super().after_nack(broker, message)

    def after_enqueue(self, broker, message, delay) -> None:
        if self.booted:
            super().after_enqueue(broker, message, delay)

    def before_delay_message(self, broker, message) -> None:
        if self.booted:
            super().before_delay_message(broker, message)

    def before_process_message(self, broker, message) -> None:
        if self.booted:
            super().before_process_message(broker, message)

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        if self.booted:
            super().after_process_message(broker, message, result=result, exception=exception)

    after_skip_message = after_process_message

    def after_worker_shutdown(self, broker, worker) -> None:
        if self.booted:
            super().after_worker_shutdown(broker, worker)


def serve_worker_metrics() -> None:
    """Dramatiq's exposition server (its own process, forked by the worker's main process),
    bound to loopback unless `dramatiq_prom_host` says otherwise: it has no authentication."""
    # Dramatiq's own variable, lowercase like its dramatiq_prom_port.
    prometheus.HTTP_HOST = os.environ.get("dramatiq_prom_host", "127.0.0.1")  # noqa: SIM112
    prometheus._run_exposition_server()
