"""Failed admin logins are throttled by django-axes: after LOGIN_FAILURE_LIMIT wrong passwords
even the right one is a 429 with a Retry-After, until the cool-off has passed."""

import time
from datetime import timedelta

import pytest

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "the-right-password"


@pytest.fixture
def operator(settings):
    # Django's real hasher takes a second per try; the lockout does not depend on it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = UserFactory(is_staff=True, username="ops")
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def short_cool_off(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)


def log_in(client, password: str, username: str = "ops"):
    return client.post("/admin/login/", {"username": username, "password": password})


def test_wrong_passwords_lock_the_login_out_until_the_cool_off_has_passed(
    client, operator, short_cool_off
):
    # when three wrong passwords are tried, each is the login form again
    assert [log_in(client, f"guess-{n}").status_code for n in range(3)] == [200, 200, 429]

    # then the right password is refused too, with when to come back
    refused = log_in(client, PASSWORD)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "2"
    assert "_auth_user_id" not in client.session

    # and once the cool-off has passed it logs in
    time.sleep(2.1)
    welcomed = log_in(client, PASSWORD)
    assert welcomed.status_code == 302
    assert client.session["_auth_user_id"] == str(operator.pk)


def test_a_successful_login_clears_the_failures(client, operator, short_cool_off):
    for n in range(2):
        log_in(client, f"guess-{n}")
    assert log_in(client, PASSWORD).status_code == 302
    client.logout()

    assert [log_in(client, f"guess-{n}").status_code for n in range(2)] == [200, 200]


def test_one_username_locked_out_leaves_the_others_alone(client, operator, short_cool_off):
    other = UserFactory(is_staff=True, username="other")
    other.set_password(PASSWORD)
    other.save()
    for n in range(3):
        log_in(client, f"guess-{n}")

    assert log_in(client, PASSWORD, username="other").status_code == 302
