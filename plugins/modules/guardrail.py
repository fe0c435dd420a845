#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: guardrail
short_description: Ask the guardrails whether a mutating action may run, and record the verdict
version_added: 0.1.0
description:
  - The check every role runs before it changes anything. It returns a verdict (allowed or
    refused, the deciding rule and a sentence naming the variable to change) and records it
    in the ledger's actions table. Refusals are recorded too, so they are never silent.
  - It never fails on a refusal and never changes the managed system; the calling role decides
    what to do (act, escalate, record a recommendation). C(changed) is always V(false), because
    the ledger row is journal, not a change.
  - For C(cordon_node), C(drain_node) and C(delete_node) it reads the Nodes through the
    Kubernetes API itself (the counts passed in O(params) are ignored) to apply the
    cluster-health gate.
  - Rules, variables and defaults are listed in C(docs/safety.md); the logic lives in
    C(plugins/module_utils/guardrails.py) so that it can be unit tested without Ansible.
options:
  action:
    description:
      - The action about to run, from the shared vocabulary (for example V(rollout_restart),
        V(raise_memory_limit), V(drain_node), V(terminate_backend)). Unknown names are refused.
    type: str
    required: true
  target_key:
    description:
      - The incident target the action works on, such as V(deployment/octollm-prod/api) or
        V(node/node-000001). The action budget is counted per target key.
    type: str
    required: true
  namespace:
    description:
      - The namespace the action writes to. Default is the namespace part of O(target_key).
    type: str
  procedure:
    description:
      - The procedure (role) asking, such as V(pod_crashloop); selects O(procedure_modes).
    type: str
  incident_id:
    description:
      - The ledger incident the action belongs to; recorded with the verdict and used by
        O(per_incident_limits).
    type: int
  params:
    description:
      - The action's parameters, for example C(current_memory)/C(new_memory),
        C(current_replicas)/C(new_replicas), C(application_name)/C(query_age_s). See
        C(docs/safety.md) for the keys each action needs.
    type: dict
    default: {}
  mode:
    description:
      - V(observe) records what would be done and refuses every mutation with rule
        C(observe_mode); V(remediate) applies the rules. Role variable C(alert_response_mode).
      - Check mode always means V(observe).
    type: str
    choices: [observe, remediate]
    default: observe
  procedure_modes:
    description:
      - "Per-procedure mode overrides, such as C({pod_crashloop: observe}). Role variable
        C(alert_response_procedure_modes)."
    type: dict
    default: {}
  protected_namespaces:
    description:
      - Namespaces nothing is changed in, unless an O(allow) entry names the action and the
        namespace. Role variable C(alert_response_protected_namespaces).
    type: list
    elements: str
    default: [kube-system, kube-public, cert-manager]
  action_budget:
    description:
      - Allowed remediating actions per target key within O(budget_window_s); the next one is
        refused with C(budget_exhausted). Role variable C(alert_response_action_budget).
    type: int
    default: 3
  budget_window_s:
    description:
      - The window of the action budget, in seconds.
    type: int
    default: 3600
  max_notready_share:
    description:
      - Refuse cordon/drain/delete of a node when more than this share of nodes is NotReady.
        Role variable C(alert_response_max_notready_share).
    type: float
    default: 0.3
  min_ready_nodes:
    description:
      - Refuse cordon/drain/delete of a node when it would leave fewer Ready, schedulable nodes.
        Role variable C(alert_response_min_ready_nodes).
    type: int
    default: 2
  memory_ceiling:
    description:
      - No memory limit is raised above this quantity. Role variable C(alert_response_memory_ceiling).
    type: str
    default: 8Gi
  cpu_ceiling:
    description:
      - No CPU limit is raised above this quantity. Role variable C(alert_response_cpu_ceiling).
    type: str
    default: "4"
  max_replicas:
    description:
      - No Deployment is scaled, and no HPA set, above this many replicas. Role variable
        C(alert_response_max_replicas).
    type: int
    default: 10
  min_replicas:
    description:
      - No scale_in (or HPA minimum) goes below this many replicas.
    type: int
    default: 1
  raise_ratios:
    description:
      - "The largest factor one action may raise a value by, per kind (C(memory), C(cpu),
        C(pool_size), C(timeout), C(ttl)). Keys given replace the defaults
        C({memory: 2, cpu: 2, pool_size: 2, timeout: 2, ttl: 3})."
    type: dict
    default: {}
  allow:
    description:
      - The allow-list for destructive actions (C(drain_node), C(delete_node), C(terminate_backend),
        C(restart_redis), C(raise_db_memory_limit), C(create_index_concurrently),
        C(switch_to_staging_issuer), C(repoint_db_host)). Role variable C(alert_response_allow).
      - Each entry is an action name or a dict with C(action) and optional C(namespace), C(target)
        (glob on the target key, such as V(node/*)), C(procedure), C(applications) (required for
        C(terminate_backend)) and C(min_query_age_s).
    type: list
    elements: raw
    default: []
  production_namespaces:
    description:
      - Namespaces where C(switch_to_staging_issuer) is refused.
    type: list
    elements: str
    default: [octollm-prod]
  terminate_min_query_age_s:
    description:
      - C(terminate_backend) is refused for queries younger than this (the runbook's long query,
        5 minutes); an allow entry may ask for more, never less.
    type: int
    default: 300
  per_incident_limits:
    description:
      - "How often an action may run per incident. Keys given replace the defaults
        C({rollout_undo: 1})."
    type: dict
    default: {}
  ledger:
    description:
      - Where verdicts are recorded and the budget is counted; a SQLite path or a
        C(postgresql://) DSN. Default is E(OCTOLLM_LEDGER), else
        C(~/.local/state/octollm-alert-response/ledger.sqlite3).
      - The password of a DSN is kept out of the output and the logs.
    type: str
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The verdict is the observe verdict (rule C(observe_mode)) with the remediate outcome in
      RV(would_be); nothing is written to the ledger.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - kubernetes >= 24.2.0 (node actions only)
  - psycopg >= 3 (PostgreSQL ledger only)
notes:
  - The Kubernetes connection options are only used for node actions; the identity needs
    list on nodes.
seealso:
  - module: kubernetes.core.k8s_drain
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Ask before raising the memory limit
  octollm.alert_response.guardrail:
    action: raise_memory_limit
    target_key: deployment/octollm-prod/orchestrator
    procedure: pod_oomkilled
    incident_id: "{{ incident.id }}"
    mode: "{{ alert_response_mode }}"
    memory_ceiling: "{{ alert_response_memory_ceiling }}"
    params:
      container: orchestrator
      current_memory: 512Mi
      new_memory: 1Gi
    ledger: "{{ alert_response_ledger }}"
  register: pod_oomkilled_guard

- name: Raise it only when allowed
  ansible.builtin.debug:
    msg: "would patch the limit to 1Gi"
  when: pod_oomkilled_guard.allowed

- name: Ask before draining a node (the module counts NotReady nodes itself)
  octollm.alert_response.guardrail:
    action: drain_node
    target_key: node/node-000001
    procedure: node_not_ready
    mode: remediate
    kubeconfig: "{{ alert_response_kubeconfig }}"
    min_ready_nodes: "{{ alert_response_min_ready_nodes }}"
    allow:
      - action: drain_node
        target: node/*
    ledger: "{{ alert_response_ledger }}"
  register: node_not_ready_guard

- name: Terminate long queries of one allow-listed application only
  octollm.alert_response.guardrail:
    action: terminate_backend
    target_key: database/octollm-prod/octollm
    mode: remediate
    params:
      application_name: report-worker
      query_age_s: 600
    allow:
      - action: terminate_backend
        applications: [report-worker]
        min_query_age_s: 600
  register: db_guard
"""

RETURN = r"""
allowed:
  description: Whether the action may run now.
  returned: always
  type: bool
  sample: false
action:
  description: The action asked about.
  returned: always
  type: str
  sample: raise_memory_limit
mode:
  description: The effective mode (V(observe), V(remediate), or V(record) for actions that change nothing).
  returned: always
  type: str
  sample: remediate
rule:
  description: The rule that decided (V(ok) when allowed); see C(docs/safety.md).
  returned: always
  type: str
  sample: cap_memory_ratio
reason:
  description: Why, naming the variable to change.
  returned: always
  type: str
  sample: "raise_memory_limit on deployment/octollm-prod/api: 512Mi -> 2Gi is x4, more than x2 per action
    (alert_response_raise_ratios.memory); the largest allowed is 1Gi"
target_key:
  description: The target the verdict is recorded under.
  returned: always
  type: str
  sample: deployment/octollm-prod/api
adjusted_params:
  description: On a cap refusal, the params with the largest value the policy allows. Never applied by
    the guardrail; ask again with them to use them.
  returned: always
  type: dict
  sample: {current_memory: 512Mi, new_memory: 1Gi}
would_be:
  description: In observe mode, the remediate outcome (allowed, rule, reason, adjusted_params).
  returned: always
  type: dict
  sample: {allowed: true, rule: ok, reason: "rollout_restart on deployment/octollm-prod/api: every guardrail passed",
           adjusted_params: null}
action_id:
  description: The ledger row of this verdict (null in check mode); set its result after acting.
  returned: always
  type: int
  sample: 42
verdict:
  description: All of the above as one dict, for the incident record and the escalation criteria.
  returned: always
  type: dict
  sample: {allowed: false, action: drain_node, mode: remediate, rule: cluster_health_gate,
           reason: "...", target_key: node/node-000001, adjusted_params: null, would_be: null, action_id: 43}
nodes:
  description: For node actions, the counts read from the API.
  returned: when the action is cordon_node, drain_node or delete_node
  type: dict
  sample: {total_nodes: 3, not_ready_nodes: 1, ready_nodes: 2, target_ready: true, target_found: true}
ledger:
  description: The ledger used, password hidden.
  returned: always
  type: str
  sample: "postgresql:postgresql://ledger:***@127.0.0.1:5432/octollm_ledger"
"""

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.guardrails import (
    DEFAULT_POLICY,
    NODE_GATED,
    GuardrailError,
    check,
)
from ansible_collections.octollm.alert_response.plugins.module_utils.ledger import (
    Ledger,
    LedgerError,
    default_location,
)

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    HAS_K8S_CORE = True
except ImportError:  # pragma: no cover - kubernetes.core is a declared dependency
    AUTH_ARG_SPEC, HAS_K8S_CORE = {}, False

# Options that are policy keys; their defaults come from DEFAULT_POLICY so that the
# module and the Python API cannot drift (a unit test also compares them with DOCUMENTATION).
POLICY_OPTIONS = {
    "protected_namespaces": dict(type="list", elements="str"),
    "action_budget": dict(type="int"),
    "budget_window_s": dict(type="int"),
    "max_notready_share": dict(type="float"),
    "min_ready_nodes": dict(type="int"),
    "memory_ceiling": dict(type="str"),
    "cpu_ceiling": dict(type="str"),
    "max_replicas": dict(type="int"),
    "min_replicas": dict(type="int"),
    "raise_ratios": dict(type="dict", default={}),
    "allow": dict(type="list", elements="raw"),
    "procedure_modes": dict(type="dict"),
    "production_namespaces": dict(type="list", elements="str"),
    "terminate_min_query_age_s": dict(type="int"),
    "per_incident_limits": dict(type="dict", default={}),
}


def argument_spec():
    spec = dict(
        action=dict(type="str", required=True),
        target_key=dict(type="str", required=True, no_log=False),
        namespace=dict(type="str"),
        procedure=dict(type="str"),
        incident_id=dict(type="int"),
        params=dict(type="dict", default={}),
        mode=dict(type="str", choices=["observe", "remediate"], default="observe"),
        ledger=dict(type="str"),
    )
    for key, option in POLICY_OPTIONS.items():
        spec[key] = dict(option, default=option.get("default", DEFAULT_POLICY[key]))
    spec.update(AUTH_ARG_SPEC)
    return spec


def dsn_password(location):
    """The password inside a DSN (URL or key=value form), for no_log_values."""
    if not location:
        return None
    if "://" in location:
        try:
            return urlsplit(location).password
        except ValueError:
            return None
    match = re.search(r"(?:^|\s)password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))", location)
    return (match.group(1) or match.group(2)) if match else None


def node_counts(nodes, target_name):
    """Counts for the cluster-health gate. Ready = condition Ready is True; a cordoned
    node is not capacity pods can move to, so ready_nodes counts Ready *and* schedulable."""
    out = dict(total_nodes=len(nodes), not_ready_nodes=0, ready_nodes=0, target_ready=False, target_found=False)
    for node in nodes:
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        schedulable = not (node.get("spec") or {}).get("unschedulable")
        is_target = node["metadata"]["name"] == target_name
        out["target_found"] = out["target_found"] or is_target
        if not ready:
            out["not_ready_nodes"] += 1
        elif schedulable:
            out["ready_nodes"] += 1
            out["target_ready"] = out["target_ready"] or is_target
    return out


def read_nodes(module, target_key):
    """Node counts from the API, or {"nodes_error": ...} (the gate then refuses)."""
    name = target_key.split("/", 1)[1] if target_key.startswith("node/") else None
    if not name:
        return {"nodes_error": f"target_key {target_key!r} is not node/<name>"}
    try:
        module.requires("kubernetes")
        client = get_api_client(module=module)
        items = client.get(client.resource("Node", "v1")).to_dict()["items"]
    except Exception as exc:  # noqa: BLE001 - any API failure closes the gate, with the cause
        return {"nodes_error": f"cannot list nodes: {exc}"}
    counts = node_counts(items, name)
    if not counts["target_found"]:
        counts["nodes_error"] = f"node {name} not found"
    return counts


def open_ledger(module):
    """The ledger, or None in check mode when a SQLite ledger does not exist yet (opening
    would create it: nothing has been recorded, so the budget is untouched)."""
    location = module.params["ledger"] or default_location()
    # "~/" resolved by hand: type=path would also expand $VARS inside a DSN's password
    path = str(Path.home() / location[2:]) if location.startswith("~/") else location
    if module.check_mode and "://" not in location and not os.path.exists(path):
        return None, location
    return Ledger.open(location), location


def execute_module(module):
    p = module.params
    request = {k: p[k] for k in ("action", "target_key", "namespace", "procedure", "incident_id", "mode")}
    request.update(check_mode=module.check_mode, params=dict(p["params"] or {}),
                   policy={k: p[k] for k in POLICY_OPTIONS})
    result = dict(changed=False)
    if p["action"] in NODE_GATED:
        counts = read_nodes(module, p["target_key"])
        request["params"].update(counts)
        result["nodes"] = counts
    ledger, location = open_ledger(module)
    if ledger is None:
        request["policy"]["require_ledger"] = False
    try:
        verdict = check(request, ledger).as_dict()
        result["ledger"] = ledger.describe() if ledger else f"sqlite:{location} (not created in check mode)"
    finally:
        if ledger is not None:
            ledger.close()
    result.update(verdict, verdict=verdict)
    return result


def main():
    kwargs = dict(argument_spec=argument_spec(), supports_check_mode=True)
    if HAS_K8S_CORE:
        # kubernetes is only needed for node actions: do not require it up front
        module = AnsibleK8SModule(module_class=AnsibleModule, check_k8s=False, check_pyyaml=False, **kwargs)
    else:
        module = AnsibleModule(**kwargs)
    secret = dsn_password(module.params["ledger"])
    if secret:
        # hide the password only, not the whole DSN (host and database help debugging)
        base = module._module if HAS_K8S_CORE else module
        base.no_log_values.add(secret)
    try:
        module.exit_json(**execute_module(module))
    except GuardrailError as exc:
        module.fail_json(msg=f"Invalid guardrail policy: {exc}; fix the alert_response_* variables")
    except LedgerError as exc:
        module.fail_json(msg=f"Guardrail for {module.params['action']} on {module.params['target_key']}: {exc}")


if __name__ == "__main__":
    main()
