"""Every benchmark runs in its quick mode (bench/quick.py) and prints its table, so a benchmark
cannot rot unnoticed (bench/streaming.py once failed on every fresh clone with a 403)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_env

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted(path.name for path in (ROOT / "bench").glob("*.py") if path.name != "quick.py")
NEEDS_SERVICES = {"load.py", "classroom.py"}
EXTRA_ARGS = {"classroom.py": ["--mode", "services"]}  # the embedded mode: streaming, attention

pytestmark = [pytest.mark.model]


def test_every_benchmark_is_run_here():
    assert {"classroom.py", "stepping.py", "streaming.py", "load.py"} <= set(BENCHMARKS)


@pytest.mark.parametrize("script", BENCHMARKS)
def test_a_quick_run_prints_its_table(script):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLENS_")}
    env["TOKENLENS_MODEL_CACHE"] = os.environ.get(
        "TOKENLENS_MODEL_CACHE", str(ROOT / "var" / "models")
    )
    if script in NEEDS_SERVICES:
        env["TOKENLENS_DATABASE_URL"] = require_env("TOKENLENS_DATABASE_URL")
    argv = [sys.executable, str(ROOT / "bench" / script), "--quick", *EXTRA_ARGS.get(script, [])]
    finished = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    assert re.search(r"^\|[ :]*-{3,}", finished.stdout, re.M), output[-4000:]  # a table
