"""`manage.py schedules`: list, add, change, pause, resume and remove schedules through the same
services as the admin and the API, each change audited with who made it and why."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.exceptions import StewardError, UnknownJob
from jobs.management.commands._listing import (
    add_who_and_why,
    cron_cell,
    next_run_cells,
    state_cell,
    table,
    who_and_why,
    without_usage,
)
from jobs.models import Schedule
from jobs.params import params_from_pairs, params_text
from jobs.registry import get_job
from jobs.schedule_selectors import ScheduleOverview, schedule_overviews
from jobs.schedules import (
    schedule_create,
    schedule_fields,
    schedule_get,
    schedule_pause,
    schedule_remove,
    schedule_resume,
    schedule_update,
)

# How the command line names itself in the audit, as `runjob` does in its runs.
DEFAULT = "default"
LIST_HEADERS = (
    "name",
    "job",
    "cron",
    "time zone",
    "params",
    "state",
    "catch-up",
    "next run (its zone)",
    "next run (UTC)",
)
# `set` options and the schedule field each one changes.
SET_FIELDS = {
    "rename": "name",
    "job": "job",
    "cron": "cron",
    "timezone": "timezone",
    "catch_up": "catch_up",
    "max_retries": "max_retries",
    "min_backoff_ms": "min_backoff_ms",
    "notes": "notes",
}


def whole_number_or_default(value: str) -> int | None:
    """An argparse `type`: a whole number, or "default" (None: the job's own setting)."""
    if value.strip().lower() == DEFAULT:
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a whole number or {DEFAULT!r}"
        ) from None


def _schedule_options(parser: CommandParser, *, changing: bool) -> None:
    """The schedule's fields as options: required where `add` needs them; for `set`, each one
    optional and left out when not given, so only what is named changes."""
    unset = {"default": argparse.SUPPRESS} if changing else {}
    if changing:
        parser.add_argument(
            "--name", dest="rename", metavar="NEW_NAME", help="A new name for it.", **unset
        )
    parser.add_argument(
        "--job", required=not changing, help="The job it runs (see `runjob --list`).", **unset
    )
    parser.add_argument(
        "--cron",
        required=not changing,
        help="When it runs: a five-field cron spec such as '0 9 * * *', or @hourly, @daily...",
        **unset,
    )
    parser.add_argument(
        "--timezone",
        help="The IANA time zone its cron is read in, e.g. Europe/Berlin"
        + ("." if changing else " (default UTC)."),
        **(unset or {"default": "UTC"}),
    )
    params = parser.add_mutually_exclusive_group()
    params.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="A parameter of its runs (repeatable; a list as comma-separated values)"
        + (": the ones given replace all of the schedule's." if changing else "."),
        **unset,
    )
    if changing:
        params.add_argument(
            "--clear-params",
            action="store_true",
            help="Remove every parameter: its runs get the job's defaults.",
            **unset,
        )
    parser.add_argument(
        "--catch-up",
        action=argparse.BooleanOptionalAction,
        help="Whether the latest slot missed while no scheduler ran is run once when it comes "
        "back" + ("." if changing else " (default: the job's own policy)."),
        **unset,
    )
    parser.add_argument(
        "--max-retries",
        type=whole_number_or_default,
        metavar="N",
        help=f"Retries of its runs, overriding the job's; {DEFAULT!r} for the job's own.",
        **unset,
    )
    parser.add_argument(
        "--min-backoff-ms",
        type=whole_number_or_default,
        metavar="N",
        help=f"First retry backoff of its runs in milliseconds; {DEFAULT!r} for the job's own.",
        **unset,
    )
    parser.add_argument("--notes", help="Free text for operators.", **(unset or {"default": ""}))
    parser.add_argument(
        "--paused",
        action="store_true",
        help="Pause it: its slots are recorded skipped until `schedules resume`"
        + ("." if changing else " (default: it runs)."),
        **unset,
    )


class Command(BaseCommand):
    help = (
        "List and change the schedules: when each job runs by itself, in which time zone and "
        "with which parameters. Changes are audited and obeyed from the next minute on."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        return without_usage(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser: CommandParser) -> None:
        who = argparse.ArgumentParser(add_help=False)
        add_who_and_why(who, kept_in="the schedule's audit")
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        listing = without_usage(
            actions.add_parser("list", help="Show the schedules and their next runs.")
        )
        listing.add_argument("--job", help="Only this job's schedules.")

        adding = without_usage(actions.add_parser("add", parents=[who], help="Create a schedule."))
        adding.add_argument("name", help="Its name: letters, digits, '_', '.', ':' or '-'.")
        _schedule_options(adding, changing=False)

        changing = without_usage(
            actions.add_parser("set", parents=[who], help="Change some of a schedule's fields.")
        )
        changing.add_argument("schedule", help="The schedule's name or id.")
        _schedule_options(changing, changing=True)

        for action, text in (
            ("pause", "Pause a schedule: its slots are recorded skipped."),
            ("resume", "Resume a paused schedule from its next slot."),
            ("remove", "Delete a schedule; its runs and its audit are kept."),
        ):
            one = without_usage(actions.add_parser(action, parents=[who], help=text))
            one.add_argument("schedule", help="The schedule's name or id.")

    def handle(self, *args, **options) -> None:
        handlers = {
            "list": self._list,
            "add": self._add,
            "set": self._set,
            "pause": self._pause_or_resume,
            "resume": self._pause_or_resume,
            "remove": self._remove,
        }
        try:
            handlers[options["action"]](options)
        except StewardError as exc:
            raise CommandError(str(exc)) from None

    def _list(self, options) -> None:
        job = options["job"]
        if job is not None:
            get_job(job)
        overviews = schedule_overviews(job=job)
        if not overviews:
            self.stdout.write(f"No schedules of {job}." if job else "No schedules.")
            return
        rows = [
            [
                overview.schedule.name,
                overview.schedule.job,
                cron_cell(overview),
                overview.schedule.timezone,
                params_text(overview.schedule.params) or "-",
                state_cell(overview),
                "yes" if overview.schedule.catch_up else "no",
                *next_run_cells(overview),
            ]
            for overview in overviews
        ]
        self.stdout.write(table(LIST_HEADERS, rows))

    def _add(self, options) -> None:
        by, reason = who_and_why(options)
        fields = {
            "name": options["name"],
            "job": options["job"],
            "cron": options["cron"],
            "timezone": options["timezone"],
            "params": _params(options["job"], options["param"] or []),
            "enabled": not options["paused"],
            "notes": options["notes"],
        }
        for field in ("catch_up", "max_retries", "min_backoff_ms"):
            if options[field] is not None:
                fields[field] = options[field]
        schedule = schedule_create(by=by, reason=reason, **fields)
        self.stdout.write(self.style.SUCCESS(f"Created schedule {schedule.name}."))
        self._describe(schedule)

    def _set(self, options) -> None:
        schedule = schedule_get(options["schedule"])
        changes = {
            field: options[option] for option, field in SET_FIELDS.items() if option in options
        }
        if options.get("clear_params"):
            changes["params"] = {}
        elif "param" in options:
            changes["params"] = _params(changes.get("job", schedule.job), options["param"])
        if options.get("paused"):
            changes["enabled"] = False
        if not changes:
            raise CommandError("nothing to change: give at least one option, e.g. --cron")
        by, reason = who_and_why(options)
        before = schedule_fields(schedule)
        schedule = schedule_update(schedule=schedule, by=by, reason=reason, **changes)
        after = schedule_fields(schedule)
        changed = [field for field in after if after[field] != before[field]]
        if not changed:
            self.stdout.write(f"Schedule {schedule.name} unchanged: it has those settings already.")
            return
        self.stdout.write(self.style.SUCCESS(f"Changed schedule {schedule.name}:"))
        for field in changed:
            self.stdout.write(f"   {field}: {before[field]!r} -> {after[field]!r}")
        self._describe(schedule)

    def _pause_or_resume(self, options) -> None:
        pausing = options["action"] == "pause"
        schedule = schedule_get(options["schedule"])
        if schedule.enabled != pausing:
            state = "paused" if pausing else "running"
            self.stdout.write(f"Schedule {schedule.name} is {state} already.")
            return
        by, reason = who_and_why(options)
        service = schedule_pause if pausing else schedule_resume
        schedule = service(schedule=schedule, by=by, reason=reason)
        if pausing:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Paused schedule {schedule.name}: its slots are recorded skipped until it "
                    "is resumed."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Resumed schedule {schedule.name}."))
            self._describe(schedule)

    def _remove(self, options) -> None:
        schedule = schedule_get(options["schedule"])
        by, reason = who_and_why(options)
        schedule_remove(schedule=schedule, by=by, reason=reason)
        self.stdout.write(
            self.style.SUCCESS(
                f"Removed schedule {schedule.name}; its runs and its audit are kept."
            )
        )

    def _describe(self, schedule: Schedule) -> None:
        overview = _overview_of(schedule)
        local, utc = next_run_cells(overview)
        self.stdout.write(f"   {schedule.job} at {cron_cell(overview)} in {schedule.timezone}")
        if schedule.params:
            self.stdout.write(f"   params: {params_text(schedule.params)}")
        self.stdout.write(f"   state: {state_cell(overview)}; next run {local} ({utc})")


def _overview_of(schedule: Schedule) -> ScheduleOverview:
    return next(
        overview
        for overview in schedule_overviews(job=schedule.job)
        if overview.schedule.pk == schedule.pk
    )


def _params(job: str, pairs: list[str]) -> dict:
    """The parameters named by `key=value` pairs, read with the job's declaration; for a job
    nobody registered, none (the service then refuses the job itself)."""
    if not pairs:
        return {}
    try:
        spec = get_job(job)
    except UnknownJob:
        return {}
    return params_from_pairs(spec, pairs)
