"""The runner's own statements: a run claimed and finished in one statement each, its lock
released by the last, its lines kept with its attempt; the worker's connections reused unchecked
only while fresh."""

import logging
import time

import psycopg
import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.locks import LOCK_KEY_SQL, run_lock_name, run_locked
from jobs.middleware import DatabaseConnections
from jobs.models import AttemptStatus, JobRun, RunStatus
from jobs.run_writes import run_claim
from jobs.runner import job_run_execute
from jobs.services import job_run_request

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement paths are PostgreSQL's"
)


def _other_session() -> psycopg.Connection:
    """A session of the test database of its own, outside Django."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname=settings["NAME"],
        autocommit=True,
    )


def _lock_is_free(job_name: str) -> bool:
    """Whether another session can take the job's lock (and gives it back at once)."""
    with _other_session() as other:
        key = other.execute(f"SELECT {LOCK_KEY_SQL.format(name='%s')}", [job_name]).fetchone()[0]
        taken = other.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
        if taken:
            other.execute("SELECT pg_advisory_unlock(%s)", [key])
        return taken


def _claim(run: JobRun):
    return run_claim(run.pk, now=timezone.now(), worker="test:1", message_id="m-1", queued_at=None)


@pytest.mark.django_db(transaction=True)
def test_a_no_op_run_is_read_and_locked_claimed_and_finished_in_three_statements(
    register_test_job, caplog
):
    # given a queued run of a job that does nothing
    spec = register_test_job(lambda context: {"items": 0})
    run = job_run_request(enqueue=False, job=spec.name, trigger="api", params={})

    # when a worker executes it
    with (
        caplog.at_level(logging.INFO, logger="steward.jobs"),
        CaptureQueriesContext(connection) as queries,
    ):
        executed = job_run_execute(run_id=run.pk, message_id="m-1")

    # then three statements did it all: the run read with its lock, the claim, the outcome
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 3, statements
    assert "pg_try_advisory_lock" in statements[0]
    assert "INSERT INTO" in statements[1]
    assert "pg_advisory_unlock" in statements[2]
    # and the run succeeded, its one attempt closed, with its line, and its lock is free
    executed.refresh_from_db()
    assert executed.status == RunStatus.SUCCEEDED
    assert executed.summary == {"items": 0}
    (attempt,) = executed.attempts.all()
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert attempt.finished_at is not None
    assert attempt.message_id == "m-1"
    assert [line["line"] for line in attempt.log] == [
        f"Job succeeded: {spec.name} run #{run.pk} in {executed.duration_ms} ms, nothing to do"
    ]
    assert _lock_is_free(spec.name)


@pytest.mark.django_db(transaction=True)
def test_the_claim_returns_the_whole_run_its_json_decoded(register_test_job):
    spec = register_test_job(lambda context: {})
    run = job_run_request(enqueue=False, job=spec.name, trigger="api", reason="why")
    JobRun.objects.filter(pk=run.pk).update(summary={"kept": [1, 2]}, progress={"done": 3})

    claimed, attempt = _claim(run)

    assert claimed.pk == run.pk
    assert claimed.status == RunStatus.RUNNING
    assert claimed.attempt_count == 1
    assert claimed.started_at is not None
    assert claimed.reason == "why"
    assert claimed.summary == {"kept": [1, 2]}
    assert claimed.progress == {"done": 3}
    assert claimed.params == {}
    assert (attempt.number, attempt.run_id, attempt.worker) == (1, run.pk, "test:1")
    stored = claimed.attempts.get()
    assert (stored.pk, stored.status, stored.message_id) == (
        attempt.pk,
        AttemptStatus.RUNNING,
        "m-1",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "change",
    [
        {"status": RunStatus.RUNNING},
        {"status": RunStatus.SUCCEEDED},
        {"cancel_requested_at": timezone.now()},
    ],
    ids=["running", "finished", "being cancelled"],
)
def test_the_claim_leaves_a_run_that_is_not_simply_queued_to_the_runner(register_test_job, change):
    spec = register_test_job(lambda context: {})
    run = job_run_request(enqueue=False, job=spec.name, trigger="api")
    JobRun.objects.filter(pk=run.pk).update(**change)

    assert _claim(run) is None

    run.refresh_from_db()
    assert run.attempt_count == 0
    assert not run.attempts.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("other_status", [RunStatus.RUNNING, RunStatus.WAITING])
def test_the_claim_leaves_a_run_whose_job_has_another_open_run_to_the_runner(
    register_test_job, other_status
):
    spec = register_test_job(lambda context: {})
    other = job_run_request(enqueue=False, job=spec.name, trigger="api")
    JobRun.objects.filter(pk=other.pk).update(status=other_status)
    run = job_run_request(enqueue=False, job=spec.name, trigger="api")

    assert _claim(run) is None

    run.refresh_from_db()
    assert (run.status, run.attempt_count) == (RunStatus.QUEUED, 0)


@pytest.mark.django_db(transaction=True)
def test_an_outcome_not_saved_is_said_and_the_lock_is_still_released(register_test_job, caplog):
    # given a run whose row is moved on by someone else while its body runs
    def body(context):
        JobRun.objects.filter(pk=context.run.pk).update(status=RunStatus.FAILED)
        return {}

    spec = register_test_job(body)
    run = job_run_request(enqueue=False, job=spec.name, trigger="api")

    with caplog.at_level(logging.WARNING, logger="steward.jobs"):
        executed = job_run_execute(run_id=run.pk)

    # then the run keeps what the other wrote, the log says so, the attempt is closed
    assert executed.status == RunStatus.FAILED
    assert "was failed already: this attempt's outcome (succeeded) was not saved" in caplog.text
    assert executed.attempts.get().status == AttemptStatus.SUCCEEDED
    assert _lock_is_free(spec.name)


def _select_one() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


@pytest.fixture
def kept_connection_lost():
    """A worker thread's connection, kept after a message, whose session then ended from
    elsewhere, as a database restart ends it; yields the middleware to start messages with."""
    connection.close()
    max_age = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 60

    def lose(middleware: DatabaseConnections) -> DatabaseConnections:
        _select_one()
        middleware.after_process_message(None, None)
        with _other_session() as other:
            other.execute(
                "SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid]
            )
        time.sleep(0.1)
        return middleware

    yield lose
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = max_age


@pytest.mark.django_db(transaction=True)
def test_a_connection_idle_past_freshness_is_checked_and_replaced(kept_connection_lost):
    middleware = kept_connection_lost(DatabaseConnections(fresh_seconds=0.0))

    # when the next message starts, its first statement works: the check replaced it
    middleware.before_process_message(None, None)
    assert _select_one() == 1
    middleware.after_process_message(None, None)


@pytest.mark.django_db(transaction=True)
def test_a_fresh_connection_is_reused_unchecked(kept_connection_lost):
    middleware = kept_connection_lost(DatabaseConnections(fresh_seconds=60.0))

    # when the next message starts at once, it uses that connection as it is, without a check
    middleware.before_process_message(None, None)
    with pytest.raises(OperationalError):
        _select_one()
    # and after that message's error the connection is replaced, and checked on the next one
    middleware.after_process_message(None, None, exception=OperationalError("gone"))
    middleware.before_process_message(None, None)
    assert _select_one() == 1
    middleware.after_process_message(None, None)


@pytest.mark.django_db(transaction=True)
def test_a_run_is_read_with_the_lock_its_name_says_for_each_kind_of_run(register_test_job):
    # given a top-level run, a targeted run with a lock scope of its own, and a shard
    spec = register_test_job(lambda context: {})
    whole = job_run_request(enqueue=False, job=spec.name, trigger="api")
    scoped = job_run_request(enqueue=False, job=spec.name, trigger="api")
    JobRun.objects.filter(pk=scoped.pk).update(lock_scope="ids-3f2a")
    shard = job_run_request(enqueue=False, job=spec.name, trigger="api")
    JobRun.objects.filter(pk=shard.pk).update(parent=whole)

    for run_id in (whole.pk, scoped.pk, shard.pk):
        # when it is read with its lock
        with run_locked(run_id) as (run, lock):
            # then the lock is the one its Python name gives, and held
            assert lock.acquired
            assert not _lock_is_free(run_lock_name(run))
        assert _lock_is_free(run_lock_name(run))
    assert run_lock_name(JobRun.objects.get(pk=scoped.pk)) == f"{spec.name}?ids-3f2a"
    assert run_lock_name(JobRun.objects.get(pk=shard.pk)) == f"{spec.name}/run-{shard.pk}"


@pytest.mark.django_db(transaction=True)
def test_a_finished_run_is_read_without_taking_its_lock(register_test_job):
    spec = register_test_job(lambda context: {})
    run = job_run_request(enqueue=False, job=spec.name, trigger="api")
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)

    with run_locked(run.pk) as (head, lock):
        assert head.status == RunStatus.SUCCEEDED
        assert not lock.acquired
        assert _lock_is_free(spec.name)
