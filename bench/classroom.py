"""A class of simulated students through the HTTP API, in both modes: what a room gets.

Run: `make bench` (or .venv/bin/python bench/classroom.py [--quick] [--mode embedded|services]).
Each student is a visitor of their own (own cookies, own exploration) who steps their branch
(POST .../steps/, sampling). Scenarios, each against the same running app:
- solo: one student stepping as fast as answers come (the reference);
- thinking: every student steps after a random pause (exponential, seeded);
- racing at 8 and 32: every student steps as fast as answers come;
- mixed: some students generate to the end while the others race.
Prints per run: aggregate tokens/s and its ratio to the solo student, p50/p95 step latency and
their ratio to solo (thinking) or to the run's median (racing), each student's step count
against the median student's, the ratio to the engine-only batched speed-up at that batch size
(bench/stepping.py's step_many, measured here after the app has stopped), errors by status and
the most database connections the app held (services mode).

Services mode needs PostgreSQL (TOKENLENS_DATABASE_URL, default the local server) and starts its
own Redis, database, daphne and Celery worker. --quick runs a few students for a few seconds
(the test suite runs it so the bench cannot rot); the numbers it prints mean little.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

import django  # noqa: E402

django.setup()

from quick import QUICK  # noqa: E402

from tests.e2e.stack import Stack, call, visitor  # noqa: E402

SMOL = "smollm2-135m-instruct"
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/test"
PROMPT = "Write a long story about a lighthouse keeper, the sea and the town"


@dataclass(frozen=True)
class Scenario:
    name: str
    students: int
    seconds: float
    mean_pause: float = 0.0  # 0: racing
    generating: int = 0  # of the students, how many generate to the end instead


FULL = [
    Scenario("solo", 1, 20),
    Scenario("thinking", 32, 60, mean_pause=2.0),
    Scenario("racing", 8, 30),
    Scenario("racing", 32, 30),
    Scenario("mixed", 32, 30, generating=8),
]
QUICK_RUNS = [  # --quick (see bench/quick.py)
    Scenario("solo", 1, 1.5),
    Scenario("thinking", 4, 1.5, mean_pause=0.3),
    Scenario("racing", 4, 1.5),
    Scenario("mixed", 4, 1.5, generating=1),
]


@dataclass
class Student:
    cookie: str
    branch: str
    index: int
    latencies: list[float] = field(default_factory=list)


@dataclass
class Run:
    scenario: Scenario
    steps: int = 0
    generated: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    per_student: list[int] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    peak_connections: int | None = None


def new_branch(stack: Stack, cookie: str, index: int) -> str:
    payload = {
        "model": SMOL,
        "prompt": f"{PROMPT} ({index})",
        "use_chat_template": True,  # an instruct model: asked for a story, it writes one
        "max_new_tokens": 1024,
        "params": {"temperature": 1.0, "seed": index},
    }
    status, body, _, _ = call(stack.url + "/api/v1/explorations/", "POST", payload, cookie)
    if status != 201:
        raise RuntimeError(f"could not create an exploration: {status} {body}")
    return body["branches"][0]["id"]


def class_of(stack: Stack, count: int) -> list[Student]:
    students = []
    for index in range(count):
        cookie = visitor(stack)
        students.append(Student(cookie, new_branch(stack, cookie, index), index))
    return students


def step(stack: Stack, student: Student, run: Run, lock: threading.Lock) -> None:
    url = stack.url + f"/api/v1/branches/{student.branch}/steps/"
    try:
        status, body, seconds, _ = call(url, "POST", {"mode": "sample"}, student.cookie, 300)
    except OSError:
        status, body, seconds = "timeout", None, 300.0
    with lock:
        run.statuses[status] += 1
    if status == 201:
        student.latencies.append(seconds)
        if body.get("finish_reason"):  # the branch ended: the student starts another
            student.branch = new_branch(stack, student.cookie, student.index)
    elif status == 400 and "ended" in str(body):
        student.branch = new_branch(stack, student.cookie, student.index)


def stepper(stack, student: Student, run: Run, lock, until: float, pause: float) -> None:
    draws = random.Random(student.index)
    while time.monotonic() < until:
        if pause:
            time.sleep(min(draws.expovariate(1 / pause), max(until - time.monotonic(), 0)))
            if time.monotonic() >= until:
                return
        step(stack, student, run, lock)


def generator(stack, student: Student, run: Run, lock, until: float) -> None:
    """Press Generate to the end (again on a new branch whenever one ends) until the run is
    over, then Stop; count the tokens made."""
    form = {"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true"}
    while True:
        page = stack.url + f"/branches/{student.branch}/"
        status = post_form(page + "generate/", student.cookie, form)
        with lock:
            run.statuses["generate " + str(status)] += 1
        ended = False
        while time.monotonic() < until and not ended:
            time.sleep(0.5)
            ended = bool(branch_of(stack, student).get("finish_reason"))
        if not ended:
            post_form(page + "stop/", student.cookie, form)
        time.sleep(0.5)  # the Stop lands before the next token
        with lock:
            run.generated += len(branch_of(stack, student).get("steps") or []) - 1
        if not ended:
            return
        student.branch = new_branch(stack, student.cookie, student.index)
        step(stack, student, Run(run.scenario), threading.Lock())  # read the prompt first


def branch_of(stack: Stack, student: Student) -> dict:
    return call(stack.url + f"/api/v1/branches/{student.branch}/", cookie=student.cookie)[1] or {}


def post_form(url: str, cookie: str, headers: dict) -> int:
    import urllib.error
    import urllib.request

    csrf = next(p.split("=", 1)[1] for p in cookie.split("; ") if p.startswith("csrftoken"))
    headers = {**headers, "Cookie": cookie, "X-CSRFToken": csrf, "Referer": url}
    request = urllib.request.Request(url, data=b"delay_ms=0", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def run_scenario(stack: Stack, scenario: Scenario) -> Run:
    students = class_of(stack, scenario.students)
    for student in students:  # every branch read once: the run measures steps, not prompts
        step(stack, student, Run(scenario), threading.Lock())
        student.latencies.clear()
    run, lock = Run(scenario), threading.Lock()
    peak = [stack.connections()]
    done = threading.Event()

    def watch():
        while not done.is_set():
            held = stack.connections()
            if held is not None:
                peak[0] = max(peak[0], held)
            time.sleep(0.1)

    until = time.monotonic() + scenario.seconds
    threads = [threading.Thread(target=watch, daemon=True)]
    for student in students[: scenario.generating]:
        threads.append(threading.Thread(target=generator, args=(stack, student, run, lock, until)))
    for student in students[scenario.generating :]:
        args = (stack, student, run, lock, until, scenario.mean_pause)
        threads.append(threading.Thread(target=stepper, args=args))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join(scenario.seconds + 600)
    run.wall = time.monotonic() - started
    done.set()
    steppers = students[scenario.generating :]
    run.latencies = [seconds for student in steppers for seconds in student.latencies]
    run.per_student = [len(student.latencies) for student in steppers]
    run.steps = len(run.latencies)
    run.peak_connections = peak[0]
    return run


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def engine_batched_ratio(sizes: list[int]) -> dict[int, float]:
    """bench/stepping.py's engine-only speed-up of step_many over one-by-one, per batch size."""
    import stepping as engine_bench
    import torch
    from django.conf import settings

    from engine.loading import build_catalog, load, pick_device
    from engine.stepping import Stepper

    torch.set_num_threads(settings.TOKENLENS_TORCH_THREADS)  # as the worker runs its passes
    loaded = load(build_catalog()[SMOL], settings.TOKENLENS_MODEL_CACHE, pick_device())
    model_stepper = Stepper(loaded, 4 << 30)
    ratios = {}
    for size in sizes:
        requests = engine_bench.branch_requests(loaded, size, f"c{size}")
        engine_bench.run_branches(model_stepper, requests, batched=True)
        model_stepper.cache.clear()
        _, one_s = engine_bench.timed(
            lambda r=requests: engine_bench.run_branches(model_stepper, r, False)
        )
        model_stepper.cache.clear()
        _, batch_s = engine_bench.timed(
            lambda r=requests: engine_bench.run_branches(model_stepper, r, True)
        )
        ratios[size] = one_s / batch_s
    return ratios


def report(mode: str, runs: list[Run], engine: dict[int, float]) -> None:
    solo = next(run for run in runs if run.scenario.name == "solo")
    solo_rate = solo.steps / solo.wall
    solo_p95 = percentile(solo.latencies, 0.95)
    print(f"\n### {mode} mode ({SMOL}, sampling, each student their own visitor and branch)\n")
    print(
        "| run | students | tokens/s | × solo | p50 s | p95 s | p95 ÷ solo p95 | "
        "p95 ÷ run median | steps per student (min–max ÷ median) | × engine batched | "
        "errors | peak DB connections |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: |")
    for run in runs:
        scenario = run.scenario
        tokens_rate = (run.steps + run.generated) / run.wall
        median = percentile(run.latencies, 0.5)
        p95 = percentile(run.latencies, 0.95)
        counts = run.per_student or [0]
        middle = statistics.median(counts) or 1
        spread = f"{min(counts) / middle:.2f}–{max(counts) / middle:.2f}"
        speedup = tokens_rate / solo_rate
        batch = engine.get(scenario.students)
        versus_engine = f"{speedup / batch:.0%} of {batch:.1f}×" if batch else ""
        errors = ", ".join(
            f"{status}: {n}"
            for status, n in sorted(run.statuses.items(), key=str)
            if status not in (201, "generate 200")
        )
        label = scenario.name
        if scenario.generating:
            label += f" ({scenario.generating} generating, {run.generated} tokens)"
        if scenario.mean_pause:
            label += f" (pause mean {scenario.mean_pause:g} s)"
        print(
            f"| {label} | {scenario.students} | {tokens_rate:.1f} | {speedup:.2f} | "
            f"{median:.3f} | {p95:.3f} | {p95 / solo_p95:.1f} | {p95 / median:.2f} | "
            f"{spread} | {versus_engine} | {errors or 'none'} | "
            f"{'n/a (SQLite)' if run.peak_connections is None else run.peak_connections} |"
        )


def run_mode(mode: str, scenarios: list[Scenario]) -> list[Run]:
    database_url = os.environ.get("TOKENLENS_DATABASE_URL", DEFAULT_DATABASE)
    if mode == "services" and not database_url.startswith("postgres"):
        message = "services mode needs PostgreSQL (TOKENLENS_DATABASE_URL), got"
        raise SystemExit(f"{message} {database_url!r}")
    with tempfile.TemporaryDirectory() as workdir:
        stack = Stack(
            Path(workdir),
            True,
            "" if mode == "embedded" else database_url,
            embedded=mode == "embedded",
            TOKENLENS_COMPUTE_BUDGET=10**9,
        ).start()
        try:
            return [run_scenario(stack, scenario) for scenario in scenarios]
        finally:
            stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["embedded", "services", "both"], default="both")
    options = parser.parse_args()
    scenarios = QUICK_RUNS if QUICK else FULL
    modes = ["embedded", "services"] if options.mode == "both" else [options.mode]
    results = {mode: run_mode(mode, scenarios) for mode in modes}
    sizes = sorted({s.students for s in scenarios if s.name == "racing"})
    engine = engine_batched_ratio(sizes)
    for mode, runs in results.items():
        report(mode, runs, engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
