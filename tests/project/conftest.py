import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings


@pytest.fixture
def development_env() -> dict[str, str]:
    """This environment without a SECRET_KEY or DEBUG: the defaults, as a fresh checkout has."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"SECRET_KEY", "DEBUG"} and not name.startswith(("SECURE_", "METRICS_"))
    }
    return {**env, "DJANGO_SETTINGS_MODULE": "project.settings", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def production_env(development_env) -> dict[str, str]:
    """The production environment the README gives: a secret key, the hosts, HTTPS behind a
    TLS-terminating proxy, and a metrics token."""
    return {
        **development_env,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "steward.example.org",
        "CSRF_TRUSTED_ORIGINS": "https://steward.example.org",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
        "SESSION_COOKIE_SECURE": "true",
        "CSRF_COOKIE_SECURE": "true",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
