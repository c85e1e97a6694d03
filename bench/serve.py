"""Scoring throughput and latency of ``retrain serve`` on the bike example, steady and
through a hot swap.

What it does, from a clean temporary copy of the example project:

1. ``retrain apply`` trains the three bike models (as ``make demo`` does);
2. ``retrain serve --no-access-log`` starts on a free port (a subprocess: the real CLI);
3. **steady**: ``--clients`` threads, each on its own keep-alive connection, post scoring
   requests (``--rows`` rows each, round-robin over the three services) for ``--seconds``;
4. **batch**: the same with 100 rows per request (rows/s is what a batch client sees);
5. **hot swap**: the same load as steady while one location's data file changes and
   ``retrain apply`` retrains that model and points its service at it. Counts failed
   requests (anything but 200), and checks that the first request after the apply
   returned is scored by the new model.

Latencies are client-side (request written to response read), so they include the
client's own Python overhead; client and server share the machine's cores.

Usage (from the project root, after ``make install``)::

    .venv/bin/python -m bench.serve [--seconds 10] [--clients 4] [--rows 1]

Prints the figures and writes ``bench/results/serve.md``.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "serve.md"
SERVICES = ("bike-demand-seattle", "bike-demand-portland", "bike-demand-boston")
LOCATIONS = ("seattle", "portland", "boston")
BATCH_ROWS = 100  # rows per request in the batch phase
START_TIMEOUT = 120.0  # seconds for the server to answer (imports scikit-learn)
APPLY_TIMEOUT = 600.0  # seconds for the hot swap's apply (one model trains)
INTEGERS = ("season", "holiday", "workingday", "weather")
NUMBERS = ("temp", "humidity", "windspeed")


@dataclass
class Phase:
    """What one phase saw: per request its end time, latency and whether it was a 200."""

    name: str
    rows: int
    started: float = 0.0
    ended: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    models: list[tuple[float, str]] = field(default_factory=list)  # (time, model header)
    facts: dict[str, Any] = field(default_factory=dict)  # the hot swap's apply
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, latency: float, ok: bool, model: str, at: float) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.failures += 0 if ok else 1
            self.models.append((at, model))

    def summary(self) -> dict[str, Any]:
        took = self.ended - self.started
        ordered = sorted(self.latencies)
        count = len(ordered)
        return {
            "phase": self.name,
            "rows/request": self.rows,
            "requests": count,
            "failed": self.failures,
            "requests/s": count / took if took else 0.0,
            "rows/s": count * self.rows / took if took else 0.0,
            "p50 ms": 1000 * percentile(ordered, 0.50),
            "p99 ms": 1000 * percentile(ordered, 0.99),
            "max ms": 1000 * (ordered[-1] if ordered else 0.0),
        }


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted values."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark retrain serve on the bike example.")
    parser.add_argument("--seconds", type=float, default=10.0, help="per steady phase")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--rows", type=int, default=1, help="rows per request (steady)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="retrain-bench-serve-") as tmp:
        project = make_project(Path(tmp))
        port = free_port()
        server = start_server(project, port)
        try:
            phases = run_phases(project, port, args)
        finally:
            server.terminate()
            server.wait(timeout=30)
        costs = predict_costs(project)
    figures = [p.summary() for p in phases]
    swap = swap_facts(phases[-1])
    report = render(figures, swap, args, load_before, costs)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 1 if any(f["failed"] for f in figures) or not swap["next request new"] else 0


def run_phases(project: Path, port: int, args: argparse.Namespace) -> list[Phase]:
    pairs = list(zip(SERVICES, LOCATIONS, strict=True))
    bodies = {s: request(rows_of(project, loc, args.rows)) for s, loc in pairs}
    batches = {s: request(rows_of(project, loc, BATCH_ROWS)) for s, loc in pairs}
    for service, body in bodies.items():  # warm: each model loaded once before timing
        status, _model, _ = post(http.client.HTTPConnection("127.0.0.1", port), service, body)
        assert status == 200, f"{service}: {status}"
    steady = load(port, bodies, args.clients, Phase("steady", args.rows), args.seconds)
    batch = load(port, batches, args.clients, Phase("batch", BATCH_ROWS), args.seconds)
    swap = Phase("hot swap", args.rows)
    swap.facts = hot_swap(project, port, bodies, args.clients, swap)
    return [steady, batch, swap]


def load(
    port: int,
    bodies: dict[str, bytes],
    clients: int,
    phase: Phase,
    seconds: float,
    until: Callable[[], bool] | None = None,
) -> Phase:
    """``clients`` threads posting round-robin for ``seconds`` (or until ``until()``)."""
    stop = threading.Event()

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        names = list(bodies)
        i = offset
        while not stop.is_set():
            name = names[i % len(names)]
            i += 1
            began = time.perf_counter()
            try:
                status, model, _ = post(conn, name, bodies[name])
            except (OSError, http.client.HTTPException):
                status, model = 0, ""
                conn = http.client.HTTPConnection("127.0.0.1", port)
            done = time.perf_counter()
            phase.add(done - began, status == 200, model if name == SERVICES[0] else "", done)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    phase.started = time.perf_counter()
    for t in threads:
        t.start()
    if until is None:
        time.sleep(seconds)
    else:
        while not until():
            time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    phase.ended = time.perf_counter()
    return phase


def hot_swap(
    project: Path, port: int, bodies: dict[str, bytes], clients: int, phase: Phase
) -> dict[str, Any]:
    """Steady load while new data for one location is applied; what the apply did."""
    data = project / "examples" / "bike_rental" / "data" / "seattle.csv"
    lines = data.read_text().splitlines(keepends=True)
    head, _, count = lines[-1].rstrip("\n").rpartition(",")
    data.write_text("".join(lines[:-1]) + f"{head},{int(count) + 7}\n")  # fresh data
    facts: dict[str, Any] = {}

    def apply() -> None:
        facts["apply started"] = time.perf_counter()
        done = retrain(project, "apply", "--auto-approve", timeout=APPLY_TIMEOUT)
        facts["apply ended"] = time.perf_counter()
        facts["apply code"] = done.returncode
        conn = http.client.HTTPConnection("127.0.0.1", port)
        facts["next model"] = post(conn, SERVICES[0], bodies[SERVICES[0]])[1]
        time.sleep(1.0)  # a second of load after the swap, so its latencies are in

    worker = threading.Thread(target=apply)
    worker.start()
    load(port, bodies, clients, phase, 0, until=lambda: not worker.is_alive())
    tags = json.loads((project / ".retrain/webservices/bike-demand-seattle.json").read_text())
    facts["new model"] = tags["tags"]["retrain.fingerprint"][:12]
    return facts


def swap_facts(phase: Phase) -> dict[str, Any]:
    facts = phase.facts
    models = [(at, m) for at, m in phase.models if m]
    new = facts["new model"]
    first_new = next((at for at, m in models if m == new), None)
    olds_after = [at for at, m in models if m != new and first_new is not None and at > first_new]
    return {
        "apply seconds": facts["apply ended"] - facts["apply started"],
        "apply exit code": facts["apply code"],
        "next request new": facts["next model"] == new,
        "old model after the first new one": len(olds_after),
        "new model": new,
    }


PROFILE_CALLS = 200  # one-row predictions timed in this process, per variant


def predict_costs(project: Path) -> dict[str, float]:
    """Milliseconds per one-row prediction in this process, as the server makes them (one
    native thread): the example's ``predict`` (which enters threadpoolctl's limits on every
    call) and the model's own ``predict`` on the same features. Where a request's time goes."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as serve sets it, before sklearn loads
    path = project / "examples" / "bike_rental" / "train.py"
    spec = importlib.util.spec_from_file_location("bench_bike_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    fp = json.loads((project / ".retrain/webservices/bike-demand-portland.json").read_text())
    stored = project / ".retrain" / "models" / fp["tags"]["retrain.fingerprint"]
    model = module.load_model(stored / "model.ilearner")
    rows = rows_of(project, "portland", 1)
    variants: dict[str, Callable[[], object]] = {
        "example predict": lambda: module.predict(model, rows),
        "model.predict alone": lambda: model.predict(module.features_of(rows)),
    }
    costs = {}
    for name, call in variants.items():
        call()
        began = time.perf_counter()
        for _ in range(PROFILE_CALLS):
            call()
        costs[name] = 1000 * (time.perf_counter() - began) / PROFILE_CALLS
    return costs


def post(conn: http.client.HTTPConnection, service: str, body: bytes) -> tuple[int, str, bytes]:
    conn.request(
        "POST",
        f"/services/{service}/score",
        body=body,
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    data = response.read()
    return response.status, response.getheader("x-retrain-model", ""), data


def rows_of(project: Path, location: str, count: int) -> list[dict[str, Any]]:
    with (project / "examples" / "bike_rental" / "data" / f"{location}.csv").open() as f:
        found = list(csv.DictReader(f))[-count:]
    return [
        {"datetime": r["datetime"]}
        | {c: int(r[c]) for c in INTEGERS}
        | {c: float(r[c]) for c in NUMBERS}
        for r in found
    ]


def request(rows: list[dict[str, Any]]) -> bytes:
    return json.dumps({"Inputs": {"input1": rows}, "GlobalParameters": {}}).encode()


def make_project(folder: Path) -> Path:
    shutil.copy(ROOT / "retrain.yaml.example", folder / "retrain.yaml")
    shutil.copytree(
        ROOT / "examples" / "bike_rental",
        folder / "examples" / "bike_rental",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    done = retrain(folder, "apply", "--auto-approve", timeout=APPLY_TIMEOUT)
    if done.returncode != 0:
        raise SystemExit(f"apply failed: {done.stderr[-2000:]}")
    return folder


def retrain(project: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args, "-f", "retrain.yaml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_server(project: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", "-f", "retrain.yaml",
         "--port", str(port), "--no-access-log"],
        cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/services")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("retrain serve did not start")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def render(
    figures: list[dict[str, Any]],
    swap: dict[str, Any],
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    costs: dict[str, float],
) -> str:
    cpu = _cpu_model()
    lines = [
        "# retrain serve: scoring throughput and latency (bike example)",
        "",
        "Reproduce: `.venv/bin/python -m bench.serve"
        f" --seconds {args.seconds:g} --clients {args.clients} --rows {args.rows}`"
        " (after `make install`; trains the example in a temporary copy, starts"
        " `retrain serve --no-access-log`, loads it from the same machine).",
        "",
        f"Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()},"
        f" load average {load_before[0]:.2f} when the run started (other work on the"
        " machine lowers these figures; client and server share the cores).",
        f"Load: {args.clients} keep-alive connections, round-robin over the three"
        f" services, {args.seconds:g} s per steady phase; latency is client-side.",
        "",
        "| phase | rows/request | requests | failed | requests/s | rows/s | p50 ms | p99 ms "
        "| max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f['phase']} | {f['rows/request']} | {f['requests']} | {f['failed']} "
            f"| {f['requests/s']:.0f} | {f['rows/s']:.0f} | {f['p50 ms']:.1f} "
            f"| {f['p99 ms']:.1f} | {f['max ms']:.1f} |"
        )
    lines += [
        "",
        "Hot swap: new data for seattle, `retrain apply` while the load runs"
        f" ({swap['apply seconds']:.1f} s, exit {swap['apply exit code']}: trains one model"
        " and points its service at it). The phase's figures above cover the whole apply;"
        f" the first request after the apply returned was scored by the new model"
        f" ({swap['new model']}): {'yes' if swap['next request new'] else 'NO'}; responses"
        f" from the old model after the first from the new one:"
        f" {swap['old model after the first new one']}.",
        "",
        "Where a one-row request's time goes, measured in the benchmark's process after the"
        f" load ({PROFILE_CALLS} calls each, one native thread as serve runs them): the"
        f" example's `predict` {costs['example predict']:.2f} ms per call, the model's own"
        f" `predict` on the same features {costs['model.predict alone']:.2f} ms. The"
        " difference is the example entering threadpoolctl's limits on every call"
        " (`examples/bike_rental/train.py`, part of the example's fingerprint, so left as it"
        " is); the rest of the request is HTTP, the schema check and JSON.",
        "",
    ]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
