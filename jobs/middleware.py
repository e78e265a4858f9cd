"""Dramatiq middleware of Steward's own, in Dramatiq's style."""

import os
import threading

from dramatiq.middleware import Middleware, prometheus
from dramatiq.middleware.prometheus import Prometheus
from periodiq import PeriodiqMiddleware

from jobs.conf import conf

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
