"""GET queues/ and POST queues/{name}/requeue-dead against the real Redis broker."""

import dramatiq
import pytest

from jobs.actors import actor_for
from jobs.models import JobRun, RunStatus, Trigger
from jobs.services import job_run_request
from tests.scheduling.test_queues import dead_letter_one

pytestmark = pytest.mark.django_db


def test_queue_stats_count_waiting_delayed_and_dead_messages(api, broker):
    # given messages in several states on the default queue
    actor = actor_for("expire_matches")
    for run_id in (1, 2, 3):
        actor.send(run_id)
    actor.send_with_options(args=(4,), delay=60_000)
    dead_letter_one(broker, "default")

    # when the queues are read
    response = api.get("/api/v1/queues/")

    # then every queue is listed with its counts (its controls are in test_queue_control_api)
    assert response.status_code == 200
    queues = {queue["name"]: queue for queue in response.json()["data"]}
    assert {"default", "money", "schedule"} <= set(queues)
    counts = ("name", "waiting", "delayed", "in_flight", "dead_lettered")
    assert {field: queues["default"][field] for field in counts} == {
        "name": "default",
        "waiting": 2,
        "delayed": 1,
        "in_flight": 0,
        "dead_lettered": 1,
    }


def test_requeueing_dead_letters_retries_the_failed_run(api, operator, broker):
    # given a failed run whose message ended in the dead-letter queue
    run = job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI)
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error="boom")
    actor_for("expire_matches").send(run.pk)
    dead_letter_one(broker, "default")

    # when an operator requeues the queue's dead letters
    response = api.post("/api/v1/queues/default/requeue-dead")

    # then the run is retried as a new linked run, recorded as theirs
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"queue": "default", "requeued": 1, "runs_retried": 1}
    assert body["message"] == "Requeued 1 dead-lettered message(s) of default"
    retry = JobRun.objects.get(retry_of=run)
    assert retry.requested_by == operator.username


def test_requeueing_an_unknown_queue_is_a_404(api, broker):
    response = api.post("/api/v1/queues/nope/requeue-dead")
    assert response.status_code == 404
    assert "known queues" in response.json()["error"]["message"]


def test_queue_stats_answer_503_when_the_broker_is_down(api, monkeypatch):
    # given a broker whose Redis does not answer
    broker = dramatiq.get_broker()
    monkeypatch.setattr(broker, "client", broker.client.__class__(host="127.0.0.1", port=1))

    # when the queues are read
    response = api.get("/api/v1/queues/")

    # then the client is told to come back, not shown a server error
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "broker_unavailable"
