"""Run a job through the same runner as the scheduler, the admin and the API, showing its
progress while it runs: a bar on a terminal, else (waiting on the workers) a line every few
seconds."""

import argparse
import json
import logging
import time
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from rich.console import Console

from jobs.cancellation import job_run_cancel
from jobs.conf import conf
from jobs.exceptions import InvalidInput, StewardError, UnknownJob
from jobs.fleet import run_held_back
from jobs.lanes import lane_queue
from jobs.management.commands._listing import MAX_BY_LENGTH, who_and_why, without_usage
from jobs.management.commands._progress import (
    LinesAboveBar,
    ProgressDisplay,
    ProgressPoller,
    log_formatter,
)
from jobs.models import JobRun, RunStatus, Trigger
from jobs.panels import run_summary_figures
from jobs.params import params_describe, params_from_pairs, params_text
from jobs.registry import all_jobs, get_job
from jobs.runner import job_run_execute
from jobs.schedule_selectors import ScheduleOverview, schedule_overviews
from jobs.selectors import run_follow_ups, run_progress
from jobs.services import job_run_request


def parse_as_of(value: str) -> datetime:
    """An ISO-8601 time within AS_OF_WINDOW_DAYS of now; without an offset it is read in
    TIME_ZONE."""
    # An argparse `type` must raise ArgumentTypeError: any other exception escapes
    # parse_args as a traceback when the command runs from the command line.
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO-8601 time (e.g. 2026-11-22T09:00:00Z)"
        ) from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    window = timedelta(days=conf.AS_OF_WINDOW_DAYS)
    if abs(parsed - timezone.now()) > window:
        raise argparse.ArgumentTypeError(
            f"{value!r} is more than {conf.AS_OF_WINDOW_DAYS} days from now"
        )
    return parsed


class _RunLogSummaries(logging.Filter):
    """Drops the runner's summary lines while this command prints the summary itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "summary_line", False)


# What only running a job takes; --cancel refuses them rather than leave them unread.
RUN_OPTIONS = ("all", "sync", "enqueue", "urgent", "wait", "dry_run", "as_of", "param")


class Command(BaseCommand):
    help = (
        "Run a Steward job now, in this process (default) or on the workers (--enqueue, "
        "--urgent); or cancel a run (--cancel)."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        return without_usage(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job", nargs="?", help="Name of the job to run (see --list).")
        parser.add_argument("--list", action="store_true", help="List the jobs and exit.")
        parser.add_argument("--all", action="store_true", help="Run every job, in catalog order.")
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--sync",
            action="store_true",
            help="Run in this process through the runner (the default).",
        )
        where.add_argument(
            "--enqueue", action="store_true", help="Send the run to the workers instead."
        )
        parser.add_argument(
            "--urgent",
            action="store_true",
            help="Send the run to the workers' urgent lane of its queue, taken before the "
            "normal one (implies --enqueue).",
        )
        parser.add_argument(
            "--wait", action="store_true", help="With --enqueue: wait for the run to finish."
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=300.0,
            help="With --wait: give up after this many seconds (default 300).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what the job would change without changing it.",
        )
        parser.add_argument(
            "--as-of",
            type=parse_as_of,
            default=None,
            help="Handle what is due as of this ISO-8601 time (default: now).",
        )
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="A parameter of the run (repeatable; a list as comma-separated values, e.g. "
            "escrow_ids=4,9); --list shows what each job accepts.",
        )
        parser.add_argument(
            "--cancel",
            type=int,
            metavar="RUN_ID",
            help="Cancel this run instead: a queued run at once, a running one at its next "
            "batch boundary.",
        )
        parser.add_argument(
            "--by",
            metavar="NAME",
            help="With --cancel: who cancels, recorded as 'cli:<name>' (default: your OS user; "
            f"at most {MAX_BY_LENGTH} characters).",
        )
        parser.add_argument(
            "--reason",
            default="",
            help="Why the run is requested (with --cancel: why it is cancelled).",
        )
        parser.add_argument("--json", action="store_true", help="Print each run as JSON.")

    def _console(self) -> Console:
        """Where the progress goes: this command's output, a bar when it is a terminal (or
        TTY_COMPATIBLE=1 says so)."""
        return Console(file=self.stdout._out)

    def handle(self, *args, **options) -> None:
        if options["list"]:
            self._list()
            return
        if options["cancel"] is not None:
            self._cancel(options)
            return
        if options["by"] is not None:
            raise CommandError("--by only applies with --cancel")
        if options["urgent"]:
            if options["sync"]:
                raise CommandError("--urgent sends the run to the workers: not with --sync")
            options["enqueue"] = True
        if options["wait"] and not options["enqueue"]:
            raise CommandError("--wait only applies with --enqueue")
        if options["timeout"] <= 0:
            raise CommandError("--timeout must be a positive number of seconds")
        names = self._job_names(options)
        if options["param"] and len(names) > 1:
            raise CommandError("--param applies to one job, not --all")
        # Every job's parameters are read before anything runs: a bad one records nothing.
        params = {name: self._params(name, options["param"]) for name in names}
        failed = []
        for name in names:
            run = self._run_one(name, params[name], options)
            self._report(run, as_json=options["json"])
            if run.status in (RunStatus.FAILED, RunStatus.PARTIAL):
                failed.append(f"{name} #{run.pk} {run.status}")
        if failed:
            raise CommandError("; ".join(failed))

    def _cancel(self, options) -> None:
        given = [name for name in RUN_OPTIONS if options[name]]
        if options["job"] or given:
            named = "job name" if options["job"] else "--" + given[0].replace("_", "-")
            raise CommandError(f"--cancel cancels a run: give no {named} with it")
        by, reason = who_and_why(options)
        try:
            run = job_run_cancel(run=options["cancel"], by=by, reason=reason)
        except StewardError as exc:
            raise CommandError(str(exc)) from None
        # A fanned-out run may have ended once its last queued shard was cancelled.
        run.refresh_from_db()
        if options["json"]:
            self.stdout.write(json.dumps(_run_as_dict(run), default=str))
            return
        if run.status == RunStatus.RUNNING:
            state = "running, stopping at its next batch boundary"
        elif run.status == RunStatus.WAITING:
            state = "waiting, its shards stopping at their next batch boundary"
        else:
            state = run.status
        self.stdout.write(self.style.SUCCESS(f"{run.job} run #{run.pk}: {state}"))

    def _job_names(self, options) -> list[str]:
        if options["all"] and options["job"]:
            raise CommandError("give a job name or --all, not both")
        if options["all"]:
            return [spec.name for spec in all_jobs()]
        if not options["job"]:
            raise CommandError("name a job to run, or use --list or --all")
        try:
            return [get_job(options["job"]).name]
        except UnknownJob as exc:
            raise CommandError(str(exc)) from None

    def _params(self, name: str, pairs: list[str]) -> dict:
        try:
            return params_from_pairs(get_job(name), pairs)
        except InvalidInput as exc:
            raise CommandError(str(exc)) from None

    def _run_one(self, name: str, params: dict, options) -> JobRun:
        fields = {
            "job": name,
            "trigger": Trigger.CLI,
            "requested_by": "cli",
            "reason": options["reason"],
            "as_of": options["as_of"],
            "dry_run": options["dry_run"],
            "params": params,
        }
        if options["enqueue"]:
            run = job_run_request(**fields, urgent=options["urgent"])
            targets = f" with {params_text(run.params)}" if run.params else ""
            queue = lane_queue(get_job(name).queue, urgent=run.urgent)
            self.stdout.write(
                f"Queued {name} run #{run.pk}{targets} on {queue} (message {run.message_id})"
            )
            if held_back := run_held_back(run):
                self.stdout.write(self.style.WARNING(f"Not started yet: {held_back}."))
            if options["wait"]:
                # The workers log the run's progress lines elsewhere: this prints them here.
                with self._progress(run, shown=not options["json"], lines=True) as display:
                    return self._wait(run, timeout=options["timeout"], display=display)
            return run
        run = job_run_request(**fields, enqueue=False)
        summaries = _RunLogSummaries()
        runner_log = logging.getLogger("steward.jobs")
        runner_log.addFilter(summaries)
        # The runner logs progress lines itself: off a terminal nothing more is printed.
        try:
            with self._progress(run, shown=not options["json"], lines=False) as display:
                return self._execute_showing(run, display, runner_log)
        finally:
            runner_log.removeFilter(summaries)

    @contextmanager
    def _progress(self, run: JobRun, *, shown: bool, lines: bool):
        """A display of the run's progress, or None when not `shown` (--json)."""
        if not shown:
            yield None
            return
        title = f"{run.job} #{run.pk}"
        with ProgressDisplay(self._console(), title=title, lines=lines) as display:
            yield display

    def _execute_showing(
        self, run: JobRun, display: ProgressDisplay | None, runner_log: logging.Logger
    ) -> JobRun:
        """Execute the run here, its progress polled into `display` meanwhile."""
        poller = above = None
        if display is not None and display.console.is_terminal:
            above = LinesAboveBar(display, log_formatter())
            runner_log.addFilter(above)
            poller = ProgressPoller(run.pk, display)
            poller.start()
        try:
            return job_run_execute(run_id=run.pk, final_attempt=True)
        except Exception:
            # The runner recorded the error and traceback on the run; report it in one line.
            return run
        finally:
            if poller is not None:
                poller.stopped.set()
                poller.join()
                runner_log.removeFilter(above)
            run.refresh_from_db()
            if display is not None:
                display.show(run_progress(run))

    def _wait(self, run: JobRun, *, timeout: float, display: ProgressDisplay | None) -> JobRun:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if display is not None:
                display.show(run_progress(run))
            if run.is_finished:
                return run
            time.sleep(0.2)
        why = run_held_back(run) or "is a worker running (manage.py runworker)?"
        raise CommandError(
            f"run #{run.pk} of {run.job} is still {run.status} after {timeout:g}s; {why}"
        )

    def _report(self, run: JobRun, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(_run_as_dict(run), default=str))
            return
        if not run.is_finished:
            return
        style = self.style.SUCCESS if run.status == RunStatus.SUCCEEDED else self.style.WARNING
        mode = "dry run" if run.dry_run else "run"
        took = f" in {run.duration_ms:,} ms" if run.duration_ms is not None else ""
        self.stdout.write(style(f"{run.job} {mode} #{run.pk}: {run.status}{took}"))
        if run.params:
            self.stdout.write(f"   Params: {params_text(run.params)}")
        for figure in run_summary_figures(run, detail=True):
            self.stdout.write(f"   {figure.label}: {figure.value}")
        if run.status_reason:
            self.stdout.write(f"   Reason: {run.status_reason}")
        elif run.error:
            self.stdout.write(f"   Error: {run.error}")
        for follow_up in run_follow_ups(run=run):
            self.stdout.write(
                f"   Follow-up requested: {follow_up.job} run #{follow_up.pk} ({follow_up.status})"
            )

    def _list(self) -> None:
        """Each job with what it accepts and when its schedules run it."""
        schedules: dict[str, list[ScheduleOverview]] = {}
        for overview in schedule_overviews():
            schedules.setdefault(overview.schedule.job, []).append(overview)
        for spec in all_jobs():
            self.stdout.write(f"{spec.name}  {spec.description}")
            urgent = lane_queue(spec.queue, urgent=True)
            self.stdout.write(f"   queue: {spec.queue} (urgent lane {urgent})")
            described = params_describe(spec)
            if not described:
                self.stdout.write("   params: none")
            for param in described:
                self.stdout.write(f"   param {_param_line(param)}")
            listed = schedules.get(spec.name, [])
            if not listed:
                self.stdout.write("   schedules: none (it runs when asked)")
            for overview in listed:
                schedule = overview.schedule
                params = f" {params_text(schedule.params)}" if schedule.params else ""
                paused = f" ({overview.paused_reason})" if overview.paused_reason else ""
                self.stdout.write(
                    f"   schedule {schedule.name}: {schedule.cron} in {schedule.timezone}"
                    f"{params}{paused}"
                )


def _param_line(param: dict) -> str:
    """E.g. `escrow_ids (list of integer; optional): Release just these escrows.`"""
    facts = [param["type"], "required" if param["required"] else "optional"]
    if "choices" in param:
        facts.append("one of " + ", ".join(str(choice) for choice in param["choices"]))
    if "default" in param:
        facts.append(f"default {param['default']!r}")
    text = f": {param['help']}" if param["help"] else ""
    return f"{param['name']} ({'; '.join(facts)}){text}"


def _run_as_dict(run: JobRun) -> dict:
    return {
        "id": run.pk,
        "job": run.job,
        "status": run.status,
        "trigger": run.trigger,
        "as_of": run.as_of.isoformat(),
        "dry_run": run.dry_run,
        "params": run.params,
        "duration_ms": run.duration_ms,
        "summary": run.summary,
        "error": run.error,
        "status_reason": run.status_reason,
        "urgent": run.urgent,
        "cancel_requested_at": run.cancel_requested_at,
        "cancel_requested_by": run.cancel_requested_by,
        "cancel_reason": run.cancel_reason,
        "follow_up_of": run.follow_up_of_id,
        "follow_ups": [
            {"id": follow_up.pk, "job": follow_up.job, "status": follow_up.status}
            for follow_up in run_follow_ups(run=run)
        ],
    }
