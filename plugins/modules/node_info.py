#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_info
short_description: A node's conditions, heartbeat, taints and pods, and the NotReady share of the cluster
version_added: 0.1.0
description:
  - The evidence of the node procedures (NodeNotReady, HighNodeCPUUsage, HighNodeMemoryUsage) in one call.
  - The node's conditions (Ready, MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable) with reason,
    message and heartbeat, the age of the newest heartbeat (the kubelet's pulse, a proxy for the kubelet log
    the runbook reads over SSH), how long it has been not Ready, taints, C(unschedulable) and who cordoned it
    (C(cordoned_by), the C(octollm.io/cordoned-by) annotation C(node_drain) sets), allocatable resources and
    addresses.
  - The pods on the node (field selector C(spec.nodeName), as the runbook's C(kubectl get pods
    --field-selector)) with owner, readiness and whether they are critical (in O(critical_namespaces) or
    owned by one of O(critical_workloads)), DaemonSet, mirror, unmanaged or using emptyDir data (what a drain
    must know).
  - The count of NotReady nodes (Ready condition False or Unknown) against all nodes, for the runbook's
    "multiple nodes" and "> 30 %" escalations and the guardrail's cluster-health gate.
  - Read-only.
options:
  name:
    description: The node.
    type: str
    required: true
  pods:
    description: List the pods on the node.
    type: bool
    default: true
  critical_namespaces:
    description: Pods in these namespaces are critical (the runbook checks C(octollm-prod)).
    type: list
    elements: str
    default: [octollm-prod]
  critical_workloads:
    description: Pods owned by workloads of these names are critical wherever they run.
    type: list
    elements: str
    default: [orchestrator, reflex-layer]
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Read-only.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.k8s]
requirements:
  - kubernetes >= 24.2.0
notes:
  - The identity needs list on nodes and list on pods in all namespaces (with a field selector).
seealso:
  - module: octollm.alert_response.node_drain
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Evidence of a NotReady node
  octollm.alert_response.node_info:
    name: node-000001
  register: node_not_ready_evidence

- name: Only the conditions and the NotReady share
  octollm.alert_response.node_info:
    name: node-000001
    pods: false
"""

RETURN = r"""
node:
  description: The node (C(exists=false) when it is not found).
  returned: always
  type: dict
  sample:
    name: node-000001
    exists: true
    ready: "False"
    ready_reason: KubeletNotReady
    not_ready_for_s: 312.0
    heartbeat_age_s: 4.1
    pressure: [MemoryPressure]
    unschedulable: false
    cordoned_by: null
    taints: [{key: node.kubernetes.io/not-ready, effect: NoSchedule, value: null}]
    conditions: [{type: Ready, status: "False", reason: KubeletNotReady, message: "...", last_heartbeat: "..."}]
cluster:
  description: NotReady nodes against all nodes.
  returned: always
  type: dict
  sample: {total_nodes: 4, not_ready_nodes: 1, not_ready: [node-000001], ready_schedulable: 3,
           not_ready_share: 0.25, target_found: true}
pods:
  description: The pods on the node.
  returned: when O(pods=true) and the node exists
  type: list
  elements: dict
  sample: [{namespace: octollm-prod, name: orchestrator-7979d8c7b4-jsxqd, phase: Running, ready: true,
            owner_kind: Deployment, owner_name: orchestrator, critical: true, daemonset: false, mirror: false,
            unmanaged: false, local_storage: false, terminating: false, finished: false}]
pods_summary:
  description: Counts of the pods on the node.
  returned: when O(pods=true) and the node exists
  type: dict
  sample: {total: 4, critical: 3, critical_pods: [octollm-prod/orchestrator-7979d8c7b4-jsxqd], not_ready: 0,
           by_namespace: {octollm-prod: 3, cert-manager: 1}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ConnectionProblem, auth_spec, clients, unreachable
from ansible_collections.octollm.alert_response.plugins.module_utils.nodes import NodeError, info


def argument_spec():
    spec = auth_spec()
    spec.update(
        name=dict(type="str", required=True),
        pods=dict(type="bool", default=True),
        critical_namespaces=dict(type="list", elements="str", default=["octollm-prod"]),
        critical_workloads=dict(type="list", elements="str", default=["orchestrator", "reflex-layer"]),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    try:
        result = info(clients(module), p["name"], p["pods"], p["critical_namespaces"], p["critical_workloads"])
    except NodeError as exc:
        module.fail_json(msg=str(exc), **exc.data)
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
