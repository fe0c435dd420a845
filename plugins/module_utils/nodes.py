# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence and maintenance for one Node (modules node_info and node_drain).

Pods are found with the field selector ``spec.nodeName=<node>`` (the runbook's own
query); the only cluster-wide list is the Node list, which the NotReady share needs.
Draining uses the eviction API, so PodDisruptionBudgets are respected: a refused
eviction (429) is retried until the timeout, and a drain that fails gives back the
cordon it set (kubectl drain does the same when it cannot finish).
"""
from __future__ import annotations

import json
import time

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ApiException, api_error, read_json, to_dict

CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
MIRROR = "kubernetes.io/config.mirror"
# Set on a node this collection cordoned, so that only its own cordons are given back
# (a node a person cordoned stays cordoned).
CORDONED_BY = "octollm.io/cordoned-by"


class NodeError(Exception):
    """An error message that names the node and the next step; ``data`` goes into the result."""

    def __init__(self, msg, **data):
        super().__init__(msg)
        self.data = data


def _ts(value):
    import datetime as dt  # noqa: PLC0415 - only for parsing
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def ready_status(node: dict) -> str:
    """"True", "False" or "Unknown" (no condition counts as Unknown)."""
    c = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    return (c or {}).get("status") or "Unknown"


def node_summary(node: dict, now: float) -> dict:
    st, spec = node.get("status") or {}, node.get("spec") or {}
    conds = [{"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason"),
              "message": str(c.get("message") or "")[:300], "last_heartbeat": c.get("lastHeartbeatTime"),
              "last_transition": c.get("lastTransitionTime")} for c in st.get("conditions") or []]
    ready = next((c for c in conds if c["type"] == "Ready"), {})
    beats = [t for t in (_ts(c["last_heartbeat"]) for c in conds) if t]
    since = _ts(ready.get("last_transition"))
    return {"name": node["metadata"]["name"], "exists": True, "ready": ready.get("status") or "Unknown",
            "ready_reason": ready.get("reason"), "ready_message": ready.get("message"),
            "not_ready_for_s": round(now - since, 1) if since and ready.get("status") != "True" else 0,
            "heartbeat_age_s": round(now - max(beats), 1) if beats else None,
            "conditions": conds,
            "pressure": [c["type"] for c in conds if c["type"] != "Ready" and c["status"] == "True"],
            "unschedulable": bool(spec.get("unschedulable")),
            "cordoned_by": (node["metadata"].get("annotations") or {}).get(CORDONED_BY),
            "taints": [{k: t.get(k) for k in ("key", "value", "effect")} for t in spec.get("taints") or []],
            "allocatable": st.get("allocatable") or {}, "capacity": st.get("capacity") or {},
            "addresses": {a.get("type"): a.get("address") for a in st.get("addresses") or []},
            "labels": {k: v for k, v in (node["metadata"].get("labels") or {}).items()
                       if k.startswith(("topology.kubernetes.io/", "node.kubernetes.io/", "cloud.google.com/"))}}


def cluster_counts(nodes: list, target: str) -> dict:
    not_ready = sorted(n["metadata"]["name"] for n in nodes if ready_status(n) != "True")
    ready_sched = sum(1 for n in nodes if ready_status(n) == "True" and not (n.get("spec") or {}).get("unschedulable"))
    total = len(nodes)
    return {"total_nodes": total, "not_ready_nodes": len(not_ready), "not_ready": not_ready,
            "ready_schedulable": ready_sched, "not_ready_share": round(len(not_ready) / total, 4) if total else None,
            "target_found": any(n["metadata"]["name"] == target for n in nodes)}


def classify_pod(p: dict, critical_namespaces, critical_workloads) -> dict:
    meta, spec, st = p["metadata"], p.get("spec") or {}, p.get("status") or {}
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    owner_kind, owner_name = (owner or {}).get("kind"), (owner or {}).get("name")
    if owner_kind == "ReplicaSet":
        h = (meta.get("labels") or {}).get("pod-template-hash")
        if h and owner_name.endswith("-" + h):
            owner_kind, owner_name = "Deployment", owner_name[: -len(h) - 1]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    return {"namespace": meta["namespace"], "name": meta["name"], "phase": st.get("phase"), "ready": ready,
            "owner_kind": owner_kind, "owner_name": owner_name,
            "critical": meta["namespace"] in critical_namespaces or owner_name in critical_workloads,
            "daemonset": owner_kind == "DaemonSet", "mirror": MIRROR in (meta.get("annotations") or {}),
            "unmanaged": owner is None,
            "local_storage": any(v.get("emptyDir") is not None for v in spec.get("volumes") or []),
            "terminating": bool(meta.get("deletionTimestamp")),
            "finished": st.get("phase") in ("Succeeded", "Failed")}


class Node:
    def __init__(self, clients, name):
        self.c, self.name = clients, name

    def read(self) -> dict | None:
        try:
            return to_dict(self.c.core.read_node(self.name))
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise NodeError(api_error(exc, f"cannot read node {self.name}")) from None

    def pods(self, critical_namespaces=(), critical_workloads=()) -> list:
        try:
            items = read_json(self.c.core.list_pod_for_all_namespaces,
                              field_selector=f"spec.nodeName={self.name}").get("items") or []
        except ApiException as exc:
            raise NodeError(api_error(exc, f"cannot list the pods on node {self.name}")) from None
        return [classify_pod(p, critical_namespaces, critical_workloads) for p in items]

    def all_nodes(self) -> list:
        try:
            return read_json(self.c.core.list_node).get("items") or []
        except ApiException as exc:
            raise NodeError(api_error(exc, "cannot list nodes (for the NotReady share)")) from None

    def set_unschedulable(self, value: bool, owner=None):
        body = {"spec": {"unschedulable": value}}
        if owner is not None:
            body["metadata"] = {"annotations": {CORDONED_BY: owner if value else None}}
        try:
            self.c.core.patch_node(self.name, body)
        except ApiException as exc:
            verb = "cordon" if value else "uncordon"
            raise NodeError(api_error(exc, f"cannot {verb} node {self.name}")) from None


def info(clients, name, pods=True, critical_namespaces=(), critical_workloads=(), now=None) -> dict:
    now = time.time() if now is None else now
    node = Node(clients, name)
    nodes = node.all_nodes()
    obj = next((n for n in nodes if n["metadata"]["name"] == name), None)
    out = {"node": node_summary(obj, now) if obj else {"name": name, "exists": False},
           "cluster": cluster_counts(nodes, name)}
    if pods and obj:
        items = node.pods(critical_namespaces, critical_workloads)
        out["pods"] = items
        by_ns = {}
        for p in items:
            by_ns[p["namespace"]] = by_ns.get(p["namespace"], 0) + 1
        out["pods_summary"] = {"total": len(items), "critical": sum(1 for p in items if p["critical"]),
                               "critical_pods": [f"{p['namespace']}/{p['name']}" for p in items if p["critical"]][:20],
                               "not_ready": sum(1 for p in items if not p["ready"] and not p["finished"]),
                               "by_namespace": by_ns}
    return out


# ----------------------------------------------------------------------- drain
def drain_plan(pods, force, ignore_daemonsets, delete_emptydir_data) -> tuple:
    """(to_evict, skipped, errors) like kubectl drain's filters."""
    evict, skipped, errors = [], [], []
    for p in pods:
        ref = f"{p['namespace']}/{p['name']}"
        if p["mirror"]:
            skipped.append({"pod": ref, "why": "mirror pod (static, not deletable through the API)"})
        elif p["terminating"]:
            evict.append(p)  # already going: wait for it
        elif p["finished"]:
            evict.append(p)
        elif p["daemonset"]:
            if ignore_daemonsets:
                skipped.append({"pod": ref, "why": "DaemonSet-managed"})
            else:
                errors.append(f"{ref} is managed by a DaemonSet (set ignore_daemonsets)")
        elif p["local_storage"] and not delete_emptydir_data:
            errors.append(f"{ref} uses emptyDir data (set delete_emptydir_data to lose it)")
        elif p["unmanaged"] and not force:
            errors.append(f"{ref} has no controller and would not come back (set force to delete it anyway)")
        else:
            evict.append(p)
    return evict, skipped, errors


def _message(exc) -> str:
    """The API's message plus its causes (a 429 names the budget: "The disruption budget
    orchestrator needs 2 healthy pods and has 2 currently")."""
    try:
        body = json.loads(exc.body)
    except (TypeError, ValueError, AttributeError):
        return str(getattr(exc, "reason", exc))
    causes = [c.get("message") for c in (body.get("details") or {}).get("causes") or [] if c.get("message")]
    return " ".join([body.get("message") or str(exc.reason)] + causes)


def evict_all(clients, node_name, pods, grace_period, timeout, interval, sleep=time.sleep, clock=time.monotonic):
    """Evict every pod (retrying PDB refusals), then wait until none is left on the node.
    Returns (evicted names, blocked {pod: message}, stuck names)."""
    from kubernetes.client import V1DeleteOptions, V1Eviction, V1ObjectMeta  # noqa: PLC0415 - guarded upstream
    deadline = clock() + timeout
    pending = {f"{p['namespace']}/{p['name']}": p for p in pods if not p["terminating"]}
    evicted, blocked = [], {}
    while pending:
        for ref, p in list(pending.items()):
            body = V1Eviction(metadata=V1ObjectMeta(name=p["name"], namespace=p["namespace"]),
                              delete_options=V1DeleteOptions(grace_period_seconds=grace_period)
                              if grace_period is not None else None)
            try:
                clients.core.create_namespaced_pod_eviction(p["name"], p["namespace"], body)
                evicted.append(ref)
                pending.pop(ref)
                blocked.pop(ref, None)
            except ApiException as exc:
                status = getattr(exc, "status", None)
                if status == 404:
                    pending.pop(ref)
                    blocked.pop(ref, None)
                elif status == 429:
                    blocked[ref] = _message(exc)
                else:
                    raise NodeError(api_error(exc, f"cannot evict pod {ref} from node {node_name}"),
                                    evicted=evicted) from None
        if pending:
            if clock() >= deadline:
                break
            sleep(interval)
    if pending:
        return evicted, {r: blocked.get(r, "not evicted") for r in pending}, []
    # wait until the pods are gone from the node (deleted or rescheduled)
    watch = {f"{p['namespace']}/{p['name']}" for p in pods}
    while True:
        left = {f"{p['namespace']}/{p['name']}" for p in Node(clients, node_name).pods() if not p["finished"]}
        stuck = sorted(watch & left)
        if not stuck or clock() >= deadline:
            return evicted, {}, stuck
        sleep(interval)


def drain(clients, name, check_mode, force=False, ignore_daemonsets=True, delete_emptydir_data=True,
          grace_period=None, timeout=120.0, interval=2.0, owner=None, wait_rescheduled=0.0) -> dict:
    node = Node(clients, name)
    obj = node.read()
    if obj is None:
        raise NodeError(f"node {name} not found; check the alert's node label")
    was_cordoned = bool((obj.get("spec") or {}).get("unschedulable"))
    pods = node.pods()
    evict, skipped, errors = drain_plan(pods, force, ignore_daemonsets, delete_emptydir_data)
    refs = [f"{p['namespace']}/{p['name']}" for p in evict]
    result = {"cordoned": not was_cordoned, "to_evict": refs, "skipped": skipped, "evicted": [],
              "changed": bool(refs) or not was_cordoned}
    if errors:
        data = dict(result)
        data["changed"] = False
        raise NodeError(f"cannot drain node {name}: {'; '.join(errors)}; nothing was changed", **data)
    if check_mode:
        return result
    if not was_cordoned:
        node.set_unschedulable(True, owner)
    try:
        evicted, blocked, stuck = evict_all(clients, name, evict, grace_period, timeout, interval)
    except NodeError as exc:
        reverted = _revert(node, was_cordoned, owner)
        data = dict(result)
        data.update(exc.data)
        data["reverted"] = not was_cordoned
        raise NodeError(f"{exc}; {reverted}", **data) from None
    result.update(evicted=evicted)
    if blocked or stuck:
        reverted = _revert(node, was_cordoned, owner)
        what = "; ".join(f"{r}: {m}" for r, m in list(blocked.items())[:3]) if blocked else \
            f"pods still on the node after {timeout:g} s (stuck terminating?): {', '.join(stuck[:5])}"
        nxt = "retry later or raise the PodDisruptionBudget" if blocked else "check the pods' finalizers and the kubelet"
        raise NodeError(f"cannot drain node {name}: {what}; {reverted}; {nxt}",
                        **dict(result, blocked=blocked, stuck=stuck, reverted=not was_cordoned))
    if wait_rescheduled:
        result["rescheduled"] = wait_workloads(clients, evict, wait_rescheduled, interval)
    return result


def _owners(pods) -> list:
    out = []
    for p in pods:
        if p["owner_kind"] in ("Deployment", "StatefulSet", "ReplicaSet") and not p["finished"]:
            key = {"kind": p["owner_kind"], "namespace": p["namespace"], "name": p["owner_name"]}
            if key not in out:
                out.append(key)
    return out


def workload_ready(clients, w) -> dict:
    read = {"Deployment": clients.apps.read_namespaced_deployment, "StatefulSet": clients.apps.read_namespaced_stateful_set,
            "ReplicaSet": clients.apps.read_namespaced_replica_set}[w["kind"]]
    try:
        obj = to_dict(read(w["name"], w["namespace"]))
    except ApiException as exc:
        return dict(w, ready=None, desired=None, error=api_error(exc, f"cannot read {w['kind']} {w['namespace']}/{w['name']}"))
    return dict(w, ready=(obj.get("status") or {}).get("readyReplicas", 0) or 0,
                desired=(obj.get("spec") or {}).get("replicas", 1))


def wait_workloads(clients, pods, timeout, interval, sleep=time.sleep, clock=time.monotonic) -> dict:
    """Wait until the controllers of the evicted pods have all their replicas Ready again
    (the pods run elsewhere: the runbook's "no pod of theirs left Pending")."""
    owners, deadline, t0 = _owners(pods), clock() + timeout, clock()
    while True:
        states = [workload_ready(clients, w) for w in owners]
        short = [s for s in states if s["ready"] is None or s["ready"] < s["desired"]]
        if not short or clock() >= deadline:
            return {"ok": not short, "elapsed_s": round(clock() - t0, 1), "workloads": states}
        sleep(interval)


def _revert(node, was_cordoned, owner=None) -> str:
    if was_cordoned:
        return "the node stays cordoned as it was before"
    try:
        node.set_unschedulable(False, owner)
        return "the cordon was reverted"
    except NodeError as exc:
        return f"reverting the cordon failed too ({exc}): uncordon it by hand"


def set_cordon(clients, name, cordon: bool, check_mode, owner=None) -> dict:
    """Cordon (marking the node as ours when ``owner`` is given) or uncordon (with
    ``owner``: only a node this collection cordoned)."""
    node = Node(clients, name)
    obj = node.read()
    if obj is None:
        raise NodeError(f"node {name} not found; check the alert's node label")
    current = bool((obj.get("spec") or {}).get("unschedulable"))
    ours = CORDONED_BY in ((obj.get("metadata") or {}).get("annotations") or {})
    if not cordon and current and owner is not None and not ours:
        return {"changed": False, "cordoned": False, "uncordoned": False, "foreign": True}
    changed = current != cordon
    if changed and not check_mode:
        node.set_unschedulable(cordon, owner)
    return {"changed": changed, "cordoned": cordon and changed, "uncordoned": (not cordon) and changed,
            "foreign": False}
