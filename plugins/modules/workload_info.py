#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: workload_info
short_description: Everything the runbook reads about one Deployment or StatefulSet, in one call
version_added: 0.1.0
description:
  - The evidence of the workload procedures (PodCrashLoopBackOff, HighErrorRate, HighLatency and the
    warning procedures on workloads) in one task, so that a procedure's investigation is one module call.
  - The workload's spec summary (containers, images, requests and limits, referenced ConfigMaps and
    Secrets), replicas and conditions, whether the rollout is complete.
  - Its revisions (ReplicaSets of a Deployment, ControllerRevisions of a StatefulSet) with revision number,
    creation time and age, images, pod-template hash and ready replicas.
  - Its pods (found with the workload's label selector) with phase, readiness, node and whether that node is
    Ready, restart counts, waiting and last-terminated reasons; a pod is C(problem) when it is not Ready,
    waits for a bad reason (CrashLoopBackOff, ImagePullBackOff, CreateContainerConfigError ...) or is
    Pending/Failed.
  - Warning events of the workload, its ReplicaSets, its pods and its claims (one namespaced list with the
    field selector C(type=Warning)).
  - Referenced ConfigMaps and Secrets with existence, the key names they hold and the referenced keys that
    are missing. Secret values are never returned.
  - Mounted PersistentVolumeClaims with their phase and, when not Bound, whether their StorageClass exists.
  - Dependency Services, that is the hosts named by environment values whose key matches O(dependency_keys)
    (literal values and the ConfigMaps the pods load, for example C(DB_HOST=postgres) or
    C(ORCHESTRATOR_URL=http://orchestrator:8080)) and the Services in O(dependencies), each with its ready
    endpoint count (EndpointSlices) and the workload behind it.
  - Optionally the last O(log_lines) lines of the current and previous container of a few pods, classified
    (C(connection_refused), C(oom), C(panic), C(permission_denied), C(rate_limited), C(pool_exhausted),
    C(config_error)) with a few example lines per class.
  - With O(wait), polls until the rollout is complete and every pod is Ready, then until the restart counts
    stay flat for O(wait.stable_s), which is how a remediation is verified.
  - Read-only. Nothing is listed cluster-wide.
options:
  kind:
    description: The kind of the workload.
    type: str
    choices: [Deployment, StatefulSet]
    default: Deployment
  namespace:
    description: Namespace of the workload.
    type: str
    required: true
  name:
    description: Name of the workload.
    type: str
    required: true
  logs:
    description:
      - Whose logs to read. V(none) reads none; V(problem) reads the failing pods with the most restarts;
        V(newest) reads the newest pods (the latest revision, for error-rate and latency procedures).
    type: str
    choices: [none, problem, newest]
    default: none
  log_lines:
    description: Lines of log to read from the end, per container instance (the runbook reads 100).
    type: int
    default: 100
  log_pods:
    description: At most this many pods' logs are read (current and previous instance each).
    type: int
    default: 2
  dependencies:
    description: Services (in the same namespace) to check as dependencies besides those found in the configuration.
    type: list
    elements: str
    default: []
  dependency_keys:
    description:
      - Regular expression on environment variable names whose values name a dependency host.
    type: str
    default: (_HOST|_URL|_ADDR|_ADDRESS|_ENDPOINT|_SERVICE)$
  events:
    description: Read the Warning events of the workload, its ReplicaSets, pods and claims.
    type: bool
    default: true
  wait:
    description:
      - Poll until healthy (rollout complete, every pod Ready), then until no pod's restart count rises for
        O(wait.stable_s). Without O(wait) the module reads once.
      - In check mode the module reads once and does not wait (nothing was changed to wait for).
    type: dict
    suboptions:
      timeout:
        description: Seconds to wait for the workload to become healthy.
        type: float
        default: 300
      stable_s:
        description: Seconds the restart counts must then stay unchanged.
        type: float
        default: 0
      interval:
        description: Seconds between two reads.
        type: float
        default: 5
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Read-only; O(wait) reads once instead of waiting.
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
  - The identity needs get on the workload, list on pods, ReplicaSets or ControllerRevisions, events and
    EndpointSlices, get on ConfigMaps, Secrets, PersistentVolumeClaims, Services, StorageClasses and Nodes,
    and get on pods/log.
seealso:
  - module: octollm.alert_response.workload_action
  - module: kubernetes.core.k8s_info
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Evidence of a crash-looping Deployment, with classified logs of the failing pods
  octollm.alert_response.workload_info:
    namespace: octollm-prod
    name: orchestrator
    logs: problem
  register: pod_crashloop_evidence

- name: Evidence of a StatefulSet, checking redis as a dependency too
  octollm.alert_response.workload_info:
    kind: StatefulSet
    namespace: octollm-prod
    name: postgres
    dependencies: [redis]

- name: Verify - all pods Ready and restarts flat for 2 minutes (at most 10 minutes)
  octollm.alert_response.workload_info:
    namespace: octollm-prod
    name: orchestrator
    events: false
    wait:
      timeout: 600
      stable_s: 120
      interval: 10
  register: pod_crashloop_verified
"""

RETURN = r"""
workload:
  description:
    - The evidence. Keys C(kind), C(namespace), C(name), C(exists), C(replicas), C(conditions),
      C(rollout_complete), C(current_revision), C(containers), C(revisions), C(pods), C(events),
      C(config_refs), C(volumes), C(dependencies), C(unresolved_hosts), C(logs), C(log_classes), C(summary).
    - C(exists=false) and nothing else when the workload is not found.
  returned: always
  type: dict
  sample:
    kind: Deployment
    namespace: octollm-prod
    name: orchestrator
    exists: true
    replicas: {desired: 3, current: 3, ready: 2, available: 2, updated: 3, unavailable: 1}
    rollout_complete: false
    current_revision: 4
    containers: [{name: orchestrator, image: "ghcr.io/octollm/orchestrator:2.3.1",
                  resources: {limits: {cpu: 500m, memory: 512Mi}}, env_from: [{kind: ConfigMap,
                  name: orchestrator-config, optional: false}]}]
    revisions: [{revision: 4, name: orchestrator-7979d8c7b4, age_s: 120.5, images: ["ghcr.io/octollm/orchestrator:2.3.1"],
                 ready_replicas: 2, current: true}]
    pods: [{name: orchestrator-7979d8c7b4-4cbpc, phase: Running, ready: false, node: node-000002, node_ready: true,
            restarts: 7, problem: true, revision: 4, containers: [{name: orchestrator, waiting_reason: CrashLoopBackOff,
            last_terminated_reason: OOMKilled, last_exit_code: 137}]}]
    events: [{kind: Pod, name: orchestrator-7979d8c7b4-4cbpc, reason: BackOff, message: "Back-off restarting"}]
    config_refs: [{kind: ConfigMap, name: orchestrator-config, exists: true, key_names: [DB_HOST], missing_keys: []}]
    volumes: []
    dependencies: [{service: postgres, source: DB_HOST, exists: true, ready_endpoints: 1,
                    workload: {kind: StatefulSet, name: postgres}}]
    log_classes: {oom: 2}
    summary: {pods: 3, ready: 2, problem: 1, max_restarts: 7, text: "Deployment octollm-prod/orchestrator: 2/3 pods Ready"}
wait:
  description: How the wait went.
  returned: when O(wait) is set
  type: dict
  sample: {healthy: true, stable: true, elapsed_s: 35.2, reason: "3 pod(s) Ready, rollout complete; restarts unchanged for 30 s"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ConnectionProblem, auth_spec, clients, unreachable
from ansible_collections.octollm.alert_response.plugins.module_utils.workloads import (
    DEFAULT_DEPENDENCY_KEYS,
    Evidence,
    WorkloadError,
    wait_healthy,
)


def argument_spec():
    spec = auth_spec()
    spec.update(
        kind=dict(type="str", choices=["Deployment", "StatefulSet"], default="Deployment"),
        namespace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        logs=dict(type="str", choices=["none", "problem", "newest"], default="none"),
        log_lines=dict(type="int", default=100),
        log_pods=dict(type="int", default=2),
        dependencies=dict(type="list", elements="str", default=[]),
        dependency_keys=dict(type="str", default=DEFAULT_DEPENDENCY_KEYS, no_log=False),
        events=dict(type="bool", default=True),
        wait=dict(type="dict", options=dict(
            timeout=dict(type="float", default=300),
            stable_s=dict(type="float", default=0),
            interval=dict(type="float", default=5),
        )),
    )
    return spec


def execute_module(module, k8s):
    p = module.params

    def collect(full=True):
        ev = Evidence(k8s, p["kind"], p["namespace"], p["name"])
        if not full:  # polling: pods and rollout state only
            return ev.collect(details=False)
        return ev.collect(logs=p["logs"], log_lines=p["log_lines"], log_pods=p["log_pods"],
                          dependencies=p["dependencies"], dependency_keys=p["dependency_keys"], events=p["events"])

    result = dict(changed=False)
    if p["wait"] and not module.check_mode:
        w = p["wait"]
        _last, result["wait"] = wait_healthy(lambda: collect(full=False), w["timeout"], w["stable_s"], w["interval"])
    elif p["wait"]:
        result["wait"] = {"healthy": None, "stable": None, "elapsed_s": 0, "reason": "check mode: not waited"}
    result["workload"] = collect()
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params["log_lines"] < 1 or module.params["log_pods"] < 0:
        module.fail_json(msg="log_lines must be at least 1 and log_pods at least 0")
    try:
        module.exit_json(**execute_module(module, clients(module)))
    except WorkloadError as exc:
        module.fail_json(msg=str(exc))
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))


if __name__ == "__main__":
    main()
