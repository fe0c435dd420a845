# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Events per second through the Alertmanager event source alone.

Starts ``main(queue, args)`` in this process with an SQLite ledger in a temporary folder,
POSTs Alertmanager groups of new alerts from a few concurrent aiohttp clients in the same
event loop, and counts the time until the last event is on the queue (stored, acknowledged,
validated and handed over). No rulebook engine is involved. Prints one JSON line:

    {"bench": "intake_source", "events_per_s": 1234.5, "alerts": 5000, ...}

It is a measurement, not a test: nothing is asserted. The client shares the process and
the CPU with the source, so the figure is a lower bound for the source.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "extensions" / "eda" / "plugins" / "event_source" / "alertmanager.py"


def load_source():
    spec = importlib.util.spec_from_file_location("octollm_alertmanager_bench", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_group(run: str, index: int, size: int) -> bytes:
    alerts = [{
        "status": "firing",
        "labels": {"alertname": "PodCrashLoopBackOff", "namespace": "web", "pod": f"api-{index}-{i}",
                   "severity": "critical", "owner_kind": "Deployment", "owner_name": "api"},
        "annotations": {"summary": f"api-{index}-{i} is crash looping", "runbook_url": "https://runbooks/crash"},
        "startsAt": "2026-11-29T03:10:03.457863357Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.local/graph?g0.expr=up", "fingerprint": f"{run}-{index}-{i}",
    } for i in range(size)]
    group = {"receiver": "eda", "status": "firing", "alerts": alerts,
             "groupLabels": {"alertname": "PodCrashLoopBackOff"},
             "commonLabels": {"alertname": "PodCrashLoopBackOff"}, "commonAnnotations": {},
             "externalURL": "http://alertmanager.local:9093", "version": "4",
             "groupKey": '{}:{alertname="PodCrashLoopBackOff"}', "truncatedAlerts": 0}
    return json.dumps(group).encode()


async def wait_up(session: aiohttp.ClientSession, url: str, task: asyncio.Task) -> None:
    for _n in range(500):
        if task.done():
            task.result()
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with session.get(url + "/healthz") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.02)
    raise RuntimeError("the source did not come up")


async def post_all(session, url: str, bodies: list[bytes], concurrency: int) -> list[float]:
    """POST every body from `concurrency` workers; returns the ack latencies (s)."""
    latencies: list[float] = []
    pending = iter(bodies)

    async def worker():
        for body in pending:
            t0 = time.perf_counter()
            async with session.post(url + "/", data=body, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"POST answered {resp.status}")
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _n in range(concurrency)))
    return latencies


async def measure(groups: int, group_size: int, concurrency: int, warmup: int) -> dict:
    source = load_source()
    queue: asyncio.Queue = asyncio.Queue()
    run = uuid.uuid4().hex[:8]
    bodies = [make_group(run, i, group_size) for i in range(groups + warmup)]
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        args = {"port": port, "ledger": os.path.join(tmp, "ledger.sqlite3"), "queue_limit": 1000000,
                "token": "bench-token"}
        task = asyncio.create_task(source.main(queue, args))
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": "Bearer bench-token"}
        try:
            async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)) as s:
                await wait_up(s, url, task)
                await post_all(s, url, bodies[:warmup], concurrency)
                for _n in range(warmup * group_size):
                    await queue.get()
                total = groups * group_size
                t0 = time.perf_counter()
                posting = asyncio.create_task(post_all(s, url, bodies[warmup:], concurrency))
                for _n in range(total):
                    await queue.get()
                elapsed = time.perf_counter() - t0
                latencies = await posting
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    latencies.sort()
    return {
        "bench": "intake_source",
        "events_per_s": round(total / elapsed, 1),
        "alerts": total,
        "group_size": group_size,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "ack_ms_p50": round(statistics.median(latencies) * 1000, 2),
        "ack_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
        "ledger": "sqlite",
        "client": "aiohttp in the same process",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=500, help="groups posted (default 500)")
    parser.add_argument("--group-size", type=int, default=10, help="alerts per group (default 10)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--warmup", type=int, default=20, help="groups posted before timing (default 20)")
    opts = parser.parse_args()
    print(json.dumps(asyncio.run(measure(opts.groups, opts.group_size, opts.concurrency, opts.warmup))))


if __name__ == "__main__":
    main()
