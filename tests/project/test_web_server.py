"""The production web server: gunicorn with WhiteNoise serves the admin's and the API docs'
static files with DEBUG off, and will not start with the development key."""

import socket
import subprocess
import sys
import time
import urllib.request
from urllib.error import HTTPError

import pytest
from django.conf import settings

from tests.project.conftest import run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn(port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "project.wsgi", "--preload", "--no-control-socket"]
        + ["--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def web_server(production_env, tmp_path):
    """gunicorn on a free port with the production environment (plain HTTP, as a TLS proxy
    would forward it) and freshly collected static files."""
    env = {**production_env, "STATIC_ROOT": str(tmp_path / "static"), "ALLOWED_HOSTS": "127.0.0.1"}
    env.update(SECURE_SSL_REDIRECT="false")
    collected = run(["manage.py", "collectstatic", "--noinput", "--verbosity", "0"], env)
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    server = gunicorn(port, env)
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, server.stdout.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)


def fetch(url: str):
    try:
        return urllib.request.urlopen(url, timeout=10)
    except HTTPError as error:
        return error


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/admin/css/base.css", "text/css"),
        ("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js", "text/javascript"),
    ],
)
def test_the_production_server_serves_static_files_with_debug_off(web_server, path, content_type):
    response = fetch(web_server + path)

    assert response.status == 200
    assert response.headers["Content-Type"].startswith(content_type)
    assert len(response.read()) > 1000


def test_the_admin_login_page_links_the_served_css(web_server):
    page = fetch(web_server + "/admin/login/")

    assert page.status == 200
    assert 'href="/static/admin/css/base.css"' in page.read().decode()


def test_gunicorn_will_not_start_with_the_development_key(development_env):
    server = gunicorn(free_port(), development_env)

    output, _ = server.communicate(timeout=60)

    assert server.returncode == 4
    assert output.strip().splitlines()[-1].startswith("Steward will not serve with DEBUG off")
