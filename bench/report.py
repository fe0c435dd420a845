# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Markdown tables (machine, figures, conditions) from a bench/results/*.json file, for
docs/performance.md:

    .venv/bin/python bench/report.py [bench/results/<timestamp>.json]   # default: the newest full run
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def fmt(x, digits=2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def machine(doc: dict) -> list[str]:
    m = doc["machine"]
    rows = [("CPU", m.get("cpu_model")), ("cores", m.get("cores")), ("RAM", f"{m.get('ram_gib')} GiB"),
            ("kernel", m.get("kernel")), ("Python", m.get("python")), ("ansible-core", m.get("ansible_core")),
            ("ansible-rulebook", m.get("ansible_rulebook")), ("drools_jpy / Java", f"{m.get('drools_jpy')} / {m.get('java')}"),
            ("kube-apiserver (kwok)", m.get("kube_apiserver")), ("run", f"{doc['started_at']} -> {doc.get('finished_at')}")]
    return ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]


def figures(doc: dict) -> list[str]:
    r = doc["results"]
    out = ["| benchmark | ours | baseline (same run) | ratio |", "|---|---|---|---|"]
    i = r.get("intake") or {}
    if "ours_events_per_s" in i:
        out.append(f"| 1 intake, events/s ({fmt(i['events'])} events, median of {i['repeats']}) | "
                   f"{fmt(i['ours_events_per_s'], 0)} | {fmt(i['bare_events_per_s'], 0)} (bare ansible-rulebook, generic source) | "
                   f"{fmt(i['ratio_ours_to_bare'])} |")
        if "source_alone_events_per_s" in i:
            out.append(f"| 1 intake, source alone (bench/intake_source.py) | {fmt(i['source_alone_events_per_s'], 0)} | "
                       f"- | ours through the engine / source alone: {fmt(i['ratio_ours_to_source_alone'])} |")
    la = r.get("latency") or {}
    if "ours_p50_s" in la:
        out.append(f"| 2 alert -> first Kubernetes write, p50 (n={la['alerts']}) | {fmt(la['ours_p50_s'])} s | "
                   f"{fmt(la['bare_p50_s'])} s (bare run_playbook, one write) | {fmt(la['ratio_p50'])} |")
        out.append(f"| 2 alert -> first Kubernetes write, p99 (n={la['alerts']}) | {fmt(la['ours_p99_s'])} s | "
                   f"{fmt(la['bare_p99_s'])} s | {fmt(la['ratio_p99'])} |")
    st = r.get("storm") or {}
    a, b = st.get("dedup") or {}, st.get("throughput") or {}
    if a:
        out.append(f"| 3 storm: {fmt(a['alerts_posted'])} alerts, {fmt(a['pods'])} pods, {a['deployments']} Deployments | "
                   f"{a['procedure_runs']} runs; all verified after {fmt(a['wall_s_to_all_verified'], 0)} s | "
                   f"exactly {a['deployments']} expected | {'exact' if a['exactly_one_run_per_deployment'] else 'NOT EXACT'} |")
    if b:
        out.append(f"| 3 storm: {fmt(b['targets'])} targets, runs per minute | {fmt(b['ours_procedures_per_min'], 1)} "
                   f"(dispatch-only) | {fmt(b['bare_playbooks_per_min'], 1)} (one-task playbook) | {fmt(b['ratio'])} |")
    sc = r.get("scale") or {}
    if sc.get("large"):
        s, lg = sc["small"], sc["large"]
        out.append(f"| 4 node_info, task time ({lg['total_nodes']} vs {s['total_nodes']} nodes) | {fmt(lg['task_s'])} s | "
                   f"{fmt(s['task_s'])} s | {fmt(sc['ratio_task'])} |")
        out.append(f"| 4 node_info, API requests | {fmt(lg['api_requests'], 0)} | {fmt(s['api_requests'], 0)} | "
                   f"{fmt(sc['ratio_api_requests'])} |")
    p = r.get("pvs") or {}
    if "procedure_wall_s_median" in p:
        out.append(f"| 5 pod_crashloop procedure vs kubectl script (median of {p['repeats']}) | "
                   f"{fmt(p['procedure_wall_s_median'], 1)} s | {fmt(p['script_wall_s_median'], 1)} s | {fmt(p['ratio'])} |")
    for name, res in r.items():
        if isinstance(res, dict) and "error" in res:
            out.append(f"| {name} | FAILED: {res['error'][:200]} | | |")
    return out


def conditions(doc: dict) -> list[str]:
    out = ["| benchmark | wall time | load avg (1 min) mean / max | other engineers' test processes (max) |",
           "|---|---|---|---|"]
    for name, lo in doc.get("load", {}).items():
        out.append(f"| {name} | {fmt(doc['timing_s'].get(name), 0)} s | {fmt(lo['loadavg1_mean'])} / {fmt(lo['loadavg1_max'])} | "
                   f"{lo['other_test_processes_max']} |")
    return out


def main() -> int:
    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
    else:
        full = sorted(p for p in RESULTS.glob("*.json") if not p.name.endswith("-quick.json"))
        if not full:
            print("no full run in bench/results (run `make bench`)", file=sys.stderr)
            return 1
        path = full[-1]
    doc = json.loads(path.read_text())
    print(f"<!-- from {path.name} -->\n")
    print("\n".join(["### Machine", "", *machine(doc), "", "### Figures", "", *figures(doc), "",
                     "### Conditions", "", *conditions(doc)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
