# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark 3, storms.

A. Dedup storm: `deployments` Deployments x `replicas` crash-looping pods (OOM fault) on
   bench nodes; one PodCrashLoopBackOff alert per pod, grouped per Deployment as
   Alertmanager does, every group posted `resends` times and each delivery twice (an HA
   pair): deployments x replicas x resends x 2 alerts (10,000 with the defaults) to the
   shipped rulebook running the real procedures (remediate). Asserts exactly one
   procedure run per Deployment (the `evidence` entries in the ledger: one per run, and
   the PLAY RECAPs in the rulebook's output) and reports the wall time from the first
   POST until every incident is closed (verified).

B. Throughput storm: `targets` alerts over as many distinct Deployments (labels only: no
   such objects exist) to the shipped rulebook with `alert_response_dispatch_only: true`
   in the bench inventory folder (each run opens the incident, records the dispatch and
   releases the lock: the workflow's fixed cost per run, not the procedure's), vs. the
   same alerts through the same source to a rulebook whose single unthrottled rule runs
   a one-task playbook (`ansible.builtin.debug`). Both `-m 4`, parallel. Reports
   procedure runs per minute and the ratio.
"""
from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import common as c

ONE_TASK = """---
- name: One bare playbook per alert (bench baseline)
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Say which alert
      ansible.builtin.debug:
        msg: "alert {{ alert_id }}"
"""


def _start(tb, workdir, rulebook, inv, ledger, tag, extra_vars=None):
    port, token = c.free_port(), uuid.uuid4().hex
    varsf = c.write_yaml(workdir / f"vars-{tag}.yml", {"alert_response_eda_port": port, "alert_response_ledger": ledger,
                                                         **(extra_vars or {})})
    env = c.process_env(tb, OCTOLLM_EDA_TOKEN=token)
    proc = c.RulebookProcess(workdir, rulebook, env, inventory=inv, vars_file=varsf,
                             extra_args=["-E", "OCTOLLM_EDA_TOKEN", "--execution-strategy", "parallel", "-m", "4"],
                             watch=("PLAY RECAP",)).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_healthy(url)
    return proc, url + "/alertmanager", token


def _post_all(url: str, token: str, payloads: list[dict], workers: int = 4) -> dict:
    totals = {"stored": 0, "new": 0, "duplicates": 0}
    with ThreadPoolExecutor(workers) as pool:
        for res in pool.map(lambda p: c.post(url, p, token), payloads):
            for k in totals:
                totals[k] += res.get(k, 0)
    return totals


# ---------------------------------------------------------------------- A: dedup storm
def dedup_storm(tb: dict, kube: c.Kube, pool_selector: dict, deployments: int = 20, replicas: int = 50,
                resends: int = 5, verify_timeout: int = 600, settle_s: float = 20) -> dict:
    workdir = c.tempdir("storm-a")
    run = uuid.uuid4().hex[:8]
    ns = kube.create_namespace("bench-storm")
    names = [f"svc-{i:02d}" for i in range(deployments)]
    try:
        # a slower crash loop (30 s between OOM kills) keeps kwok's status writes for 1,000
        # pods at ~35/s on a shared 2-core machine
        kube.create_deployments([kube.oom_deployment(ns, n, replicas, delay="30s", node_selector=pool_selector)
                                 for n in names])
        c.log(f"storm A: {deployments} x {replicas} pods with the OOM fault in {ns}; waiting until all crash-loop")
        t = time.monotonic()
        kube.wait_crashlooping(ns, {n: replicas for n in names}, 900)
        setup_s = time.monotonic() - t
        pods = kube.rest.list_all(f"/api/v1/namespaces/{ns}/pods")
        by_app: dict[str, list[str]] = {}
        for p in pods:
            by_app.setdefault(p["metadata"]["labels"]["app"], []).append((p["metadata"]["name"],
                                                                            p["spec"].get("nodeName") or ""))
        groups = []
        for name in names:
            alerts = [c.wire_alert(f"{run}-{pod}", c.crash_labels(ns, name, pod, node)) for pod, node in by_app[name]]
            groups.append(c.group(alerts))
        # Alertmanager's pattern: every group delivered (twice: HA pair), then re-sent
        deliveries = [g for _r in range(resends) for g in groups for _ha in range(2)]
        posted = sum(len(d["alerts"]) for d in deliveries)

        ledger = str(workdir / "ledger.sqlite3")
        gv = c.procedure_group_vars(tb, kube, ledger, workdir, pod_crashloop_verify_timeout=verify_timeout)
        inv = c.inventory_folder(workdir / "inventory", gv)
        proc, url, token = _start(tb, workdir, "octollm.alert_response.alertmanager", inv, ledger, "a")
        try:
            c.log(f"storm A: posting {posted} alerts ({len(deliveries)} deliveries)")
            t0 = time.time()
            totals = _post_all(url, token, deliveries)
            posted_s = time.time() - t0

            def all_closed():
                if not proc.alive():
                    raise RuntimeError(f"ansible-rulebook exited:\n{proc.tail()}")
                runs = c.ledger_runs(ledger)
                return len(runs) >= deployments and all(v["closed"] >= 1 for v in runs.values()) and runs
            runs = c.wait_for("every incident closed", all_closed, verify_timeout + 900, 2)
            t_closed = max(max(v["closed_at"]) for v in runs.values())
            time.sleep(settle_s)  # any duplicate run would show up now
            runs = c.ledger_runs(ledger)
            recaps = len(proc.seen["PLAY RECAP"])
        finally:
            proc.stop()
        with c.ledger_mod.Ledger.open(ledger) as lg:
            stored = lg.alerts(limit=1000000)
        deliveries_counted = sum(a.get("delivery_count") or 0 for a in stored)
    finally:
        kube.delete_namespace(ns)
    procedure_runs = sum(v["runs"] for v in runs.values())
    return {
        "deployments": deployments, "pods": deployments * replicas, "alerts_posted": posted,
        "deliveries": len(deliveries), "unique_alerts": len(stored), "delivery_count_sum": deliveries_counted,
        "source_answers": totals, "posting_s": round(posted_s, 2),
        "procedure_runs": procedure_runs, "playbook_recaps": recaps,
        "incidents": sum(v["incidents"] for v in runs.values()),
        "incidents_closed": sum(v["closed"] for v in runs.values()),
        "exactly_one_run_per_deployment": procedure_runs == deployments and all(v["runs"] == 1 for v in runs.values()),
        "wall_s_to_all_verified": round(t_closed - t0, 1), "fault_setup_s": round(setup_s, 1),
        "verify_timeout": verify_timeout,
    }


# ----------------------------------------------------------------- B: throughput storm
def _labels_only_alerts(run: str, n: int, ns: str) -> list[dict]:
    alerts = [c.wire_alert(f"{run}-{i}", c.crash_labels(ns, f"svc-{i:04d}", f"svc-{i:04d}-0")) for i in range(n)]
    # Alertmanager's grouping (alertname, namespace, owner_name): one alert per group
    return [c.group([a]) for a in alerts]


def _drain(proc: c.RulebookProcess, n: int, timeout: float, what: str) -> float:
    """Seconds (perf_counter) at which the n-th playbook ended."""
    def done():
        if len(proc.seen["PLAY RECAP"]) >= n:
            return True
        if not proc.alive():
            raise RuntimeError(f"ansible-rulebook exited:\n{proc.tail()}")
        return False
    c.wait_for(what, done, timeout, 1)
    return proc.seen["PLAY RECAP"][n - 1]


def throughput_storm(tb: dict, kube: c.Kube, targets: int = 1000) -> dict:
    workdir = c.tempdir("storm-b")
    run = uuid.uuid4().hex[:8]
    ns = f"bench-labels-{run}"  # no such namespace: the alerts are labels only
    timeout = max(600, targets * 10)

    # ours: shipped rulebook, dispatch-only runs
    ledger = str(workdir / "ledger.sqlite3")
    inv = c.inventory_folder(workdir / "inventory", c.procedure_group_vars(tb, kube, ledger, workdir,
                                                                            alert_response_dispatch_only=True))
    proc, url, token = _start(tb, workdir, "octollm.alert_response.alertmanager", inv, ledger, "b")
    try:
        c.log(f"storm B: ours, {targets} alerts over {targets} Deployments (dispatch-only runs)")
        t0 = time.perf_counter()
        totals = _post_all(url, token, _labels_only_alerts(run, targets, ns))
        posted_s = time.perf_counter() - t0
        t_last = _drain(proc, targets, timeout, f"{targets} dispatch-only runs")
        ours_s = t_last - t0
        time.sleep(5)
        recaps = len(proc.seen["PLAY RECAP"])
    finally:
        proc.stop()
    ours_cpu = proc.cpu_s
    runs = c.ledger_runs(ledger, marker="dispatched")
    ours_runs = sum(v["runs"] for v in runs.values())

    # bare: one unthrottled rule, one-task playbook, same source and alerts
    pdir = workdir / "bare-playbook"
    pdir.mkdir()
    (pdir / "one.yml").write_text(ONE_TASK)
    rb = c.write_yaml(workdir / "bare.yml", [{
        "name": "bench bare playbook per alert", "hosts": "localhost", "execution_strategy": "parallel",
        "sources": [{"name": "alertmanager", "octollm.alert_response.alertmanager": {
            "port": "{{ alert_response_eda_port }}", "token": "{{ OCTOLLM_EDA_TOKEN }}",
            "ledger": "{{ alert_response_ledger }}"}}],
        "rules": [{"name": "one playbook per alert", "condition": 'event.alert.status == "firing"',
                   "action": {"run_playbook": {"name": str(pdir / "one.yml"),
                                               "extra_vars": {"alert_id": "{{ event.meta.ledger_id }}"}}}}]}])
    bledger = str(workdir / "bare-ledger.sqlite3")
    binv = c.inventory_folder(workdir / "bare-inventory", {})
    proc, url, token = _start(tb, workdir, rb, binv, bledger, "bare")
    try:
        c.log(f"storm B: bare, {targets} alerts, one one-task playbook each")
        t0 = time.perf_counter()
        _post_all(url, token, _labels_only_alerts(run + "b", targets, ns))
        t_last = _drain(proc, targets, timeout, f"{targets} bare playbooks")
        bare_s = t_last - t0
        time.sleep(5)
        bare_recaps = len(proc.seen["PLAY RECAP"])
    finally:
        proc.stop()
    bare_cpu = proc.cpu_s
    ours_pm = targets / ours_s * 60
    bare_pm = targets / bare_s * 60
    return {
        "targets": targets, "source_answers": totals, "posting_s": round(posted_s, 2),
        "ours_runs_in_ledger": ours_runs, "ours_recaps": recaps, "exactly_one_run_per_target": ours_runs == targets
        and recaps == targets and all(v["runs"] == 1 for v in runs.values()),
        "ours_wall_s": round(ours_s, 1), "bare_wall_s": round(bare_s, 1), "bare_recaps": bare_recaps,
        "ours_procedures_per_min": round(ours_pm, 1), "bare_playbooks_per_min": round(bare_pm, 1),
        "ratio": round(ours_pm / bare_pm, 3),
        # CPU of the whole rulebook process tree (engine, source, playbooks, modules) per run
        "ours_cpu_s_per_run": c.rnd(ours_cpu / targets if ours_cpu else None, 2),
        "bare_cpu_s_per_run": c.rnd(bare_cpu / targets if bare_cpu else None, 2),
    }


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deployments", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=5)
    ap.add_argument("--resends", type=int, default=2)
    ap.add_argument("--targets", type=int, default=12)
    ap.add_argument("--only", choices=["a", "b"])
    o = ap.parse_args()
    tb = c.testbed_env()
    k = c.Kube(tb, c.tempdir("storm-main"))
    out = {}
    try:
        if o.only in (None, "a"):
            _nodes, sel = c.work_pool(k, 1)
            out["dedup"] = dedup_storm(tb, k, sel, o.deployments, o.replicas, o.resends)
        if o.only in (None, "b"):
            out["throughput"] = throughput_storm(tb, k, o.targets)
    finally:
        k.delete_bench_nodes()
    print(json.dumps(out, indent=1))
