# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HorizontalPodAutoscalers: evidence of a scaling event (module hpa_info) and the two
HPA changes of the runbook (module hpa_action): ``enable_hpa`` (kubectl autoscale
--cpu-percent=70 --min=2 --max=10) and ``tune_hpa`` (the CPU utilisation target; the
runbook names the autoscaling/v1 field targetCPUUtilizationPercentage, which is
``spec.metrics[].resource.target.averageUtilization`` in autoscaling/v2).
"""
from __future__ import annotations

import copy
import time

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ApiException, api_error, to_dict
from ansible_collections.octollm.alert_response.plugins.module_utils.prometheus import PrometheusError, normalize
from ansible_collections.octollm.alert_response.plugins.module_utils.usage import label_value

MAX_EVENTS = 15


class HpaError(Exception):
    """An error message that names the object and the next step."""


# --------------------------------------------------------------------- pure parts
def metric_targets(spec: dict) -> list:
    out = []
    for m in (spec or {}).get("metrics") or []:
        kind = m.get("type")
        body = m.get({"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
                      "Object": "object", "External": "external"}.get(kind, ""), {}) or {}
        target = body.get("target") or {}
        name = body.get("name") or (body.get("metric") or {}).get("name")
        value = target.get("averageUtilization", target.get("averageValue", target.get("value")))
        out.append({"type": kind, "name": name, "target_type": target.get("type"), "target": value})
    return out


def cpu_target(spec: dict):
    """The CPU averageUtilization target of a Resource metric, or None."""
    for m in (spec or {}).get("metrics") or []:
        r = m.get("resource") or {}
        if m.get("type") == "Resource" and r.get("name") == "cpu" and (r.get("target") or {}).get("type") == "Utilization":
            return (r.get("target") or {}).get("averageUtilization")
    return None


def with_cpu_target(spec: dict, value: int) -> dict:
    """A copy of the HPA spec with the CPU utilisation target set to ``value``."""
    new = copy.deepcopy(spec)
    for m in new.get("metrics") or []:
        r = m.get("resource") or {}
        if m.get("type") == "Resource" and r.get("name") == "cpu" and (r.get("target") or {}).get("type") == "Utilization":
            r["target"]["averageUtilization"] = int(value)
            return new
    raise HpaError("the HPA has no CPU utilisation target to tune; change its metrics by hand")


def duration_s(text) -> float | None:
    """A PromQL duration (30m, 1h30m, 90s) in seconds; None when it cannot be read."""
    import re  # noqa: PLC0415 - only here
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", str(text or ""))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(float(n) * unit[u] for n, u in parts)


def change_points(samples) -> list:
    """[[t, value], ...] reduced to the samples where the value changed (plus the first)."""
    out, last = [], None
    for t, v in samples or []:
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if last is None or x != last:
            out.append([float(t), x])
            last = x
    return out


def scale_cause(events: list, conditions: list) -> dict:
    """Why the replica count changed, from the HPA's events and conditions."""
    rescale = [e for e in events if e.get("reason") == "SuccessfulRescale"]
    cond = {c.get("type"): c for c in conditions}
    active = cond.get("ScalingActive") or {}
    limited = cond.get("ScalingLimited") or {}
    if rescale:
        return {"by": "hpa", "reason": rescale[0].get("message"), "scaling_active": active.get("status"),
                "limited": limited.get("status") == "True" and limited.get("reason")}
    if active.get("status") == "False":
        return {"by": "outside_hpa", "scaling_active": "False",
                "reason": f"no SuccessfulRescale event and ScalingActive=False ({active.get('reason')}: "
                          f"{str(active.get('message') or '')[:160]}): the HPA cannot compute a replica count, so the "
                          "change came from outside it (a manual scale or another controller) and the HPA follows it",
                "limited": False}
    return {"by": "unknown", "reason": "no SuccessfulRescale event left (events expire after an hour)",
            "scaling_active": active.get("status"), "limited": limited.get("status") == "True" and limited.get("reason")}


# ------------------------------------------------------------------- evidence
class Autoscaler:
    def __init__(self, clients, namespace, name, now=None):
        self.c, self.namespace, self.name = clients, namespace, name
        self.now = time.time() if now is None else now

    def what(self):
        return f"HorizontalPodAutoscaler {self.namespace}/{self.name}"

    def read(self) -> dict | None:
        try:
            return to_dict(self.c.autoscaling.read_namespaced_horizontal_pod_autoscaler(self.name, self.namespace))
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise HpaError(api_error(exc, f"cannot read {self.what()}")) from None

    def events(self) -> list:
        try:
            items = to_dict(self.c.core.list_namespaced_event(
                self.namespace, field_selector=f"involvedObject.kind=HorizontalPodAutoscaler,"
                                               f"involvedObject.name={self.name}")).get("items") or []
        except ApiException as exc:
            raise HpaError(api_error(exc, f"cannot list the events of {self.what()}")) from None
        out = [{"type": e.get("type"), "reason": e.get("reason"), "message": str(e.get("message") or "")[:300],
                "count": e.get("count") or 1, "last_seen": e.get("lastTimestamp") or e.get("eventTime")
                or (e.get("metadata") or {}).get("creationTimestamp")} for e in items]
        return sorted(out, key=lambda e: str(e["last_seen"] or ""), reverse=True)[:MAX_EVENTS]

    def target(self, ref) -> dict:
        kind, name = ref.get("kind"), ref.get("name")
        call = {"Deployment": self.c.apps.read_namespaced_deployment,
                "StatefulSet": self.c.apps.read_namespaced_stateful_set}.get(kind)
        out = {"kind": kind, "name": name, "exists": None, "replicas": None}
        if call is None:
            return out
        try:
            obj = to_dict(call(name, self.namespace))
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return dict(out, exists=False)
            raise HpaError(api_error(exc, f"cannot read {kind} {self.namespace}/{name} (scaled by {self.what()})")) \
                from None
        return dict(out, exists=True, replicas=(obj.get("spec") or {}).get("replicas"),
                    ready=(obj.get("status") or {}).get("readyReplicas", 0))

    def history(self, prom, window, history_s, target_name) -> dict:
        """Change count over ``window`` (the runbook's flapping measure) and the change points of
        the HPA's current replicas and the target's spec replicas over ``history_s``."""
        ns, hpa = label_value(self.namespace), label_value(self.name)
        sel = f'namespace="{ns}",horizontalpodautoscaler="{hpa}"'
        out = {"window": window, "window_s": duration_s(window), "changes": None, "range_s": history_s,
               "current_replicas": [], "target_replicas": []}
        try:
            changes_q = f"max(changes(kube_horizontalpodautoscaler_status_current_replicas{{{sel}}}[{window}]))"
            data, _warnings = prom.query(changes_q, self.now)
            out["changes"] = normalize(data)[2]
            step = max(2, int(history_s / 240))
            current_q = f"max(kube_horizontalpodautoscaler_status_current_replicas{{{sel}}})"
            data, _warnings = prom.query_range(current_q, self.now - history_s, self.now, step)
            rows = normalize(data)[1]
            out["current_replicas"] = change_points(rows[0]["values"]) if rows else []
            if target_name:
                target_q = f'max(kube_deployment_spec_replicas{{namespace="{ns}",deployment="{label_value(target_name)}"}})'
                data, _warnings = prom.query_range(target_q, self.now - history_s, self.now, step)
                rows = normalize(data)[1]
                out["target_replicas"] = change_points(rows[0]["values"]) if rows else []
        except PrometheusError as exc:
            out["error"] = f"Prometheus: {exc}"
        return out

    def collect(self, prom=None, window="30m", history_s=3600) -> dict:
        obj = self.read()
        if obj is None:
            return {"hpa": {"namespace": self.namespace, "name": self.name, "exists": False}, "events": [],
                    "summary": {"text": f"{self.what()} does not exist"}}
        spec, st = obj.get("spec") or {}, obj.get("status") or {}
        conditions = [{k: c.get(k) for k in ("type", "status", "reason", "message", "lastTransitionTime")}
                      for c in st.get("conditions") or []]
        ref = spec.get("scaleTargetRef") or {}
        events = self.events()
        ev = {"hpa": {"namespace": self.namespace, "name": self.name, "exists": True,
                      "min_replicas": spec.get("minReplicas", 1), "max_replicas": spec.get("maxReplicas"),
                      "metrics": metric_targets(spec), "cpu_target": cpu_target(spec),
                      "behavior": spec.get("behavior"), "current_replicas": st.get("currentReplicas"),
                      "desired_replicas": st.get("desiredReplicas"), "last_scale_time": st.get("lastScaleTime"),
                      "current_metrics": st.get("currentMetrics") or [], "conditions": conditions},
              "target": self.target(ref), "events": events, "cause": scale_cause(events, conditions)}
        if prom is not None:
            ev["history"] = self.history(prom, window, history_s, ref.get("name") if ref.get("kind") == "Deployment"
                                         else None)
        ev["summary"] = summarize(ev)
        return ev


def summarize(ev) -> dict:
    h, t = ev["hpa"], ev["target"]
    hist = ev.get("history") or {}
    text = f"HPA {h['namespace']}/{h['name']} {h['current_replicas']} replicas (min {h['min_replicas']}, max " \
           f"{h['max_replicas']}, CPU target {h['cpu_target']}%) on {t['kind']}/{t['name']}"
    if hist.get("changes") is not None:
        text += f"; {hist['changes']:g} change(s) in {hist['window']}"
    text += f"; {ev['cause']['by'].replace('_', ' ')}"
    return {"text": text}


# ---------------------------------------------------------------------- actions
def plan(clients, namespace, name, action, target_kind=None, target_name=None, min_replicas=None, max_replicas=None,
         cpu_utilization=None) -> dict:
    """(changed, body or patch, before, after, msg) for enable (create) or set_cpu_target."""
    a = Autoscaler(clients, namespace, name)
    cur = a.read()
    if action == "enable":
        want = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": target_name},
                "minReplicas": int(min_replicas), "maxReplicas": int(max_replicas),
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": int(cpu_utilization)}}}]}
        if cur is not None:
            same = (cur.get("spec") or {}).get("scaleTargetRef", {}).get("name") == target_name
            return {"changed": False, "before": cur.get("spec"), "after": cur.get("spec"),
                    "msg": f"{a.what()} already exists" + ("" if same else " for another target: left alone")}
        body = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"app.kubernetes.io/managed-by": "octollm-alert-response"}}, "spec": want}
        return {"changed": True, "create": body, "before": None, "after": want,
                "msg": f"created {a.what()} for {target_kind}/{target_name}: CPU {cpu_utilization} %, "
                       f"min {min_replicas}, max {max_replicas}"}
    if cur is None:
        raise HpaError(f"{a.what()} not found; check the alert's horizontalpodautoscaler label")
    spec = cur.get("spec") or {}
    before = cpu_target(spec)
    if before == int(cpu_utilization):
        return {"changed": False, "before": {"cpu_target": before}, "after": {"cpu_target": before},
                "msg": f"{a.what()} already targets {before} % CPU"}
    new = with_cpu_target(spec, cpu_utilization)
    return {"changed": True, "patch": {"spec": {"metrics": new["metrics"]}}, "before": {"cpu_target": before},
            "after": {"cpu_target": int(cpu_utilization)},
            "msg": f"set the CPU target of {a.what()} from {before} % to {int(cpu_utilization)} %"}


def apply(clients, namespace, name, planned) -> None:
    try:
        if planned.get("create"):
            clients.autoscaling.create_namespaced_horizontal_pod_autoscaler(namespace, planned["create"])
        elif planned.get("patch"):
            clients.autoscaling.patch_namespaced_horizontal_pod_autoscaler(name, namespace, planned["patch"])
    except ApiException as exc:
        raise HpaError(api_error(exc, f"cannot write HorizontalPodAutoscaler {namespace}/{name}")) from None
