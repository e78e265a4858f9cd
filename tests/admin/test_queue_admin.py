"""Queues in the admin: every controlled queue listed with its lanes' counts and controls; pause,
resume, concurrency, clear, dead letters, rate limits and the drain go through the control
services, are audited with the operator's name, and a refusal shows on the page with nothing
changed."""

import time

import pytest
from django.urls import reverse

from jobs.actors import actor_for
from jobs.dead_letters import queue_dead_letters
from jobs.fleet import controlled_queues, fleet_draining
from jobs.models import ControlAction, JobRun, QueueState, RateLimitSetting, RunStatus, Trigger
from jobs.queues import queue_stats
from jobs.services import job_run_request
from tests.api.helpers import user_with

pytestmark = pytest.mark.django_db

QUEUES = reverse("admin:jobs_queuestate_changelist")
RATE_LIMITS = reverse("admin:jobs_ratelimitsetting_changelist")
DRAIN_START = reverse("admin:jobs_queuestate_drain_start")
DRAIN_END = reverse("admin:jobs_queuestate_drain_end")
VIEW = "jobs.view_queuestate"
PAUSE_QUEUE = "jobs.pause_queue"
CLEAR_QUEUE = "jobs.clear_queue"
LIMITS = "jobs.change_queue_limits"
DRAIN = "jobs.drain_fleet"
VIEW_RUNS = "jobs.view_jobrun"
REQUEUE_DEAD = "jobs.requeue_dead"
DELETE_DEAD = "jobs.delete_dead"


def dead_letters_url(queue: str) -> str:
    return reverse("admin:jobs_queuestate_dead_letters", args=[queue])


def apply(client, name, queues, **fields):
    return client.post(QUEUES, {"action": name, "_selected_action": queues, "apply": "1", **fields})


def stats_of(name):
    return next(stats for stats in queue_stats() if stats.name == name)


def queued_run() -> JobRun:
    """A queued run of expire_matches with its message waiting on the default queue."""
    run = job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI)
    actor_for("expire_matches").send(run.pk)
    return run


def dead_letter_one(broker, queue):
    """Fetch one message the way a worker does and fail it, as Retries does at the end."""
    consumer = broker.consume(queue, prefetch=1, timeout=1000)
    try:
        message = next(consumer)
        consumer.nack(message)
    finally:
        consumer.close()
    return message


def audit(action: str) -> list[tuple]:
    entries = ControlAction.objects.filter(action=action).order_by("id")
    return [(entry.target, entry.actor, entry.reason) for entry in entries]


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.wsgi_request._messages]


def test_the_list_shows_every_controlled_queue_with_lanes_counts_and_controls(
    broker, admin_client_for, settings
):
    # given messages on the default queue's lanes, a concurrency set at run time and a rate
    # limit from the environment, and no queue state row yet
    settings.STEWARD_QUEUE_RATE_LIMITS = "money=100/60"
    actor_for("expire_matches").send(1)
    actor_for("expire_matches").send(2)
    QueueState.objects.create(queue="engine", concurrency=3, paused=True)
    client = admin_client_for(user_with(VIEW))

    response = client.get(QUEUES)

    # then every controlled queue is listed, each with its lanes, counts and controls
    assert response.status_code == 200
    listed = [state.queue for state in response.context["cl"].result_list]
    assert (
        listed == controlled_queues() == ["default", "engine", "money", "notifications", "schedule"]
    )
    page = response.content.decode()
    default = row_with(page, ">default<")
    assert "urgent" in default and "normal" in default
    assert ">2<" in default  # two waiting on the normal lane
    assert dead_letters_url("default-urgent") in default
    engine = row_with(page, ">engine<")
    assert "paused" in engine and "3" in engine and "run time" in engine
    assert "100 per 60 s" in row_with(page, ">money<")
    # and the lanes' table is markup, not text shown as it is
    assert "&lt;tr" not in page and "<td style='padding:0 .8em 0 0;border:0'>lane</td>" in page
    # and no one adds or deletes a row by hand
    assert "addlink" not in page
    assert 'value="delete_selected"' not in page


def row_with(page: str, text: str) -> str:
    return next(row for row in page.split("<tr class")[1:] if text in row)


def test_pause_and_resume_are_audited_and_published(broker, admin_client_for):
    operator = user_with(VIEW, PAUSE_QUEUE)
    client = admin_client_for(operator)
    client.get(QUEUES)

    # when the operator chooses Pause, a reason is asked first and nothing changes yet
    confirm = client.post(QUEUES, {"action": "pause", "_selected_action": ["default", "money"]})
    assert "admin/steward/reason_form.html" in [t.name for t in confirm.templates]
    assert not QueueState.objects.filter(paused=True).exists()

    paused = apply(client, "pause", ["default", "money"], reason="bank maintenance")
    resumed = apply(client, "resume", ["money"], reason="bank back")

    # then the queues are paused, money resumed, each change audited with who and why
    assert paused.status_code == resumed.status_code == 302
    assert set(QueueState.objects.filter(paused=True).values_list("queue", flat=True)) == {
        "default"
    }
    assert audit("queue_paused") == [
        ("default", operator.username, "bank maintenance"),
        ("money", operator.username, "bank maintenance"),
    ]
    assert audit("queue_resumed") == [("money", operator.username, "bank back")]
    assert "paused" in row_with(client.get(QUEUES).content.decode(), ">default<")


def test_queue_actions_are_refused_without_their_permissions(broker, admin_client_for):
    client = admin_client_for(user_with(VIEW))
    queued_run()

    page = client.get(QUEUES).content.decode()
    apply(client, "pause", ["default"], reason="sneaky")
    apply(client, "set_concurrency", ["default"], concurrency="2", reason="sneaky")
    apply(client, "clear", ["default"], confirm="default", reason="sneaky")

    # then the actions are not offered, and nothing changed
    for name in ("pause", "resume", "set_concurrency", "clear"):
        assert f'value="{name}"' not in page
    assert QueueState.objects.filter(paused=False, concurrency__isnull=True).count() == 5
    assert stats_of("default").waiting == 1
    assert not ControlAction.objects.exists()
    # and a user who may not see the queues gets 403
    assert admin_client_for(user_with(PAUSE_QUEUE)).get(QUEUES).status_code == 403


def test_setting_and_resetting_concurrency(broker, admin_client_for, settings):
    settings.STEWARD_QUEUE_CONCURRENCY = {"money": 4}
    operator = user_with(VIEW, LIMITS)
    client = admin_client_for(operator)
    client.get(QUEUES)

    set_ = apply(client, "set_concurrency", ["money"], concurrency="2", reason="bank is slow")
    assert set_.status_code == 302
    assert QueueState.objects.get(queue="money").concurrency == 2
    reset = apply(client, "set_concurrency", ["money"], concurrency="", reason="bank is back")
    assert reset.status_code == 302

    assert QueueState.objects.get(queue="money").concurrency is None
    entries = ControlAction.objects.filter(action="concurrency_changed").order_by("id")
    assert [(e.before, e.after, e.actor) for e in entries] == [
        ({"concurrency": 4}, {"concurrency": 2}, operator.username),
        ({"concurrency": 2}, {"concurrency": 4}, operator.username),
    ]


@pytest.mark.parametrize(
    ("concurrency", "message"),
    [("0", "from 1 to 10,000"), ("-1", "from 1 to 10,000"), ("abc", "whole number")],
)
def test_a_bad_concurrency_shows_on_the_form_and_changes_nothing(
    broker, admin_client_for, concurrency, message
):
    client = admin_client_for(user_with(VIEW, LIMITS))
    client.get(QUEUES)

    response = apply(client, "set_concurrency", ["money"], concurrency=concurrency, reason="x")

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["concurrency"]
    assert message in " ".join(errors["concurrency"])
    assert QueueState.objects.get(queue="money").concurrency is None
    assert not ControlAction.objects.exists()


def test_clearing_a_queue_needs_its_name_typed_and_cancels_the_runs(broker, admin_client_for):
    run = queued_run()
    operator = user_with(VIEW, CLEAR_QUEUE)
    client = admin_client_for(operator)
    client.get(QUEUES)

    # when the operator types another queue's name, the form says so and nothing is dropped
    wrong = apply(client, "clear", ["default"], confirm="money", reason="poison")
    assert wrong.status_code == 200
    assert list(wrong.context["form"].errors) == ["confirm"]
    assert "default" in wrong.context["form"].errors["confirm"][0]
    assert stats_of("default").waiting == 1
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert not ControlAction.objects.exists()

    # when they type its name
    done = apply(client, "clear", ["default"], confirm="default", reason="poison")

    # then both lanes are emptied, the run is cancelled, and the clear is audited
    assert done.status_code == 302
    assert stats_of("default").waiting == 0
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    # one entry for the queue, its urgent lane cleared with it
    assert audit("queue_cleared") == [("default", operator.username, "poison")]
    assert any("1 message(s) dropped, 1 run(s) cancelled" in m for m in shown_messages(done))


def test_clearing_two_queues_at_once_is_refused(broker, admin_client_for):
    queued_run()
    client = admin_client_for(user_with(VIEW, CLEAR_QUEUE))
    client.get(QUEUES)

    response = apply(client, "clear", ["default", "money"], confirm="default", reason="x")

    assert response.status_code == 302
    assert "Clear one queue at a time." in shown_messages(response)
    assert stats_of("default").waiting == 1


def test_dead_letters_are_listed_with_their_runs_and_requeued_one_by_one(broker, admin_client_for):
    # given two dead-lettered run messages on the default queue
    first, second = queued_run(), queued_run()
    dead = [dead_letter_one(broker, "default"), dead_letter_one(broker, "default")]
    operator = user_with(VIEW, VIEW_RUNS, REQUEUE_DEAD)
    client = admin_client_for(operator)

    page = client.get(dead_letters_url("default"))

    assert page.status_code == 200
    content = page.content.decode()
    for run in (first, second):
        assert reverse("admin:jobs_jobrun_change", args=[run.pk]) in content
    assert 'name="requeue"' in content and 'name="delete"' not in content

    # when the operator requeues one without a reason, it is asked for
    refused = client.post(dead_letters_url("default"), {"requeue": dead[0].message_id})
    assert refused.status_code == 200
    assert "reason" in refused.context["form"].errors
    assert queue_dead_letters(queue="default")[0] == 2

    # when they requeue one with a reason
    done = client.post(
        dead_letters_url("default"), {"requeue": dead[0].message_id, "reason": "bank back"}
    )

    # then it waits on its queue again, the other stays dead, and it is audited
    assert done.status_code == 302
    total, letters = queue_dead_letters(queue="default")
    assert (total, [letter.message_id for letter in letters]) == (1, [dead[1].message_id])
    assert stats_of("default").waiting == 1
    entry = ControlAction.objects.get(action="dead_requeued")
    assert (entry.target, entry.actor, entry.reason) == ("default", operator.username, "bank back")
    assert entry.before == {"message_ids": [dead[0].message_id]}


def test_deleting_all_dead_letters_and_an_unknown_one(broker, admin_client_for):
    queued_run(), queued_run()
    dead_letter_one(broker, "default"), dead_letter_one(broker, "default")
    operator = user_with(VIEW, VIEW_RUNS, DELETE_DEAD)
    client = admin_client_for(operator)

    unknown = client.post(dead_letters_url("default"), {"delete": "nope", "reason": "x"})
    assert unknown.status_code == 302
    assert any("no dead-lettered message 'nope'" in m for m in shown_messages(unknown))
    assert queue_dead_letters(queue="default")[0] == 2

    done = client.post(dead_letters_url("default"), {"delete": "all", "reason": "poison"})

    assert done.status_code == 302
    assert queue_dead_letters(queue="default")[0] == 0
    assert audit("dead_deleted") == [("default", operator.username, "poison")]
    assert "Deleted 2 dead letter(s) of default." in shown_messages(done)


def test_dead_letters_need_their_permissions(broker, admin_client_for):
    queued_run()
    dead_letter_one(broker, "default")
    viewer = admin_client_for(user_with(VIEW, VIEW_RUNS))

    page = viewer.get(dead_letters_url("default")).content.decode()
    requeue = viewer.post(dead_letters_url("default"), {"requeue": "all", "reason": "x"})
    delete = viewer.post(dead_letters_url("default"), {"delete": "all", "reason": "x"})
    unseen = admin_client_for(user_with(VIEW)).get(dead_letters_url("default"))
    unknown = viewer.get(dead_letters_url("nope"))

    assert 'name="requeue"' not in page and 'name="delete"' not in page
    assert requeue.status_code == delete.status_code == unseen.status_code == 403
    assert unknown.status_code == 404
    assert queue_dead_letters(queue="default")[0] == 1
    assert not ControlAction.objects.exists()


def test_rate_limits_are_listed_set_and_reset(broker, admin_client_for, settings):
    settings.STEWARD_QUEUE_RATE_LIMITS = "channel-sms=10/60"
    operator = user_with(LIMITS)
    client = admin_client_for(operator)

    page = client.get(RATE_LIMITS)
    assert page.status_code == 200
    shown = {limit.name: (limit.limit, limit.source) for limit in page.context["limits"]}
    assert shown["channel-sms"] == (10, "environment")
    assert shown["default"] == (None, "")

    set_ = client.post(
        RATE_LIMITS,
        {"name": "channel-sms", "limit": "5", "window_seconds": "60", "reason": "provider cap"},
    )
    assert set_.status_code == 302
    assert RateLimitSetting.objects.get(name="channel-sms").limit == 5
    reset = client.post(
        RATE_LIMITS, {"name": "channel-sms", "limit": "", "window_seconds": "", "reason": "lifted"}
    )

    assert reset.status_code == 302
    assert not RateLimitSetting.objects.exists()
    entries = ControlAction.objects.filter(action="rate_limit_changed").order_by("id")
    assert [(e.before, e.after, e.actor, e.reason) for e in entries] == [
        ({"rate_limit": "10/60s"}, {"rate_limit": "5/60s"}, operator.username, "provider cap"),
        ({"rate_limit": "5/60s"}, {"rate_limit": "10/60s"}, operator.username, "lifted"),
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"limit": "0", "window_seconds": "60"}, "limit"),
        ({"limit": "5", "window_seconds": "-1"}, "window_seconds"),
        ({"limit": "abc", "window_seconds": "60"}, "limit"),
        ({"limit": "5", "window_seconds": ""}, "limit"),
        ({"name": "nope", "limit": "5", "window_seconds": "60"}, "name"),
    ],
)
def test_a_bad_rate_limit_shows_on_the_form_and_changes_nothing(
    broker, admin_client_for, fields, field
):
    client = admin_client_for(user_with(LIMITS))

    response = client.post(RATE_LIMITS, {"name": "default", "reason": "x", **fields})

    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    assert not RateLimitSetting.objects.exists()
    assert not ControlAction.objects.exists()


def test_rate_limits_need_the_permission(broker, admin_client_for):
    client = admin_client_for(user_with(VIEW))

    seen = client.get(RATE_LIMITS)
    posted = client.post(
        RATE_LIMITS, {"name": "default", "limit": "5", "window_seconds": "60", "reason": "x"}
    )

    assert seen.status_code == posted.status_code == 403
    assert not RateLimitSetting.objects.exists()


def test_draining_is_said_at_the_top_and_started_and_ended_with_a_reason(broker, admin_client_for):
    operator = user_with(VIEW, DRAIN)
    client = admin_client_for(operator)
    assert DRAIN_START in client.get(QUEUES).content.decode()

    asked = client.get(DRAIN_START)
    assert "admin/steward/reason_form.html" in [t.name for t in asked.templates]
    started = client.post(DRAIN_START, {"apply": "1", "reason": "deploy"})

    assert started.status_code == 302
    assert fleet_draining() is not None
    page = client.get(QUEUES).content.decode()
    assert 'id="fleet-draining"' in page and DRAIN_END in page

    ended = client.post(DRAIN_END, {"apply": "1", "reason": "deployed"})

    assert ended.status_code == 302
    assert fleet_draining() is None
    assert 'id="fleet-draining"' not in client.get(QUEUES).content.decode()
    assert audit("drain_started") == [("fleet", operator.username, "deploy")]
    assert audit("drain_ended") == [("fleet", operator.username, "deployed")]


def test_draining_needs_the_permission(broker, admin_client_for):
    client = admin_client_for(user_with(VIEW))

    page = client.get(QUEUES).content.decode()
    response = client.post(DRAIN_START, {"apply": "1", "reason": "x"})

    assert DRAIN_START not in page
    assert response.status_code == 403
    assert fleet_draining() is None


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_a_queue_paused_in_the_admin_holds_a_run_on_a_real_worker_until_resumed(
    worker_process, admin_client_for
):
    # given a real worker, and the default queue paused from the admin
    client = admin_client_for(user_with(VIEW, PAUSE_QUEUE))
    client.get(QUEUES)
    apply(client, "pause", ["default"], reason="hold the sweeps")
    time.sleep(1.5)  # workers read the published controls at most once a second

    # when a run of a default-queue job is asked for
    run = job_run_request(job="expire_matches", trigger=Trigger.ADMIN, requested_by="ops")

    # then it stays queued while the queue is paused
    time.sleep(3)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED, worker_process.log_text()

    # when the queue is resumed from the admin, the run is taken and succeeds
    apply(client, "resume", ["default"], reason="go")
    succeeded = wait_for(
        lambda: JobRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED, timeout=30
    )
    assert succeeded, worker_process.log_text()
