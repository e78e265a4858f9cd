"""Benchmark: what the project's broker costs a worker, against Dramatiq's stock Redis broker.

    python -m bench.engine_overhead [--messages 1000] [--rounds 5] [--samples 100]
                                    [--threads 8] [--gap-ms 100 200] [--check]

One worker process with `--threads` threads (Dramatiq's default, 8) runs bare `@dramatiq.actor`
no-op actors declared by this module, on one of two brokers:

  stock   dramatiq.brokers.redis.RedisBroker;
  prompt  the project's configured broker (settings.DRAMATIQ_BROKER, jobs.broker's
          PromptRedisBroker), which wakes an idle consumer as a message arrives;

both with the project's broker options and middleware, on the bench's Redis database. The
worker is the command `manage.py rundramatiq` execs (`dramatiq --processes 1 --threads 8
...`), given this module as its broker module instead of `django_dramatiq.setup`, so that it
can run either broker. This process sends through a broker of the same class.

Every round, for each broker in turn (the order alternates, so a burst of load elsewhere on the
machine hits both alike): an empty Redis database, a backlog of `--messages` no-op messages,
then a freshly started worker drains it. Measured by polling the queue's unacknowledged
messages every 5 ms: from the first acknowledgement to the last, in messages per second. Then,
on the same worker, idle between samples: messages sent one at a time, a random `--gap-ms`
apart, each timed from just before the send to the moment its actor starts (the actor pushes
the time it started to a Redis list; same clock: one machine).

Not measured yet: the same for no-op Steward runs, requested through the engine and executed
by a real `manage.py rundramatiq` worker.

Targets: the prompt broker drains a backlog at >= 0.9x the stock broker's rate (best rounds),
and an idle prompt worker starts a message within p50 <= 20 ms.
Writes bench/results/engine_overhead.json.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import threading
import time

import dramatiq

from bench import harness

NAME = "engine_overhead"
MODULE = "bench.engine_overhead"  # as the worker imports it (not __main__)
BROKERS = {"stock": "dramatiq.brokers.redis.RedisBroker", "prompt": None}  # None: the project's
BROKER_ENV = "ENGINE_OVERHEAD_BROKER"
STAMPS_KEY = "engine_overhead:started"
TARGET_RATIO = 0.9
TARGET_PROMPT_P50_MS = 20.0
WARMUP = 3
POLL_SECONDS = 0.005
# Part (c), no-op Steward runs requested through jobs.services.job_run_request and executed
# by a real `manage.py rundramatiq` worker, is not part of this benchmark yet.
STEWARD_RUNS = (
    "not written yet: no registered job is a no-op a real worker can run, and one job's "
    "backlog of runs is serialized by its job lock"
)


# --- The brokers and actors, in this process and in the worker --------------------------------


def broker_path(kind: str) -> str:
    from django.conf import settings

    return BROKERS[kind] or settings.DRAMATIQ_BROKER["BROKER"]


def broker_build(kind: str) -> dramatiq.Broker:
    """A broker of `kind` with the project's options and middleware, built as django_dramatiq
    builds the configured one."""
    from django.conf import settings
    from django.utils.module_loading import import_string
    from django_dramatiq.apps import DjangoDramatiqConfig
    from django_dramatiq.utils import load_middleware

    config = settings.DRAMATIQ_BROKER
    middleware = [
        load_middleware(path, **DjangoDramatiqConfig.get_middleware_kwargs(path))
        for path in config.get("MIDDLEWARE", [])
    ]
    return import_string(broker_path(kind))(middleware=middleware, **config.get("OPTIONS", {}))


def noop() -> None:
    """Does nothing: a message's cost is all the broker's and the worker's."""


def stamp(sent_at: float) -> None:
    """Pushes when it started, next to when it was sent."""
    started = time.time()
    dramatiq.get_broker().client.rpush(STAMPS_KEY, f"{sent_at!r} {started!r}")


def actors_declare(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """The bench's actors on `broker`, bare: Dramatiq's default queue and options."""
    return {fn.__name__: dramatiq.actor(fn, broker=broker) for fn in (noop, stamp)}


def worker_setup() -> None:
    """The worker's broker module (`dramatiq bench.engine_overhead:worker_setup`), called in
    each worker process: Django, then the broker BROKER_ENV names, with the bench's actors."""
    harness.django_setup()
    broker = broker_build(os.environ[BROKER_ENV])
    dramatiq.set_broker(broker)
    actors_declare(broker)


class DramatiqWorker(harness.ManagedProcess):
    """`dramatiq --path . --processes 1 --threads T --worker-shutdown-timeout 30000
    bench.engine_overhead:worker_setup`, what `manage.py rundramatiq` would exec with this
    module for its broker module; ready when its process is."""

    def __init__(self, *, kind: str, threads: int, database_url: str, redis_url: str, log_path):
        super().__init__(
            argv=[
                "--path",
                ".",
                "--processes",
                "1",
                "--threads",
                str(threads),
                "--worker-shutdown-timeout",
                "30000",
                f"{MODULE}:worker_setup",
            ],
            log_path=log_path,
            database_url=database_url,
            redis_url=redis_url,
            ready_line=harness.WORKER_READY_LINE,
            env={BROKER_ENV: kind},
        )

    def start(self, timeout: float = 120.0) -> None:
        """ManagedProcess.start, with `python -m dramatiq` in place of `python manage.py`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - open for the process's life
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", *self.argv],
            cwd=harness.ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(self.ready_line) >= self.ready_count:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        tail = self.log_text()[-3000:]
        self.stop()
        raise RuntimeError(f"`dramatiq {' '.join(self.argv)}` did not get ready:\n{tail}")


# --- (a) and (b): bare Dramatiq messages through either broker ----------------------------------


class DrainWatch:
    """Counts a queue's unacknowledged messages (`<namespace>:<queue>.msgs`, from which an ack
    deletes its message) every POLL_SECONDS, in a thread: when the count first fell below
    `total` (the first ack) and how many were left then, and when it reached zero."""

    def __init__(self, broker, queue_name: str, total: int) -> None:
        self.client = broker.client
        self.key = f"{broker.namespace}:{queue_name}.msgs"
        self.total = total
        self.first: tuple[float, int] | None = None
        self.last: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-drain", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            left = self.client.hlen(self.key)
            now = time.perf_counter()
            if self.first is None and left < self.total:
                self.first = (now, left)
            if left == 0:
                self.last = now
                return

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout)
        self._stop.set()
        self._thread.join(1)
        return self.last is not None

    def report(self) -> dict:
        if self.first is None or self.last is None:
            left = self.client.hlen(self.key)
            return {"drained": False, "messages_left": left, "messages_per_second": 0.0}
        first_at, left_at_first = self.first
        seconds = self.last - first_at
        return {
            "drained": True,
            "messages_timed": left_at_first,
            "seconds": round(seconds, 3),
            "messages_per_second": round(left_at_first / seconds, 1) if seconds else 0.0,
        }


def latency_sample(actor: dramatiq.Actor, client, *, timeout: float) -> dict:
    sent_at = time.time()
    actor.send(sent_at)
    returned = time.time()
    popped = client.blpop([STAMPS_KEY], timeout=timeout)
    if popped is None:
        raise RuntimeError(f"no message started within {timeout:g} s")
    sent, started = (float(value) for value in popped[1].split())
    if sent != sent_at:
        raise RuntimeError(f"a stale stamp: sent at {sent}, expected {sent_at}")
    return {
        "latency_ms": (started - sent_at) * 1000,
        "send_ms": (returned - sent_at) * 1000,
    }


def measure_round(
    kind: str,
    *,
    broker,
    actors: dict,
    messages: int,
    samples: int,
    threads: int,
    gap_ms: list[float],
    database_url: str,
    redis_url: str,
    timeout: float,
    label: str,
    rng,
) -> dict:
    """A backlog of `messages` drained by a fresh worker, then `samples` idle-latency samples
    on it."""
    harness.redis_flush(redis_url)
    noop_actor = actors["noop"]
    send_started = time.perf_counter()
    for _ in range(messages):
        noop_actor.send()
    send_seconds = time.perf_counter() - send_started
    worker = DramatiqWorker(
        kind=kind,
        threads=threads,
        database_url=database_url,
        redis_url=redis_url,
        log_path=harness.log_path(f"{NAME}-{label}"),
    )
    watch = DrainWatch(broker, noop_actor.queue_name, messages)
    load_before = harness.load_average()
    watch.start()
    worker.start()
    try:
        cpu_before = worker.cpu_seconds()
        watch.wait(timeout)
        drain = watch.report()
        worker_cpu = worker.cpu_seconds() - cpu_before
        latencies = []
        for index in range(WARMUP + samples):
            time.sleep(rng.uniform(*gap_ms) / 1000)
            result = latency_sample(actors["stamp"], broker.client, timeout=timeout)
            if index >= WARMUP:
                latencies.append(result)
    finally:
        worker.stop()
    dead = broker.client.hlen(f"{broker.namespace}:{noop_actor.queue_name}.XQ.msgs")
    return {
        "broker": kind,
        "label": label,
        "messages": messages,
        "send_seconds": round(send_seconds, 3),
        **drain,
        "dead_lettered": dead,
        "worker_cpu_seconds_from_ready": round(worker_cpu, 2),
        "latency_samples": latencies,
        "correct": drain["drained"] and dead == 0 and len(latencies) == samples,
        "load_average_before": load_before,
        "load_average_after": harness.load_average(),
        "worker_log": harness.project_path(worker.log_path),
    }


def stats(values: list[float]) -> dict:
    return harness.distribution(values, (50, 95, 99, 100), digits=2)


# --- Command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=1_000, help="backlog per round (1,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per broker (5)")
    parser.add_argument(
        "--samples", type=int, default=100, help="idle-latency samples per broker, all rounds (100)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=harness.DEFAULT_THREADS,
        help=f"worker threads (Dramatiq's default, {harness.DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        nargs=2,
        default=[100.0, 200.0],
        metavar=("MIN", "MAX"),
        help="idle gap before each latency sample, drawn uniformly (100 200)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per drain, seconds")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.messages < 1:
        parser.error("--rounds and --messages must be at least 1")

    database_url, redis_url = harness.bench_urls()
    harness.django_setup()
    from django.conf import settings

    machine = harness.machine_info(database_url=database_url, redis_url=redis_url)
    samples_per_round = math.ceil(args.samples / args.rounds)
    print(f"Machine: {harness.describe_machine(machine)}")
    print(
        f"{args.rounds} round(s) per broker (stock {broker_path('stock')}, prompt "
        f"{broker_path('prompt')}): a backlog of {args.messages:,} no-op messages drained by "
        f"1 process x {args.threads} threads, then {samples_per_round} idle-latency samples "
        f"{args.gap_ms[0]:g}-{args.gap_ms[1]:g} ms apart; Redis {redis_url}",
        flush=True,
    )
    brokers = {kind: broker_build(kind) for kind in BROKERS}
    actors = {kind: actors_declare(broker) for kind, broker in brokers.items()}
    rng = random.Random(7)
    rounds: list[dict] = []
    for round_number in range(1, args.rounds + 1):
        order = list(BROKERS) if round_number % 2 else list(reversed(BROKERS))
        for kind in order:
            result = measure_round(
                kind,
                broker=brokers[kind],
                actors=actors[kind],
                messages=args.messages,
                samples=samples_per_round,
                threads=args.threads,
                gap_ms=args.gap_ms,
                database_url=database_url,
                redis_url=redis_url,
                timeout=args.timeout,
                label=f"{kind}-{round_number}",
                rng=rng,
            )
            rounds.append(result)
            latency = stats([s["latency_ms"] for s in result["latency_samples"]])
            drained = (
                f"{result['messages_timed']:,} in {result['seconds']:.2f} s = "
                f"{result['messages_per_second']:,.0f}/s"
                if result["drained"]
                else f"NOT DRAINED in {args.timeout:g} s ({result['messages_left']:,} left)"
            )
            print(
                f"  round {round_number}, {kind}: backlog {drained}; idle latency p50 "
                f"{latency.get('p50', float('nan')):.1f} ms",
                flush=True,
            )
    harness.redis_flush(redis_url)
    for broker in brokers.values():
        broker.close()

    summary = {}
    for kind in BROKERS:
        measured = [r for r in rounds if r["broker"] == kind]
        rates = [r["messages_per_second"] for r in measured]
        samples = [s for r in measured for s in r["latency_samples"]]
        summary[kind] = {
            "broker": broker_path(kind),
            "messages_per_second_best": max(rates),
            "messages_per_second_median": round(harness.percentile(rates, 50), 1),
            "messages_per_second_rounds": rates,
            "latency_ms": stats([s["latency_ms"] for s in samples]),
            "send_ms": stats([s["send_ms"] for s in samples]),
        }
    stock, prompt = summary["stock"], summary["prompt"]
    ratio_best = (
        prompt["messages_per_second_best"] / stock["messages_per_second_best"]
        if stock["messages_per_second_best"]
        else 0.0
    )
    ratio_median = (
        prompt["messages_per_second_median"] / stock["messages_per_second_median"]
        if stock["messages_per_second_median"]
        else 0.0
    )
    ratios_by_round = [
        round(p / s, 2) if s else None
        for s, p in zip(
            stock["messages_per_second_rounds"], prompt["messages_per_second_rounds"], strict=True
        )
    ]
    rows = []
    for kind, result in summary.items():
        latency = result["latency_ms"]
        rows.append(
            [
                kind,
                result["broker"],
                round(result["messages_per_second_best"]),
                round(result["messages_per_second_median"]),
                *(round(latency.get(key, 0.0), 1) for key in ("p50", "p95", "p99", "max")),
                latency.get("n", 0),
            ]
        )
    print()
    print(
        harness.table(
            [
                "broker",
                "class",
                "best msg/s",
                "median msg/s",
                "idle p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "samples",
            ],
            rows,
        )
    )
    prompt_p50 = prompt["latency_ms"].get("p50", math.inf)
    targets = {
        "prompt_vs_stock_backlog_rate": {
            "target": TARGET_RATIO,
            "actual": round(ratio_best, 2),
            "met": ratio_best >= TARGET_RATIO,
        },
        "prompt_idle_latency_p50_ms": {
            "target": TARGET_PROMPT_P50_MS,
            "actual": prompt_p50,
            "met": prompt_p50 <= TARGET_PROMPT_P50_MS,
        },
    }
    print(
        f"\nprompt vs stock backlog rate: {ratio_best:.2f}x best rounds, {ratio_median:.2f}x "
        f"medians, by round {ratios_by_round} (target >= {TARGET_RATIO}x) "
        f"{'met' if ratio_best >= TARGET_RATIO else 'MISSED'}"
    )
    print(
        f"prompt idle latency p50 {prompt_p50:.1f} ms (target <= {TARGET_PROMPT_P50_MS:g}) "
        f"{'met' if prompt_p50 <= TARGET_PROMPT_P50_MS else 'MISSED'}"
    )
    print(f"(c) Steward runs: not measured ({STEWARD_RUNS})")
    correct = all(r["correct"] for r in rounds)
    print(
        "every backlog drained, nothing dead-lettered, every sample started: "
        f"{'yes' if correct else 'NO'}"
    )
    return harness.results_finish(
        NAME,
        {
            "command": harness.command_line(),
            "machine": machine,
            "parameters": {
                "messages": args.messages,
                "rounds": args.rounds,
                "samples_per_round": samples_per_round,
                "warmup_samples_per_round": WARMUP,
                "processes": 1,
                "threads": args.threads,
                "gap_ms": args.gap_ms,
                "brokers": {kind: broker_path(kind) for kind in BROKERS},
                "middleware": settings.DRAMATIQ_BROKER.get("MIDDLEWARE", []),
                "redis_url": redis_url,
                "poll_seconds": POLL_SECONDS,
                "timed": {
                    "backlog": "first ack -> last ack, polling the queue's unacked messages",
                    "latency": "just before the send -> the actor's first line, in the worker",
                },
            },
            "summary": summary,
            "prompt_vs_stock": {
                "ratio_best": round(ratio_best, 3),
                "ratio_median": round(ratio_median, 3),
                "ratio_by_round": ratios_by_round,
            },
            "steward_runs": {"measured": False, "why": STEWARD_RUNS},
            "targets": targets,
            "rounds": rounds,
            "correct": correct,
        },
        correct=correct,
        check=args.check,
        targets_met=all(target["met"] for target in targets.values()),
    )


if __name__ == "__main__":
    sys.exit(main())
