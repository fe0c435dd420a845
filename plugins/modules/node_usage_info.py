#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_usage_info
short_description: A node's CPU or memory use, the pods and workloads that use it, and the other nodes
version_added: 0.1.0
description:
  - The evidence of the node pressure procedures (HighNodeCPUUsage, HighNodeMemoryUsage) in one call -
    the runbook's C(kubectl top nodes), C(kubectl top pods --field-selector spec.nodeName=<node>) and the
    Grafana queries, read from Prometheus and the Kubernetes API.
  - The node's use of O(resource) now (the alert's expression over O(rate_window)), every other node's (to
    tell a hot spot from a cluster-wide shortage) and how long the node has been above O(threshold) and
    O(high) within O(history_s) (for the escalation criteria).
  - The containers on the node ranked by use (cAdvisor C(container_cpu_usage_seconds_total) rate or
    C(container_memory_working_set_bytes)), each with its pod's owner, limit and request and whether it sits
    at its limit; for memory, optionally each top container's trend over O(trend_s) (a steady rise is the
    runbook's leak).
  - The owning workloads of the heaviest containers (at most O(owners)), with their share of the node's use,
    replica count, container resources and the HorizontalPodAutoscaler that scales them, if any.
  - Containers on the node OOMKilled within O(oom_window_s) (last or current termination).
  - Read-only. Pods are listed by field selector (C(spec.nodeName)); workloads and HPAs are read by name or
    per namespace.
options:
  name:
    description: The node.
    type: str
    required: true
  resource:
    description: Which resource is under pressure.
    type: str
    choices: [cpu, memory]
    required: true
  rate_window:
    description: Range of the CPU rates (the alert uses V(5m)).
    type: str
    default: 5m
  threshold:
    description: The alert's threshold (0.80 for CPU, 0.85 for memory); nodes above it count as hot.
    type: float
    required: true
  high:
    description: The escalation threshold (0.90 for CPU, 0.95 for memory); how long the node has been above it is returned.
    type: float
    required: true
  history_s:
    description: Seconds of the node's history to read (at least the escalation's duration, 30 or 15 minutes).
    type: float
    default: 3600
  top:
    description: How many containers to return, heaviest first.
    type: int
    default: 10
  owners:
    description: How many owning workloads to read (heaviest first).
    type: int
    default: 3
  trend_s:
    description: For memory, seconds over which the top containers' trend is read; V(0) skips it.
    type: float
    default: 0
  trend_min_rise_ratio:
    description: A steady rise must grow by at least this share of its first value.
    type: float
    default: 0.2
  trend_min_rise_bytes:
    description: A steady rise must grow by at least this many bytes.
    type: float
    default: 67108864
  oom_window_s:
    description: OOMKilled terminations older than this many seconds are left out.
    type: float
    default: 3600
  prometheus_url:
    description: Base URL of the Prometheus HTTP API.
    type: str
    required: true
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
  - The identity needs get on the node, list on pods (all namespaces, by field selector), get on Deployments and
    StatefulSets, and list on HorizontalPodAutoscalers in the namespaces of the heaviest workloads.
  - Prometheus must scrape node_exporter (with C(node_uname_info)) and cAdvisor (C(container_*) series with a
    C(node) label).
seealso:
  - module: octollm.alert_response.node_info
  - module: octollm.alert_response.prometheus_query
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Who uses the CPU of node-000001, and is it the only hot node?
  octollm.alert_response.node_usage_info:
    name: node-000001
    resource: cpu
    threshold: 0.8
    high: 0.9
    history_s: 2400
    prometheus_url: "{{ alert_response_prometheus_url }}"
  register: node_cpu_pressure_evidence

- name: Memory, with each top container's trend over the last 30 minutes
  octollm.alert_response.node_usage_info:
    name: node-000002
    resource: memory
    threshold: 0.85
    high: 0.95
    trend_s: 1800
    prometheus_url: http://prometheus:9090
"""

RETURN = r"""
usage:
  description:
    - The node's use now (0.0-1.0), the thresholds, its capacity (cores or bytes) and what it uses, and in
      C(above_threshold) and C(above_high) how long the latest run above each threshold has lasted within the
      history (C(since_start) - the run covers the whole history, so it is at least that long).
  returned: when the node exists
  type: dict
  sample: {now: 0.93, threshold: 0.8, high: 0.9, capacity: 8.0, used: 7.44,
           above_threshold: {above_now: true, duration_s: 620.0, since_start: false},
           above_high: {above_now: true, duration_s: 300.0, since_start: false}}
node:
  description: The node (C(exists), C(ready), C(unschedulable), C(capacity), C(pressure) conditions).
  returned: always
  type: dict
cluster:
  description: Every node's use now, how many are above the threshold, the mean of the others and which have headroom.
  returned: when the node exists
  type: dict
  sample: {total: 4, above: 1, others_mean: 0.12, others_with_headroom: [node-000000, node-000002, node-000003],
           nodes: [{node: node-000001, instance: "192.0.2.11:9100", usage: 0.93}]}
top:
  description: The heaviest containers on the node with owner, limit, request, share of the node and (memory) trend.
  returned: when the node exists
  type: list
  elements: dict
  sample: [{namespace: shop, pod: api-7d9f8c-xk2p9, container: api, usage: 6.9, share_of_node: 0.86,
            owner_kind: Deployment, owner_name: api, limit: "8", request: "3", at_limit: false}]
owners:
  description: The owning workloads of the heaviest containers, with share, replicas, resources and HPA.
  returned: when the node exists
  type: list
  elements: dict
  sample: [{kind: Deployment, namespace: shop, name: api, usage: 6.9, share: 0.93, replicas: 1, hpa: null}]
oom:
  description: Containers on the node OOMKilled within O(oom_window_s).
  returned: when the node exists
  type: list
  elements: dict
summary:
  description: One line for the incident record.
  returned: when the node exists
  type: dict
  sample: {text: "node node-000001 cpu at 93% (1/4 nodes above 80%); heaviest Deployment shop/api uses 6.90 cores"}
queries:
  description: The PromQL sent, for the record.
  returned: when the node exists
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ConnectionProblem, auth_spec, clients, unreachable
from ansible_collections.octollm.alert_response.plugins.module_utils.usage import (
    NodeUsage,
    UsageError,
    prometheus_client,
    prometheus_spec,
)


def argument_spec():
    spec = auth_spec()
    spec.update(prometheus_spec())
    spec.update(
        name=dict(type="str", required=True),
        resource=dict(type="str", required=True, choices=["cpu", "memory"]),
        rate_window=dict(type="str", default="5m"),
        threshold=dict(type="float", required=True),
        high=dict(type="float", required=True),
        history_s=dict(type="float", default=3600),
        top=dict(type="int", default=10),
        owners=dict(type="int", default=3),
        trend_s=dict(type="float", default=0),
        trend_min_rise_ratio=dict(type="float", default=0.2),
        trend_min_rise_bytes=dict(type="float", default=67108864),
        oom_window_s=dict(type="float", default=3600),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    if p["history_s"] <= 0 or p["top"] < 1 or p["owners"] < 0:
        module.fail_json(msg="history_s must be positive, top at least 1 and owners at least 0")
    usage = NodeUsage(clients(module), prometheus_client(p), p["name"], p["resource"])
    try:
        ev = usage.collect(window=p["rate_window"], threshold=p["threshold"], high=p["high"],
                           history_s=p["history_s"], top=p["top"], owners=p["owners"], trend_s=p["trend_s"],
                           trend_options={"min_rise_ratio": p["trend_min_rise_ratio"],
                                          "min_rise_bytes": p["trend_min_rise_bytes"]},
                           oom_window_s=p["oom_window_s"])
    except UsageError as exc:
        module.fail_json(msg=str(exc))
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))
    module.exit_json(changed=False, **ev)


if __name__ == "__main__":
    main()
