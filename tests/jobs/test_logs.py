"""What runs log: one line for a run with nothing to do, the summary once, lines a user's text
cannot forge, and JSON lines with the run's fields."""

import json
import logging
import subprocess
import sys

import pytest
from django.conf import settings
from dramatiq import Message
from dramatiq.broker import MessageProxy

from jobs.logs import SKIPPED_LINE, HeldBackSkips
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from tests.workers import subprocess_env

pytestmark = pytest.mark.django_db


def runner_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "steward.jobs"]


def test_a_run_with_nothing_to_do_logs_one_line(register_test_job, caplog):
    spec = register_test_job(lambda context: {"items_done": 0, "sample_ids": []})
    caplog.set_level(logging.INFO)

    run = job_run_execute(run_id=job_run_request(job=spec.name, trigger="cli", enqueue=False).pk)

    assert runner_lines(caplog) == [
        f"Job succeeded: {spec.name} run #{run.pk} in {run.duration_ms} ms, nothing to do"
    ]


def test_a_run_that_did_work_logs_its_banner_lines_and_labelled_summary(register_test_job, caplog):
    def body(context):
        context.log.info("Found %s items", 3)
        return {"items_done": 3}

    spec = register_test_job(body)
    caplog.set_level(logging.INFO)

    run = job_run_execute(run_id=job_run_request(job=spec.name, trigger="cli", enqueue=False).pk)

    lines = runner_lines(caplog)
    assert lines[1] == f"Running job: {spec.name}, run #{run.pk}, attempt 1"
    assert lines[4] == f"[{spec.name} #{run.pk}] Found 3 items"
    assert "   Items done: 3" in lines


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_a_newline_in_a_reason_cannot_start_a_log_line_of_its_own():
    forged = "2026-01-01 00:00:00,000 [ERROR] steward.alerts: ALERT forged"
    result = _manage("runjob", "reconcile_ledger", "--reason", f"audit\n{forged}")

    assert result.returncode == 0, result.stderr
    assert not any(line.startswith(forged) for line in result.stderr.splitlines())
    assert f"reason: audit\\n{forged}" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_json_log_lines_parse_and_carry_the_run():
    result = _manage("runjob", "reconcile_ledger", STEWARD_LOG_FORMAT="json")

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    run_lines = [line for line in lines if line.get("job") == "reconcile_ledger"]
    assert run_lines
    assert all(
        {"time", "level", "name", "message", "run_id", "attempt"} <= set(line) for line in run_lines
    )


@pytest.mark.django_db(transaction=True)
def test_runjob_prints_the_summary_once():
    result = _manage("runjob", "reconcile_ledger")

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert output.count("Clean: yes") == 1, output


def test_the_skipped_line_of_a_message_held_back_by_the_controls_is_dropped():
    # given Dramatiq's "skipped" line for a message the controls held back, and for another
    held_back = MessageProxy(Message("default", "run_x", (1,), {}, {}))
    held_back.held_back = True
    skipped = MessageProxy(Message("default", "run_x", (2,), {}, {}))

    def line(message):
        return logging.LogRecord(
            "dramatiq.worker.WorkerThread", logging.WARNING, "", 0, SKIPPED_LINE, (message,), None
        )

    # then the filter keeps only the line of a real skip
    assert not HeldBackSkips().filter(line(held_back))
    assert HeldBackSkips().filter(line(skipped))
