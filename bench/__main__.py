"""Run every benchmark: `python -m bench` (what `make bench` does). Each takes its own options;
e.g. `python -m bench.snapshot_balances --wallets 50000` for a quick run."""

import subprocess
import sys

BENCHMARKS = [
    "bench.release_escrows",
    "bench.update_leaderboard",
    "bench.scaling",
    "bench.latency",
    "bench.drift",
    "bench.notifications",
    "bench.engine_overhead",
    "bench.pages",
    "bench.schedules",
    "bench.snapshot_balances",
]


def main() -> int:
    failed = 0
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        failed |= subprocess.call([sys.executable, "-m", module])
    return failed


if __name__ == "__main__":
    sys.exit(main())
