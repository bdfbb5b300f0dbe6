"""`--quick`: a benchmark's smoke run, a few tokens and one repetition, so that the test suite
can run every benchmark (tests/test_benchmarks.py) and none rots unnoticed. The numbers a quick
run prints mean little; read a full run's."""

import sys

QUICK = "--quick" in sys.argv
if QUICK:
    sys.argv.remove("--quick")


def pick(full, quick):
    """`quick` in a quick run, else `full`."""
    return quick if QUICK else full
