import pytest
from django.test import Client


@pytest.fixture
def admin_client_for():
    """A browser-like client logged in as the given user."""

    def login(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return login
