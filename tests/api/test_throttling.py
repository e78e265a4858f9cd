"""Failed token authentications are throttled per client address: a 429 with Retry-After
once the rate is spent, even for a right token, until the window has passed."""

import pytest
from rest_framework.test import APIClient

from jobs.api.throttling import FailedTokenThrottle
from tests.api.helpers import token_header

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_per_minute(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"failed_token": "3/min"},
    }


@pytest.fixture
def clock(monkeypatch):
    """The throttle's clock, moved by hand."""
    now = [1_000_000.0]
    monkeypatch.setattr(FailedTokenThrottle, "timer", lambda self: now[0])
    return now


def get(authorization: str, address: str = "127.0.0.1"):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=authorization)
    return client.get("/api/v1/jobs/")


def test_a_guessing_client_is_throttled_then_let_back_in(three_per_minute, clock, operator):
    right = token_header(operator)

    # when a client sends three wrong tokens
    assert [get(f"Token wrong-{n}").status_code for n in range(3)] == [401, 401, 401]
    clock[0] += 10

    # then its next try is a 429 with a Retry-After, whatever the token
    for authorization in ("Token wrong-4", right):
        response = get(authorization)
        assert response.status_code == 429
        assert response["Retry-After"] == "50"
        assert response.json()["error"]["code"] == "throttled"

    # and once the first failure is a minute old it may try again, and the right token works
    clock[0] += 50
    assert get(right).status_code == 200


def test_malformed_token_headers_count_as_failures(three_per_minute, clock):
    for authorization in ("Token", "Token two parts", "Token wrong"):
        assert get(authorization).status_code == 401
    assert get("Token wrong").status_code == 429


def test_other_clients_and_requests_without_a_token_are_not_throttled(
    three_per_minute, clock, operator
):
    for n in range(3):
        get(f"Token wrong-{n}")

    assert get(token_header(operator), address="10.0.0.2").status_code == 200
    anonymous = APIClient().get("/api/v1/jobs/")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"


def test_right_tokens_are_not_counted(three_per_minute, clock, operator):
    right = token_header(operator)
    assert {get(right).status_code for _ in range(10)} == {200}
