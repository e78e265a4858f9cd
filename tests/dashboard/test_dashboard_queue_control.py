"""The dashboard's queue controls against the real Redis broker: pause and resume, the
fleet-wide concurrency, clearing, dead letters, rate limits, the drain and the recent control
actions; each through its service, with its permission."""

import time

import dramatiq
import pytest
from django.test import Client
from django.urls import reverse

from jobs.actors import actor_for
from jobs.dead_letters import queue_dead_letters
from jobs.models import (
    ControlAction,
    FleetState,
    JobRun,
    QueueState,
    RateLimitSetting,
    RunStatus,
    Trigger,
)
from jobs.queues import queue_stats
from jobs.services import job_run_request
from tests.api.helpers import TRIGGER, finished_run, user_with
from tests.scheduling.test_queues import dead_letter_one

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("dashboard")
QUEUES = f"{DASHBOARD}#queues"
PAUSE_QUEUE = "jobs.pause_queue"
CLEAR_QUEUE = "jobs.clear_queue"
QUEUE_LIMITS = "jobs.change_queue_limits"
REQUEUE_DEAD = "jobs.requeue_dead"
DELETE_DEAD = "jobs.delete_dead"
DRAIN = "jobs.drain_fleet"
VIEW_AUDIT = "jobs.view_controlaction"
VIEW_RUNS = "jobs.view_jobrun"
EVERY_CONTROL = (
    PAUSE_QUEUE,
    CLEAR_QUEUE,
    QUEUE_LIMITS,
    REQUEUE_DEAD,
    DELETE_DEAD,
    DRAIN,
    VIEW_AUDIT,
    VIEW_RUNS,
)


def logged_in(*perms) -> Client:
    client = Client()
    client.force_login(user_with(*perms))
    return client


def messages_of(response) -> list[str]:
    """The messages the request added (those of earlier requests not yet shown left out)."""
    return [str(message) for message in response.wsgi_request._messages._queued_messages]


def queued_run(job: str = "expire_matches") -> JobRun:
    """A queued run with its message waiting on its queue."""
    run = job_run_request(enqueue=False, job=job, trigger=Trigger.CLI)
    actor_for(job).send(run.pk)
    return run


def waiting(name: str) -> int:
    return next(stats.waiting for stats in queue_stats() if stats.name == name)


def section(page: str, section_id: str) -> str:
    start = page.index(f'<section id="{section_id}"')
    return page[start : page.index("</section>", start)]


def group_of(page: str, queue: str) -> str:
    start = page.index(f'data-queue-group="{queue}"')
    return page[start : page.index("</tbody>", start)]


def pause(client, queue="default", action="pause", reason="incident 9"):
    return client.post(
        reverse("dashboard-queue-action", args=[queue]), {"action": action, "reason": reason}
    )


def set_concurrency(client, value, queue="money", reason="bank throttles"):
    return client.post(
        reverse("dashboard-queue-concurrency", args=[queue]),
        {"concurrency": value, "reason": reason},
    )


def clear(client, queue="default", confirm="default", reason="bad deploy"):
    return client.post(
        reverse("dashboard-queue-clear", args=[queue]), {"confirm": confirm, "reason": reason}
    )


def set_rate(client, name="money", action="set", reason="provider limit", **fields):
    return client.post(
        reverse("dashboard-rate-limit", args=[name]), {"action": action, "reason": reason, **fields}
    )


def drain(client, action="start", reason="deploy 12"):
    return client.post(reverse("dashboard-fleet-drain"), {"action": action, "reason": reason})


def dead_letters_url(queue: str, action: str = "") -> str:
    name = f"dashboard-dead-letters-{action}" if action else "dashboard-dead-letters"
    return reverse(name, args=[queue])


def test_an_empty_fleet_shows_every_queue_with_its_lanes_limits_and_the_drain(broker):
    # given nothing in the database nor in Redis, and an operator with no control permission
    response = logged_in().get(DASHBOARD)

    # then every controlled queue is there with its lanes, the urgent one marked, its counts
    assert response.status_code == 200
    page = response.content.decode()
    queues = section(page, "queues")
    for queue in ("default", "engine", "money", "notifications", "schedule"):
        assert f'data-queue-group="{queue}"' in queues
    default = group_of(page, "default")
    assert 'data-queue="default"' in default and 'data-queue="default-urgent"' in default
    assert "urgent lane</span>" in default
    assert "urgent lane" not in group_of(page, "schedule")  # the scheduler's queue has none
    assert "no limit" in default and "PAUSED" not in queues
    # and the rate limits with their source, the fleet taking messages
    rates = section(page, "rate-limits")
    assert 'data-rate-limit="channel-sms"' in rates and "environment" in rates
    assert "Workers are taking messages." in section(page, "fleet")
    # and no button this operator may not press, no audit they may not read
    for button in ('value="pause"', "Set concurrency", "Clear</button>", ">Drain<", ">Set<"):
        assert button not in page
    assert "dead-letters/" not in page
    assert 'id="control-actions"' not in page and 'id="drain-banner"' not in page


def test_every_button_shows_with_its_permission(broker):
    page = logged_in(*EVERY_CONTROL).get(DASHBOARD).content.decode()

    default = group_of(page, "default")
    assert 'value="pause"' in default and "Set concurrency" in default
    assert 'placeholder="type default-urgent"' in default  # each lane is cleared on its own
    assert dead_letters_url("default-urgent") in default
    assert 'value="set"' in section(page, "rate-limits")
    assert 'value="start"' in section(page, "fleet")
    assert "No control actions yet." in section(page, "control-actions")


def test_a_queue_is_paused_and_resumed_from_the_dashboard_and_audited(broker):
    client = logged_in(PAUSE_QUEUE)

    # when an operator pauses the default queue with a reason
    response = pause(client, reason="incident 9")

    # then it is paused, audited, and shown paused with a Resume button
    assert response.status_code == 302 and response["Location"] == QUEUES
    assert messages_of(response) == ["Queue default paused: no worker starts its messages."]
    assert QueueState.objects.get(queue="default").paused
    entry = ControlAction.objects.get()
    assert (entry.action, entry.target, entry.actor, entry.reason) == (
        ControlAction.Action.QUEUE_PAUSED,
        "default",
        response.wsgi_request.user.username,
        "incident 9",
    )
    default = group_of(client.get(DASHBOARD).content.decode(), "default")
    assert "PAUSED</span>" in default and 'value="resume"' in default

    # when they resume it, with no reason given
    response = pause(client, action="resume", reason="")

    # then it runs again, and the audit says where the resume came from
    assert not QueueState.objects.get(queue="default").paused
    assert ControlAction.objects.first().reason == "Resume from the dashboard"
    assert "PAUSED" not in section(client.get(DASHBOARD).content.decode(), "queues")


def test_concurrency_is_set_and_put_back_to_its_default(broker):
    client = logged_in(QUEUE_LIMITS)

    response = set_concurrency(client, "3")

    assert response["Location"] == QUEUES
    assert messages_of(response) == ["Concurrency of money set to 3 across the fleet."]
    assert QueueState.objects.get(queue="money").concurrency == 3
    money = group_of(client.get(DASHBOARD).content.decode(), "money")
    assert "3 at once" in money and "run time" in money
    entry = ControlAction.objects.get()
    assert (entry.action, entry.before, entry.after) == (
        ControlAction.Action.CONCURRENCY_CHANGED,
        {"concurrency": None},
        {"concurrency": 3},
    )

    # an empty box puts it back to the environment's (here: none)
    response = set_concurrency(client, "")

    assert messages_of(response) == ["Concurrency of money is back to its default."]
    assert QueueState.objects.get(queue="money").concurrency is None
    assert "no limit" in group_of(client.get(DASHBOARD).content.decode(), "money")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "concurrency: A whole number from 1 to 10,000."),
        ("-1", "concurrency: A whole number from 1 to 10,000."),
        ("10001", "concurrency: A whole number from 1 to 10,000."),
        ("abc", "concurrency: Enter a whole number."),
        ("1.5", "concurrency: Enter a whole number."),
    ],
)
def test_a_bad_concurrency_is_refused_with_the_field_and_changes_nothing(broker, value, message):
    response = set_concurrency(logged_in(QUEUE_LIMITS), value)

    assert response["Location"] == QUEUES
    assert messages_of(response) == [f"Concurrency of money was not changed: {message}"]
    assert not QueueState.objects.exists()
    assert not ControlAction.objects.exists()


def test_clearing_a_queue_needs_its_name_typed_and_cancels_its_runs(broker):
    client = logged_in(CLEAR_QUEUE)
    runs = [queued_run(), queued_run()]

    # when the operator types the wrong name
    refused = clear(client, confirm="money")

    # then nothing is dropped and they are told what to type
    assert refused["Location"] == QUEUES
    assert messages_of(refused) == [
        "Queue default was not cleared: confirm: Type the queue's name, default, to confirm."
    ]
    assert waiting("default") == 2
    assert not ControlAction.objects.exists()

    # when they type it
    response = clear(client, confirm="default", reason="bad deploy")

    # then its messages are gone, their runs cancelled, and the clear audited
    assert messages_of(response) == [
        "Queue default cleared: 2 message(s) dropped, 2 run(s) cancelled."
    ]
    assert waiting("default") == 0
    for run in runs:
        run.refresh_from_db()
        assert run.status == RunStatus.CANCELLED
    entry = ControlAction.objects.get()
    assert (entry.action, entry.target, entry.reason) == (
        ControlAction.Action.QUEUE_CLEARED,
        "default",
        "bad deploy",
    )


@pytest.mark.parametrize(
    ("request_of", "permission", "draining"),
    [
        (lambda client: pause(client), PAUSE_QUEUE, False),
        (lambda client: pause(client, action="resume"), PAUSE_QUEUE, False),
        (lambda client: set_concurrency(client, "3"), QUEUE_LIMITS, False),
        (lambda client: clear(client), CLEAR_QUEUE, False),
        (lambda client: set_rate(client, limit="10", window_seconds="60"), QUEUE_LIMITS, False),
        (lambda client: set_rate(client, action="reset"), QUEUE_LIMITS, False),
        (lambda client: drain(client), DRAIN, False),
        (lambda client: drain(client, action="end"), DRAIN, True),
        (lambda client: client.post(dead_letters_url("default", "requeue")), REQUEUE_DEAD, False),
        (lambda client: client.post(dead_letters_url("default", "delete")), DELETE_DEAD, False),
    ],
)
def test_a_forged_post_without_the_permission_is_refused_and_changes_nothing(
    broker, request_of, permission, draining
):
    # given two queued runs, one message waiting and one dead-lettered, the fleet draining or
    # not, and an operator with every permission but the one the action needs
    queued_run()
    queued_run()
    dead_letter_one(broker, "default")
    FleetState.objects.create(draining=draining)
    client = logged_in(*(set(EVERY_CONTROL) - {permission}))

    response = request_of(client)

    assert response.status_code == 403
    assert not ControlAction.objects.exists()
    assert not QueueState.objects.exists() and not RateLimitSetting.objects.exists()
    assert FleetState.objects.get().draining is draining
    assert waiting("default") == 1 and queue_dead_letters(queue="default")[0] == 1
    assert set(JobRun.objects.values_list("status", flat=True)) == {RunStatus.QUEUED}


@pytest.mark.parametrize(
    "url",
    [
        reverse("dashboard-queue-action", args=["nope"]),
        reverse("dashboard-queue-action", args=["money-urgent"]),  # a lane: controlled by money
        reverse("dashboard-queue-concurrency", args=["nope"]),
        reverse("dashboard-queue-clear", args=["nope"]),
        reverse("dashboard-rate-limit", args=["nope"]),
        dead_letters_url("nope", "requeue"),
        dead_letters_url("nope", "delete"),
    ],
)
def test_an_unknown_queue_or_limit_is_a_404_page(broker, url):
    response = logged_in(*EVERY_CONTROL).post(
        url, {"action": "pause", "confirm": "nope", "concurrency": "2", "reason": "x"}
    )

    assert response.status_code == 404
    assert not ControlAction.objects.exists()


def test_the_dead_letters_page_lists_each_letter_with_its_run_and_error(broker):
    # given a failed run whose message ran out of retries, and a queue with none
    failed = finished_run(status=RunStatus.FAILED, error="boom")
    actor_for("expire_matches").send_with_options(
        args=(failed.pk,), traceback="Traceback\nValueError: <no ledger>"
    )
    message = dead_letter_one(broker, "default")

    response = logged_in(VIEW_RUNS).get(dead_letters_url("default"))

    # then the page shows it, the run linked, the last error line escaped, and no buttons
    assert response.status_code == 200
    page = response.content.decode()
    row = page[page.index(f'data-message="{message.message_id}"') :].split("</tr>", 1)[0]
    assert reverse("dashboard-run", args=[failed.pk]) in row
    assert "ValueError: &lt;no ledger&gt;" in row
    assert "1 dead letter in default" in page
    assert "Requeue</button>" not in page and "Delete all" not in page
    empty = logged_in(VIEW_RUNS).get(dead_letters_url("money-urgent")).content.decode()
    assert "No dead letters." in empty


def test_the_dead_letters_page_needs_the_view_permission_and_a_known_queue(broker):
    assert logged_in().get(dead_letters_url("default")).status_code == 403
    assert logged_in(VIEW_RUNS).get(dead_letters_url("nope")).status_code == 404


def test_one_dead_letter_is_requeued_and_the_rest_deleted(broker):
    # given two failed runs whose messages are dead
    failed = [finished_run(status=RunStatus.FAILED) for _ in range(2)]
    for run in failed:
        actor_for("expire_matches").send(run.pk)
    dead = [dead_letter_one(broker, "default"), dead_letter_one(broker, "default")]
    client = logged_in(VIEW_RUNS, REQUEUE_DEAD, DELETE_DEAD)
    page = client.get(dead_letters_url("default")).content.decode()
    assert "Requeue all</button>" in page and "Delete all</button>" in page

    # when the operator requeues the first one
    response = client.post(
        dead_letters_url("default", "requeue"),
        {"message_id": dead[0].message_id, "reason": "bank back"},
    )

    # then its run is retried, the other stays dead, and it is audited
    assert response["Location"] == dead_letters_url("default")
    assert messages_of(response) == [
        "Requeued 1 dead letter(s) of default; 1 as retries of their failed runs."
    ]
    retried_run = JobRun.objects.get(retry_of_id=dead[0].args[0])
    assert retried_run.reason == "bank back"
    total, letters = queue_dead_letters(queue="default")
    assert total == 1 and letters[0].message_id == dead[1].message_id

    # when they delete all that are left
    response = client.post(dead_letters_url("default", "delete"), {"reason": "stale"})

    # then none is left, and both actions are in the audit
    assert messages_of(response) == ["Deleted 1 dead letter(s) of default."]
    assert queue_dead_letters(queue="default")[0] == 0
    assert list(ControlAction.objects.order_by("id").values_list("action", "reason")) == [
        (ControlAction.Action.DEAD_REQUEUED, "bank back"),
        (ControlAction.Action.DEAD_DELETED, "stale"),
    ]


def test_a_dead_letter_that_is_not_there_changes_nothing(broker):
    actor_for("expire_matches").send(1)
    dead_letter_one(broker, "default")

    response = logged_in(DELETE_DEAD).post(
        dead_letters_url("default", "delete"), {"message_id": "not-a-message"}
    )

    assert messages_of(response) == [
        "Delete in default was not done: no dead-lettered message 'not-a-message' in queue "
        "'default'."
    ]
    assert queue_dead_letters(queue="default")[0] == 1
    assert not ControlAction.objects.exists()


def test_a_rate_limit_is_set_and_reset(broker):
    client = logged_in(QUEUE_LIMITS)

    response = set_rate(client, "channel-sms", limit="100", window_seconds="60")

    assert response["Location"] == f"{DASHBOARD}#rate-limits"
    assert messages_of(response) == ["Rate limit channel-sms set to 100 per 60 s."]
    setting = RateLimitSetting.objects.get(name="channel-sms")
    assert (setting.limit, setting.window_seconds) == (100, 60)
    row = section(client.get(DASHBOARD).content.decode(), "rate-limits")
    row = row[row.index('data-rate-limit="channel-sms"') :].split("</tr>", 1)[0]
    assert "run time" in row and 'value="reset"' in row

    response = set_rate(client, "channel-sms", action="reset", reason="")

    assert messages_of(response) == ["Rate limit channel-sms back to its default: 600 per 60 s."]
    assert not RateLimitSetting.objects.exists()
    assert list(ControlAction.objects.order_by("id").values_list("before", "after")) == [
        ({"rate_limit": "600/60s"}, {"rate_limit": "100/60s"}),
        ({"rate_limit": "100/60s"}, {"rate_limit": "600/60s"}),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"limit": "0", "window_seconds": "60"}, "limit: A whole number from 1 to 1,000,000."),
        ({"limit": "-1", "window_seconds": "60"}, "limit: A whole number from 1 to 1,000,000."),
        ({"limit": "abc", "window_seconds": "60"}, "limit: Enter a whole number."),
        ({"limit": "10", "window_seconds": ""}, "window_seconds: This field is required."),
        (
            {"limit": "10", "window_seconds": "0"},
            "window_seconds: A whole number from 1 to 86,400.",
        ),
    ],
)
def test_a_bad_rate_limit_is_refused_with_the_field_and_changes_nothing(broker, fields, message):
    response = set_rate(logged_in(QUEUE_LIMITS), **fields)

    assert messages_of(response) == [f"Rate limit money was not changed: {message}"]
    assert not RateLimitSetting.objects.exists()
    assert not ControlAction.objects.exists()


def test_the_fleet_is_drained_and_the_drain_ended_from_the_banner(broker):
    client = logged_in(DRAIN)

    response = drain(client, reason="deploy 12")

    assert response["Location"] == f"{DASHBOARD}#fleet"
    assert FleetState.objects.get().draining
    page = client.get(DASHBOARD).content.decode()
    banner = section(page, "drain-banner")
    assert "The fleet is draining" in banner and 'value="end"' in banner
    assert 'value="start"' not in page

    drain(client, action="end", reason="deploy done")

    assert not FleetState.objects.get().draining
    assert 'id="drain-banner"' not in client.get(DASHBOARD).content.decode()
    assert list(ControlAction.objects.order_by("id").values_list("action", "reason")) == [
        (ControlAction.Action.DRAIN_STARTED, "deploy 12"),
        (ControlAction.Action.DRAIN_ENDED, "deploy done"),
    ]


def test_a_too_long_reason_is_refused_and_changes_nothing(broker):
    client = logged_in(*EVERY_CONTROL)

    responses = [
        pause(client, reason="x" * 501),
        set_concurrency(client, "3", reason="x" * 501),
        clear(client, reason="x" * 501),
        set_rate(client, limit="1", window_seconds="1", reason="x" * 501),
        drain(client, reason="x" * 501),
    ]

    for response in responses:
        assert response.status_code == 302
        assert "A reason is at most 500 characters" in messages_of(response)[0]
    assert not ControlAction.objects.exists()
    assert not QueueState.objects.exists() and not FleetState.objects.filter(draining=True).exists()


def test_recent_control_actions_show_to_whoever_may_read_the_audit(broker):
    pause(logged_in(PAUSE_QUEUE), reason="incident 9")
    set_concurrency(logged_in(QUEUE_LIMITS), "4")

    page = logged_in(VIEW_AUDIT).get(DASHBOARD).content.decode()

    audit = section(page, "control-actions")
    assert audit.index("Concurrency changed") < audit.index("Queue paused")  # newest first
    assert "incident 9" in audit and "concurrency: null → 4" in audit
    assert 'id="control-actions"' not in logged_in().get(DASHBOARD).content.decode()


def test_the_queues_keep_their_controls_when_the_broker_is_down(monkeypatch):
    # given a paused queue and a broker whose Redis does not answer
    QueueState.objects.create(queue="money", paused=True)
    broker = dramatiq.get_broker()
    monkeypatch.setattr(broker, "client", broker.client.__class__(host="127.0.0.1", port=1))
    client = logged_in(PAUSE_QUEUE, VIEW_RUNS)

    # then the dashboard shows the controls without counts, and the dead letters page says why
    page = client.get(DASHBOARD).content.decode()
    assert "The broker does not answer" in page
    assert "PAUSED" in group_of(page, "money") and 'value="resume"' in group_of(page, "money")
    dead = client.get(dead_letters_url("money"))
    assert dead.status_code == 200 and "The broker does not answer" in dead.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_queue_paused_from_the_dashboard_holds_its_run_until_resumed(worker_process):
    client = logged_in(PAUSE_QUEUE, TRIGGER)

    # given the default queue paused from the dashboard, and the worker told (it reads the
    # published controls at most once a second)
    pause(client, reason="hold expiries")
    time.sleep(1.5)

    # when an operator asks for an expire_matches run
    client.post(
        reverse("dashboard-job-action", args=["expire_matches"]),
        {"action": "run", "reason": "while paused"},
    )
    run = JobRun.objects.get(job="expire_matches")

    # then it stays queued, its message waiting
    time.sleep(3)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED, worker_process.log_text()
    assert run.attempt_count == 0

    # when the queue is resumed from the dashboard
    pause(client, action="resume", reason="go")

    # then the worker runs it to success
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            break
        time.sleep(0.2)
    assert run.status == RunStatus.SUCCEEDED, run.error + worker_process.log_text()
