# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark 1, intake: events/s through our event source + the shipped rulebook vs. bare
ansible-rulebook fed the same event dicts in memory.

Both variants run the shipped rulebook's rulesets with every action replaced by `none`
(conditions, throttles and rule order unchanged; `common.none_variant`) and three marker
rules in front:

    BenchStart     -> debug "BENCH-START"
    BenchLap       -> debug "BENCH-LAP"       (right after the start: the markers' own cost)
    BenchSentinel  -> debug "BENCH-STOP", shutdown

The bench reads ansible-rulebook's output as it comes and takes the time of each marker
line, so the engine's start-up (3-4 s of JVM and rule compilation) and shutdown are not
in the figure:  events/s = N / ((t_stop - t_lap) - (t_lap - t_start)).

- ours: `octollm.alert_response.alertmanager` listening on a free port with a temporary
  SQLite ledger; the bench POSTs Alertmanager v4 groups (aiohttp, 4 concurrent clients,
  in this process) -- validation, ledger write, ack and hand-over are all in the figure;
- bare: `eda.builtin.generic` with `payload_file`: the very event dicts our source handed
  over (captured from an in-process run of the source), so the rules see the same data.

Warm-up events go through before the start marker in both variants (the JVM compiles the
rules' hot paths during the first few hundred events). Source alone: bench/intake_source.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from pathlib import Path

import aiohttp
import common as c
import intake_source

MARKERS = {"BenchStart": "BENCH-START", "BenchLap": "BENCH-LAP", "BenchSentinel": "BENCH-STOP"}


def marker_rules() -> list[dict]:
    rules = []
    for alertname, text in MARKERS.items():
        actions = [{"debug": {"msg": text}}]
        if alertname == "BenchSentinel":
            actions.append({"shutdown": {"delay": 0, "message": "bench done"}})
        rules.append({"name": f"bench marker {alertname}",
                      "condition": f'event.alert.labels.alertname == "{alertname}"', "actions": actions})
    return rules


def make_alerts(run: str, n: int) -> list[dict]:
    """A storm-shaped mix: 70 % PodCrashLoopBackOff over 200 Deployments (one alert per
    pod), 10 % HighErrorRate, 10 % NodeNotReady over 50 nodes, 10 % an alert no rule knows
    (notify-only path, throttled per fingerprint)."""
    out = []
    for i in range(n):
        kind = i % 10
        if kind < 7:
            d = i % 200
            labels = c.crash_labels("bench-intake", f"app-{d}", f"app-{d}-{i}", node=f"node-{i % 50:06d}")
        elif kind == 7:
            labels = {"alertname": "HighErrorRate", "severity": "critical", "namespace": "bench-intake",
                      "service": f"svc-{i % 100}", "owner_kind": "Deployment", "owner_name": f"svc-{i % 100}"}
        elif kind == 8:
            labels = {"alertname": "NodeNotReady", "severity": "critical", "node": f"bench-node-{i % 50:04d}"}
        else:
            labels = {"alertname": "BenchUnknownAlert", "severity": "warning", "namespace": "bench-intake",
                      "instance": f"10.0.0.{i % 250}:9100"}
        out.append(c.wire_alert(f"{run}-{i}", labels, starts="2026-11-29T03:10:03.457863357Z"))
    return out


def bodies(alerts: list[dict], size: int) -> list[bytes]:
    return [json.dumps(c.group(alerts[i:i + size])).encode() for i in range(0, len(alerts), size)]


def marker(run: str, name: str) -> bytes:
    return json.dumps(c.group([c.wire_alert(f"{run}-{name}", {"alertname": name, "severity": "info"})])).encode()


async def _post_seq(session, url: str, items: list[bytes], concurrency: int) -> None:
    await intake_source.post_all(session, url, items, concurrency)


def capture_events(sequence: list[list[bytes]], concurrency: int, expected: int) -> list[dict]:
    """Run our source in this process, POST every batch of the sequence in order, and
    return the events it handed over (what ansible-rulebook would receive)."""
    source = intake_source.load_source()

    async def go():
        queue: asyncio.Queue = asyncio.Queue()
        tmp = c.tempdir("capture")
        port = c.free_port()
        args = {"port": port, "ledger": str(tmp / "ledger.sqlite3"), "queue_limit": 1000000, "token": "bench"}
        task = asyncio.create_task(source.main(queue, args))
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer bench"}) as s:
                await intake_source.wait_up(s, url, task)
                for batch in sequence:
                    await intake_source.post_all(s, url, batch, concurrency)
                events = []
                while len(events) < expected:
                    events.append(await asyncio.wait_for(queue.get(), 30))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return events

    return asyncio.run(go())


def prefill(ledger: str, count: int) -> float:
    """What a ledger holds after a while: `count` older alerts (two days old, the same storm
    mix), each one firing and then resolved, all handled (so the source does not hand them
    over again). Returns the seconds it took."""
    t = time.perf_counter()
    run = uuid.uuid4().hex[:6]
    then = time.time() - 2 * 86400
    with c.ledger_mod.Ledger.open(ledger) as lg:
        for start in range(0, count // 2, 1000):
            alerts = make_alerts(f"old-{run}-{start}", min(1000, count // 2 - start))
            lg.record_alerts(alerts, now=then)
            lg.record_alerts([dict(a, status="resolved", endsAt="2026-11-27T03:20:03.1Z") for a in alerts],
                             now=then + 600)
        lg.conn.execute("UPDATE alerts SET state = 'handled'")
    return time.perf_counter() - t


def run_ours(tb: dict, workdir: Path, sequence: list[list[bytes]], concurrency: int, correlation: bool = True,
             prefilled: int = 0) -> dict:
    port = c.free_port()
    token = uuid.uuid4().hex
    rb = c.none_variant()
    rb[0]["rules"] = marker_rules() + rb[0]["rules"]
    if not correlation:  # diagnostic: the multi-alert scenarios' ledger reads at hand-over, off
        src = rb[0]["sources"][0]["octollm.alert_response.alertmanager"]
        src.update({"correlation_window_s1": 0, "correlation_window_s2": 0, "correlation_window_s3": 0})
    rulebook = c.write_yaml(workdir / "intake-ours.yml", rb)
    ledger = str(workdir / f"ledger-{uuid.uuid4().hex[:6]}.sqlite3")
    prefill_s = prefill(ledger, prefilled) if prefilled else None
    varsf = c.write_yaml(workdir / "intake-ours-vars.yml", {
        "alert_response_eda_port": port, "alert_response_ledger": ledger, "alert_response_queue_limit": 1000000})
    env = c.process_env(tb, OCTOLLM_EDA_TOKEN=token)
    proc = c.RulebookProcess(workdir, rulebook, env, vars_file=varsf, extra_args=["-E", "OCTOLLM_EDA_TOKEN"],
                             watch=tuple(MARKERS.values())).start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_healthy(url)
        t_up = time.perf_counter() - proc.t_start

        async def go():
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"},
                                             connector=aiohttp.TCPConnector(limit=concurrency)) as s:
                for batch in sequence:
                    await _post_seq(s, url, batch, concurrency if len(batch) > 1 else 1)
        t0 = time.perf_counter()
        asyncio.run(go())
        t_posted = time.perf_counter() - t0
        proc.wait_exit(600)
    finally:
        proc.stop()
    return _figures(proc, t_up, extra={"posting_s": round(t_posted, 3), "ledger_prefilled": prefilled,
                                       "prefill_s": c.rnd(prefill_s, 1)})


def run_bare(tb: dict, workdir: Path, events: list[dict]) -> dict:
    payload = c.write_yaml(workdir / f"intake-events-{uuid.uuid4().hex[:6]}.json", events)
    rb = c.none_variant()
    rb[0]["rules"] = marker_rules() + rb[0]["rules"]
    rb[0]["sources"] = [{"name": "generic", "eda.builtin.generic": {"payload_file": str(payload)}}]
    rulebook = c.write_yaml(workdir / "intake-bare.yml", rb)
    # the shipped rulebook's variables are only used by run_playbook actions, now `none`
    varsf = c.write_yaml(workdir / "intake-bare-vars.yml", {"alert_response_ledger": "unused", "OCTOLLM_EDA_TOKEN": "x"})
    env = c.process_env(tb)
    proc = c.RulebookProcess(workdir, rulebook, env, vars_file=varsf, watch=tuple(MARKERS.values())).start()
    try:
        proc.wait_exit(900)
    finally:
        proc.stop()
    return _figures(proc, None)


def _figures(proc: c.RulebookProcess, t_up, extra=None) -> dict:
    seen = proc.seen
    if not all(seen[m] for m in MARKERS.values()):
        raise RuntimeError(f"markers missing {({k: len(v) for k, v in seen.items()})}:\n{proc.tail()}")
    t_start, t_lap, t_stop = seen["BENCH-START"][0], seen["BENCH-LAP"][0], seen["BENCH-STOP"][0]
    out = {"marker_overhead_s": round(t_lap - t_start, 4), "events_window_s": round(t_stop - t_lap, 4),
           "engine_start_s": round(t_up, 2) if t_up is not None else None,
           "process_wall_s": round((proc.t_exit or time.perf_counter()) - proc.t_start, 2)}
    out.update(extra or {})
    return out


def measure(tb: dict, events: int = 10000, warmup: int = 1000, group_size: int = 10, concurrency: int = 4,
            repeats: int = 3, source_alone: bool = True, diagnostics: bool = True, prefilled: int = 100000) -> dict:
    workdir = c.tempdir("intake")
    run = uuid.uuid4().hex[:8]
    alerts = make_alerts(run, warmup + events)
    sequence = [bodies(alerts[:warmup], group_size), [marker(run, "BenchStart")], [marker(run, "BenchLap")],
                bodies(alerts[warmup:], group_size), [marker(run, "BenchSentinel")]]
    c.log(f"intake: capturing the event dicts of {warmup + events + 3} alerts from our source")
    captured = capture_events(sequence, concurrency, warmup + events + 3)
    if len(captured) != warmup + events + 3:
        raise RuntimeError(f"the source handed over {len(captured)} events, expected {warmup + events + 3}")
    ours, bare, nocorr = [], [], []
    for r in range(repeats):
        c.log(f"intake: repeat {r + 1}/{repeats}: bare ansible-rulebook (eda.builtin.generic, {events} events)")
        bare.append(run_bare(tb, workdir, captured))
        c.log(f"intake: repeat {r + 1}/{repeats}: our source + the shipped rules ({events} events over HTTP)")
        # each repeat needs fresh fingerprints: a new ledger per run, so the same alerts are new again
        ours.append(run_ours(tb, workdir, sequence, concurrency))
        if diagnostics:
            c.log(f"intake: repeat {r + 1}/{repeats}: diagnostic, ours with the scenario correlation off")
            nocorr.append(run_ours(tb, workdir, sequence, concurrency, correlation=False))

    def eps(fig):
        window = fig["events_window_s"] - fig["marker_overhead_s"]
        return events / window if window > 0 else None

    big = None
    if diagnostics and prefilled:
        c.log(f"intake: diagnostic, ours with {prefilled} older alerts already in the ledger")
        big = run_ours(tb, workdir, sequence, concurrency, prefilled=prefilled)
    ours_eps = [eps(f) for f in ours]
    bare_eps = [eps(f) for f in bare]
    result = {
        "events": events, "warmup": warmup, "group_size": group_size, "concurrency": concurrency,
        "repeats": repeats,
        "ours_events_per_s": round(statistics.median(ours_eps), 1),
        "bare_events_per_s": round(statistics.median(bare_eps), 1),
        "ours_runs": ours, "bare_runs": bare,
        "ours_events_per_s_all": [round(x, 1) for x in ours_eps],
        "bare_events_per_s_all": [round(x, 1) for x in bare_eps],
        "engine_start_s": statistics.median([f["engine_start_s"] for f in ours]),
    }
    result["ratio_ours_to_bare"] = round(result["ours_events_per_s"] / result["bare_events_per_s"], 3)
    if big:
        # rows in the ledger before the run: `prefilled` older alerts, firing + resolved
        result["diagnostic_prefilled_ledger_alerts"] = prefilled
        result["diagnostic_prefilled_events_per_s"] = round(eps(big), 1)
        result["diagnostic_prefilled_run"] = big
    if nocorr:
        result["diagnostic_no_correlation_events_per_s"] = round(statistics.median([eps(f) for f in nocorr]), 1)
        result["diagnostic_no_correlation_runs"] = nocorr
    if source_alone:
        c.log("intake: the source alone (bench/intake_source.py)")
        alone = asyncio.run(intake_source.measure(max(events // group_size, 50), group_size, concurrency, 20))
        result["source_alone"] = alone
        result["source_alone_events_per_s"] = alone["events_per_s"]
        result["ratio_ours_to_source_alone"] = round(result["ours_events_per_s"] / alone["events_per_s"], 3)
    return result


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=1)
    o = ap.parse_args()
    print(json.dumps(measure(c.testbed_env(), events=o.events, warmup=300, repeats=o.repeats), indent=1))
