# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node and container resource usage: the evidence of the node pressure procedures
(module node_usage_info) and the trend maths the memory procedures share.

Usage comes from Prometheus (node_exporter for the node, cAdvisor for containers, as the
runbook's Grafana queries read them); who owns a pod, its limits and its last termination
come from the Kubernetes API (pods on the node by field selector, the owning workloads by
name, the namespace's HorizontalPodAutoscalers). Nothing is listed cluster-wide.

The pure functions (``trend``, ``duration_above``, ``owner_shares``) take plain data and
are unit tested without Prometheus or a cluster.
"""
from __future__ import annotations

import math
import re
import time

from ansible_collections.octollm.alert_response.plugins.module_utils.diagnosis import onset_of_latest_run, quantity
from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ApiException, api_error, to_dict
from ansible_collections.octollm.alert_response.plugins.module_utils.prometheus import (
    PrometheusClient,
    PrometheusError,
    normalize,
)
from ansible_collections.octollm.alert_response.plugins.module_utils.workloads import owner_of

RESOURCES = ("cpu", "memory")
# node_exporter reports `instance`; the node name is node_uname_info's `nodename` (the
# shipped rules join the same way, without needing their recording rule here).
NODE_JOIN = ('* on (instance) group_left (node) max by (instance, node) '
             '(label_replace(node_uname_info, "node", "$1", "nodename", "(.*)"))')
TREND_DEFAULTS = {"min_rise_ratio": 0.2, "min_rise_bytes": 64 * 2 ** 20, "monotonic_share": 0.8, "min_points": 4}


class UsageError(Exception):
    """An error message that names the object and the next step."""


def prometheus_spec() -> dict:
    """Prometheus connection options for modules that also take the Kubernetes ones
    (whose ``validate_certs`` and ``host`` would collide with prometheus_query's names)."""
    return dict(
        prometheus_url=dict(type="str", required=True),
        prometheus_bearer_token=dict(type="str", no_log=True),
        prometheus_validate_certs=dict(type="bool", default=True),
        prometheus_timeout=dict(type="float", default=30),
    )


def prometheus_client(params) -> PrometheusClient:
    return PrometheusClient(params["prometheus_url"], bearer_token=params.get("prometheus_bearer_token"),
                            validate_certs=params.get("prometheus_validate_certs", True),
                            timeout=params.get("prometheus_timeout") or 30)


def label_value(value) -> str:
    """A string safe inside a PromQL double-quoted label matcher."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def regex_alternatives(values) -> str:
    """``a|b|c`` for a PromQL ``=~"..."`` matcher: regex metacharacters escaped with a
    backslash that is itself escaped for the double-quoted string; never matches everything."""
    out = "|".join(re.sub(r'([.^$*+?()\[\]{}|\\])', r"\\\\\1", str(v)) for v in values if v)
    return out or "^$"


# ----------------------------------------------------------------------- pure maths
def _points(samples):
    out = []
    for t, v in samples or []:
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            out.append((float(t), x))
    return out


def trend(samples, options=None) -> dict:
    """Shape of a memory series (``[[t, "value"], ...]``, a Prometheus range).

    ``steady_rise`` is the runbook's "steadily increasing memory over time": the series
    rose by at least ``min_rise_ratio`` of its first value and ``min_rise_bytes``, and at
    least ``monotonic_share`` of the steps did not go down (a restart or a GC makes a
    sawtooth, which is not a leak). ``slope_per_min`` is the least-squares slope.
    """
    o = dict(TREND_DEFAULTS, **{k: v for k, v in (options or {}).items() if v is not None})
    pts = _points(samples)
    out = {"points": len(pts), "first": None, "last": None, "min": None, "max": None, "rise": 0.0,
           "slope_per_min": 0.0, "monotonic_share": None, "span_s": 0.0, "steady_rise": False}
    if not pts:
        return out
    values = [v for _t, v in pts]
    out.update(first=values[0], last=values[-1], min=min(values), max=max(values),
               rise=values[-1] - values[0], span_s=pts[-1][0] - pts[0][0])
    if len(pts) >= 2:
        n = len(pts)
        mt, mv = sum(t for t, _v in pts) / n, sum(values) / n
        den = sum((t - mt) ** 2 for t, _v in pts)
        out["slope_per_min"] = (sum((t - mt) * (v - mv) for t, v in pts) / den * 60.0) if den else 0.0
        tolerance = 0.01 * max(abs(out["max"]), 1.0)
        steps = [b - a for a, b in zip(values, values[1:])]
        out["monotonic_share"] = sum(1 for d in steps if d >= -tolerance) / len(steps)
    base = max(abs(out["first"]), 1.0)
    out["steady_rise"] = bool(
        len(pts) >= o["min_points"] and out["rise"] >= o["min_rise_bytes"] and out["rise"] / base >= o["min_rise_ratio"]
        and out["slope_per_min"] > 0 and (out["monotonic_share"] or 0) >= o["monotonic_share"])
    return out


def duration_above(samples, threshold) -> dict:
    """How long the latest run above ``threshold`` has lasted (``since_start``: the run
    covers the whole range, so it is at least that long)."""
    run = onset_of_latest_run(samples, threshold, above=True)
    return {"threshold": threshold, "above_now": run["beyond_now"], "duration_s": round(run["duration_s"], 1),
            "since_start": run["since_start"], "onset": run["onset"]}


def owner_shares(containers: list, used: float) -> list:
    """Usage summed per owning workload, heaviest first, with its share of ``used`` (what
    the node uses in total, in the same unit)."""
    owners = {}
    for c in containers:
        key = (c.get("owner_kind"), c.get("namespace"), c.get("owner_name") or c.get("pod"))
        o = owners.setdefault(key, {"kind": key[0], "namespace": key[1], "name": key[2], "usage": 0.0,
                                    "pods_on_node": set(), "containers": 0})
        o["usage"] += float(c.get("usage") or 0)
        o["pods_on_node"].add(c.get("pod"))
        o["containers"] += 1
    out = []
    for o in owners.values():
        o["pods_on_node"] = len(o["pods_on_node"])
        o["share"] = round(o["usage"] / used, 4) if used else None
        out.append(o)
    return sorted(out, key=lambda o: -o["usage"])


# ------------------------------------------------------------------ node evidence
class NodeUsage:
    """What node_usage_info returns for one node and one resource."""

    def __init__(self, clients, prom: PrometheusClient, node: str, resource: str, now=None):
        if resource not in RESOURCES:
            raise UsageError(f"resource {resource!r} is not supported: use cpu or memory")
        self.c, self.prom, self.node, self.resource = clients, prom, node, resource
        self.now = time.time() if now is None else now
        self.queries = []

    # -------------------------------------------------------------- Prometheus
    def _query(self, promql, range_s=None, step=None):
        self.queries.append(promql)
        try:
            if range_s:
                data, _warnings = self.prom.query_range(promql, self.now - range_s, self.now, step)
            else:
                data, _warnings = self.prom.query(promql, self.now)
        except PrometheusError as exc:
            raise UsageError(f"Prometheus query for node {self.node} failed: {exc}; check prometheus_url and that "
                             "node_exporter/cAdvisor series are scraped") from None
        return normalize(data)[1]

    def node_expr(self, window, instance=None) -> str:
        sel = f',instance="{label_value(instance)}"' if instance else ""
        if self.resource == "cpu":
            inner = f'(1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"{sel}}}[{window}])))'
        else:
            isel = "{" + sel.lstrip(",") + "}" if sel else ""
            inner = f"(1 - node_memory_MemAvailable_bytes{isel} / node_memory_MemTotal_bytes{isel})"
        return inner if instance else f"{inner} {NODE_JOIN}"

    def cluster(self, window, threshold) -> tuple:
        """Usage of every node now: (nodes, instance of ours)."""
        rows = self._query(self.node_expr(window))
        nodes = sorted(({"node": r["metric"].get("node"), "instance": r["metric"].get("instance"),
                         "usage": _float(r["value"][1])} for r in rows if r["metric"].get("node")),
                       key=lambda n: n["node"])
        ours = next((n for n in nodes if n["node"] == self.node), None)
        others = [n for n in nodes if n["node"] != self.node and n["usage"] is not None]
        summary = {"nodes": nodes, "total": len(nodes),
                   "above": sum(1 for n in nodes if (n["usage"] or 0) > threshold),
                   "others_mean": round(sum(n["usage"] for n in others) / len(others), 4) if others else None,
                   "others_with_headroom": [n["node"] for n in others if n["usage"] <= threshold]}
        return summary, ours

    def history(self, window, instance, history_s, thresholds) -> dict:
        step = max(2, int(history_s / 240))
        rows = self._query(f"max({self.node_expr(window, instance)})", range_s=history_s, step=step)
        samples = rows[0]["values"] if rows else []
        return {"range_s": history_s, "step_s": step, "points": len(samples),
                **{name: duration_above(samples, th) for name, th in thresholds.items()}}

    def containers(self, window) -> list:
        node = label_value(self.node)
        if self.resource == "cpu":
            q = f'sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{{node="{node}",' \
                f'container!="",container!="POD"}}[{window}]))'
        else:
            q = f'max by (namespace, pod, container) (container_memory_working_set_bytes{{node="{node}",' \
                f'container!="",container!="POD"}})'
        return [{"namespace": r["metric"].get("namespace"), "pod": r["metric"].get("pod"),
                 "container": r["metric"].get("container"), "usage": _float(r["value"][1]) or 0.0}
                for r in self._query(q)]

    def trends(self, pods, trend_s, options) -> dict:
        if not pods or not trend_s:
            return {}
        node = label_value(self.node)
        q = f'max by (namespace, pod, container) (container_memory_working_set_bytes{{node="{node}",' \
            f'pod=~"{regex_alternatives(pods)}",container!="",container!="POD"}})'
        rows = self._query(q, range_s=trend_s, step=max(2, int(trend_s / 120)))
        return {(r["metric"].get("namespace"), r["metric"].get("pod"), r["metric"].get("container")):
                trend(r.get("values"), options) for r in rows}

    # -------------------------------------------------------------- Kubernetes
    def read_node(self) -> dict | None:
        try:
            return to_dict(self.c.core.read_node(self.node))
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise UsageError(api_error(exc, f"cannot read node {self.node}")) from None

    def pods(self) -> list:
        try:
            return to_dict(self.c.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.node}")).get("items") or []
        except ApiException as exc:
            raise UsageError(api_error(exc, f"cannot list the pods on node {self.node}")) from None

    def workload(self, kind, namespace, name) -> dict | None:
        call = {"Deployment": self.c.apps.read_namespaced_deployment,
                "StatefulSet": self.c.apps.read_namespaced_stateful_set}.get(kind)
        if call is None:
            return None
        try:
            return to_dict(call(name, namespace))
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise UsageError(api_error(exc, f"cannot read {kind} {namespace}/{name}")) from None

    def hpas(self, namespace) -> list:
        try:
            return to_dict(self.c.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace)).get("items") or []
        except ApiException as exc:
            raise UsageError(api_error(exc, f"cannot list the HorizontalPodAutoscalers of {namespace}")) from None

    # -------------------------------------------------------------- assembly
    def collect(self, window="5m", threshold=0.8, high=0.9, history_s=3600, top=10, owners=3, trend_s=0,
                trend_options=None, oom_window_s=3600) -> dict:
        node = self.read_node()
        if node is None:
            return {"node": {"name": self.node, "exists": False}, "resource": self.resource}
        capacity = _capacity(node, self.resource)
        cluster, ours = self.cluster(window, threshold)
        now_usage = (ours or {}).get("usage")
        hist = self.history(window, ours["instance"], history_s,
                            {"above_threshold": threshold, "above_high": high}) if ours else {}
        pods = self.pods()
        by_name = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
        rows = self.containers(window)
        for r in rows:
            pod = by_name.get((r["namespace"], r["pod"]))
            r.update(_container_facts(pod, r["container"], self.resource))
            r["share_of_node"] = round(r["usage"] / capacity, 4) if capacity else None
            # throttled (CPU) or about to be OOMKilled (memory): within 5 % of the limit
            r["at_limit"] = bool(r["limit_value"]) and r["usage"] >= 0.95 * r["limit_value"]
        rows.sort(key=lambda r: -r["usage"])
        used = (now_usage or 0) * capacity if capacity else sum(r["usage"] for r in rows)
        heavy = owner_shares(rows, used)
        top_rows = rows[:top]
        if self.resource == "memory" and trend_s:
            found = self.trends([r["pod"] for r in top_rows], trend_s, trend_options)
            for r in top_rows:
                r["trend"] = found.get((r["namespace"], r["pod"], r["container"]))
        owners_out = [self._owner_detail(o) for o in heavy[:owners]]
        oom = _oom_kills(pods, self.now, oom_window_s)
        ev = {"node": _node_facts(node, capacity), "resource": self.resource,
              "usage": {"now": now_usage, "threshold": threshold, "high": high, "capacity": capacity,
                        "used": round(used, 4) if used else used, **hist},
              "cluster": cluster, "top": top_rows, "owners": owners_out, "oom": oom,
              "pods_on_node": len(pods), "queries": self.queries}
        ev["summary"] = summarize(ev)
        return ev

    def _owner_detail(self, o) -> dict:
        out = {k: o[k] for k in ("kind", "namespace", "name", "usage", "share", "pods_on_node", "containers")}
        out.update(exists=None, replicas=None, hpa=None, containers_spec=[])
        obj = self.workload(o["kind"], o["namespace"], o["name"]) if o["kind"] in ("Deployment", "StatefulSet") else None
        if obj is None:
            return out
        spec, st = obj.get("spec") or {}, obj.get("status") or {}
        out.update(exists=True, replicas=spec.get("replicas", 1), ready=st.get("readyReplicas", 0),
                   containers_spec=[{"name": c.get("name"), "resources": c.get("resources") or {}}
                                    for c in (spec.get("template") or {}).get("spec", {}).get("containers") or []])
        for h in self.hpas(o["namespace"]):
            ref = (h.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("kind") == o["kind"] and ref.get("name") == o["name"]:
                hs = h.get("spec") or {}
                out["hpa"] = {"name": h["metadata"]["name"], "min_replicas": hs.get("minReplicas", 1),
                              "max_replicas": hs.get("maxReplicas"),
                              "current_replicas": (h.get("status") or {}).get("currentReplicas")}
                break
        return out


def _float(value):
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _capacity(node: dict, resource: str):
    st = node.get("status") or {}
    value = (st.get("allocatable") or {}).get(resource) or (st.get("capacity") or {}).get(resource)
    try:
        return quantity(value) if value is not None else None
    except ValueError:
        return None


def _node_facts(node: dict, capacity) -> dict:
    conds = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    return {"name": node["metadata"]["name"], "exists": True, "ready": conds.get("Ready", "Unknown"),
            "unschedulable": bool((node.get("spec") or {}).get("unschedulable")), "capacity": capacity,
            "pressure": [k for k, v in conds.items() if k != "Ready" and v == "True"]}


def _container_facts(pod, container, resource) -> dict:
    """Owner, limit and request of one container (from its pod, None when unknown)."""
    if pod is None:
        return {"owner_kind": None, "owner_name": None, "limit": None, "request": None, "limit_value": None,
                "request_value": None}
    owner = owner_of(pod) or {}
    spec = next((c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == container), {})
    res = spec.get("resources") or {}
    limit, request = (res.get("limits") or {}).get(resource), (res.get("requests") or {}).get(resource)
    return {"owner_kind": owner.get("kind"), "owner_name": owner.get("name"), "limit": limit, "request": request,
            "limit_value": _quantity(limit), "request_value": _quantity(request)}


def _quantity(value):
    try:
        return quantity(value) if value is not None else None
    except ValueError:
        return None


def _oom_kills(pods, now, window_s) -> list:
    """Containers on the node whose last (or current) termination is OOMKilled and
    finished within the window."""
    out = []
    for p in pods:
        meta = p["metadata"]
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            for where in ("lastState", "state"):
                term = ((cs.get(where) or {}).get("terminated")) or {}
                if term.get("reason") != "OOMKilled":
                    continue
                finished = term.get("finishedAt")
                age = _age(finished, now)
                if age is not None and age > window_s:
                    continue
                owner = owner_of(p) or {}
                spec = next((c for c in (p.get("spec") or {}).get("containers") or [] if c.get("name") == cs.get("name")),
                            {})
                out.append({"namespace": meta["namespace"], "pod": meta["name"], "container": cs.get("name"),
                            "limit": ((spec.get("resources") or {}).get("limits") or {}).get("memory"),
                            "finished_at": finished, "age_s": age, "restarts": int(cs.get("restartCount") or 0),
                            "owner_kind": owner.get("kind"), "owner_name": owner.get("name")})
                break
    return out


def _age(value, now):
    import datetime as dt  # noqa: PLC0415 - only for parsing
    if not value:
        return None
    try:
        return round(now - dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp(), 1)
    except ValueError:
        return None


def _fmt(resource, value) -> str:
    if value is None:
        return "?"
    if resource == "cpu":
        return f"{value:.2f} cores"
    return f"{value / 2 ** 30:.1f}Gi" if value >= 2 ** 30 else f"{value / 2 ** 20:.0f}Mi"


def summarize(ev) -> dict:
    u, res = ev["usage"], ev["resource"]
    heavy = ev["owners"][0] if ev["owners"] else None
    now = "unknown" if u["now"] is None else f"{u['now']:.0%}"
    text = f"node {ev['node']['name']} {res} at {now} ({ev['cluster']['above']}/{ev['cluster']['total']} nodes above " \
           f"{u['threshold']:.0%})"
    if heavy:
        text += f"; heaviest {heavy['kind'] or 'pod'} {heavy['namespace']}/{heavy['name']} uses " \
                f"{_fmt(res, heavy['usage'])}" + (f" ({heavy['share']:.0%} of the node's use)" if heavy['share'] else "")
    if ev["oom"]:
        text += f"; {len(ev['oom'])} OOMKilled container(s)"
    return {"text": text, "heaviest": heavy and f"{heavy['kind']}/{heavy['namespace']}/{heavy['name']}"}
