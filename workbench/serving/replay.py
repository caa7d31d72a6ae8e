"""Replay a table against a running server, one row per request: what production traffic
looks like to the server, and a quick latency check (the demo's last step)."""
from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import pandas as pd


@dataclass(frozen=True)
class ReplayStats:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def replay(url: str, frame: pd.DataFrame, *, concurrency: int = 4,
           progress: Callable[[str], None] = lambda _: None) -> ReplayStats:
    """POST each row of ``frame`` to ``url``/invocations (``dataframe_split``, one row each)
    over ``concurrency`` keep-alive connections; returns counts and client-side latency."""
    columns = list(frame.columns)
    bodies = [json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()
              for row in json.loads(frame.to_json(orient="values"))]
    target = urlparse(url)
    host = target.hostname or "127.0.0.1"
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    step = max(len(bodies) // 10, 1)

    def worker(part: list[bytes]) -> None:
        connection = http.client.HTTPConnection(host, target.port, timeout=30)
        mine, failed = [], 0
        for body in part:
            started = time.perf_counter()
            try:
                connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                failed += response.status != 200
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
                connection = http.client.HTTPConnection(host, target.port, timeout=30)
            mine.append(time.perf_counter() - started)
            with lock:
                latencies.append(mine[-1])
                if len(latencies) % step == 0:
                    progress(f"  replayed {len(latencies)}/{len(bodies)} rows")
        connection.close()
        with lock:
            errors[0] += failed

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(bodies[i::concurrency],)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
    return ReplayStats(len(latencies), errors[0], seconds,
                       statistics.median(ordered) * 1000 if ordered else 0.0, p99 * 1000)
