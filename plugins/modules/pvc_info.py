#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: pvc_info
short_description: Why a PersistentVolumeClaim is Pending - class, default class, events, quotas, volumes, consumers
version_added: 0.1.0
description:
  - The evidence of the PersistentVolumeClaimPending procedure (runbook section 11) in one call - the runbook's
    C(kubectl describe pvc), C(kubectl get storageclass), C(kubectl get resourcequota) and C(kubectl get pv).
  - The claim's phase, how it names its class (V(unset), V(none) for C(""), V(named)) and whether that class
    exists, its binding mode and provisioner, the requested size and access modes.
  - Every StorageClass, which of them are default and the class the API would give an unset claim.
  - The claim's events (provisioning failures, FailedBinding, WaitForFirstConsumer, ExternalProvisioning) and
    events of other objects that report a refused create of this claim name (ResourceQuota admission refuses
    an over-quota claim at creation, so a quota problem is a claim that does not exist).
  - The namespace's ResourceQuota storage lines (used against hard, and whether one more claim would exceed).
  - Available PersistentVolumes that would fit the claim and, for those with node affinity, the nodes that
    match it (none = the runbook's "node affinity preventing binding").
  - The pods that mount the claim, scheduled or not.
  - With O(wait), polls until the claim is Bound and its consumer pods are scheduled (the verification).
  - Read-only.
options:
  namespace:
    description: Namespace of the claim.
    type: str
    required: true
  name:
    description: Name of the claim.
    type: str
    required: true
  volumes:
    description: List the PersistentVolumes (and, for those with node affinity, the Nodes) of a claim that is not Bound.
    type: bool
    default: true
  wait:
    description: Poll until the claim is Bound and its consumers are scheduled. In check mode the claim is read once.
    type: dict
    suboptions:
      timeout:
        description: Seconds to wait.
        type: float
        default: 120
      interval:
        description: Seconds between two reads.
        type: float
        default: 2
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Read-only; O(wait) reads once.
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
  - The identity needs get on the claim, list on events, pods and ResourceQuotas in its namespace, and list on
    StorageClasses, PersistentVolumes and Nodes.
seealso:
  - module: octollm.alert_response.pvc_storage_class
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Why is the claim Pending?
  octollm.alert_response.pvc_info:
    namespace: octollm-prod
    name: data-postgres-0
  register: pvc_pending_evidence

- name: Verify - wait until it is Bound and its pods are scheduled
  octollm.alert_response.pvc_info:
    namespace: octollm-prod
    name: data-postgres-0
    volumes: false
    wait:
      timeout: 120
"""

RETURN = r"""
claim:
  description: The claim (C(exists), C(phase), C(class_how), C(class_name), C(class_exists), C(binding_mode),
    C(provisioner), C(request), C(access_modes), C(volume_name), C(age_s)).
  returned: always
  type: dict
  sample: {namespace: shop, name: data, exists: true, phase: Pending, class_how: unset, class_name: null,
           class_exists: null, request: 1Gi, age_s: 320.5}
storage_classes:
  description: Every StorageClass (name, default, provisioner, binding_mode).
  returned: always
  type: list
  elements: dict
default_class:
  description: The class the API would give a claim with no class (the newest default), or null.
  returned: always
  type: str
  sample: standard
events:
  description: The claim's events, newest first.
  returned: always
  type: list
  elements: dict
  sample: [{reason: FailedBinding, type: Normal, message: "no persistent volumes available for this claim and no storage class is set"}]
refusals:
  description: Events of other objects reporting a refused create of this claim name (quota admission).
  returned: always
  type: list
  elements: dict
quotas:
  description: ResourceQuota storage lines of the namespace.
  returned: always
  type: list
  elements: dict
  sample: [{quota: storage, resource: requests.storage, hard: 1Gi, used: 1Gi, full: true, would_exceed: true}]
volumes:
  description: Available PersistentVolumes that fit the claim, with the nodes matching their node affinity.
  returned: when the claim exists, is not Bound and O(volumes) is true
  type: dict
consumers:
  description: Pods that mount the claim, with their scheduling state.
  returned: when the claim exists
  type: list
  elements: dict
summary:
  description: One line for the incident record.
  returned: always
  type: dict
wait:
  description: How the wait went.
  returned: when O(wait) is set
  type: dict
  sample: {ok: true, bound: true, elapsed_s: 4.1, reason: "Bound; 1 consumer pod(s) scheduled"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ConnectionProblem, auth_spec, clients, unreachable
from ansible_collections.octollm.alert_response.plugins.module_utils.storage import Claim, StorageError, wait_bound


def argument_spec():
    spec = auth_spec()
    spec.update(
        namespace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        volumes=dict(type="bool", default=True),
        wait=dict(type="dict", options=dict(timeout=dict(type="float", default=120),
                                            interval=dict(type="float", default=2))),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    c = clients(module)
    result = {"changed": False}
    try:
        if p["wait"]:
            timeout = 0 if module.check_mode else p["wait"]["timeout"]
            result["wait"] = wait_bound(c, p["namespace"], p["name"], timeout, p["wait"]["interval"])
        result.update(Claim(c, p["namespace"], p["name"]).collect(read_volumes=p["volumes"]))
    except StorageError as exc:
        module.fail_json(msg=str(exc))
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
