#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: hpa_action
short_description: Create a CPU HorizontalPodAutoscaler for a workload or change an HPA's CPU target
version_added: 0.1.0
description:
  - The runbook's HPA changes with check mode and diff. Ask C(octollm.alert_response.guardrail) first
    (C(enable_hpa), C(tune_hpa)); this module does not.
  - V(enable) creates an autoscaling/v2 HPA named O(name) for O(target_kind)/O(target_name) with a CPU
    utilisation target (C(kubectl autoscale --cpu-percent=70 --min=2 --max=10), runbook section 7). An existing
    HPA of that name is left alone.
  - V(set_cpu_target) sets the CPU utilisation target of an existing HPA (runbook section 15,
    C(targetCPUUtilizationPercentage) in autoscaling/v1, C(averageUtilization) in v2).
options:
  namespace:
    description: Namespace of the HPA.
    type: str
    required: true
  name:
    description: Name of the HPA.
    type: str
    required: true
  action:
    description: What to do.
    type: str
    required: true
    choices: [enable, set_cpu_target]
  target_kind:
    description: Kind of the scale target for V(enable).
    type: str
    choices: [Deployment, StatefulSet]
    default: Deployment
  target_name:
    description: Name of the scale target for V(enable); default O(name).
    type: str
  min_replicas:
    description: Minimum replicas for V(enable).
    type: int
    default: 2
  max_replicas:
    description: Maximum replicas for V(enable).
    type: int
    default: 10
  cpu_utilization:
    description: The CPU utilisation target in percent.
    type: int
    default: 70
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Reads the HPA and reports what would change; writes nothing.
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
  - The identity needs get, create and patch on HorizontalPodAutoscalers.
seealso:
  - module: octollm.alert_response.hpa_info
  - module: octollm.alert_response.guardrail
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: kubectl autoscale deployment/api --cpu-percent=70 --min=2 --max=10
  octollm.alert_response.hpa_action:
    namespace: shop
    name: api
    action: enable
    min_replicas: 2
    max_replicas: 10
    cpu_utilization: 70

- name: Raise the CPU target of a flapping HPA to 80 %
  octollm.alert_response.hpa_action:
    namespace: octollm-prod
    name: api-gateway
    action: set_cpu_target
    cpu_utilization: 80
"""

RETURN = r"""
before:
  description: The HPA spec (V(enable)) or CPU target (V(set_cpu_target)) before; null when it did not exist.
  returned: always
  type: dict
  sample: {cpu_target: 70}
after:
  description: The same after.
  returned: always
  type: dict
  sample: {cpu_target: 80}
msg:
  description: What was done.
  returned: always
  type: str
  sample: set the CPU target of HorizontalPodAutoscaler octollm-prod/api-gateway from 70 % to 80 %
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.autoscalers import HpaError, apply, plan
from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ConnectionProblem, auth_spec, clients, unreachable


def main():
    spec = auth_spec()
    spec.update(namespace=dict(type="str", required=True), name=dict(type="str", required=True),
                action=dict(type="str", required=True, choices=["enable", "set_cpu_target"]),
                target_kind=dict(type="str", default="Deployment", choices=["Deployment", "StatefulSet"]),
                target_name=dict(type="str"), min_replicas=dict(type="int", default=2),
                max_replicas=dict(type="int", default=10), cpu_utilization=dict(type="int", default=70))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    if not 1 <= p["cpu_utilization"] <= 100 or p["min_replicas"] < 1 or p["max_replicas"] < p["min_replicas"]:
        module.fail_json(msg="cpu_utilization must be 1-100 and 1 <= min_replicas <= max_replicas")
    c = clients(module)
    try:
        planned = plan(c, p["namespace"], p["name"], p["action"], p["target_kind"], p["target_name"] or p["name"],
                       p["min_replicas"], p["max_replicas"], p["cpu_utilization"])
        if planned["changed"] and not module.check_mode:
            apply(c, p["namespace"], p["name"], planned)
    except HpaError as exc:
        module.fail_json(msg=str(exc))
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))
    result = {"changed": planned["changed"], "before": planned["before"], "after": planned["after"],
              "msg": planned["msg"]}
    if module._diff:
        result["diff"] = {"before": planned["before"] or {}, "after": planned["after"] or {}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
