"""`python -m tests.faults`: run every fault scenario and print the results table.

The scenarios are the pytest tests of this package; `make test` runs them in the short
configuration, this runs the long one by default and writes the table's rows as JSON. The
processes' logs of the last run stay under var/faults/. Further arguments go to pytest
(e.g. `-k redis`).
"""

import argparse
import os
import sys

import pytest

from tests.faults.profile import PROFILES


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="long")
    parser.add_argument(
        "--results",
        default="bench/results/faults.json",
        help="Where to write the results as JSON (default: %(default)s).",
    )
    args, pytest_args = parser.parse_known_args()
    os.environ["FAULTS_PROFILE"] = args.profile
    os.environ["FAULTS_RESULTS"] = args.results
    return pytest.main(
        ["tests/faults", "-q", "-p", "no:cacheprovider", "--basetemp", "var/faults", *pytest_args]
    )


if __name__ == "__main__":
    sys.exit(main())
