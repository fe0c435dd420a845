#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_drain
short_description: Cordon, drain (through the eviction API) or uncordon a node, with check mode
version_added: 0.1.0
description:
  - V(cordon) marks the node unschedulable, V(uncordon) schedulable again; both are idempotent.
  - V(drain) cordons the node and evicts its pods through the eviction API, so PodDisruptionBudgets are
    respected - like C(kubectl drain). An eviction a budget refuses (HTTP 429) is retried every
    O(interval) seconds until O(timeout); then the module waits until the evicted pods have left the node.
  - When the drain cannot finish (a budget keeps refusing, pods stay stuck terminating, an API error) the
    module gives back the cordon it set itself and fails, naming the pods and the next step. A node that
    was already cordoned stays cordoned.
  - Like C(kubectl drain --ignore-daemonsets --delete-emptydir-data), DaemonSet pods are left alone and
    emptyDir data is deleted by default. Pods without a controller are only deleted with O(force) (the
    runbook's C(--force)); mirror pods cannot be deleted through the API and are skipped.
  - Ask C(octollm.alert_response.guardrail) first (cluster-health gate, allow-list); this module does not.
  - Unlike C(kubernetes.core.k8s_drain) it supports check mode, retries budget refusals and reverts its
    cordon when evictions fail.
options:
  name:
    description: The node.
    type: str
    required: true
  state:
    description: What to do.
    type: str
    choices: [cordon, drain, uncordon]
    default: drain
  force:
    description: Also delete pods without a controller (they will not come back).
    type: bool
    default: false
  ignore_daemonsets:
    description: Leave DaemonSet pods on the node; without it a DaemonSet pod fails the drain.
    type: bool
    default: true
  delete_emptydir_data:
    description: Evict pods that use emptyDir volumes (their data is lost); without it they fail the drain.
    type: bool
    default: true
  grace_period:
    description: Termination grace period for the evicted pods, in seconds; default the pods' own.
    type: int
  timeout:
    description: Seconds for the evictions and for the pods to leave the node.
    type: float
    default: 120
  interval:
    description: Seconds between two eviction attempts of a pod a budget protects, and between two checks.
    type: float
    default: 2
  owner:
    description:
      - Who cordons. V(cordon) and V(drain) mark the node with the annotation C(octollm.io/cordoned-by=<owner>);
        V(uncordon) with O(owner) set only gives back a cordon that carries this annotation (any owner of this
        collection) and leaves a node a person cordoned alone.
    type: str
  wait_rescheduled:
    description:
      - After a drain, seconds to wait until the controllers (Deployments, StatefulSets, ReplicaSets) of the
        evicted pods have all their replicas Ready again elsewhere. V(0) does not wait. The result is in
        RV(rescheduled); a timeout does not fail the module.
    type: float
    default: 0
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Reports whether the node would be cordoned and which pods would be evicted; writes nothing.
  diff_mode:
    support: full
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.k8s]
requirements:
  - kubernetes >= 24.2.0
notes:
  - The identity needs get and patch on nodes, list on pods in all namespaces (field selector) and create on
    pods/eviction.
seealso:
  - module: octollm.alert_response.node_info
  - module: octollm.alert_response.guardrail
  - module: kubernetes.core.k8s_drain
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Drain a NotReady node (the guardrail allowed it)
  octollm.alert_response.node_drain:
    name: node-000001
    state: drain
    force: true
    timeout: 300
  register: node_not_ready_drain

- name: Give the node back once it is Ready again
  octollm.alert_response.node_drain:
    name: node-000001
    state: uncordon
"""

RETURN = r"""
msg:
  description: What was (or would be) done.
  returned: always
  type: str
  sample: "drained node-000001: cordoned, 3 pod(s) evicted"
cordoned:
  description: This run cordoned the node (or would, in check mode).
  returned: always
  type: bool
  sample: true
uncordoned:
  description: This run uncordoned the node.
  returned: when O(state=uncordon)
  type: bool
  sample: false
to_evict:
  description: The pods the drain evicts (namespace/name).
  returned: when O(state=drain)
  type: list
  elements: str
  sample: [octollm-prod/orchestrator-7979d8c7b4-jsxqd]
evicted:
  description: The pods evicted by this run.
  returned: when O(state=drain)
  type: list
  elements: str
  sample: [octollm-prod/orchestrator-7979d8c7b4-jsxqd]
skipped:
  description: Pods left on the node, and why.
  returned: when O(state=drain)
  type: list
  elements: dict
  sample: [{pod: kube-system/kube-proxy-x, why: DaemonSet-managed}]
blocked:
  description: On failure, the pods a disruption budget kept refusing, with the API's message.
  returned: on failure
  type: dict
  sample: {octollm-prod/orchestrator-7979d8c7b4-jsxqd: "Cannot evict pod as it would violate the pod's disruption budget."}
stuck:
  description: On failure, evicted pods still on the node at the timeout (stuck terminating).
  returned: on failure
  type: list
  elements: str
  sample: []
reverted:
  description: On failure, whether the cordon this run set was given back.
  returned: on failure
  type: bool
  sample: true
foreign:
  description: V(uncordon) with O(owner) found a node cordoned by someone else and left it cordoned.
  returned: when O(state=uncordon)
  type: bool
  sample: false
rescheduled:
  description: With O(wait_rescheduled), whether the evicted pods' controllers are whole again, and their replicas.
  returned: when O(state=drain) and O(wait_rescheduled) is set
  type: dict
  sample: {ok: true, elapsed_s: 4.2, workloads: [{kind: Deployment, namespace: octollm-prod, name: orchestrator,
           ready: 3, desired: 3}]}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ConnectionProblem, auth_spec, clients, unreachable
from ansible_collections.octollm.alert_response.plugins.module_utils.nodes import NodeError, drain, set_cordon


def argument_spec():
    spec = auth_spec()
    spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["cordon", "drain", "uncordon"], default="drain"),
        force=dict(type="bool", default=False),
        ignore_daemonsets=dict(type="bool", default=True),
        delete_emptydir_data=dict(type="bool", default=True),
        grace_period=dict(type="int"),
        timeout=dict(type="float", default=120),
        interval=dict(type="float", default=2),
        owner=dict(type="str"),
        wait_rescheduled=dict(type="float", default=0),
    )
    return spec


def execute_module(module, k8s):
    p = module.params
    would = "would have " if module.check_mode else ""
    if p["state"] in ("cordon", "uncordon"):
        result = set_cordon(k8s, p["name"], p["state"] == "cordon", module.check_mode, p["owner"])
        if result["foreign"]:
            result["msg"] = f"node {p['name']} was cordoned by someone else (no octollm.io/cordoned-by): left cordoned"
        elif result["changed"]:
            result["msg"] = f"{would}{p['state']}ed node {p['name']}"
        else:
            result["msg"] = f"node {p['name']} is already {'unschedulable' if p['state'] == 'cordon' else 'schedulable'}"
        before = {"unschedulable": (p["state"] == "cordon") != result["changed"]}
    else:
        result = drain(k8s, p["name"], module.check_mode, p["force"], p["ignore_daemonsets"],
                       p["delete_emptydir_data"], p["grace_period"], p["timeout"], p["interval"], p["owner"],
                       0 if module.check_mode else p["wait_rescheduled"])
        n = len(result["evicted"] if not module.check_mode else result["to_evict"])
        result["msg"] = (f"{would}drained node {p['name']}: " + ("cordoned, " if result["cordoned"] else "")
                         + f"{n} pod(s) evicted") if result["changed"] else \
            f"node {p['name']} is cordoned and has no pod to evict"
        before = {"unschedulable": not result["cordoned"]}
    if module._diff:
        result["diff"] = {"before": before, "after": {"unschedulable": p["state"] != "uncordon"}}
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        module.exit_json(**execute_module(module, clients(module)))
    except NodeError as exc:
        module.fail_json(msg=str(exc), **exc.data)
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))


if __name__ == "__main__":
    main()
