# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark 4, scale: the node_not_ready investigation's evidence step
(`octollm.alert_response.node_info`, called as roles/node_not_ready/tasks/investigate.yml
calls it) on a cluster with `large` extra simulated nodes and `pods_per_node` pods on each
(1,000 nodes / 10,000 pods with the defaults) vs. `small` extra nodes (10) with the same
pods per node. The investigated node has the same pods in both cases, so the difference is
the cluster's size.

Nodes: tests/testbed/testbed.py node_manifest's shape under the prefix
`xbench-<run>-s` (tainted NoSchedule for the bench, labelled bench.octollm.io/run). Pods:
one bench namespace, bound with spec.nodeName (no scheduler), tolerating the taint.
Everything is deleted afterwards (namespace, then nodes), also on failure or Ctrl-C.

Other engineers' tests compute NotReady shares over all nodes (the guardrail's gate, the
node_not_ready_gate scenario): 1,000 extra Ready nodes change those shares while they
exist. The bench therefore waits until no node_not_ready* molecule scenario and no integration
test run is under way before it adds the large set (and skips it after `quiet_wait`), keeps the window short, and reports how long the nodes existed.

Per size, `repeats` investigations (ansible-playbook, one play: the module between two
timestamps) report: the playbook's wall time, the module task's time, and the runner's API
requests in the audit log (our token only). A direct GET of the node list and of the
node's pods (admin, plain JSON) splits API server time from client-side work.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common as c
import yaml

PLAYBOOK = """---
- name: node_not_ready evidence step (bench)
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Start
      ansible.builtin.set_fact:
        bench_t0: "{{ now(utc=true).timestamp() }}"
    - name: Read the node, its pods and the NotReady share
      octollm.alert_response.node_info:
        kubeconfig: "{{ bench_kubeconfig }}"
        name: "{{ bench_node }}"
        critical_namespaces: "{{ node_not_ready_critical_namespaces }}"
        critical_workloads: "{{ node_not_ready_critical_workloads }}"
      register: bench_ev
    - name: Report
      ansible.builtin.copy:
        dest: "{{ bench_result }}"
        mode: "0600"
        content: "{{ {'task_s': now(utc=true).timestamp() - bench_t0 | float,
          'total_nodes': bench_ev.cluster.total_nodes, 'pods': bench_ev.pods_summary.total,
          'not_ready_nodes': bench_ev.cluster.not_ready_nodes} | to_json }}"
"""


def node_sensitive_tests() -> list[str]:
    """Other engineers' runs that count nodes: the node_not_ready* scenarios (the gate's
    NotReady share) and the integration tests (test_guardrail_module compares node counts
    read a moment apart)."""
    return [p for p in c.others_running() if re.search(r"molecule \S+ -s node_not_ready|pytest.*(integration|guardrail)|"
                                                          r"tests/run-all", p)]


def wait_quiet(max_wait: float) -> bool:
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        busy = node_sensitive_tests()
        if not busy:
            return True
        c.log(f"scale: waiting before adding nodes: {busy[0][:100]}")
        time.sleep(15)
    return not node_sensitive_tests()


def pod(ns: str, name: str, node: str, run_id: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench-scale", c.BENCH_LABEL: run_id}},
            "spec": {"nodeName": node, "tolerations": [c.BENCH_TOLERATION], "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": "ghcr.io/octollm/app:1.0",
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


def add(kube: c.Kube, ns: str, names: list[str], first_index: int, pods_per_node: int, labels: dict) -> None:
    kube.create_nodes(names, pods_per_node=110, workers=16, first_index=first_index, labels=labels)
    docs = [pod(ns, f"{n}-p{j}", n, kube.run_id) for n in names for j in range(pods_per_node)]

    def one(d):
        kube.rest.create(f"/api/v1/namespaces/{ns}/pods", d)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, docs))


def investigate(tb: dict, kube: c.Kube, workdir: Path, node: str, repeats: int) -> dict:
    play = workdir / "node_info.yml"
    result = workdir / "result.json"
    play.write_text(PLAYBOOK)
    defaults = yaml.safe_load((c.REPO / "roles" / "node_not_ready" / "defaults" / "main.yml").read_text())
    varsf = c.write_yaml(workdir / "vars.yml", {
        "bench_kubeconfig": str(kube.runner_kubeconfig), "bench_node": node, "bench_result": str(result),
        "node_not_ready_critical_namespaces": defaults["node_not_ready_critical_namespaces"],
        "node_not_ready_critical_workloads": defaults["node_not_ready_critical_workloads"]})
    env = c.process_env(tb, OCTOLLM_BENCH_CHILD=1)
    audit = c.Audit(tb["OCTOLLM_AUDIT_LOG"], kube.credential_id)
    runs = []
    for _r in range(repeats):
        mark = audit.mark()
        res = c.run_cpu([str(c.VENV_BIN / "ansible-playbook"), str(play), "-e", f"@{varsf}"], env, cwd=c.REPO)
        wall = res["wall_s"]
        if res["rc"] != 0:
            raise RuntimeError(f"the investigation failed (rc {res['rc']}):\n{res['out'][-3000:]}")
        fig = json.loads(result.read_text())
        result.unlink()
        time.sleep(1)
        events = audit.events(mark)
        runs.append({"wall_s": round(wall, 3), "cpu_s": round(res["cpu_s"], 3), "task_s": round(fig["task_s"], 3), "total_nodes": fig["total_nodes"],
                     "node_pods": fig["pods"], "api_requests": len(events),
                     "api": c.Audit.summary(events)["by_resource"]})
    # the API server's share: the same two lists as plain JSON (admin, no typed client)
    t = time.perf_counter()
    nodes = kube.rest.get("/api/v1/nodes")
    t_nodes = time.perf_counter() - t
    t = time.perf_counter()
    kube.rest.get("/api/v1/pods", {"fieldSelector": f"spec.nodeName={node}"})
    t_pods = time.perf_counter() - t
    return {"runs": runs, "wall_s": c.median([r["wall_s"] for r in runs]), "task_s": c.median([r["task_s"] for r in runs]),
            "cpu_s": c.median([r["cpu_s"] for r in runs]),
            "api_requests": c.median([r["api_requests"] for r in runs]), "total_nodes": runs[0]["total_nodes"],
            "node_pods": runs[0]["node_pods"], "raw_list_nodes_s": round(t_nodes, 3),
            "raw_list_nodes_bytes": len(json.dumps(nodes)), "raw_list_node_pods_s": round(t_pods, 3)}


def measure(tb: dict, kube: c.Kube, small: int = 10, large: int = 1000, pods_per_node: int = 10, repeats: int = 3,
            quiet_wait: float = 1200) -> dict:
    workdir = c.tempdir("scale")
    run = uuid.uuid4().hex[:4]
    prefix = f"{c.NODE_PREFIX}-{kube.run_id}-s{run}"
    names = [f"{prefix}-{i:04d}" for i in range(large)]
    ns = kube.create_namespace("bench-scale")
    out: dict = {"small_nodes": small, "large_nodes": large, "pods_per_node": pods_per_node, "repeats": repeats}
    t_nodes = None
    try:
        c.log(f"scale: {small} nodes x {pods_per_node} pods")
        t_nodes = time.monotonic()
        add(kube, ns, names[:small], 0, pods_per_node, {"bench.octollm.io/scale": run})
        kube.wait_nodes_ready(names[:small], 300)
        out["small"] = investigate(tb, kube, workdir, names[0], repeats)
        if not wait_quiet(quiet_wait):
            out["large"] = None
            out["skipped"] = ("node-counting tests of other engineers kept running: the large node set would"
                              " change their NotReady shares; rerun with --only scale")
            return out
        c.log(f"scale: adding {large - small} nodes and {(large - small) * pods_per_node} pods")
        t = time.monotonic()
        add(kube, ns, names[small:], small, pods_per_node, {"bench.octollm.io/scale": run})
        kube.wait_nodes_ready(names, 900)
        out["setup_large_s"] = round(time.monotonic() - t, 1)
        out["large"] = investigate(tb, kube, workdir, names[0], repeats)
    finally:
        c.log("scale: deleting the bench pods and nodes")
        t = time.monotonic()
        kube.delete_namespace(ns, 900)
        deleted = kube.delete_bench_nodes(selector=f"{c.BENCH_LABEL}={kube.run_id},bench.octollm.io/scale={run}")
        if t_nodes is not None:
            out["extra_nodes_existed_s"] = round(time.monotonic() - t_nodes, 1)
        out["cleanup_s"] = round(time.monotonic() - t, 1)
        out["nodes_deleted"] = deleted
    s, lg = out["small"], out["large"]
    out.update({"ratio_wall": c.rnd(lg["wall_s"] / s["wall_s"]), "ratio_task": c.rnd(lg["task_s"] / s["task_s"]),
                "ratio_cpu": c.rnd(lg["cpu_s"] / s["cpu_s"]),
                "ratio_api_requests": c.rnd(lg["api_requests"] / s["api_requests"])})
    return out


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10)
    ap.add_argument("--large", type=int, default=50)
    ap.add_argument("--pods-per-node", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    o = ap.parse_args()
    tb = c.testbed_env()
    k = c.Kube(tb, c.tempdir("scale-main"))
    try:
        print(json.dumps(measure(tb, k, o.small, o.large, o.pods_per_node, o.repeats), indent=1))
    finally:
        k.delete_bench_nodes()
