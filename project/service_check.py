"""Check that the services Steward needs answer: `python -m project.service_check redis`.

Used by the Makefile so `make test` fails fast with one clear line, by `project.launcher` to
tell whether `make run` needs a private Redis, and by the Procfile so the worker waits for it.
"""

import argparse
import os
import sys
import time
from urllib.parse import urlparse


def redis_answers(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return str(exc)
    return None


def postgres_answers(url: str) -> str | None:
    import psycopg

    parsed = urlparse(url)
    try:
        psycopg.connect(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password or None,
            dbname="postgres",
            connect_timeout=2,
        ).close()
    except psycopg.Error as exc:
        return str(exc).strip()
    return None


CHECKS = {
    "redis": ("REDIS_URL", "redis://127.0.0.1:6379/0", redis_answers),
    "postgres": ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/steward", postgres_answers),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=sorted(CHECKS))
    parser.add_argument("--wait", type=float, default=0, help="Keep trying for this many seconds.")
    parser.add_argument("--quiet", action="store_true", help="Print nothing on success or failure.")
    args = parser.parse_args()
    variable, default, check = CHECKS[args.service]
    url = os.environ.get(variable, default)
    deadline = time.monotonic() + args.wait
    while (error := check(url)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if error:
        if not args.quiet:
            print(f"{args.service} does not answer at {variable}={url}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
