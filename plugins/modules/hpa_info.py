#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: hpa_info
short_description: A HorizontalPodAutoscaler's targets, conditions, events, scale target and replica history
version_added: 0.1.0
description:
  - The evidence of the HPAScaledUp/HPAScaledDown procedure (runbook section 15) in one call.
  - The HPA's minimum and maximum, metric targets (the CPU utilisation target the runbook tunes), current
    metrics and replicas, behaviour and conditions (AbleToScale, ScalingActive, ScalingLimited).
  - Its events and what they say about the change - C(hpa) (a SuccessfulRescale with the HPA's reason),
    C(outside_hpa) (no rescale and ScalingActive False - the target was resized by something else and the HPA
    follows it) or C(unknown).
  - The scale target's replica count.
  - With O(prometheus_url), the number of replica changes over O(window) (the flapping measure,
    C(changes(kube_horizontalpodautoscaler_status_current_replicas[window]))) and the change points of the HPA's
    current replicas and of the Deployment's spec replicas over O(history_s).
  - Read-only.
options:
  namespace:
    description: Namespace of the HPA.
    type: str
    required: true
  name:
    description: Name of the HPA.
    type: str
    required: true
  window:
    description: Range of the change count (a PromQL duration).
    type: str
    default: 30m
  history_s:
    description: Seconds of replica history to read.
    type: float
    default: 3600
  prometheus_url:
    description: Base URL of the Prometheus HTTP API; without it no history is read.
    type: str
  prometheus_bearer_token:
    description: Bearer token for Prometheus.
    type: str
  prometheus_validate_certs:
    description: Verify Prometheus' TLS certificate.
    type: bool
    default: true
  prometheus_timeout:
    description: Seconds to wait for one Prometheus answer.
    type: float
    default: 30
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
  - The identity needs get on the HPA and its scale target and list on events in its namespace.
seealso:
  - module: octollm.alert_response.hpa_action
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Why did api-gateway's HPA scale, and how often did it in 30 minutes?
  octollm.alert_response.hpa_info:
    namespace: octollm-prod
    name: api-gateway
    window: 30m
    prometheus_url: "{{ alert_response_prometheus_url }}"
  register: hpa_scaled_evidence
"""

RETURN = r"""
hpa:
  description: The HPA (C(exists), C(min_replicas), C(max_replicas), C(metrics), C(cpu_target), C(current_replicas),
    C(desired_replicas), C(last_scale_time), C(conditions), C(behavior)).
  returned: always
  type: dict
  sample: {namespace: shop, name: api, exists: true, min_replicas: 2, max_replicas: 10, cpu_target: 70,
           current_replicas: 4, conditions: [{type: ScalingActive, status: "True", reason: ValidMetricFound}]}
target:
  description: The scale target (kind, name, exists, replicas).
  returned: when the HPA exists
  type: dict
events:
  description: The HPA's events, newest first.
  returned: always
  type: list
  elements: dict
cause:
  description: Who changed the replica count (C(hpa), C(outside_hpa), C(unknown)) and why.
  returned: when the HPA exists
  type: dict
  sample: {by: hpa, reason: "New size: 4; reason: cpu resource utilization (percentage of request) above target"}
history:
  description: C(changes) over C(window), change points of C(current_replicas) and C(target_replicas).
  returned: when prometheus_url is given and the HPA exists
  type: dict
  sample: {window: 30m, changes: 5, current_replicas: [[1795900000, 2], [1795900300, 4]]}
summary:
  description: One line for the incident record.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.autoscalers import Autoscaler, HpaError
from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ConnectionProblem, auth_spec, clients, unreachable
from ansible_collections.octollm.alert_response.plugins.module_utils.usage import prometheus_client, prometheus_spec


def main():
    spec = auth_spec()
    spec.update(prometheus_spec())
    spec["prometheus_url"] = dict(type="str")
    spec.update(namespace=dict(type="str", required=True), name=dict(type="str", required=True),
                window=dict(type="str", default="30m"), history_s=dict(type="float", default=3600))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    prom = prometheus_client(p) if p["prometheus_url"] else None
    try:
        ev = Autoscaler(clients(module), p["namespace"], p["name"]).collect(prom, p["window"], p["history_s"])
    except HpaError as exc:
        module.fail_json(msg=str(exc))
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))
    module.exit_json(changed=False, **ev)


if __name__ == "__main__":
    main()
