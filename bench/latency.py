# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark 2, alert -> first Kubernetes write: p50/p99 over N alerts of the time from
POSTing a PodCrashLoopBackOff alert to the running rulebook until the procedure's first
write shows up in the API server's audit log, vs. a bare `run_playbook` of a one-task
playbook doing the same write.

- fault: one Deployment per alert in a bench namespace, OOM fault of the pod_crashloop
  molecule scenario (label faults.octollm.io/oom=true, memory limit 256Mi); the
  procedure's first write is the memory limit raise (workload_action set_resources,
  a PATCH of the Deployment);
- ours: the shipped rulebook (`-r octollm.alert_response.alertmanager`, unchanged, `-m 4`,
  parallel) with a bench inventory folder (our runner token, a temporary ledger, remediate
  mode, the local inventory's pod_crashloop windows);
- bare: ansible-rulebook with `eda.builtin.webhook` and one unthrottled rule whose
  `run_playbook` runs one task: `octollm.alert_response.workload_action` set_resources with
  the same limit on a Deployment with the same fault (same module, same PATCH).

Alerts are posted one at a time; the next goes after the previous playbook ended (its
PLAY RECAP), so each figure is one alert on an otherwise idle runner. The time base is
the machine's clock on both sides (the audit log's requestReceivedTimestamp).
"""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import common as c

ONE_TASK = """---
- name: One comparable write (bench baseline)
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Raise the memory limit
      octollm.alert_response.workload_action:
        kubeconfig: "{{ bench_kubeconfig }}"
        kind: Deployment
        namespace: "{{ bench_namespace }}"
        name: "{{ bench_deployment }}"
        action: set_resources
        container: app
        limits: {memory: 512Mi}
"""


def bare_rulebook(port: int, playbook: Path, kubeconfig: Path) -> list[dict]:
    return [{"name": "bench bare run_playbook", "hosts": "localhost", "execution_strategy": "parallel",
             "sources": [{"name": "webhook", "eda.builtin.webhook": {"host": "127.0.0.1", "port": port}}],
             "rules": [{"name": "one playbook per alert",
                        "condition": "event.payload.alerts is defined",
                        "action": {"run_playbook": {"name": str(playbook), "extra_vars": {
                            "bench_kubeconfig": str(kubeconfig),
                            "bench_namespace": "{{ event.payload.alerts[0].labels.namespace }}",
                            "bench_deployment": "{{ event.payload.alerts[0].labels.owner_name }}"}}}}]}]


class Recap:
    """Counts finished playbooks in a rulebook's output."""

    def __init__(self, proc: c.RulebookProcess):
        self.proc = proc

    def count(self) -> int:
        return len(self.proc.seen["PLAY RECAP"])

    def wait_more(self, n: int, timeout: float) -> None:
        def done():
            if self.count() >= n:
                return True
            if not self.proc.alive():
                raise RuntimeError(f"ansible-rulebook exited:\n{self.proc.tail()}")
            return False
        c.wait_for(f"{n} playbook(s) to end", done, timeout, 0.2)


def _one_alert(ns: str, deployment: str, run: str, i: int) -> dict:
    return c.group([c.wire_alert(f"{run}-{i}", c.crash_labels(ns, deployment, f"{deployment}-pod"))])


def measure_side(tb, kube, audit, workdir, ns, names, start_proc, post_url, token, run, settle_timeout):
    proc = start_proc()
    recap = Recap(proc)
    latencies, runs = [], []
    try:
        proc.wait_healthy(post_url.rsplit("/", 1)[0]) if token else _wait_port(proc, post_url)
        for i, name in enumerate(names):
            before = recap.count()
            mark = audit.mark()
            t_post = time.time()
            c.post(post_url, _one_alert(ns, name, run, i), token or "unused")
            fw = c.wait_for(f"the first write on {ns}/{name}",
                            lambda m=mark, n=name: c.first_write(audit.events(m), ns, n), 180, 0.1)
            latencies.append(fw["_t"] - t_post)
            recap.wait_more(before + 1, settle_timeout)
            t_end = time.time()
            runs.append({"deployment": name, "first_write_s": round(fw["_t"] - t_post, 3),
                         "run_s": round(t_end - t_post, 2),
                         "requests_before_first_write": sum(1 for e in audit.events(mark) if e["_t"] <= fw["_t"])})
            c.log(f"  {name}: first write after {fw['_t'] - t_post:.2f} s, playbook ended after {t_end - t_post:.1f} s")
    finally:
        proc.stop()
    cpu = round(proc.cpu_s / len(runs), 2) if runs and proc.cpu_s else None
    return latencies, runs, cpu


def _wait_port(proc: c.RulebookProcess, url: str, timeout: float = 120) -> None:
    import socket
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")

    def up():
        if not proc.alive():
            raise RuntimeError(f"ansible-rulebook exited:\n{proc.tail()}")
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((host, int(port))) == 0
    c.wait_for("the webhook source", up, timeout, 0.2)


def measure(tb: dict, kube: c.Kube, pool_selector: dict, alerts: int = 15) -> dict:
    workdir = c.tempdir("latency")
    run = uuid.uuid4().hex[:8]
    # the simulator serves the pods' logs (as in the molecule scenarios)
    ns = kube.create_namespace("bench-lat", {"sim.octollm.io/enabled": "true"})
    audit = c.Audit(tb["OCTOLLM_AUDIT_LOG"], kube.credential_id)
    ours_names = [f"ours-{i}" for i in range(alerts)]
    bare_names = [f"bare-{i}" for i in range(alerts)]
    try:
        kube.create_deployments([kube.oom_deployment(ns, n, 1, node_selector=pool_selector)
                                 for n in ours_names + bare_names])
        c.log(f"latency: {2 * alerts} Deployments with the OOM fault in {ns}; waiting until they crash-loop")
        kube.wait_crashlooping(ns, {n: 1 for n in ours_names + bare_names}, 300)

        # ours: the shipped rulebook
        ledger = str(workdir / "ledger.sqlite3")
        inv = c.inventory_folder(workdir / "inventory", c.procedure_group_vars(tb, kube, ledger, workdir))
        port, token = c.free_port(), uuid.uuid4().hex
        varsf = c.write_yaml(workdir / "vars.yml", {"alert_response_eda_port": port, "alert_response_ledger": ledger})
        env = c.process_env(tb, OCTOLLM_EDA_TOKEN=token)

        def start_ours():
            return c.RulebookProcess(workdir, "octollm.alert_response.alertmanager", env, inventory=inv,
                                     vars_file=varsf, extra_args=["-E", "OCTOLLM_EDA_TOKEN", "--execution-strategy",
                                                                  "parallel", "-m", "4"],
                                     watch=("PLAY RECAP",)).start()
        c.log(f"latency: ours, {alerts} alerts one at a time")
        ours, ours_runs, ours_cpu = measure_side(tb, kube, audit, workdir, ns, ours_names, start_ours,
                                       f"http://127.0.0.1:{port}/alertmanager", token, run, 240)

        # bare: webhook + one-task playbook
        pdir = workdir / "bare-playbook"
        pdir.mkdir()
        playbook = pdir / "write.yml"
        playbook.write_text(ONE_TASK)
        bport = c.free_port()
        rb = c.write_yaml(workdir / "bare.yml", bare_rulebook(bport, playbook, kube.runner_kubeconfig))
        binv = c.inventory_folder(workdir / "bare-inventory", {})

        def start_bare():
            return c.RulebookProcess(workdir, rb, c.process_env(tb), inventory=binv,
                                     extra_args=["--execution-strategy", "parallel", "-m", "4"],
                                     watch=("PLAY RECAP",)).start()
        c.log(f"latency: bare run_playbook, {alerts} alerts one at a time")
        bare, bare_runs, bare_cpu = measure_side(tb, kube, audit, workdir, ns, bare_names, start_bare,
                                       f"http://127.0.0.1:{bport}/endpoint", None, run, 120)
        closed = c.ledger_runs(ledger)
    finally:
        kube.delete_namespace(ns)

    result = {
        "alerts": alerts,
        "ours_p50_s": c.rnd(c.pct(ours, 0.5)), "ours_p99_s": c.rnd(c.pct(ours, 0.99)),
        "ours_min_s": c.rnd(min(ours)), "ours_max_s": c.rnd(max(ours)),
        "bare_p50_s": c.rnd(c.pct(bare, 0.5)), "bare_p99_s": c.rnd(c.pct(bare, 0.99)),
        "bare_min_s": c.rnd(min(bare)), "bare_max_s": c.rnd(max(bare)),
        "ratio_p50": c.rnd(c.pct(ours, 0.5) / c.pct(bare, 0.5)),
        "ratio_p99": c.rnd(c.pct(ours, 0.99) / c.pct(bare, 0.99)),
        "ours_run_s_p50": c.rnd(c.median([r["run_s"] for r in ours_runs]), 2),
        "bare_run_s_p50": c.rnd(c.median([r["run_s"] for r in bare_runs]), 2),
        "ours_requests_before_first_write_p50": c.median([r["requests_before_first_write"] for r in ours_runs]),
        "bare_requests_before_first_write_p50": c.median([r["requests_before_first_write"] for r in bare_runs]),
        # CPU of the rulebook process tree (engine, source, playbooks, modules) per alert
        "ours_cpu_s_per_alert": ours_cpu, "bare_cpu_s_per_alert": bare_cpu,
        "incidents_closed": sum(v["closed"] for v in closed.values()),
        "ours_runs": ours_runs, "bare_runs": bare_runs,
    }
    return result


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=3)
    o = ap.parse_args()
    tb = c.testbed_env()
    wd = c.tempdir("latency-main")
    k = c.Kube(tb, wd)
    try:
        _nodes, sel = c.work_pool(k, 1)
        print(json.dumps(measure(tb, k, sel, o.alerts), indent=1))
    finally:
        k.delete_bench_nodes()
