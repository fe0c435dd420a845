# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark 5, procedure vs. script: wall time of the pod_crashloop procedure started by
hand (`ansible-playbook octollm.alert_response.pod_crashloop -e namespace=... -e
deployment=...`, the local inventory with our runner token and a temporary ledger) vs. a
plain shell script issuing the runbook's kubectl steps for the same fault (OOM, 2 replicas,
limit 256Mi), with the test bed's kubectl and the same runner identity:

    kubectl get pods -l app=<d>                      # E1 find the crashing pod
    kubectl describe pod <pod>                       # E1/E4 last state, resources
    kubectl logs <pod> --previous --tail=100         # E2 previous instance's log
    kubectl get events --field-selector involvedObject.name=<pod>   # E3
    grep OOMKilled -> kubectl set resources deployment/<d> -c app --limits=memory=512Mi
    kubectl rollout status deployment/<d>            # verify: rollout complete, pods Ready
    sleep <stable window>; kubectl get pods          # verify: restarts stay flat

The script's verification waits the same stable window as the procedure (the local
inventory's pod_crashloop_stable_window, 6 s), so both end on the same evidence. What the
script does not do -- incident, ledger, guardrail, escalation, notifications, review --
is what the ratio prices. Alternating repetitions, fresh Deployments each time, medians.
"""
from __future__ import annotations

import json
import re
import time

import common as c
import yaml

SCRIPT = r"""#!/bin/bash
# The runbook's kubectl steps for PodCrashLoopBackOff with an OOM cause (bench baseline).
set -euo pipefail
k() { "$KUBECTL" --kubeconfig "$RUNNER_KUBECONFIG" -n "$NS" "$@"; }
pods=$(k get pods -l "app=$DEPLOY" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
pod=$(echo "$pods" | head -n1)
desc=$(k describe pod "$pod")
k logs "$pod" -c app --previous --tail=100 >/dev/null 2>&1 || true
k get events --field-selector "involvedObject.name=$pod" >/dev/null
if echo "$desc" | grep -q OOMKilled; then
  k set resources "deployment/$DEPLOY" -c app --limits=memory=512Mi >/dev/null
fi
k rollout status "deployment/$DEPLOY" --timeout=120s >/dev/null
before=$(k get pods -l "app=$DEPLOY" -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}')
sleep "$STABLE"
after=$(k get pods -l "app=$DEPLOY" -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}')
[ "$before" = "$after" ] && echo VERIFIED || echo NOT-VERIFIED
"""


INCIDENT_MODULE_TASKS = ("Open or join", "Record ", "Close the incident", "Release the per-target lock",
                         "Raise the incident's escalation level")
TASK_LINE = re.compile(r"^(?P<name>.+?) -+ (?P<s>[0-9.]+)s$")


def profile_one(tb: dict, kube: c.Kube, ns: str, pool_selector: dict, penv: dict, workdir) -> dict:
    """One more procedure run (not in the medians) with ansible.posix.profile_tasks: where
    the time of a run goes, task by task."""
    name = "profiled"
    kube.create_deployments([kube.oom_deployment(ns, name, 2, node_selector=pool_selector)])
    kube.wait_crashlooping(ns, {name: 2}, 300, min_restarts=2)
    env = dict(penv, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="all")
    res = c.run_cpu([str(c.VENV_BIN / "ansible-playbook"), "octollm.alert_response.pod_crashloop",
                     "-e", f"namespace={ns}", "-e", f"deployment={name}",
                     "-e", f"incident_review_dir={workdir / 'reviews'}"], env, cwd=c.REPO, timeout=600)
    wall = res["wall_s"]
    tasks = []
    for line in res["out"][res["out"].find("TASKS RECAP"):].splitlines():
        m = TASK_LINE.match(line.strip())
        if m:
            tasks.append((m.group("name").strip(), float(m.group("s"))))
    # the tasks of roles/incident that call the incident module (ledger writes)
    incident = [t for t in tasks if t[0].startswith("octollm.alert_response.incident : ")
                and t[0].split(" : ", 1)[1].startswith(INCIDENT_MODULE_TASKS)]
    return {"wall_s": round(wall, 2), "cpu_s": round(res["cpu_s"], 2), "tasks": len(tasks), "sum_task_s": round(sum(s for _n, s in tasks), 2),
            "top": [{"task": n, "s": s} for n, s in sorted(tasks, key=lambda t: -t[1])[:12]],
            "incident_module_calls": len(incident), "incident_module_s": round(sum(s for _n, s in incident), 2)}


def measure(tb: dict, kube: c.Kube, pool_selector: dict, repeats: int = 5, profile_run: bool = True) -> dict:
    workdir = c.tempdir("pvs")
    script = workdir / "crashloop.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    local = yaml.safe_load((c.REPO / "inventories" / "local" / "group_vars" / "all" / "pod_crashloop.yml").read_text())
    stable = local["pod_crashloop_stable_window"]
    ns = kube.create_namespace("bench-pvs", {"sim.octollm.io/enabled": "true"})
    audit = c.Audit(tb["OCTOLLM_AUDIT_LOG"], kube.credential_id)
    ledger = str(workdir / "ledger.sqlite3")
    penv = c.process_env(tb, OCTOLLM_RUNNER_KUBECONFIG=kube.runner_kubeconfig, OCTOLLM_LEDGER=ledger)
    senv = c.process_env(tb, KUBECTL=tb["OCTOLLM_KUBECTL"], RUNNER_KUBECONFIG=kube.runner_kubeconfig, NS=ns,
                         STABLE=stable)
    proc_runs, script_runs = [], []
    try:
        names = [(f"proc-{r}", f"script-{r}") for r in range(repeats)]
        kube.create_deployments([kube.oom_deployment(ns, n, 2, node_selector=pool_selector)
                                 for pair in names for n in pair])
        c.log(f"procedure vs script: {2 * repeats} Deployments with the OOM fault in {ns}")
        # as the molecule scenario: two restarts, so the previous instance's log exists
        kube.wait_crashlooping(ns, {n: 2 for pair in names for n in pair}, 300, min_restarts=2)
        for r, (pname, sname) in enumerate(names):
            order = [("procedure", pname), ("script", sname)] if r % 2 == 0 else [("script", sname), ("procedure", pname)]
            for kind, name in order:
                mark = audit.mark()
                t0 = time.time()
                if kind == "procedure":
                    res = c.run_cpu([str(c.VENV_BIN / "ansible-playbook"), "octollm.alert_response.pod_crashloop",
                                     "-e", f"namespace={ns}", "-e", f"deployment={name}",
                                     "-e", f"incident_review_dir={workdir / 'reviews'}"], penv, cwd=c.REPO, timeout=600)
                    ok = res["rc"] == 0
                else:
                    res = c.run_cpu([str(script)], dict(senv, DEPLOY=name), timeout=600)
                    ok = res["rc"] == 0 and "VERIFIED" in res["out"] and "NOT-VERIFIED" not in res["out"]
                wall = res["wall_s"]
                time.sleep(0.5)
                events = audit.events(mark)
                fw = c.first_write(events, ns, name)
                fig = {"deployment": name, "wall_s": round(wall, 2), "cpu_s": round(res["cpu_s"], 2), "ok": ok,
                       "api_requests": len(events), "first_write_s": round(fw["_t"] - t0, 2) if fw else None}
                if not ok:
                    fig["tail"] = res["out"][-1500:]
                (proc_runs if kind == "procedure" else script_runs).append(fig)
                c.log(f"  {kind} {name}: {wall:.1f} s ({'ok' if ok else 'FAILED'}), {len(events)} API requests")
        closed = c.ledger_runs(ledger)
        profile = profile_one(tb, kube, ns, pool_selector, penv, workdir) if profile_run else None
    finally:
        kube.delete_namespace(ns)
    pw = c.median([r["wall_s"] for r in proc_runs])
    sw = c.median([r["wall_s"] for r in script_runs])
    return {
        "repeats": repeats, "stable_window_s": stable,
        "procedure_wall_s_median": c.rnd(pw, 2), "script_wall_s_median": c.rnd(sw, 2), "ratio": c.rnd(pw / sw, 2),
        "procedure_cpu_s_median": c.rnd(c.median([r["cpu_s"] for r in proc_runs]), 2),
        "script_cpu_s_median": c.rnd(c.median([r["cpu_s"] for r in script_runs]), 2),
        "procedure_first_write_s_median": c.rnd(c.median([r["first_write_s"] for r in proc_runs if r["first_write_s"]]), 2),
        "script_first_write_s_median": c.rnd(c.median([r["first_write_s"] for r in script_runs if r["first_write_s"]]), 2),
        "procedure_api_requests_median": c.median([r["api_requests"] for r in proc_runs]),
        "script_api_requests_median": c.median([r["api_requests"] for r in script_runs]),
        "procedure_ok": sum(r["ok"] for r in proc_runs), "script_ok": sum(r["ok"] for r in script_runs),
        "incidents_closed": sum(v["closed"] for v in closed.values()),
        "procedure_runs": proc_runs, "script_runs": script_runs, "procedure_profile": profile,
    }


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    o = ap.parse_args()
    tb = c.testbed_env()
    k = c.Kube(tb, c.tempdir("pvs-main"))
    try:
        _n, sel = c.work_pool(k, 1)
        print(json.dumps(measure(tb, k, sel, o.repeats), indent=1))
    finally:
        k.delete_bench_nodes()
