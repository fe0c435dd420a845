#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: configmap_info
short_description: A ConfigMap's content digest, its writers (managedFields) and the workloads that read it
version_added: 0.1.0
description:
  - The evidence of the ConfigMapChanged procedure (runbook section 16) in one call.
  - The ConfigMap's resourceVersion, key names and a SHA-256 digest of its content and of each key (values
    never leave the module), so that a caller that keeps the digests can say which keys changed since.
  - Its C(managedFields) - who wrote it, how (Update, Apply), when, and which keys each writer owns - and the
    last writer of the content. The runbook sorts by creationTimestamp, which an edit does not change.
  - The Deployments, StatefulSets and DaemonSets of the namespace whose pod templates read it, and how
    (C(env), C(envFrom), C(volume), C(subPath)); C(refreshes) is false when any way is one the kubelet never
    refreshes (variables and subPath mounts), so only a restart brings the new values. With O(pods), the start
    time of each consumer's oldest pod (pods started after the change already read the new content).
  - Read-only.
options:
  namespace:
    description: Namespace of the ConfigMap.
    type: str
    required: true
  name:
    description: Name of the ConfigMap.
    type: str
    required: true
  consumers:
    description: Find the workloads that read it.
    type: bool
    default: true
  pods:
    description: Read each consumer's pods for the oldest start time.
    type: bool
    default: true
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
  - The identity needs get on the ConfigMap and list on Deployments, StatefulSets, DaemonSets and pods in its namespace.
seealso:
  - module: octollm.alert_response.alert_history_info
  - module: octollm.alert_response.workload_action
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: What changed in orchestrator-config, who wrote it, who reads it
  octollm.alert_response.configmap_info:
    namespace: octollm-prod
    name: orchestrator-config
  register: configmap_changed_evidence
"""

RETURN = r"""
configmap:
  description:
    - The ConfigMap (C(exists), C(resource_version), C(keys), C(content) with C(hash) and per-key C(keys)
      digests, C(managed_fields), C(last_write)).
  returned: always
  type: dict
  sample: {namespace: shop, name: api-config, exists: true, resource_version: "4711", keys: [LOG_LEVEL],
           content: {hash: 5d41402abc4b2a76, keys: {LOG_LEVEL: 9f86d081884c7d65}},
           last_write: {manager: kubectl-edit, operation: Update, time: "2026-11-29T10:00:00Z", keys: [LOG_LEVEL]}}
consumers:
  description: Workloads reading it, how, whether they refresh without a restart, and their oldest pod's start.
  returned: always
  type: list
  elements: dict
  sample: [{kind: Deployment, name: api, via: [envFrom], refreshes: false, replicas: 2, pods: 2,
            oldest_pod_started: "2026-11-29T09:00:00Z"}]
summary:
  description: One line for the incident record.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.configmaps import ConfigMapError, ConfigMapEvidence
from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ConnectionProblem, auth_spec, clients, unreachable


def main():
    spec = auth_spec()
    spec.update(namespace=dict(type="str", required=True), name=dict(type="str", required=True),
                consumers=dict(type="bool", default=True), pods=dict(type="bool", default=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        ev = ConfigMapEvidence(clients(module), p["namespace"], p["name"]).collect(p["consumers"], p["pods"])
    except ConfigMapError as exc:
        module.fail_json(msg=str(exc))
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))
    module.exit_json(changed=False, **ev)


if __name__ == "__main__":
    main()
