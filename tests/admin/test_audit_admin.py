"""The audit of control actions in the admin: read-only, filterable and searchable, with the
state before and after shown readably, to those allowed to see it."""

import pytest
from django.urls import reverse

from jobs.controls import queue_concurrency_set, queue_pause
from jobs.models import ControlAction
from jobs.scheduling import job_pause
from tests.api.helpers import PAUSE, user_with

pytestmark = pytest.mark.django_db

AUDIT = reverse("admin:jobs_controlaction_changelist")
VIEW_AUDIT = "jobs.view_controlaction"
STATES = reverse("admin:jobs_jobstate_changelist")


def test_the_audit_lists_filters_and_searches_control_actions(admin_client_for):
    # given a queue paused, a concurrency set and a job paused
    queue_pause(queue="money", by="alice", reason="bank maintenance")
    queue_concurrency_set(queue="money", concurrency=2, by="bob", reason="bank is slow")
    job_pause(job="expire_matches", by="carol", reason="<i>holiday</i>")
    client = admin_client_for(user_with(VIEW_AUDIT))

    listed = client.get(AUDIT)
    queues = client.get(AUDIT, {"target_type__exact": "queue"})
    paused = client.get(AUDIT, {"action__exact": "queue_paused"})
    searched = client.get(AUDIT, {"q": "slow"})

    # then every entry is listed newest first, with who, what and why
    assert listed.status_code == 200
    actions = [entry.action for entry in listed.context["cl"].result_list]
    assert actions == ["job_paused", "concurrency_changed", "queue_paused"]
    assert [e.actor for e in queues.context["cl"].result_list] == ["bob", "alice"]
    assert [e.actor for e in paused.context["cl"].result_list] == ["alice"]
    assert [e.actor for e in searched.context["cl"].result_list] == ["bob"]
    page = listed.content.decode()
    assert "concurrency: null → 2" in page
    assert "paused: false → true" in page
    assert "&lt;i&gt;holiday&lt;/i&gt;" in page and "<i>holiday</i>" not in page
    filters = {spec.title for spec in listed.context["cl"].filter_specs}
    assert {"action", "target type"} <= filters


def test_an_entry_is_shown_read_only_with_its_before_and_after(admin_client_for):
    queue_pause(queue="money", by="alice", reason="bank maintenance")
    entry = ControlAction.objects.get()
    client = admin_client_for(user_with(VIEW_AUDIT))

    page = client.get(reverse("admin:jobs_controlaction_change", args=[entry.pk]))

    assert page.status_code == 200
    content = page.content.decode()
    assert "&quot;paused&quot;: false" in content and "&quot;paused&quot;: true" in content
    assert 'name="_save"' not in content
    assert client.get(reverse("admin:jobs_controlaction_add")).status_code == 403
    delete = client.post(reverse("admin:jobs_controlaction_delete", args=[entry.pk]), {"post": 1})
    assert delete.status_code == 403
    assert ControlAction.objects.count() == 1


def test_the_audit_needs_its_view_permission(admin_client_for):
    queue_pause(queue="money", by="alice")
    client = admin_client_for(user_with("jobs.view_jobrun"))

    assert client.get(AUDIT).status_code == 403


def test_a_job_state_links_to_its_audit(admin_client_for):
    job_pause(job="expire_matches", by="carol", reason="holiday")
    queue_pause(queue="default", by="alice")
    client = admin_client_for(user_with("jobs.view_jobstate", VIEW_AUDIT, PAUSE))

    page = client.get(STATES).content.decode()
    link = "target_type__exact=job&amp;target=expire_matches"
    assert link in page
    entries = client.get(AUDIT, {"target_type__exact": "job", "target": "expire_matches"})
    assert [(e.action, e.actor) for e in entries.context["cl"].result_list] == [
        ("job_paused", "carol")
    ]
