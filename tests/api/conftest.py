import pytest

from tests.api.helpers import PAUSE, REQUEUE, RETRY, TRIGGER, token_client, user_with


@pytest.fixture
def operator(db):
    """A staff user holding every jobs permission, not a superuser."""
    return user_with(TRIGGER, RETRY, PAUSE, REQUEUE)


@pytest.fixture
def api(operator):
    """An API client authenticated by the operator's token."""
    return token_client(operator)
