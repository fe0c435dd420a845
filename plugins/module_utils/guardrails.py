# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guardrails: the one check every role runs before a mutating action.

``check(request, ledger=None, now=None) -> Verdict`` is pure and deterministic given the
request, the ledger's contents and ``now``; its only side effect is one row in the
ledger's ``actions`` table per verdict (allowed or refused: refusals are never silent),
skipped when ``request["check_mode"]`` is true. No Ansible import.

Request (a dict)::

    action        str, required: the shared vocabulary (ACTIONS, matrix 6.2)
    target_key    str, required: the incident target, e.g. deployment/octollm-prod/api,
                  node/node-000001, database/octollm-prod/octollm (the budget key)
    namespace     str: where the mutation happens; default: the namespace of target_key
    procedure     str: the role asking (pod_crashloop ...), for procedure_modes
    incident_id   int: the ledger incident (recorded; per-incident limits)
    mode          observe | remediate (default observe)
    check_mode    bool: Ansible --check; implies observe and writes nothing
    params        dict: the action's parameters (PARAMS below)
    policy        dict: see DEFAULT_POLICY; missing or None keys take the default

PARAMS read per action: raise_memory_limit/raise_redis_memory/raise_db_memory_limit:
current_memory, new_memory (Kubernetes quantities, "512Mi"); raise_cpu_limit:
current_cpu, new_cpu ("500m"); raise_db_pool_size: current_pool_size, new_pool_size;
raise_call_timeout: current_timeout_s, new_timeout_s; raise_cache_ttl: current_ttl_s,
new_ttl_s; scale_out/scale_in: current_replicas, new_replicas; enable_hpa: min_replicas,
max_replicas; cordon_node/drain_node/delete_node: total_nodes, not_ready_nodes,
ready_nodes (Ready and schedulable), target_ready (the target is one of ready_nodes),
nodes_error (why the counts are missing); terminate_backend: application_name,
query_age_s (the youngest query that would go; alias min_query_age), backend_type
(pg_stat_activity), superuser (bool); application_name may be a list (all must be
allow-listed).

Rules, in the order they are tried (the first refusal decides; RULES has the variable
each one reads). Before the mode: invalid_request, unknown_action, not_mutating
(allowed: tickets, change records, escalation, the deployment freeze flag),
human_only, out_of_band. Then observe_mode refuses everything when the effective mode
is observe -- the remediate rules still run and their outcome is in ``would_be``.
Remediate: protected_namespace, not_allow_listed, production_namespace,
not_client_backend, query_too_young, wrong_direction, cap_<kind>_ratio,
cap_<kind>_ceiling (kind: memory, cpu, pool_size, timeout, ttl), cap_replicas,
cap_min_replicas, cluster_health_unknown, cluster_health_gate, min_ready_nodes,
incident_limit, budget_unverifiable, budget_exhausted; otherwise ok.

Caps refuse rather than clamp: the guardrail never changes what the role asked for.
A cap refusal carries ``adjusted_params`` -- the request's params with the largest
value the policy allows -- and names it in the reason; a role that wants it asks
again with those params (a second, recorded verdict).
"""
from __future__ import annotations

import copy
import fnmatch
import re
import time
from dataclasses import asdict, dataclass, replace

MODES = ("observe", "remediate")

# Action classes (matrix 6.2/6.3). "api": guarded by the generic rules; "allow_list":
# destructive or approval-class, needs an explicit alert_response_allow entry;
# "human_only": needs a value or a decision only a person has; "out_of_band": the
# Kubernetes API cannot do it (SSH, cloud console); "record": no change to the managed
# system (tracker, ledger flags, notifications).
ACTIONS = {
    **dict.fromkeys((
        "rollout_restart", "rollout_undo", "delete_pod", "set_image", "raise_memory_limit",
        "raise_cpu_limit", "scale_out", "scale_in", "enable_hpa", "tune_hpa", "raise_db_pool_size",
        "set_db_pool_timeouts", "raise_call_timeout", "raise_cache_ttl", "raise_redis_memory",
        "cordon_node", "uncordon_node", "restart_certmanager", "trigger_cert_renewal",
        "set_pvc_storage_class"), "api"),
    **dict.fromkeys((
        "drain_node", "delete_node", "terminate_backend", "restart_redis", "raise_db_memory_limit",
        "create_index_concurrently", "switch_to_staging_issuer", "repoint_db_host"), "allow_list"),
    **dict.fromkeys((
        "correct_config", "reduce_resource_requests", "raise_db_max_connections", "scale_db_vertically",
        "deploy_pgbouncer", "replace_dns_credentials", "request_rate_limit_increase", "manual_cert_install",
        "create_storage_class", "raise_resource_quota", "recreate_pv", "restore_from_backup",
        "contact_provider"), "human_only"),
    **dict.fromkeys((
        "node_disk_cleanup", "restart_kubelet", "restart_node_network", "resize_node_pool",
        "open_http_firewall"), "out_of_band"),
    **dict.fromkeys(("create_ticket", "block_deployments", "record_change", "escalate"), "record"),
}
NODE_GATED = ("cordon_node", "drain_node", "delete_node")

DEFAULT_POLICY = {
    "protected_namespaces": ["kube-system", "kube-public", "cert-manager"],
    "action_budget": 3,
    "budget_window_s": 3600,
    "max_notready_share": 0.30,
    "min_ready_nodes": 2,
    "memory_ceiling": "8Gi",
    "cpu_ceiling": "4",
    "max_replicas": 10,
    "min_replicas": 1,
    "raise_ratios": {"memory": 2.0, "cpu": 2.0, "pool_size": 2.0, "timeout": 2.0, "ttl": 3.0},
    "allow": [],
    "procedure_modes": {},
    "production_namespaces": ["octollm-prod"],
    "terminate_min_query_age_s": 300,
    "per_incident_limits": {"rollout_undo": 1},
    "require_ledger": True,
}


def variable(key: str) -> str:
    """The role variable that sets a policy key (alert_response_<key>)."""
    return f"alert_response_{key}"


# rule id -> (policy key or request field it reads, what it refuses)
RULES = {
    "ok": (None, "every rule passed: act"),
    "not_mutating": (None, "no change to the managed system: always allowed"),
    "invalid_request": (None, "a field or parameter is missing or malformed"),
    "unknown_action": (None, "the action is not in the shared vocabulary"),
    "human_only": (None, "needs a value or decision only a person has"),
    "out_of_band": (None, "the Kubernetes API cannot do it (SSH, cloud console)"),
    "observe_mode": ("mode", "observe mode, --check or a procedure_modes override"),
    "protected_namespace": ("protected_namespaces", "the namespace is protected"),
    "not_allow_listed": ("allow", "a destructive/approval action without a matching allow entry"),
    "production_namespace": ("production_namespaces", "switch_to_staging_issuer in production"),
    "not_client_backend": (None, "terminate_backend on a non-client or superuser backend"),
    "query_too_young": ("terminate_min_query_age_s", "terminate_backend on a query younger than the minimum"),
    "wrong_direction": (None, "a raise that does not raise, a scale_in that does not lower"),
    "cap_memory_ratio": ("raise_ratios", "memory raised more than x2 in one action"),
    "cap_memory_ceiling": ("memory_ceiling", "memory above the ceiling"),
    "cap_cpu_ratio": ("raise_ratios", "CPU raised more than x2 in one action"),
    "cap_cpu_ceiling": ("cpu_ceiling", "CPU above the ceiling"),
    "cap_pool_size_ratio": ("raise_ratios", "DB pool size raised more than x2"),
    "cap_timeout_ratio": ("raise_ratios", "call timeout raised more than x2"),
    "cap_ttl_ratio": ("raise_ratios", "cache TTL raised more than x3"),
    "cap_replicas": ("max_replicas", "replicas (or HPA max) above max_replicas"),
    "cap_min_replicas": ("min_replicas", "scale_in (or HPA min) below min_replicas"),
    "cluster_health_unknown": (None, "node counts unavailable for a node-affecting action"),
    "cluster_health_gate": ("max_notready_share", "more than 30 % of nodes NotReady"),
    "min_ready_nodes": ("min_ready_nodes", "the action would leave too few Ready nodes"),
    "incident_limit": ("per_incident_limits", "the action already ran its allowed times in this incident"),
    "budget_unverifiable": ("require_ledger", "no ledger to count the action budget"),
    "budget_exhausted": ("action_budget", "the target had its budget of actions in the window"),
}


class GuardrailError(ValueError):
    """The policy itself is malformed (a configuration error, not a refusal)."""


class _Refusal(Exception):
    """Raised inside the rule chain; carries the deciding rule."""

    def __init__(self, rule, reason, adjusted_params=None):
        super().__init__(reason)
        self.rule, self.reason, self.adjusted_params = rule, reason, adjusted_params


@dataclass(frozen=True)
class Verdict:
    """The outcome of ``check``. ``as_dict()`` is what the module returns."""

    allowed: bool
    action: str
    mode: str
    rule: str
    reason: str
    target_key: str | None = None
    adjusted_params: dict | None = None
    would_be: dict | None = None
    action_id: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- quantities
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*([a-zA-Z]*)\s*$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def parse_quantity(value) -> float:
    """A Kubernetes quantity ("512Mi", "500m", "1.5", 2) as a float (bytes, cores)."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.match(str(value))
    if not match or match.group(3) not in _SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {value!r} (e.g. 512Mi, 1Gi, 500m, 2)")
    number = float(match.group(1)) * (10 ** int(match.group(2)) if match.group(2) else 1)
    return number * _SUFFIX[match.group(3)]


def format_memory(num_bytes: float) -> str:
    """Bytes as the shortest exact quantity: 1073741824 -> 1Gi, 1e9 -> 1G."""
    num_bytes = int(round(num_bytes))
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki", "E", "P", "T", "G", "M", "k"):
        unit = int(_SUFFIX[suffix])
        if num_bytes and num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)


def format_cpu(cores: float) -> str:
    """Cores as a quantity: 2.0 -> 2, 1.5 -> 1500m."""
    milli = int(round(cores * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _whole(value: float):
    """Numbers for adjusted_params: an int when whole (pool sizes are counts)."""
    return int(value) if float(value).is_integer() else value


# kind -> (actions, current/new param names, parser, formatter for adjusted_params,
# ceiling policy key). Pool sizes round down: the largest *allowed* count.
_RAISES = {
    "memory": (("raise_memory_limit", "raise_redis_memory", "raise_db_memory_limit"),
               ("current_memory", "new_memory"), parse_quantity, format_memory, "memory_ceiling"),
    "cpu": (("raise_cpu_limit",), ("current_cpu", "new_cpu"), parse_quantity, format_cpu, "cpu_ceiling"),
    "pool_size": (("raise_db_pool_size",), ("current_pool_size", "new_pool_size"), float, int, None),
    "timeout": (("raise_call_timeout",), ("current_timeout_s", "new_timeout_s"), float, _whole, None),
    "ttl": (("raise_cache_ttl",), ("current_ttl_s", "new_ttl_s"), float, _whole, None),
}
_RAISE_OF = {action: kind for kind, spec in _RAISES.items() for action in spec[0]}


# ---------------------------------------------------------------------------- policy
_ALLOW_KEYS = ("action", "namespace", "target", "procedure", "application", "applications", "min_query_age_s")


def _allow_entries(entries) -> list:
    out = []
    for i, entry in enumerate(entries or []):
        if isinstance(entry, str):
            entry = {"action": entry}
        if not isinstance(entry, dict) or not entry.get("action"):
            raise GuardrailError(f"{variable('allow')}[{i}] must be an action name or a dict with 'action'; "
                                 f"got {entry!r}")
        unknown = sorted(set(entry) - set(_ALLOW_KEYS))
        if unknown:
            raise GuardrailError(f"{variable('allow')}[{i}] has unknown keys {unknown}; use {list(_ALLOW_KEYS)}")
        if entry["action"] not in ACTIONS:
            raise GuardrailError(f"{variable('allow')}[{i}]: unknown action {entry['action']!r}")
        entry = dict(entry)
        apps = entry.pop("applications", None) or []
        apps = [apps] if isinstance(apps, str) else list(apps)
        if entry.get("application"):
            apps.append(entry.pop("application"))
        entry["applications"] = [str(a) for a in apps]
        out.append(entry)
    return out


def normalize_policy(policy=None) -> dict:
    """DEFAULT_POLICY merged with ``policy`` (None values keep the default), validated."""
    policy = {k: v for k, v in (policy or {}).items() if v is not None}
    unknown = sorted(set(policy) - set(DEFAULT_POLICY))
    if unknown:
        raise GuardrailError(f"unknown policy keys {unknown}; known: {sorted(DEFAULT_POLICY)}")
    out = copy.deepcopy(DEFAULT_POLICY)
    out["raise_ratios"].update(policy.pop("raise_ratios", {}) or {})
    out["per_incident_limits"].update(policy.pop("per_incident_limits", {}) or {})
    out.update(copy.deepcopy(policy))
    try:
        for key in ("action_budget", "budget_window_s", "min_ready_nodes", "max_replicas", "min_replicas",
                    "terminate_min_query_age_s"):
            out[key] = int(out[key])
            if out[key] < 0:
                raise ValueError(f"{key} must be >= 0")
        out["max_notready_share"] = float(out["max_notready_share"])
        out["memory_ceiling_value"] = parse_quantity(out["memory_ceiling"])
        out["cpu_ceiling_value"] = parse_quantity(out["cpu_ceiling"])
        out["raise_ratios"] = {k: float(v) for k, v in out["raise_ratios"].items()}
        out["per_incident_limits"] = {k: int(v) for k, v in out["per_incident_limits"].items()}
    except (TypeError, ValueError) as exc:
        raise GuardrailError(f"invalid guardrail policy: {exc}") from None
    if not 0 <= out["max_notready_share"] <= 1:
        raise GuardrailError(f"{variable('max_notready_share')} must be a fraction 0.0-1.0, "
                             f"got {out['max_notready_share']}")
    bad_modes = {k: v for k, v in out["procedure_modes"].items() if v not in MODES}
    if bad_modes:
        raise GuardrailError(f"{variable('procedure_modes')} values must be one of {MODES}; got {bad_modes}")
    for key in ("protected_namespaces", "production_namespaces"):
        out[key] = [str(n) for n in out[key]]
    out["allow"] = _allow_entries(out["allow"])
    return out


# ---------------------------------------------------------------------------- request
def _namespace_of(target_key):
    parts = str(target_key or "").split("/")
    return parts[1] if len(parts) == 3 else None


def _request(raw) -> dict:
    """Validated request fields; raises _Refusal(invalid_request/unknown_action)."""
    if not isinstance(raw, dict):
        raise _Refusal("invalid_request", f"the request must be a dict, got {type(raw).__name__}")
    req = {
        "action": raw.get("action"), "target_key": raw.get("target_key"),
        "procedure": raw.get("procedure"), "incident_id": raw.get("incident_id"),
        "mode": raw.get("mode") or "observe", "check_mode": bool(raw.get("check_mode")),
        "params": raw.get("params") or {},
    }
    req["namespace"] = raw.get("namespace") or _namespace_of(req["target_key"])
    if not req["action"] or not isinstance(req["action"], str):
        raise _Refusal("invalid_request", "the request names no action")
    if not req["target_key"] or not isinstance(req["target_key"], str):
        raise _Refusal("invalid_request", f"{req['action']}: the request names no target_key")
    if req["action"] not in ACTIONS:
        raise _Refusal("unknown_action", f"{req['action']!r} is not in the shared action vocabulary "
                                         "(runbook matrix 6.2); ask a person to do it")
    if req["mode"] not in MODES:
        raise _Refusal("invalid_request", f"mode must be one of {MODES}, got {req['mode']!r} "
                                          f"({variable('mode')})")
    if not isinstance(req["params"], dict):
        raise _Refusal("invalid_request", f"{req['action']}: params must be a dict")
    if req["incident_id"] is not None:
        try:
            req["incident_id"] = int(req["incident_id"])
        except (TypeError, ValueError):
            raise _Refusal("invalid_request", f"incident_id must be an integer, got {req['incident_id']!r}") from None
    return req


def _effective_mode(req, policy):
    """(mode, why): --check beats the procedure override, which beats the global mode."""
    if req["check_mode"]:
        return "observe", "check mode (--check) implies observe"
    override = policy["procedure_modes"].get(req["procedure"])
    if override:
        return override, f"{variable('procedure_modes')}.{req['procedure']} is {override}"
    return req["mode"], f"{variable('mode')} is {req['mode']}"


# ---------------------------------------------------------------------------- rules
def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on", "y")
    return bool(value)


def _number(params, key, action, parse=float):
    value = params.get(key)
    if value is None or value == "":
        raise _Refusal("invalid_request", f"{action}: params.{key} is required")
    try:
        return parse(value)
    except (TypeError, ValueError):
        raise _Refusal("invalid_request", f"{action}: params.{key} is not a number/quantity: {value!r}") from None


def _applications(params) -> list:
    apps = params.get("application_name")
    return [str(a) for a in apps] if isinstance(apps, (list, tuple)) else ([str(apps)] if apps else [])


def _entry_matches(entry, req) -> bool:
    ns, apps = req["namespace"], _applications(req["params"])
    if entry.get("namespace") and not (ns and fnmatch.fnmatchcase(ns, entry["namespace"])):
        return False
    if entry.get("target") and not fnmatch.fnmatchcase(req["target_key"], entry["target"]):
        return False
    if entry.get("procedure") and entry["procedure"] != req["procedure"]:
        return False
    return not entry["applications"] or bool(apps) and all(a in entry["applications"] for a in apps)


def _allow_matches(req, policy) -> list:
    return [e for e in policy["allow"] if e["action"] == req["action"] and _entry_matches(e, req)]


def _rule_protected(req, policy, ctx):
    ns = req["namespace"]
    if not ns or ns not in policy["protected_namespaces"]:
        return
    # the only way in: an allow entry naming this action and this very namespace
    if any(e.get("namespace") == ns for e in _allow_matches(req, policy)):
        return
    raise _Refusal("protected_namespace",
                   f"{req['action']} on {req['target_key']}: namespace {ns} is protected "
                   f"({variable('protected_namespaces')}); act by hand, or add an {variable('allow')} entry "
                   f"{{action: {req['action']}, namespace: {ns}}}")


def _rule_allow_list(req, policy, ctx):
    if ACTIONS[req["action"]] != "allow_list":
        return
    entries = _allow_matches(req, policy)
    if req["action"] == "terminate_backend":
        apps = ", ".join(_applications(req["params"])) or "<application_name>"
        if [e for e in entries if e["applications"]]:
            return
        raise _Refusal("not_allow_listed",
                       f"terminate_backend of application(s) {apps} on {req['target_key']} needs an "
                       f"{variable('allow')} entry naming them, e.g. "
                       f"{{action: terminate_backend, applications: [{apps}]}}")
    if not entries:
        raise _Refusal("not_allow_listed",
                       f"{req['action']} on {req['target_key']} is destructive and no {variable('allow')} entry "
                       f"matches; add e.g. {{action: {req['action']}, target: '{req['target_key']}'}} or act by hand")


def _rule_production(req, policy, ctx):
    ns = req["namespace"]
    if req["action"] == "switch_to_staging_issuer" and ns in policy["production_namespaces"]:
        raise _Refusal("production_namespace",
                       f"switch_to_staging_issuer in {ns}: staging certificates make browsers warn, never in "
                       f"production ({variable('production_namespaces')})")


def _rule_terminate(req, policy, ctx):
    if req["action"] != "terminate_backend":
        return
    p = req["params"]
    btype = p.get("backend_type")
    if (btype is not None and btype != "client backend") or _truthy(p.get("superuser")):
        raise _Refusal("not_client_backend",
                       f"terminate_backend on {req['target_key']}: backend is {btype or 'a superuser session'}; "
                       "only client backends of non-superusers are terminated (never replication/autovacuum)")
    # query_age_s: the youngest query that would go (min_query_age of postgres_terminate_backends)
    if p.get("query_age_s") is None and p.get("min_query_age") is not None:
        p = {**p, "query_age_s": p["min_query_age"]}
    age = _number(p, "query_age_s", "terminate_backend")
    entries = [e for e in _allow_matches(req, policy) if e["applications"]]
    entry_min = min((int(e.get("min_query_age_s") or 0) for e in entries), default=0)
    need = max(policy["terminate_min_query_age_s"], entry_min)
    if age < need:
        raise _Refusal("query_too_young",
                       f"terminate_backend on {req['target_key']}: the query has run {age:g} s, less than {need} s "
                       f"({variable('terminate_min_query_age_s')} or the allow entry's min_query_age_s)")


def _rule_raise(req, policy, ctx):
    kind = _RAISE_OF.get(req["action"])
    if kind is None:
        return
    (cur_key, new_key), parse, fmt, ceiling_key = _RAISES[kind][1:]
    action, p = req["action"], req["params"]
    cur, new = _number(p, cur_key, action, parse), _number(p, new_key, action, parse)
    if cur <= 0:
        raise _Refusal("invalid_request", f"{action}: params.{cur_key} must be > 0, got {p[cur_key]!r}")
    if new <= cur:
        raise _Refusal("wrong_direction", f"{action} on {req['target_key']}: {p[new_key]} is not above "
                                          f"{p[cur_key]}; this action only raises")
    ratio = policy["raise_ratios"].get(kind, 2.0)
    ceiling = policy[f"{ceiling_key}_value"] if ceiling_key else None
    largest = cur * ratio if ceiling is None else min(cur * ratio, ceiling)
    adjusted = {**p, new_key: fmt(largest)} if largest > cur else None
    hint = (f"the largest allowed is {fmt(largest)}" if adjusted else
            f"{p[cur_key]} is already at the ceiling: escalate")
    if new > cur * ratio * (1 + 1e-9):
        raise _Refusal(f"cap_{kind}_ratio",
                       f"{action} on {req['target_key']}: {p[cur_key]} -> {p[new_key]} is x{new / cur:.3g}, more "
                       f"than x{ratio:g} per action ({variable('raise_ratios')}.{kind}); {hint}", adjusted)
    if ceiling is not None and new > ceiling:
        raise _Refusal(f"cap_{kind}_ceiling",
                       f"{action} on {req['target_key']}: {p[new_key]} is above the ceiling "
                       f"{policy[ceiling_key]} ({variable(ceiling_key)}); {hint}", adjusted)


def _rule_replicas(req, policy, ctx):
    action, p, target = req["action"], req["params"], req["target_key"]
    top, floor = policy["max_replicas"], policy["min_replicas"]
    as_int = int
    if action in ("scale_out", "scale_in"):
        cur, new = _number(p, "current_replicas", action, as_int), _number(p, "new_replicas", action, as_int)
        if (action == "scale_out" and new <= cur) or (action == "scale_in" and new >= cur):
            raise _Refusal("wrong_direction", f"{action} on {target}: {cur} -> {new} goes the wrong way")
        if action == "scale_out" and new > top:
            raise _Refusal("cap_replicas", f"scale_out on {target}: {new} replicas is above {top} "
                                           f"({variable('max_replicas')}); the largest allowed is {top}",
                           {**p, "new_replicas": top} if top > cur else None)
        if action == "scale_in" and new < floor:
            raise _Refusal("cap_min_replicas", f"scale_in on {target}: {new} replicas is below {floor} "
                                               f"({variable('min_replicas')}); the smallest allowed is {floor}",
                           {**p, "new_replicas": floor} if floor < cur else None)
    elif action == "enable_hpa":
        low, high = _number(p, "min_replicas", action, as_int), _number(p, "max_replicas", action, as_int)
        if low > high:
            raise _Refusal("invalid_request", f"enable_hpa on {target}: min_replicas {low} > max_replicas {high}")
        if high > top:
            raise _Refusal("cap_replicas", f"enable_hpa on {target}: max_replicas {high} is above {top} "
                                           f"({variable('max_replicas')})", {**p, "max_replicas": top})
        if low < floor:
            raise _Refusal("cap_min_replicas", f"enable_hpa on {target}: min_replicas {low} is below {floor} "
                                               f"({variable('min_replicas')})", {**p, "min_replicas": floor})


def _rule_nodes(req, policy, ctx):
    if req["action"] not in NODE_GATED:
        return
    p, target = req["params"], req["target_key"]
    try:
        total, not_ready, ready = (int(p[k]) for k in ("total_nodes", "not_ready_nodes", "ready_nodes"))
    except (KeyError, TypeError, ValueError):
        total = 0
    if p.get("nodes_error") or total <= 0:
        raise _Refusal("cluster_health_unknown",
                       f"{req['action']} on {target}: node counts unavailable "
                       f"({p.get('nodes_error') or 'params total_nodes/not_ready_nodes/ready_nodes missing'}); "
                       "no node is cordoned or drained blind")
    share = not_ready / total
    if share > policy["max_notready_share"]:
        raise _Refusal("cluster_health_gate",
                       f"{req['action']} on {target}: {not_ready} of {total} nodes NotReady ({share:.0%} > "
                       f"{policy['max_notready_share']:.0%}, {variable('max_notready_share')}); the cluster is "
                       "failing as a whole: escalate instead of moving pods")
    after = ready - (1 if _truthy(p.get("target_ready")) else 0)
    if after < policy["min_ready_nodes"]:
        raise _Refusal("min_ready_nodes",
                       f"{req['action']} on {target}: it would leave {after} Ready schedulable nodes, fewer than "
                       f"{policy['min_ready_nodes']} ({variable('min_ready_nodes')})")


ACTION_FAILED_UNCHANGED = "failed"


def action_outcome(result) -> str | None:
    """What a recorded action's result says, for the ledger's actions.result: "failed" (it
    failed and changed nothing), "failed_after_change", "changed", "ok" (nothing to change, or a
    ticket), "not_run" (skipped: refused or observe); None when the result says none of this.

    Two shapes are understood: a task result (failed/changed/skipped) and the procedures'
    summary of an action (allowed/ok/changed)."""
    if not isinstance(result, dict):
        return None
    if "ok" in result and "allowed" in result:  # a procedure's summary of the action
        if not result["allowed"]:
            return "not_run"
        failed = not result["ok"]
    elif result.get("skipped"):
        return "not_run"
    elif {"failed", "changed"} & set(result):
        failed = bool(result.get("failed"))
    else:
        return None
    if failed:
        return "failed_after_change" if result.get("changed") else ACTION_FAILED_UNCHANGED
    return "changed" if result.get("changed") else "ok"


def _rule_incident_limit(req, policy, ctx):
    limit = policy["per_incident_limits"].get(req["action"])
    ledger = ctx["ledger"]
    if limit is None or req["incident_id"] is None or ledger is None:
        return
    # an allowed action that failed before changing anything (the API server gone, a conflict)
    # did not run: a rerun may try it again. One that failed after a change, or whose result
    # was never recorded (the run died), counts.
    used = sum(1 for row in ledger.actions(incident_id=req["incident_id"])
               if row["action"] == req["action"] and row["verdict"] == "allowed" and row["mode"] == "remediate"
               and row.get("result") != ACTION_FAILED_UNCHANGED)
    if used >= limit:
        raise _Refusal("incident_limit",
                       f"{req['action']} already ran {used} time(s) in incident {req['incident_id']} (limit {limit}, "
                       f"{variable('per_incident_limits')}.{req['action']}); it did not help: escalate")


def _rule_budget(req, policy, ctx):
    ledger, now = ctx["ledger"], ctx["now"]
    if ledger is None:
        if policy["require_ledger"]:
            raise _Refusal("budget_unverifiable",
                           f"{req['action']} on {req['target_key']}: no ledger to count the action budget; "
                           f"configure the ledger (or set {variable('require_ledger')}: false)")
        return
    window, budget = policy["budget_window_s"], policy["action_budget"]
    since = now - window
    used = ledger.count_actions(req["target_key"], since)
    if used >= budget:
        times = [r["at"] for r in ledger.actions(target_key=req["target_key"])
                 if r["at"] >= since and r["verdict"] == "allowed" and r["mode"] == "remediate"]
        free_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(times) + window)) if times else "later"
        raise _Refusal("budget_exhausted",
                       f"{req['action']} on {req['target_key']}: {used} remediating action(s) in the last {window} s "
                       f"already ({variable('action_budget')} = {budget}); the next is possible after {free_at}, "
                       "or raise the budget; repeated fixes that do not hold need a person")


_REMEDIATE_RULES = (_rule_protected, _rule_allow_list, _rule_production, _rule_terminate, _rule_raise,
                    _rule_replicas, _rule_nodes, _rule_incident_limit, _rule_budget)


def _evaluate(req, policy, ledger, now) -> dict:
    """The remediate-mode outcome: {allowed, rule, reason, adjusted_params}."""
    ctx = {"ledger": ledger, "now": now}
    try:
        for rule in _REMEDIATE_RULES:
            rule(req, policy, ctx)
    except _Refusal as refusal:
        return {"allowed": False, "rule": refusal.rule, "reason": refusal.reason,
                "adjusted_params": refusal.adjusted_params}
    return {"allowed": True, "rule": "ok", "reason": f"{req['action']} on {req['target_key']}: every guardrail passed",
            "adjusted_params": None}


# ---------------------------------------------------------------------------- entry point
def _precheck(req):
    """Verdict fields decided by the action class alone, or None."""
    action, target = req["action"], req["target_key"]
    cls = ACTIONS[action]
    if cls == "record":
        return {"allowed": True, "mode": "record", "rule": "not_mutating",
                "reason": f"{action} changes nothing in the managed system: always allowed"}
    if cls == "human_only":
        return {"allowed": False, "rule": "human_only",
                "reason": f"{action} on {target} needs a value or decision only a person has: "
                          "recorded as a recommendation; escalate"}
    if cls == "out_of_band":
        return {"allowed": False, "rule": "out_of_band",
                "reason": f"{action} on {target} cannot be done through the Kubernetes API (SSH or cloud "
                          "console): recorded as a recommendation; escalate"}
    return None


def check(request, ledger=None, now=None) -> Verdict:
    """Decide whether ``request`` may act now; record the verdict in ``ledger``.

    Raises GuardrailError for a malformed policy and LedgerError when the ledger
    cannot be read or written; every other problem is a refusal.
    """
    now = time.time() if now is None else float(now)
    raw = request if isinstance(request, dict) else {}
    policy = normalize_policy(raw.get("policy"))
    try:
        req = _request(request)
    except _Refusal as refusal:
        mode = raw.get("mode") if raw.get("mode") in MODES else "observe"
        verdict = Verdict(False, str(raw.get("action") or "-"), mode, refusal.rule, refusal.reason,
                          str(raw.get("target_key") or "-"))
        params = raw.get("params") if isinstance(raw.get("params"), dict) else {}
        return _record(verdict, ledger, now, raw.get("incident_id"), params, bool(raw.get("check_mode")))
    mode, why = _effective_mode(req, policy)
    fixed = _precheck(req)
    if fixed is not None:
        verdict = Verdict(action=req["action"], target_key=req["target_key"], **{"mode": mode, **fixed})
    else:
        would = _evaluate(req, policy, ledger, now)
        if mode == "observe":
            verdict = Verdict(False, req["action"], "observe", "observe_mode",
                              f"observe mode ({why}): not acting; in remediate mode the guardrails would "
                              f"{'allow it' if would['allowed'] else 'refuse it'} ({would['rule']}: {would['reason']})",
                              req["target_key"], would_be=would)
        else:
            verdict = Verdict(would["allowed"], req["action"], mode, would["rule"], would["reason"],
                              req["target_key"], adjusted_params=would["adjusted_params"])
    incident_id = req["incident_id"]
    return _record(verdict, ledger, now, incident_id, req["params"], req["check_mode"])


def _record(verdict, ledger, now, incident_id, params, check_mode) -> Verdict:
    if ledger is None or check_mode:
        return verdict
    try:
        incident_id = int(incident_id) if incident_id is not None else None
    except (TypeError, ValueError):
        incident_id = None
    action_id = ledger.record_action(verdict.target_key, verdict.action, verdict.mode,
                                     "allowed" if verdict.allowed else "refused", incident_id=incident_id,
                                     params=params, rule=verdict.rule, reason=verdict.reason, now=now)
    return replace(verdict, action_id=action_id)
