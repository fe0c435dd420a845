# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cause rules of the warning and informational procedures (runbook sections 7, 8, 10-12,
14-16): evidence in, ONE cause (or outcome) of the shared vocabulary out.

Pure functions, no Ansible import and no I/O, called through the filter
``octollm.alert_response.diagnose_warning`` (plugins/filter/warning_diagnosis.py). The
critical procedures' rules are in diagnosis.py; the result has the same shape::

    {"cause": "hot_workload", "reasons": ["node-000001 CPU 93% > 80%", ...],
     "details": {"plan": {...what remediation needs...}, "recommend": [...]}}

``details.plan`` is the one change the remediation would make (None when the runbook
leaves it to people), ``details.recommend`` what people should do. ``no_fault`` means the
condition no longer holds (nothing to do); ``undetermined`` escalates as a new issue.
"""
from __future__ import annotations

import datetime as dt
import math
import re

from ansible_collections.octollm.alert_response.plugins.module_utils.diagnosis import quantity, scale_quantity
from ansible_collections.octollm.alert_response.plugins.module_utils.usage import trend

NO_FAULT = "no_fault"
UNDETERMINED = "undetermined"
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable")
CRASH_REASONS = ("CrashLoopBackOff", "RunContainerError", "CreateContainerConfigError", "CreateContainerError")
_INSUFFICIENT = re.compile(r"Insufficient (cpu|memory|ephemeral-storage|pods|[\w./-]+)", re.IGNORECASE)

DEFAULTS = {
    "node_cpu_pressure": {"threshold": 0.8, "hot_share": 0.5, "shortfall_share": 0.5, "scale_factor": 2.0,
                          "prefer_hpa": False, "hpa_min": 2, "hpa_max": 10, "hpa_cpu": 70},
    "node_memory_pressure": {"threshold": 0.85, "hot_share": 0.5, "shortfall_share": 0.5, "scale_factor": 2.0,
                             "leak_min_share": 0.05, "memory_factor": 2.0},
    "pod_oomkilled": {"max_kills": 3, "memory_factor": 2.0, "min_rise_ratio": 0.2, "min_rise_bytes": 32 * 2 ** 20,
                      "monotonic_share": 0.8},
    "pvc_pending": {"fallback_class": ""},
    "replicas_mismatch": {},
    "deployment_observed": {},
    "hpa_scaled": {"max_changes": 4, "target_step": 10, "target_max": 90},
    "configmap_changed": {"known_managers": [], "restart": False},
}


def _result(cause, reasons, **details) -> dict:
    details.setdefault("plan", None)
    details.setdefault("recommend", [])
    return {"cause": cause, "reasons": [str(r) for r in reasons], "details": details}


def _opts(procedure, options) -> dict:
    merged = dict(DEFAULTS[procedure])
    unknown = sorted(set(options or {}) - set(merged))
    if unknown:
        raise ValueError(f"unknown {procedure} diagnosis option(s) {unknown}; known: {sorted(merged)}")
    merged.update({k: v for k, v in (options or {}).items() if v is not None})
    return merged


def _num(value):
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) or math.isinf(out) else out


def _pct(x) -> str:
    return "?" if x is None else f"{x:.0%}"


def _ts(value):
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _mem(value) -> str:
    v = _num(value)
    if v is None:
        return "?"
    return f"{v / 2 ** 30:.1f}Gi" if v >= 2 ** 30 else f"{v / 2 ** 20:.0f}Mi"


# --------------------------------------------------------------- node pressure
def _node_gate(ev, what):
    """(result or None, usage, threshold): the common start of the node procedures."""
    node = ev.get("node") or {}
    if not node.get("exists"):
        return _result(UNDETERMINED, [f"node {node.get('name')} not found (deleted or renamed?)"]), None, None
    usage = ev.get("usage") or {}
    now, threshold = _num(usage.get("now")), _num(usage.get("threshold"))
    if now is None:
        return _result(UNDETERMINED, [f"no node_exporter {what} series for node {node['name']}: check the "
                                      "exporter and node_uname_info"]), None, threshold
    if threshold is not None and now <= threshold:
        return _result(NO_FAULT, [f"node {node['name']} {what} {_pct(now)} <= {_pct(threshold)}: the condition no "
                                  "longer holds"]), now, threshold
    return None, now, threshold


def _cluster_reasons(ev, threshold):
    cl = ev.get("cluster") or {}
    return [f"{cl.get('above', 0)} of {cl.get('total', 0)} nodes above {_pct(threshold)}; the other nodes average "
            f"{_pct(_num(cl.get('others_mean')))}"]


def _shortfall(ev, o):
    cl = ev.get("cluster") or {}
    total = cl.get("total") or 0
    return total >= 2 and (cl.get("above", 0) / total >= o["shortfall_share"] or not cl.get("others_with_headroom"))


def _scale_plan(owner, o, resource) -> tuple:
    """(plan, recommend) for spreading a heavy workload over more nodes."""
    kind, name = owner.get("kind"), f"{owner.get('namespace')}/{owner.get('name')}"
    if kind != "Deployment" or not owner.get("exists"):
        return None, [f"{kind or 'pod'} {name} takes most of the node's {resource}: it cannot be scaled out "
                      "automatically (not a Deployment); move or resize it by hand, or add nodes (resize_node_pool)"]
    hpa = owner.get("hpa")
    if hpa:
        at_max = (hpa.get("current_replicas") or 0) >= (hpa.get("max_replicas") or 0)
        return None, [f"Deployment {name} is scaled by HPA {hpa.get('name')} (max {hpa.get('max_replicas')}); "
                      + ("it is at its maximum: raise maxReplicas or add nodes" if at_max else
                         "scaling it by hand would be undone by the HPA: check the HPA's metrics and target")]
    current = int(owner.get("replicas") or 1)
    if o.get("prefer_hpa"):
        return {"action": "enable_hpa", "kind": "Deployment", "namespace": owner["namespace"], "name": owner["name"],
                "min_replicas": max(int(o["hpa_min"]), current), "max_replicas": int(o["hpa_max"]),
                "cpu_utilization": int(o["hpa_cpu"]), "current_replicas": current}, []
    new = max(current + 1, int(math.ceil(current * float(o["scale_factor"]))))
    return {"action": "scale_out", "kind": "Deployment", "namespace": owner["namespace"], "name": owner["name"],
            "current_replicas": current, "new_replicas": new}, []


def node_cpu_cause(ev, options=None) -> dict:
    o = _opts("node_cpu_pressure", options)
    done, now, threshold = _node_gate(ev, "CPU")
    if done:
        return done
    threshold = threshold if threshold is not None else o["threshold"]
    node = ev["node"]["name"]
    reasons = [f"node {node} CPU {_pct(now)} > {_pct(threshold)}"] + _cluster_reasons(ev, threshold)
    owners = ev.get("owners") or []
    if _shortfall(ev, o):
        return _result("capacity_shortfall", reasons + ["no node has headroom to move load to: the cluster as a "
                                                        "whole lacks CPU"],
                       recommend=["add nodes to the node pool (resize_node_pool, out-of-band: gcloud container "
                                  "clusters resize)"])
    heavy = owners[0] if owners else None
    if heavy and (_num(heavy.get("share")) or 0) >= o["hot_share"]:
        reasons.append(f"{heavy.get('kind') or 'pod'} {heavy['namespace']}/{heavy['name']} uses "
                       f"{_num(heavy.get('usage')) or 0:.2f} cores, {_pct(heavy.get('share'))} of the node's use")
        throttled = [t for t in ev.get("top") or [] if t.get("at_limit") and t.get("owner_name") == heavy["name"]]
        if throttled:
            reasons.append(f"{len(throttled)} of its container(s) sit at their CPU limit (throttled): scaling out "
                           "relieves them too; raising the limit would add load to this node")
        plan, recommend = _scale_plan(heavy, o, "CPU")
        return _result("hot_workload", reasons, plan=plan, recommend=recommend, heavy=heavy)
    accounted = sum(_num(w.get("share")) or 0 for w in owners)
    return _result(UNDETERMINED, reasons + [
        f"no workload explains it: the heaviest {'takes ' + _pct(heavy.get('share')) if heavy else 'is unknown'} "
        f"and the top {len(owners)} workloads {_pct(accounted)} of the node's use (system processes, or load the "
        "pods do not report)"], recommend=["look at the node's processes (out-of-band); add nodes if the load is "
                                           "legitimate (resize_node_pool)"])


def node_memory_cause(ev, options=None) -> dict:
    o = _opts("node_memory_pressure", options)
    done, now, threshold = _node_gate(ev, "memory")
    if done:
        return done
    threshold = threshold if threshold is not None else o["threshold"]
    node = ev["node"]["name"]
    reasons = [f"node {node} memory {_pct(now)} > {_pct(threshold)}"] + _cluster_reasons(ev, threshold)
    top = ev.get("top") or []
    leakers = [t for t in top if (t.get("trend") or {}).get("steady_rise")
               and (_num(t.get("share_of_node")) or 0) >= o["leak_min_share"]]
    if leakers:
        t = max(leakers, key=lambda x: _num(x.get("usage")) or 0)
        tr = t["trend"]
        reasons.append(f"container {t['namespace']}/{t['pod']}/{t['container']} rose steadily from {_mem(tr['first'])} "
                       f"to {_mem(tr['last'])} over {tr['span_s']:.0f} s ({_mem(tr['slope_per_min'])}/min), "
                       f"{_pct(t.get('share_of_node'))} of the node")
        if t.get("owner_kind") in ("Deployment", "StatefulSet"):
            plan = {"action": "rollout_restart", "kind": t["owner_kind"], "namespace": t["namespace"],
                    "name": t["owner_name"], "pod": t["pod"]}
        else:
            plan = None
        return _result("memory_leak", reasons, plan=plan, leaker=t,
                       recommend=["a restart frees the leaked memory for a while only: file a bug ticket with the "
                                  "memory trend (heap profiling)"]
                       + ([] if plan else [f"restart pod {t['namespace']}/{t['pod']} by hand ({t.get('owner_kind')})"]))
    oom = ev.get("oom") or []
    if oom:
        raises, seen = [], set()
        for k in oom:
            key = (k.get("owner_kind"), k.get("namespace"), k.get("owner_name"), k.get("container"))
            if key in seen or k.get("owner_kind") not in ("Deployment", "StatefulSet") or not k.get("limit"):
                continue
            seen.add(key)
            raises.append({"kind": k["owner_kind"], "namespace": k["namespace"], "name": k["owner_name"],
                           "container": k["container"], "current_memory": k["limit"],
                           "new_memory": scale_quantity(k["limit"], o["memory_factor"])})
        reasons.append(f"{len(oom)} container(s) OOMKilled on the node: "
                       + ", ".join(f"{k['namespace']}/{k['pod']}/{k['container']}" for k in oom[:3]))
        return _result("oom", reasons, plan={"action": "raise_memory_limit", "raises": raises} if raises else None,
                       recommend=[] if raises else ["the OOMKilled containers have no limit or no owner: the node "
                                                    "itself ran out of memory; add nodes or lower other workloads"])
    if _shortfall(ev, o):
        return _result(UNDETERMINED, reasons + ["most nodes are short of memory: the cluster needs more"],
                       recommend=["add nodes to the node pool (resize_node_pool, out-of-band)"])
    owners = ev.get("owners") or []
    heavy = owners[0] if owners else None
    if heavy and (_num(heavy.get("share")) or 0) >= o["hot_share"]:
        reasons.append(f"{heavy.get('kind') or 'pod'} {heavy['namespace']}/{heavy['name']} holds "
                       f"{_mem(heavy.get('usage'))}, {_pct(heavy.get('share'))} of the node's use, without a steady rise")
        plan, recommend = _scale_plan(heavy, dict(o, prefer_hpa=False), "memory")
        return _result("workload_memory_demand", reasons, plan=plan, recommend=recommend, heavy=heavy)
    return _result(UNDETERMINED, reasons + ["no leaking container, no OOM kill and no single heavy workload"],
                   recommend=["look at the node's processes and caches (out-of-band)"])


# ---------------------------------------------------------------- pod_oomkilled
def _series_for(usage, pod, container):
    for r in usage or []:
        m = r.get("metric") or {}
        if m.get("pod") == pod and (m.get("container") in (None, "", container)):
            return r.get("values") or []
    return []


def oom_cause(ev, options=None) -> dict:
    """``ev``: {workload: workload_info's workload, usage: a Prometheus range result of the
    pods' memory, kills_last_hour: OOM alerts of the target in the last hour (ledger)}."""
    o = _opts("pod_oomkilled", options)
    w = ev.get("workload") or {}
    if not w.get("exists"):
        return _result(UNDETERMINED, [f"{w.get('kind')} {w.get('namespace')}/{w.get('name')} not found"])
    oomed = [(p["name"], c["name"], c.get("restarts", 0)) for p in w.get("pods") or [] if not p.get("deleting")
             for c in p.get("containers") or []
             if "OOMKilled" in (c.get("last_terminated_reason"), c.get("terminated_reason"))]
    if not oomed:
        return _result(NO_FAULT, [f"no container of {w['kind']} {w['namespace']}/{w['name']} was OOMKilled (last "
                                  "termination of every running pod)"])
    reasons = [f"pod {p} container {c}: last terminated OOMKilled ({r} restarts)" for p, c, r in oomed[:3]]
    kills = int(_num(ev.get("kills_last_hour")) or 0)
    topts = {k: o[k] for k in ("min_rise_ratio", "min_rise_bytes", "monotonic_share")}
    trends = {(p, c): trend(_series_for(ev.get("usage"), p, c), topts) for p, c, _r in oomed}
    rising = [(k, t) for k, t in trends.items() if t["steady_rise"]]
    names = list(dict.fromkeys(c for _p, c, _r in oomed))
    if kills > o["max_kills"]:
        return _result("memory_leak", reasons + [
            f"{kills} OOMKilled alert(s) for this workload within the hour (> {o['max_kills']}): raising the limit "
            "again would only postpone the next kill; a leak is suspected"], containers=names, kills=kills,
            recommend=["enable heap profiling and investigate the leak (bug ticket); do not raise the limit again"])
    if rising:
        (p, c), t = rising[0]
        return _result("memory_leak", reasons + [
            f"pod {p} container {c}: memory rose steadily from {_mem(t['first'])} to {_mem(t['last'])} over "
            f"{t['span_s']:.0f} s ({_mem(t['slope_per_min'])}/min) before the kill"], containers=names, kills=kills,
            recommend=["enable heap profiling and investigate the leak (bug ticket)"])
    raises = []
    for c in w.get("containers") or []:
        if c.get("name") not in names:
            continue
        current = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        if not current:
            reasons.append(f"container {c['name']} has no memory limit")
            continue
        peak = max((t["max"] for (_pod, cn), t in trends.items() if cn == c["name"] and t["max"] is not None),
                   default=None)
        if peak is not None:
            try:
                reasons.append(f"container {c['name']} used up to {_mem(peak)} of its {current} limit "
                               f"({peak / quantity(current):.0%}) without a steady climb")
            except (ValueError, ZeroDivisionError):
                pass
        raises.append({"container": c["name"], "current_memory": current,
                       "new_memory": scale_quantity(current, o["memory_factor"])})
    if not raises:
        return _result(UNDETERMINED, reasons + ["no OOMKilled container has a memory limit: the node ran out of "
                                                "memory (node_memory_pressure), not the container"],
                       handover="node_memory_pressure", kills=kills)
    return _result("oom", reasons, plan={"action": "raise_memory_limit", "raises": raises}, kills=kills)


# ------------------------------------------------------------------ pvc_pending
def pvc_cause(ev, options=None) -> dict:
    o = _opts("pvc_pending", options)
    c = ev.get("claim") or {}
    what = f"PVC {c.get('namespace')}/{c.get('name')}"
    quotas_full = [q for q in ev.get("quotas") or [] if q.get("full") or q.get("would_exceed")]
    qreasons = [f"ResourceQuota {q['quota']} {q['resource']}: used {q['used']} of {q['hard']}" for q in quotas_full]
    if not c.get("exists"):
        refused = ev.get("refusals") or []
        if any(re.search(r"quota", r.get("message") or "", re.IGNORECASE) for r in refused):
            return _result("quota_exceeded", [f"{what} does not exist: its creation was refused by quota admission: "
                                              f"{refused[0]['message'][:200]}"] + qreasons,
                           plan={"action": "raise_resource_quota", "quotas": quotas_full},
                           recommend=["raise the ResourceQuota (approval needed) or free claims in the namespace; the "
                                      "StatefulSet controller retries the claim by itself afterwards"])
        return _result(UNDETERMINED, [f"{what} does not exist and no refused create names it (deleted?)"])
    phase = c.get("phase")
    if phase == "Bound":
        return _result(NO_FAULT, [f"{what} is Bound"])
    if phase == "Lost":
        return _result(UNDETERMINED, [f"{what} is Lost: its volume {c.get('volume_name')} is gone"],
                       recommend=["restore the data from backup (backup-restore.md); human only"])
    vols = ev.get("volumes") or {}
    if c.get("volume_name") and not vols.get("requested_volume_found"):
        return _result(UNDETERMINED, [f"{what} asks for PersistentVolume {c['volume_name']}, which does not exist"],
                       recommend=["recreate the volume or the claim (human only)"])
    events = ev.get("events") or []
    quota_events = [e for e in events if re.search(r"quota", e.get("message") or "", re.IGNORECASE)]
    if quota_events:
        return _result("quota_exceeded", [f"event {quota_events[0]['reason']}: {quota_events[0]['message'][:200]}"]
                       + qreasons, plan={"action": "raise_resource_quota", "quotas": quotas_full},
                       recommend=["raise the storage quota (ResourceQuota or the provider's) - approval needed"])
    how, cls = c.get("class_how"), c.get("class_name")
    classes = {s["name"]: s for s in ev.get("storage_classes") or []}
    last = [f"event {e['reason']}: {e['message'][:160]}" for e in events[:1]]
    if how == "named" and not c.get("class_exists"):
        return _result("no_storage_class", [f"{what} asks for StorageClass {cls}, which does not exist"] + last,
                       plan={"action": "create_storage_class", "storage_class": cls},
                       recommend=[f"create StorageClass {cls} (a person chooses provisioner and parameters), or "
                                  "recreate the claim with an existing class (storageClassName cannot change once set)"])
    if how == "unset":
        default = ev.get("default_class")
        fallback = o["fallback_class"] if o["fallback_class"] in classes else None
        reasons = [f"{what} names no StorageClass and the cluster has "
                   + (f"default class {default}" if default else "no default class")] + last
        if default:
            reasons.append("the PV controller assigns the default to such claims at its next resync; setting it now "
                           "is the same change")
        target = default or fallback
        if target:
            if not default:
                reasons.append(f"policy pvc_pending_storage_class names {target} for claims without a class")
            return _result("no_storage_class", reasons, plan={"action": "set_pvc_storage_class", "storage_class": target})
        return _result("no_storage_class", reasons, plan={"action": "create_storage_class", "storage_class": None},
                       recommend=["mark a StorageClass as default (storageclass.kubernetes.io/is-default-class) or "
                                  "create one; the PV controller then gives the claim that class by itself"])
    fitting = vols.get("available_fitting") or []
    stranded = [v for v in fitting if v.get("node_affinity") and not v.get("matching_nodes")]
    if fitting and len(stranded) == len(fitting):
        return _result("pv_node_affinity_mismatch", [
            f"{len(stranded)} Available PersistentVolume(s) fit {what} but their node affinity matches no node: "
            + ", ".join(v["name"] for v in stranded[:3])] + last,
            plan={"action": "recreate_pv", "volumes": [v["name"] for v in stranded]},
            recommend=["delete and recreate the PersistentVolume without the stale node affinity (data risk: human only)"])
    if how == "none":
        return _result("no_storage_class", [f'{what} asks for the empty class "" (pre-provisioned volumes only) and no '
                                            "Available PersistentVolume without a class fits it"] + last,
                       recommend=["create a fitting PersistentVolume, or recreate the claim with a StorageClass "
                                  "(an empty class cannot be changed)"])
    consumers = [x for x in ev.get("consumers") or [] if not x.get("deleting")]
    if c.get("binding_mode") == "WaitForFirstConsumer":
        if not consumers:
            return _result(NO_FAULT, [f"{what} uses StorageClass {cls} (WaitForFirstConsumer) and no pod uses it yet: "
                                      "Pending by design until a pod is scheduled"])
        unscheduled = [x for x in consumers if not x.get("scheduled")]
        if unscheduled:
            return _result(UNDETERMINED, [f"{what} waits for its first consumer, and pod {unscheduled[0]['pod']} is not "
                                          f"scheduled: {unscheduled[0].get('message') or unscheduled[0].get('reason')}"],
                           handover="replicas_mismatch")
    failed = [e for e in events if e.get("reason") == "ProvisioningFailed"]
    if failed:
        return _result(UNDETERMINED, [f"StorageClass {cls} exists but provisioning fails: {failed[0]['message'][:200]}"],
                       recommend=[f"check the provisioner {c.get('provisioner')} (its logs, credentials, capacity)"])
    return _result(UNDETERMINED, [f"{what} uses existing StorageClass {cls} (provisioner {c.get('provisioner')}) and "
                                  "no event explains the wait"] + last,
                   recommend=[f"check that provisioner {c.get('provisioner')} runs"])


# ------------------------------------------------------------ replicas_mismatch
def _waiting(pods, reasons):
    return [(p["name"], c["name"], c["waiting_reason"]) for p in pods for c in p.get("containers") or []
            if c.get("waiting_reason") in reasons]


def replicas_cause(ev, options=None) -> dict:
    _opts("replicas_mismatch", options)
    w = ev or {}
    if not w.get("exists"):
        return _result(UNDETERMINED, [f"Deployment {w.get('namespace')}/{w.get('name')} not found"])
    r = w.get("replicas") or {}
    desired, available = int(r.get("desired") or 0), int(r.get("available") or 0)
    what = f"{w.get('kind', 'Deployment')} {w['namespace']}/{w['name']}"
    pods = [p for p in w.get("pods") or [] if not p.get("deleting")]
    problem = [p for p in pods if p.get("problem")]
    mismatch_s = max([_num(p.get("age_s")) or 0 for p in problem], default=0)
    if available >= desired and w.get("rollout_complete"):
        return _result(NO_FAULT, [f"{what}: {available} of {desired} replicas available, rollout complete"])
    reasons = [f"{what}: {available} of {desired} replicas available ({len(problem)} pod(s) failing)"]
    images = _waiting(problem, IMAGE_REASONS)
    if images:
        cur = w.get("current_revision")
        reasons.append(f"pod {images[0][0]} container {images[0][1]}: {images[0][2]}")
        current_images = next((rv.get("images") for rv in w.get("revisions") or [] if rv.get("revision") == cur), None)
        good = next((rv for rv in w.get("revisions") or [] if cur and rv.get("revision", 0) < cur
                     and int(rv.get("ready_replicas") or 0) > 0 and rv.get("images") != current_images), None)
        if good:
            reasons.append(f"revision {good['revision']} ({', '.join(good['images'])}) still has "
                           f"{good['ready_replicas']} Ready pod(s): known good")
            plan = {"action": "rollout_undo", "from_revision": cur, "to_revision": good["revision"],
                    "from_images": current_images, "to_images": good["images"]}
            return _result("image_pull", reasons, plan=plan, mismatch_s=mismatch_s)
        return _result("image_pull", reasons + ["no earlier revision with Ready pods to roll back to"],
                       mismatch_s=mismatch_s, recommend=[
                           f"fix the image name/tag ({', '.join(current_images or [])}) or the pull credentials, then "
                           "set_image to the correct image"])
    crash = _waiting(problem, CRASH_REASONS)
    restarting = [p for p in problem if (p.get("restarts") or 0) > 0]
    if crash or restarting:
        if crash:
            reasons.append(f"pod {crash[0][0]} container {crash[0][1]}: {crash[0][2]}")
        else:
            reasons.append(f"pod {restarting[0]['name']} restarted {restarting[0]['restarts']} times")
        return _result("crashloop", reasons, handover="pod_crashloop", mismatch_s=mismatch_s,
                       recommend=["the crash-looping pods are the pod_crashloop procedure's (runbook section 1); it "
                                  "runs for the PodCrashLoopBackOff alert of this Deployment"])
    sched = [e for e in w.get("events") or [] if e.get("reason") == "FailedScheduling"]
    pending = [p for p in problem if p.get("phase") == "Pending"]
    short = sorted({m.group(1).lower() for e in sched for m in _INSUFFICIENT.finditer(e.get("message") or "")})
    if pending and short:
        req = {c["name"]: (c.get("resources") or {}).get("requests") or {} for c in w.get("containers") or []}
        reasons.append(f"{len(pending)} pod(s) Pending: the scheduler reports Insufficient {', '.join(short)} "
                       f"({sched[0]['message'][:200]})")
        reasons.append("requests per pod: " + "; ".join(f"{n} {v}" for n, v in req.items()))
        return _result("insufficient_capacity", reasons, mismatch_s=mismatch_s, insufficient=short, requests=req,
                       recommend=["add nodes (resize_node_pool, out-of-band) or reduce the pods' resource requests "
                                  "(reduce_resource_requests: a person decides, lower requests risk OOM kills and "
                                  "throttling)"])
    if pending and sched:
        return _result(UNDETERMINED, reasons + [f"{len(pending)} pod(s) Pending: {sched[0]['message'][:200]}"],
                       mismatch_s=mismatch_s, recommend=["check the pods' node selectors, affinity and tolerations"])
    if not problem:
        return _result(UNDETERMINED, reasons + ["no failing pod: the rollout is still progressing or the "
                                                "ReplicaSet cannot create pods (quota, admission)"], mismatch_s=mismatch_s)
    return _result(UNDETERMINED, reasons + [f"pod {problem[0]['name']} is {problem[0].get('phase')} and not Ready "
                                            "without a known reason"], mismatch_s=mismatch_s)


# ---------------------------------------------------------- deployment_observed
def rollout_outcome(ev, options=None) -> dict:
    _opts("deployment_observed", options)
    w = ev or {}
    if not w.get("exists"):
        return _result(UNDETERMINED, [f"Deployment {w.get('namespace')}/{w.get('name')} not found (deleted?)"])
    what = f"Deployment {w['namespace']}/{w['name']}"
    cur = w.get("current_revision")
    revs = w.get("revisions") or []
    now_rev = next((r for r in revs if r.get("revision") == cur), None)
    prev = next((r for r in revs if cur and r.get("revision", 0) < cur), None)
    change = {"revision": cur, "previous_revision": (prev or {}).get("revision"),
              "images": (now_rev or {}).get("images"), "previous_images": (prev or {}).get("images"),
              "image_changed": bool(prev and now_rev and prev.get("images") != now_rev.get("images")),
              "revision_age_s": (now_rev or {}).get("age_s")}
    r = w.get("replicas") or {}
    reasons = [f"{what} revision {cur}" + (f" (images {', '.join(change['images'] or [])})" if change["images"] else "")
               + f": {r.get('updated', 0)} updated, {r.get('available', 0)} available of {r.get('desired', 0)}"]
    if change["image_changed"]:
        reasons.append(f"images changed from revision {change['previous_revision']}: "
                       f"{', '.join(change['previous_images'] or [])} -> {', '.join(change['images'] or [])}")
    progressing = next((c for c in w.get("conditions") or [] if c.get("type") == "Progressing"), {})
    if w.get("rollout_complete"):
        return _result("rollout_complete", reasons + [f"Progressing: {progressing.get('reason') or '-'}"], change=change)
    problem = [p for p in w.get("pods") or [] if p.get("problem") and not p.get("deleting")]
    bad = _waiting(problem, IMAGE_REASONS + CRASH_REASONS)
    if progressing.get("status") == "False" or progressing.get("reason") == "ProgressDeadlineExceeded" or bad:
        why = f"Progressing {progressing.get('status')} ({progressing.get('reason')})" if progressing else ""
        if bad:
            why = (why + "; " if why else "") + f"pod {bad[0][0]} container {bad[0][1]}: {bad[0][2]}"
        return _result("rollout_stalled", reasons + [why], change=change,
                       recommend=["the new revision does not become available: see the DeploymentReplicasMismatch / "
                                  "PodCrashLoopBackOff procedures; roll back if it does not recover"])
    return _result("rollout_in_progress", reasons + [f"Progressing: {progressing.get('reason') or 'unknown'}"],
                   change=change)


# ------------------------------------------------------------------ hpa_scaled
def hpa_outcome(ev, options=None) -> dict:
    o = _opts("hpa_scaled", options)
    h = ev.get("hpa") or {}
    if not h.get("exists"):
        return _result(UNDETERMINED, [f"HPA {h.get('namespace')}/{h.get('name')} not found (deleted?)"])
    hist = ev.get("history") or {}
    cause = ev.get("cause") or {}
    points = hist.get("current_replicas") or []
    direction = None
    if len(points) >= 2:
        direction = "up" if points[-1][1] > points[-2][1] else "down"
    last = f", last change {direction} from {points[-2][1]:g} to {points[-1][1]:g}" if direction else ""
    reasons = [f"HPA {h['namespace']}/{h['name']}: {h.get('current_replicas')} replicas (min {h.get('min_replicas')}, "
               f"max {h.get('max_replicas')}){last}"]
    reasons.append(f"cause: {cause.get('reason') or cause.get('by')}")
    if cause.get("limited"):
        reasons.append(f"ScalingLimited: {cause['limited']} (at its bounds)")
    changes = _num(hist.get("changes"))
    details = {"direction": direction, "changes": changes, "by": cause.get("by"), "window": hist.get("window")}
    if changes is not None and changes > o["max_changes"]:
        reasons.append(f"{changes:g} replica changes in {hist.get('window')} (> {o['max_changes']}): scaling too often")
        target = _num(h.get("cpu_target"))
        plan, recommend = None, []
        if target is None:
            recommend.append("the HPA has no CPU utilisation target: tune its metrics or behavior.scaleDown."
                             "stabilizationWindowSeconds by hand")
        elif target >= o["target_max"]:
            recommend.append(f"the CPU target is already {target:g} % (>= {o['target_max']} %): widen "
                             "behavior.scaleDown.stabilizationWindowSeconds or fix the load pattern by hand")
        else:
            plan = {"action": "tune_hpa", "current_target": int(target),
                    "new_target": int(min(target + o["target_step"], o["target_max"]))}
        if cause.get("by") == "outside_hpa":
            recommend.append("the changes do not come from the HPA (it cannot read metrics): find who scales the "
                             "target by hand and fix the metrics pipeline (metrics-server)")
        return _result("scaling_too_frequent", reasons, plan=plan, recommend=recommend, **details)
    recommend = []
    if cause.get("by") == "outside_hpa":
        recommend.append("the HPA cannot read its metrics (ScalingActive=False): check metrics-server / the metrics "
                         "API; the replica change came from outside the HPA")
    return _result("expected_scaling", reasons + ([f"{changes:g} change(s) in {hist.get('window')} (<= "
                                                   f"{o['max_changes']})"] if changes is not None else []),
                   recommend=recommend, **details)


# ------------------------------------------------------------ configmap_changed
def configmap_outcome(ev, options=None) -> dict:
    """``ev``: {configmap, consumers (configmap_info), previous: {content, resource_version, at}
    or None (the last recorded version), change_records: the ledger's record_change actions for
    the ConfigMap and other procedures' config actions on its consumers in the window (a list
    of action rows, or a count)}."""
    o = _opts("configmap_changed", options)
    cm = ev.get("configmap") or {}
    what = f"ConfigMap {cm.get('namespace')}/{cm.get('name')}"
    if not cm.get("exists"):
        return _result(UNDETERMINED, [f"{what} does not exist any more (deleted): its consumers fail at their next "
                                      "start"], recommend=["restore the ConfigMap or remove its references"])
    prev = ev.get("previous") or None
    old, new = (prev or {}).get("content"), cm.get("content") or {}
    diff = None
    if old and isinstance(old.get("keys"), dict):
        o_keys, n_keys = old["keys"], new.get("keys") or {}
        diff = {"added": sorted(set(n_keys) - set(o_keys)), "removed": sorted(set(o_keys) - set(n_keys)),
                "changed": sorted(k for k in set(o_keys) & set(n_keys) if o_keys[k] != n_keys[k])}
        if old.get("hash") == new.get("hash"):
            return _result(NO_FAULT, [f"{what} content {new.get('hash')} is unchanged since it was last recorded "
                                      f"(resourceVersion {prev.get('resource_version')})"], diff=diff)
    lw = cm.get("last_write") or {}
    consumers = ev.get("consumers") or []
    if diff is not None:
        keys = diff["added"] + diff["removed"] + diff["changed"]
        reasons = [f"{what} changed since resourceVersion {prev.get('resource_version')}: "
                   + "; ".join(f"{k} {', '.join(v)}" for k, v in diff.items() if v)]
    else:
        keys = lw.get("keys") or []
        reasons = [f"{what}: no earlier version recorded; the last writer owns key(s) {', '.join(keys) or '-'}"]
    reasons.append(f"last written by {lw.get('manager') or '?'} ({lw.get('operation') or '?'}) at {lw.get('time') or '?'}")
    known = [m for m in o["known_managers"] if m]
    records = ev.get("change_records") or []
    if not isinstance(records, list):  # a count
        records = [{}] * int(_num(records) or 0)
    intended = (lw.get("manager") in known) or bool(records)
    if records:
        named = [f"{r.get('action')} on {r.get('target_key')}" for r in records if r.get("action")]
        reasons.append("the ledger records the change: " + (", ".join(named[:3]) or f"{len(records)} change record(s)"))
    else:
        reasons.append(f"writer {lw.get('manager')} is " + ("" if lw.get("manager") in known else "not ")
                       + "a known deployer (configmap_changed_known_managers) and no change record exists")
    write_t = _ts(lw.get("time"))
    stale = [c for c in consumers if not c.get("refreshes")]
    restart = []
    for c in stale:
        started = _ts(c.get("oldest_pod_started"))
        if c.get("kind") in ("Deployment", "StatefulSet") and (write_t is None or started is None or started <= write_t):
            restart.append({"kind": c["kind"], "name": c["name"], "via": c["via"]})
    if stale:
        reasons.append("read through " + ", ".join(f"{c['kind']}/{c['name']} ({'+'.join(c['via'])})" for c in stale)
                       + ": variables and subPath files never refresh")
    fresh = [c for c in consumers if c.get("refreshes")]
    if fresh:
        reasons.append("mounted as files (refresh on their own): " + ", ".join(f"{c['kind']}/{c['name']}" for c in fresh))
    details = {"diff": diff, "keys": keys, "writer": lw, "stale_consumers": stale, "to_restart": restart}
    if not intended:
        return _result("unexpected_change", reasons, recommend=[
            f"confirm with the owner of {what} that the change was intended; nothing was restarted"], **details)
    plan = {"action": "rollout_restart", "workloads": restart} if restart and o["restart"] else None
    recommend = []
    if restart and not o["restart"]:
        recommend.append("restart " + ", ".join(f"{c['kind']}/{c['name']}" for c in restart)
                         + " to load the new values (configmap_changed_restart_consumers is off)")
    return _result("intentional_change", reasons, plan=plan, recommend=recommend, **details)


CAUSE_FUNCTIONS = {
    "node_cpu_pressure": node_cpu_cause,
    "node_memory_pressure": node_memory_cause,
    "pod_oomkilled": oom_cause,
    "pvc_pending": pvc_cause,
    "replicas_mismatch": replicas_cause,
    "deployment_observed": rollout_outcome,
    "hpa_scaled": hpa_outcome,
    "configmap_changed": configmap_outcome,
}


def diagnose(evidence, procedure, options=None) -> dict:
    if procedure not in CAUSE_FUNCTIONS:
        raise ValueError(f"no warning/info diagnosis rules for {procedure!r}; known: {sorted(CAUSE_FUNCTIONS)}")
    out = CAUSE_FUNCTIONS[procedure](evidence or {}, options)
    out["procedure"] = procedure
    return out
