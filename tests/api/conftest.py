import pytest
from django.core.cache import cache
from rest_framework import serializers

from jobs.params import IdListField
from tests.api.helpers import (
    PAUSE,
    REQUEUE,
    RETRY,
    SCHEDULE_PERMISSIONS,
    TRIGGER,
    token_client,
    user_with,
)
from tests.scheduling.helpers import registered_job


@pytest.fixture(autouse=True)
def no_failed_tokens_counted():
    """Every test's client is 127.0.0.1: one test's wrong tokens must not throttle the next."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def operator(db):
    """A staff user holding every jobs permission, not a superuser."""
    return user_with(TRIGGER, RETRY, PAUSE, REQUEUE, *SCHEDULE_PERMISSIONS)


@pytest.fixture
def api(operator):
    """An API client authenticated by the operator's token."""
    return token_client(operator)


class TargetParams(serializers.Serializer):
    ids = IdListField(required=False, help_text="Just these rows; all that are due by default.")
    game = serializers.ChoiceField(choices=["snake", "pong"], default="snake", help_text="A game.")


@pytest.fixture
def targets_job():
    """A job that takes parameters, as a targeted release does."""
    with registered_job("api_targets", params=TargetParams, concurrent_targets=True) as spec:
        yield spec.name
