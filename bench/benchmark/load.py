"""How loads run: HTTP probes, wrk against 127.0.0.1 only and its output, and the memory sampled while
a container is under load."""

from __future__ import annotations

import contextlib
import re
import statistics
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .common import STACK_TIMEOUT, BenchError, log, run


def http_get(url: str, headers: dict[str, str], timeout: float = 5) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def wait_for_200(url: str, headers: dict[str, str], started: float, timeout: float = STACK_TIMEOUT) -> float:
    """Seconds from `started` (perf_counter) to the first 200 from url."""
    while time.perf_counter() - started < timeout:
        with contextlib.suppress(OSError, urllib.error.URLError, ConnectionError):
            if http_get(url, headers, timeout=2)[0] == 200:
                return time.perf_counter() - started
        time.sleep(0.2)
    raise BenchError(f"no 200 from {url} within {timeout}s")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(output: str) -> dict:
    def latency(label: str) -> float | None:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        return float(match.group(1)) * UNITS[match.group(2)] if match else None

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if not rps or not total:
        raise BenchError(f"could not read wrk's output:\n{output}")
    return {
        "requests_per_s": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
    }


def mean_load(runs: list[dict]) -> dict:
    """The mean of several wrk runs of the same URL (each run kept under "runs")."""
    if len(runs) == 1:
        return runs[0]
    keys = ("requests_per_s", "p50_ms", "p99_ms")
    merged = {key: statistics.mean(r[key] for r in runs if r[key] is not None) for key in keys}
    merged.update(
        requests=sum(r["requests"] for r in runs),
        socket_errors=sum(r["socket_errors"] for r in runs),
        non_2xx_3xx=sum(r["non_2xx_3xx"] for r in runs),
        runs=runs,
    )
    return merged


class Load:
    def __init__(self, duration: int, connections: int, threads: int, warmup: int):
        self.duration, self.connections, self.threads, self.warmup = duration, connections, threads, warmup

    def __call__(self, url: str, headers: dict[str, str], label: str, log_file: Path) -> dict:
        assert url.startswith("http://127.0.0.1:"), "load only against loopback"
        flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
        base = ["wrk", "-t", str(self.threads), "-c", str(self.connections), "--timeout", "5s", "--latency", *flags]
        if self.warmup:
            run([*base, "-d", f"{self.warmup}s", url], timeout=self.warmup + 60)
        out = run([*base, "-d", f"{self.duration}s", url], timeout=self.duration + 60).stdout
        with open(log_file, "a") as handle:
            handle.write(f"\n### wrk {label}: {url}\n{out}")
        result = parse_wrk(out)
        log(
            f"  {label}: {result['requests_per_s']:.0f} req/s, p99 {result['p99_ms']} ms, "
            f"errors {result['socket_errors']}, non-2xx {result['non_2xx_3xx']}"
        )
        return result


def container_memory(container: str) -> dict[str, int]:
    """RSS (anonymous memory) and total usage of a container's cgroup, read inside it (cgroup v2 or v1)."""
    out = run(
        [
            "docker",
            "exec",
            container,
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.stat 2>/dev/null || cat /sys/fs/cgroup/memory/memory.stat; "
            "echo; echo usage $(cat /sys/fs/cgroup/memory.current 2>/dev/null "
            "|| cat /sys/fs/cgroup/memory/memory.usage_in_bytes)",
        ],
        timeout=60,
    ).stdout
    stat = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            stat[parts[0]] = int(parts[1])
    rss = stat.get("anon", stat.get("total_rss", stat.get("rss", 0)))
    return {"rss": rss, "usage": stat.get("usage", 0)}


def docker_stats_mem(container: str) -> str:
    return run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container], check=False, timeout=60
    ).stdout.strip()


class MemorySampler(threading.Thread):
    """Samples a container's memory every `every` seconds until stopped; keeps the peak."""

    def __init__(self, container: str, every: float = 2.0):
        super().__init__(daemon=True)
        self.container, self.every = container, every
        self.peak = {"rss": 0, "usage": 0}
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                sample = container_memory(self.container)
                self.samples += 1
                for key in self.peak:
                    self.peak[key] = max(self.peak[key], sample[key])
            self.stop.wait(self.every)
