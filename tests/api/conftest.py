import pytest
from django.core.cache import cache

from tests.api.helpers import PAUSE, REQUEUE, RETRY, TRIGGER, token_client, user_with


@pytest.fixture(autouse=True)
def no_failed_tokens_counted():
    """Every test's client is 127.0.0.1: one test's wrong tokens must not throttle the next."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def operator(db):
    """A staff user holding every jobs permission, not a superuser."""
    return user_with(TRIGGER, RETRY, PAUSE, REQUEUE)


@pytest.fixture
def api(operator):
    """An API client authenticated by the operator's token."""
    return token_client(operator)
