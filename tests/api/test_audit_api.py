"""GET audit/: the control actions, newest first, filtered and bounded."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.audit import control_action_record
from jobs.controls import fleet_drain_start, queue_pause
from jobs.exceptions import VIEW_AUDIT_PERMISSION
from jobs.models import ControlAction
from tests.api.helpers import token_client, user_with

pytestmark = pytest.mark.django_db

Action, Target = ControlAction.Action, ControlAction.Target


@pytest.fixture
def auditor(db):
    return token_client(user_with(VIEW_AUDIT_PERMISSION))


def entries(response) -> list[dict]:
    assert response.status_code == 200, response.json()
    return response.json()["data"]["entries"]


def record(action=Action.QUEUE_PAUSED, target_type=Target.QUEUE, target="money", actor="ana"):
    return control_action_record(
        action=action, target_type=target_type, target=target, actor=actor, reason="why"
    )


@pytest.mark.parametrize(
    ("client", "status"),
    [
        (lambda: APIClient(), 401),
        (lambda: token_client(user_with(VIEW_AUDIT_PERMISSION, staff=False)), 403),
        (lambda: token_client(user_with("jobs.view_jobrun", "jobs.pause_queue")), 403),
        (lambda: token_client(user_with(VIEW_AUDIT_PERMISSION)), 200),
    ],
    ids=["anonymous", "not staff", "staff without it", "staff with it"],
)
def test_the_audit_answers_by_who_asks(request, client, status):
    response = client().get("/api/v1/audit/")

    assert response.status_code == status
    if request.node.callspec.id == "staff without it":
        assert VIEW_AUDIT_PERMISSION in response.json()["error"]["message"]


def test_control_actions_are_listed_newest_first_with_before_and_after(auditor):
    # given a queue paused and the fleet drained through their services
    queue_pause(queue="money", by="ana", reason="bank outage")
    fleet_drain_start(by="bo", reason="deploy")

    # when the audit is read
    listed = entries(auditor.get("/api/v1/audit/"))

    # then both are there, the drain first, each with who, why, before and after
    assert [entry["action"] for entry in listed] == ["drain_started", "queue_paused"]
    pause = listed[1]
    assert pause == {
        "id": pause["id"],
        "action": "queue_paused",
        "target_type": "queue",
        "target": "money",
        "actor": "ana",
        "at": pause["at"],
        "reason": "bank outage",
        "before": {"paused": False},
        "after": {"paused": True},
    }
    assert auditor.get("/api/v1/audit/").json()["data"]["count"] == 2


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"action": "queue_resumed"}, ["resume money"]),
        ({"target_type": "run"}, ["cancel run"]),
        ({"target": "money"}, ["resume money", "pause money"]),
        ({"actor": "bo"}, ["cancel run", "pause default"]),
        ({"action": "queue_paused", "actor": "ana"}, ["pause money"]),
        ({"target": "mon"}, []),
    ],
)
def test_the_audit_filters_by_action_target_and_actor(auditor, query, expected):
    # given entries that differ in one property each
    made = {
        "pause money": record(),
        "pause default": record(target="default", actor="bo"),
        "cancel run": record(Action.RUN_CANCELLED, Target.RUN, "#4 release_escrows", "bo"),
        "resume money": record(Action.QUEUE_RESUMED),
    }
    names = {entry.pk: name for name, entry in made.items()}

    listed = entries(auditor.get("/api/v1/audit/", query))

    assert [names[entry["id"]] for entry in listed] == expected


def test_the_audit_filters_by_since(auditor):
    old, new = record(target="old"), record(target="new")
    ControlAction.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=2))
    since = (timezone.now() - timedelta(days=1)).isoformat()

    listed = entries(auditor.get("/api/v1/audit/", {"since": since}))

    assert [entry["id"] for entry in listed] == [new.pk]


def test_the_audit_lists_50_by_default_and_at_most_500(auditor):
    ControlAction.objects.bulk_create(
        ControlAction(action=Action.QUEUE_PAUSED, target_type=Target.QUEUE, target=f"q{n}")
        for n in range(520)
    )

    assert len(entries(auditor.get("/api/v1/audit/"))) == 50
    assert len(entries(auditor.get("/api/v1/audit/?limit=1"))) == 1
    listed = entries(auditor.get("/api/v1/audit/?limit=500"))
    assert len(listed) == 500
    assert listed[0]["target"] == "q519"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1e2", "limit"),
        ("limit=" + "9" * 30, "limit"),
        ("action=queue_nuked", "action"),
        ("target_type=planet", "target_type"),
        ("target=" + "x" * 151, "target"),
        ("actor=", "actor"),
        ("since=yesterday", "since"),
        ("since=2020-01-01", "since"),
        ("who=ana", "who"),
    ],
)
def test_a_bad_audit_query_is_a_400_on_the_field(auditor, query, field):
    response = auditor.get(f"/api/v1/audit/?{query}")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
