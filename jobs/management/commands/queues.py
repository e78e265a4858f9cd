"""`manage.py queues`: list the queues and change what the workers obey (pause, concurrency,
rate limits), clear a queue, and handle its dead letters, through the same services as the
admin and the API, each change audited with who made it and why."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.controls import queue_concurrency_set, queue_pause, queue_resume, rate_limit_set
from jobs.dead_letters import queue_dead_letters, queue_delete_dead, queue_requeue_dead
from jobs.exceptions import InvalidInput, StewardError
from jobs.fleet import (
    RateLimitOverview,
    fleet_draining,
    known_queue,
    queue_controls,
    queue_overviews,
    rate_limit_overviews,
)
from jobs.management.commands._listing import add_who_and_why, table, who_and_why, without_usage
from jobs.queues import queue_clear

DEFAULT = "default"
DEAD_LETTER_LIMIT_MAX = 500
LIST_HEADERS = (
    "queue",
    "lane",
    "waiting",
    "delayed",
    "in flight",
    "dead",
    "paused",
    "concurrency",
    "rate limit",
)
RATE_HEADERS = ("rate limit", "limit", "source")
DEAD_HEADERS = ("message id", "dead since (UTC)", "run", "job", "run status", "retries", "error")


def concurrency_or_default(value: str) -> int | None:
    """An argparse `type`: a whole number (the service checks its range), or "default" (None:
    back to the environment's)."""
    if value.strip().lower() == DEFAULT:
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a whole number or {DEFAULT!r}"
        ) from None


def rate_or_default(value: str) -> tuple[int, int] | None:
    """An argparse `type`: LIMIT/SECONDS such as 100/60 (or 100/60s, as `list` shows it), or
    "default" (None: back to the environment's)."""
    if value.strip().lower() == DEFAULT:
        return None
    limit, slash, seconds = value.strip().partition("/")
    try:
        if not slash:
            raise ValueError
        return int(limit), int(seconds.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not LIMIT/SECONDS (e.g. 100/60) or {DEFAULT!r}"
        ) from None


def concurrency_text(concurrency: int | None, source: str = "") -> str:
    if concurrency is None:
        return "no limit"
    return f"{concurrency} ({source})" if source else str(concurrency)


def rate_text(rate: tuple[int, int] | None) -> str:
    return "none" if rate is None else f"{rate[0]}/{rate[1]}s"


def _rate_of(overview: RateLimitOverview) -> tuple[int, int] | None:
    return None if overview.limit is None else (overview.limit, overview.window_seconds)


def _rate_in_force(name: str) -> tuple[int, int] | None:
    return next(
        (_rate_of(overview) for overview in rate_limit_overviews() if overview.name == name), None
    )


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


class Command(BaseCommand):
    help = (
        "List the queues with their messages and controls; pause and resume a queue, set its "
        "fleet-wide concurrency and rate limit, clear it, and list, requeue or delete its dead "
        "letters. Changes are audited and obeyed by every worker within about a second."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        return without_usage(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser: CommandParser) -> None:
        who = argparse.ArgumentParser(add_help=False)
        add_who_and_why(who)
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        def action(name: str, text: str, *, changes: bool) -> CommandParser:
            return without_usage(
                actions.add_parser(name, parents=[who] if changes else [], help=text)
            )

        action("list", "Show every queue (each lane), its messages and controls.", changes=False)
        action("rates", "Show the rate limits that can be set.", changes=False)

        for name, text in (
            ("pause", "Pause a queue, both lanes: no worker starts its messages; they stay."),
            ("resume", "Resume a paused queue: the workers take its messages again."),
        ):
            one = action(name, text, changes=True)
            one.add_argument("queue", help="The queue: default, money, ... (see `queues list`).")

        concurrency = action(
            "concurrency",
            "Set the most runs of a queue executing at once across the fleet.",
            changes=True,
        )
        concurrency.add_argument("queue", help="The queue (both of its lanes share the limit).")
        concurrency.add_argument(
            "concurrency",
            type=concurrency_or_default,
            metavar="N",
            help=f"From 1 to 10000, or {DEFAULT!r} for STEWARD_QUEUE_<NAME>_CONCURRENCY "
            "(or no limit).",
        )

        rate = action("rate", "Set a fleet-wide rate limit.", changes=True)
        rate.add_argument("name", help="A queue's or a job's rate limit (see `queues rates`).")
        rate.add_argument(
            "rate",
            type=rate_or_default,
            metavar="LIMIT/SECONDS",
            help=f"At most LIMIT per SECONDS, e.g. 100/60, or {DEFAULT!r} for "
            "STEWARD_QUEUE_RATE_LIMITS (or none).",
        )

        clear = action(
            "clear",
            "Drop every message waiting in a queue and cancel the runs they carried.",
            changes=True,
        )
        clear.add_argument("queue", help="The queue or lane, e.g. money or money-urgent.")
        clear.add_argument(
            "--confirm",
            default="",
            metavar="QUEUE",
            help="The queue's name again, to confirm.",
        )

        dead = action("dead", "List a queue's dead letters and their runs.", changes=False)
        dead.add_argument("queue", help="The queue or lane, e.g. money or money-urgent.")
        dead.add_argument(
            "--limit",
            type=int,
            default=100,
            help=f"Show the oldest N (default 100, at most {DEAD_LETTER_LIMIT_MAX}).",
        )

        for name, text in (
            (
                "requeue",
                "Send dead letters again: a failed run's as a new run retrying it, any other "
                "as it was.",
            ),
            ("delete", "Drop dead letters for good; their runs keep their records."),
        ):
            letters = action(name, text, changes=True)
            letters.add_argument("queue", help="The queue or lane, e.g. money or money-urgent.")
            letters.add_argument(
                "message_ids",
                nargs="*",
                metavar="MESSAGE_ID",
                help="The dead letters' message ids (see `queues dead`); none: all of them.",
            )
        letters.add_argument(
            "--yes", action="store_true", help="Delete them all: needed when no id is given."
        )

    def handle(self, *args, **options) -> None:
        handlers = {
            "list": self._list,
            "rates": self._rates,
            "pause": self._pause_or_resume,
            "resume": self._pause_or_resume,
            "concurrency": self._concurrency,
            "rate": self._rate,
            "clear": self._clear,
            "dead": self._dead,
            "requeue": self._requeue,
            "delete": self._delete,
        }
        try:
            handlers[options["action"]](options)
        except StewardError as exc:
            raise CommandError(str(exc)) from None

    def _list(self, options) -> None:
        rows = [
            [
                overview.name,
                overview.lane,
                f"{overview.waiting:,}",
                f"{overview.delayed:,}",
                f"{overview.in_flight:,}",
                f"{overview.dead_lettered:,}",
                "yes" if overview.paused else "no",
                concurrency_text(overview.concurrency, overview.concurrency_source),
                rate_text(overview.rate_limit),
            ]
            for overview in queue_overviews()
        ]
        self.stdout.write(table(LIST_HEADERS, rows))
        drain = fleet_draining()
        if drain is not None:
            self.stdout.write(
                self.style.WARNING(
                    f"The fleet is draining since {drain.draining_since:%Y-%m-%d %H:%M:%S %Z}: "
                    "no worker takes a message until `manage.py drain --end`."
                )
            )

    def _rates(self, options) -> None:
        rows = [
            [overview.name, rate_text(_rate_of(overview)), overview.source or "-"]
            for overview in rate_limit_overviews()
        ]
        self.stdout.write(table(RATE_HEADERS, rows))

    def _pause_or_resume(self, options) -> None:
        pausing = options["action"] == "pause"
        queue = known_queue(options["queue"])
        if queue_controls()[queue].paused == pausing:
            self.stdout.write(f"Queue {queue} is {'paused' if pausing else 'running'} already.")
            return
        by, reason = who_and_why(options)
        if pausing:
            queue_pause(queue=queue, by=by, reason=reason)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Paused queue {queue} (both lanes): no worker starts its messages; they "
                    f"stay until `queues resume {queue}`."
                )
            )
        else:
            queue_resume(queue=queue, by=by, reason=reason)
            self.stdout.write(
                self.style.SUCCESS(f"Resumed queue {queue}: the workers take its messages again.")
            )

    def _concurrency(self, options) -> None:
        by, reason = who_and_why(options)
        queue = known_queue(options["queue"])
        before = queue_controls()[queue]
        queue_concurrency_set(queue=queue, concurrency=options["concurrency"], by=by, reason=reason)
        after = queue_controls()[queue]
        self.stdout.write(
            self.style.SUCCESS(
                f"Queue {queue}: concurrency "
                f"{concurrency_text(after.concurrency, after.concurrency_source)} across the "
                f"fleet (was {concurrency_text(before.concurrency, before.concurrency_source)})."
            )
        )

    def _rate(self, options) -> None:
        by, reason = who_and_why(options)
        limit, window = options["rate"] or (None, None)
        name = options["name"]
        before = _rate_in_force(name)
        after = rate_limit_set(name=name, limit=limit, window_seconds=window, by=by, reason=reason)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rate limit {name}: {rate_text(after)} across the fleet (was {rate_text(before)})."
            )
        )

    def _clear(self, options) -> None:
        by, reason = who_and_why(options)
        queue = options["queue"]
        try:
            counts = queue_clear(
                queue=queue, requested_by=by, confirm=options["confirm"], reason=reason
            )
        except InvalidInput as exc:
            if "confirm" not in exc.fields:
                raise
            raise CommandError(
                f"clearing drops every message waiting in {queue}: confirm with --confirm {queue}"
            ) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Cleared queue {queue}: {_plural(counts['messages'], 'message')} dropped, "
                f"{_plural(counts['runs_cancelled'], 'run')} cancelled."
            )
        )

    def _dead(self, options) -> None:
        limit = options["limit"]
        if not 1 <= limit <= DEAD_LETTER_LIMIT_MAX:
            raise CommandError(f"--limit must be from 1 to {DEAD_LETTER_LIMIT_MAX}")
        queue = options["queue"]
        total, letters = queue_dead_letters(queue=queue, limit=limit)
        if not total:
            self.stdout.write(f"No dead letters in {queue}.")
            return
        rows = [
            [
                letter.message_id,
                f"{letter.dead_since:%Y-%m-%d %H:%M:%S}",
                f"#{letter.run.pk}" if letter.run else "-",
                letter.run.job if letter.run else letter.actor,
                letter.run.status if letter.run else "-",
                str(letter.retries),
                letter.error or "-",
            ]
            for letter in letters
        ]
        self.stdout.write(table(DEAD_HEADERS, rows))
        self.stdout.write(f"{len(letters):,} of {_plural(total, 'dead letter')} in {queue}.")

    def _requeue(self, options) -> None:
        by, reason = who_and_why(options)
        queue = options["queue"]
        message_ids = options["message_ids"] or None
        counts = queue_requeue_dead(
            queue=queue, requested_by=by, message_ids=message_ids, reason=reason
        )
        if not counts["requeued"]:
            self.stdout.write(f"No dead letters in {queue} to requeue.")
            return
        resent = counts["requeued"] - counts["runs_retried"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Requeued {_plural(counts['requeued'], 'dead letter')} of {queue}: "
                f"{_plural(counts['runs_retried'], 'failed run')} retried as new runs, "
                f"{_plural(resent, 'message')} sent again as it was."
            )
        )
        if message_ids is None:
            self._left(queue)

    def _delete(self, options) -> None:
        by, reason = who_and_why(options)
        queue = options["queue"]
        message_ids = options["message_ids"] or None
        if message_ids is None and not options["yes"]:
            total, _ = queue_dead_letters(queue=queue, limit=1)
            if total:
                raise CommandError(
                    f"this deletes all {_plural(total, 'dead letter')} of {queue} for good: "
                    "add --yes, or name the message ids"
                )
        deleted = queue_delete_dead(
            queue=queue, requested_by=by, message_ids=message_ids, reason=reason
        )["deleted"]
        if not deleted:
            self.stdout.write(f"No dead letters in {queue} to delete.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {_plural(deleted, 'dead letter')} of {queue}; their runs keep their "
                "records."
            )
        )
        if message_ids is None:
            self._left(queue)

    def _left(self, queue: str) -> None:
        """What a bounded "all" left behind, so that the operator runs it again."""
        total, _ = queue_dead_letters(queue=queue, limit=1)
        if total:
            self.stdout.write(f"{_plural(total, 'dead letter')} left in {queue}: run it again.")
