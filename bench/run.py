# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the benchmarks (`make bench`): every figure as a ratio to a baseline measured in the
same run, plus the raw numbers, written with the machine to bench/results/<timestamp>.json.

    .venv/bin/python bench/run.py                 # the full run (docs/performance.md); long on 2 cores
    .venv/bin/python bench/run.py --quick         # small counts, for development
    .venv/bin/python bench/run.py --only intake,latency
    .venv/bin/python bench/run.py --only storm --storm-deployments 0   # storm B alone (0 targets: A alone)
    .venv/bin/python bench/run.py --cleanup       # remove what an interrupted run left behind

Benchmarks (one module each in this folder; docs/performance.md explains them):
  intake    events/s: our source + the shipped rules (actions `none`) vs. bare ansible-rulebook
  latency   alert -> first Kubernetes write, p50/p99: the shipped rulebook vs. a bare run_playbook
  pvs       the pod_crashloop procedure vs. a kubectl script of the runbook's steps
  storm     10,000 alerts over 20 Deployments -> exactly 20 runs; 1,000 targets -> runs per minute
  scale     the node_not_ready evidence step on 1,000 nodes / 10,000 pods vs. 10 nodes (run last)

`make bench` brings the test bed up first (`make testbed-up`); the bench never stops it. Everything the bench
creates on the shared cluster (namespaces, nodes, pods) carries the label
bench.octollm.io/run and is deleted at the end, also on failure and on Ctrl-C / SIGTERM.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import common as c

# scale last: its 10,000 pods leave Prometheus busy for a long while after they are deleted
# (series churn: 120 % CPU of 2 cores 40 min later), which slowed storm B, measured after it,
# from 20 to 13 runs per minute over the run
ORDER = ["intake", "latency", "pvs", "storm", "scale"]

FULL = {"intake_events": 10000, "intake_warmup": 1000, "intake_repeats": 3, "intake_prefill": 100000, "latency_alerts": 15,
        "pvs_repeats": 5, "scale_small": 10, "scale_large": 1000, "scale_pods_per_node": 10, "scale_repeats": 3,
        "storm_deployments": 20, "storm_replicas": 50, "storm_resends": 5, "storm_targets": 1000}
QUICK = {"intake_events": 2000, "intake_warmup": 300, "intake_repeats": 1, "intake_prefill": 20000, "latency_alerts": 3,
         "pvs_repeats": 2, "scale_small": 10, "scale_large": 60, "scale_pods_per_node": 10, "scale_repeats": 2,
         "storm_deployments": 3, "storm_replicas": 10, "storm_resends": 2, "storm_targets": 20}


class LoadSampler(threading.Thread):
    """Samples the load average and other engineers' test processes every 10 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float, int, list[str]]] = []
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            others = c.others_running()
            self.samples.append((time.time(), os.getloadavg()[0], len(others), others[:5]))
            self.stop_event.wait(10)

    def window(self, t0: float, t1: float) -> dict:
        s = [x for x in self.samples if t0 <= x[0] <= t1] or self.samples[-1:]
        seen = sorted({p for x in s for p in x[3]})
        return {"loadavg1_mean": round(sum(x[1] for x in s) / len(s), 2), "loadavg1_max": round(max(x[1] for x in s), 2),
                "other_test_processes_max": max(x[2] for x in s), "under_load": any(x[2] for x in s),
                "other_tests_seen": seen[:10]}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true", help="small counts for development")
    ap.add_argument("--only", default=",".join(ORDER), help=f"comma-separated subset of {','.join(ORDER)}")
    ap.add_argument("--cleanup", action="store_true", help="delete every bench namespace and node, then exit")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary folders (logs, ledgers)")
    ap.add_argument("--results", default=str(c.REPO / "bench" / "results"), help="folder for the JSON results")
    for key, value in FULL.items():
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                        help=f"default {value} ({QUICK[key]} with --quick)")
    return ap.parse_args()


def cleanup_all(tb: dict) -> None:
    rest = c.Rest(tb["KUBECONFIG"])
    for ns in rest.list_all("/api/v1/namespaces", {"labelSelector": c.BENCH_LABEL}):
        c.log(f"deleting namespace {ns['metadata']['name']}")
        rest.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")
    nodes = rest.list_all("/api/v1/nodes", {"labelSelector": c.BENCH_LABEL})
    c.log(f"deleting {len(nodes)} bench node(s)")
    for n in nodes:
        rest.delete(f"/api/v1/nodes/{n['metadata']['name']}")


def summary_lines(res: dict) -> list[str]:
    out = []
    r = res.get("intake")
    if r and "error" not in r:
        out.append(f"intake   ours {r['ours_events_per_s']:.0f} ev/s vs bare ansible-rulebook {r['bare_events_per_s']:.0f}"
                   f" ev/s: x{r['ratio_ours_to_bare']:.2f}; source alone {r.get('source_alone_events_per_s', 0):.0f} ev/s"
                   f" (ours/source x{r.get('ratio_ours_to_source_alone', 0):.2f})")
    r = res.get("latency")
    if r and "error" not in r:
        out.append(f"latency  alert -> first write p50 {r['ours_p50_s']:.2f} s / p99 {r['ours_p99_s']:.2f} s vs bare"
                   f" run_playbook p50 {r['bare_p50_s']:.2f} s / p99 {r['bare_p99_s']:.2f} s: x{r['ratio_p50']:.2f}"
                   f" / x{r['ratio_p99']:.2f} (n={r['alerts']})")
    r = res.get("pvs")
    if r and "error" not in r:
        out.append(f"pvs      pod_crashloop procedure {r['procedure_wall_s_median']:.1f} s vs kubectl script"
                   f" {r['script_wall_s_median']:.1f} s (medians of {r['repeats']}): x{r['ratio']:.2f}")
    r = res.get("scale")
    if r and "error" not in r and r.get("large"):
        s, lg = r["small"], r["large"]
        out.append(f"scale    node_info on {lg['total_nodes']} nodes: task {lg['task_s']:.2f} s, {lg['api_requests']:.0f}"
                   f" API requests vs {s['total_nodes']} nodes: task {s['task_s']:.2f} s, {s['api_requests']:.0f}"
                   f" requests: x{r['ratio_task']:.2f} time, x{r['ratio_api_requests']:.2f} requests")
    r = res.get("storm")
    if r and "error" not in r:
        a, b = r.get("dedup"), r.get("throughput")
        if a:
            out.append(f"storm A  {a['alerts_posted']} alerts over {a['pods']} pods / {a['deployments']} Deployments:"
                       f" {a['procedure_runs']} runs (exactly one each: {a['exactly_one_run_per_deployment']}),"
                       f" all verified after {a['wall_s_to_all_verified']:.0f} s")
        if b:
            out.append(f"storm B  {b['targets']} targets: {b['ours_procedures_per_min']:.1f} runs/min vs bare"
                       f" {b['bare_playbooks_per_min']:.1f} playbooks/min: x{b['ratio']:.2f}"
                       f" (exactly one each: {b['exactly_one_run_per_target']})")
    for name, r in res.items():
        if isinstance(r, dict) and "error" in r:
            out.append(f"{name:8s} FAILED: {r['error']}")
    return out


def main() -> int:
    opts = parse()
    tb = c.testbed_env()
    if opts.cleanup:
        cleanup_all(tb)
        return 0
    params = dict(QUICK if opts.quick else FULL)
    for key in FULL:
        if getattr(opts, key) is not None:
            params[key] = getattr(opts, key)
    only = [x.strip() for x in opts.only.split(",") if x.strip()]
    unknown = set(only) - set(ORDER)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; choose from {ORDER}")

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    started = dt.datetime.now(dt.timezone.utc)
    sampler = LoadSampler()
    sampler.start()
    doc = {"started_at": started.isoformat(timespec="seconds"), "quick": opts.quick, "params": params,
           "machine": c.machine(tb), "results": {}, "load": {}, "timing_s": {}}
    results = doc["results"]
    kube = c.Kube(tb, c.tempdir("run"))
    pool = None
    c.log(f"bench run {kube.run_id}: {', '.join(b for b in ORDER if b in only)}"
          f" ({'quick' if opts.quick else 'full'}); other test processes now: {len(c.others_running())}")
    try:
        for name in ORDER:
            if name not in only:
                continue
            t0 = time.time()
            try:
                if name in ("latency", "pvs", "storm") and pool is None:
                    _nodes, pool = c.work_pool(kube, 3, pods_per_node=400)
                if name == "intake":
                    import intake
                    results[name] = intake.measure(tb, params["intake_events"], params["intake_warmup"],
                                                   repeats=params["intake_repeats"],
                                                   prefilled=params["intake_prefill"])
                elif name == "latency":
                    import latency
                    results[name] = latency.measure(tb, kube, pool, params["latency_alerts"])
                elif name == "pvs":
                    import procedure_vs_script
                    results[name] = procedure_vs_script.measure(tb, kube, pool, params["pvs_repeats"])
                elif name == "scale":
                    import scale
                    results[name] = scale.measure(tb, kube, params["scale_small"], params["scale_large"],
                                                  params["scale_pods_per_node"], params["scale_repeats"])
                elif name == "storm":
                    import storm
                    results[name] = {}
                    if params["storm_deployments"] > 0:  # --storm-deployments 0: storm B alone
                        results[name]["dedup"] = storm.dedup_storm(tb, kube, pool, params["storm_deployments"],
                                                                   params["storm_replicas"], params["storm_resends"])
                    if params["storm_targets"] > 0:  # --storm-targets 0: storm A alone
                        results[name]["throughput"] = storm.throughput_storm(tb, kube, params["storm_targets"])
            except KeyboardInterrupt:
                results[name] = {"error": "interrupted"}
                raise
            except Exception as exc:  # noqa: BLE001 - one failed benchmark must not lose the others' figures
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
            finally:
                doc["timing_s"][name] = round(time.time() - t0, 1)
                doc["load"][name] = sampler.window(t0, time.time())
    except KeyboardInterrupt:
        c.log("interrupted: cleaning up")
    finally:
        for ns in kube.bench_namespaces():
            c.log(f"cleanup: namespace {ns}")
            kube.delete_namespace(ns, 600)
        left = kube.delete_bench_nodes()
        if left:
            c.log(f"cleanup: deleted {left} bench node(s)")
        sampler.stop_event.set()
        doc["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        out_dir = Path(opts.results)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}{'-quick' if opts.quick else ''}.json"
        path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
        print("\n".join(["", f"machine: {doc['machine']['cpu_model']}, {doc['machine']['cores']} cores,"
                             f" {doc['machine']['ram_gib']} GiB; Python {doc['machine']['python']}, ansible-core"
                             f" {doc['machine'].get('ansible_core')}, ansible-rulebook {doc['machine'].get('ansible_rulebook')}",
                         *summary_lines(results),
                         *[f"(measured under load: {n})" for n, lo in doc["load"].items() if lo.get("under_load")],
                         f"results: {path}"]))
    failed = [n for n, r in results.items() if isinstance(r, dict) and "error" in r]
    if failed or opts.keep_temp:
        print(f"temporary folders kept (rulebook logs, ledgers): {' '.join(str(p) for p in c.TEMPDIRS)}")
    else:
        for p in c.TEMPDIRS:
            shutil.rmtree(p, ignore_errors=True)
    storm_res = results.get("storm") or {}
    broken = [k for k, flag in ((("storm A"), (storm_res.get("dedup") or {}).get("exactly_one_run_per_deployment")),
                                (("storm B"), (storm_res.get("throughput") or {}).get("exactly_one_run_per_target")))
              if flag is False]
    if broken:
        print(f"ASSERTION FAILED: not exactly one run per target in {', '.join(broken)}")
    return 1 if failed or broken else 0


if __name__ == "__main__":
    sys.exit(main())
