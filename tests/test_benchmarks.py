"""Every benchmark runs in its quick mode (bench/quick.py) and prints its table, so a benchmark
cannot rot unnoticed (bench/streaming.py once failed on every fresh clone with a 403)."""

from __future__ import annotations

import concurrent.futures
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

# The first test waits for every quick run (the module fixture): several minutes on a busy machine.
pytestmark = [pytest.mark.model, pytest.mark.timeout(900)]


def test_every_benchmark_is_run_here():
    assert {"classroom.py", "stepping.py", "streaming.py", "load.py"} <= set(BENCHMARKS)


def _quick_run(script: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLENS_")}
    env["TOKENLENS_MODEL_CACHE"] = os.environ.get(
        "TOKENLENS_MODEL_CACHE", str(ROOT / "var" / "models")
    )
    if script in NEEDS_SERVICES:
        env["TOKENLENS_DATABASE_URL"] = os.environ["TOKENLENS_DATABASE_URL"]
    argv = [sys.executable, str(ROOT / "bench" / script), "--quick", *EXTRA_ARGS.get(script, [])]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def quick_runs():
    """Every benchmark's quick run, two at a time: most of a run is a server starting or a
    model loading, so two overlap well on two cores and the suite stays short."""
    services = bool(os.environ.get("TOKENLENS_DATABASE_URL"))
    runnable = [name for name in BENCHMARKS if services or name not in NEEDS_SERVICES]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {script: pool.submit(_quick_run, script) for script in runnable}
        return {script: future.result() for script, future in futures.items()}


@pytest.mark.parametrize("script", BENCHMARKS)
def test_a_quick_run_prints_its_table(quick_runs, script):
    if script in NEEDS_SERVICES:
        require_env("TOKENLENS_DATABASE_URL")
    finished = quick_runs[script]
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    assert re.search(r"^\|[ :]*-{3,}", finished.stdout, re.M), output[-4000:]  # a table
