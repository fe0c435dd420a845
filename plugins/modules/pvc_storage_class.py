#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: pvc_storage_class
short_description: Give a Pending PersistentVolumeClaim that names no StorageClass a class
version_added: 0.1.0
description:
  - The runbook's "update PVC to use storage class" (section 11), restricted to the one case the Kubernetes API
    allows - C(spec.storageClassName) unset (nil). A claim that names a class, or the empty class C(""),
    cannot be changed - the module fails and says to recreate the claim (a person's decision, data may be
    involved).
  - Idempotent - a claim that already asks for O(storage_class) is left alone.
  - Ask C(octollm.alert_response.guardrail) (action C(set_pvc_storage_class)) first; this module does not.
options:
  namespace:
    description: Namespace of the claim.
    type: str
    required: true
  name:
    description: Name of the claim.
    type: str
    required: true
  storage_class:
    description: The StorageClass to set.
    type: str
    required: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Reads the claim and reports whether it would change; writes nothing.
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
  - The identity needs get and patch on PersistentVolumeClaims.
  - Since Kubernetes 1.28 the PV controller itself gives unset claims the default class once one exists
    (retroactive default StorageClass assignment); this module is for a class chosen by policy when the cluster
    has no default, or to apply the default without waiting for the controller's next resync.
seealso:
  - module: octollm.alert_response.pvc_info
  - module: octollm.alert_response.guardrail
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Give the claim the cluster's default class
  octollm.alert_response.pvc_storage_class:
    namespace: octollm-prod
    name: data-postgres-0
    storage_class: standard
"""

RETURN = r"""
before:
  description: The claim's storageClassName before (null = unset).
  returned: always
  type: dict
  sample: {storageClassName: null}
after:
  description: The claim's storageClassName after.
  returned: always
  type: dict
  sample: {storageClassName: standard}
msg:
  description: What was done.
  returned: always
  type: str
  sample: set StorageClass of PersistentVolumeClaim octollm-prod/data-postgres-0 to standard
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.k8s import ConnectionProblem, auth_spec, clients, unreachable
from ansible_collections.octollm.alert_response.plugins.module_utils.storage import StorageError, set_class


def main():
    spec = auth_spec()
    spec.update(namespace=dict(type="str", required=True), name=dict(type="str", required=True),
                storage_class=dict(type="str", required=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        result = set_class(clients(module), p["namespace"], p["name"], p["storage_class"], module.check_mode)
    except StorageError as exc:
        module.fail_json(msg=str(exc))
    except ConnectionProblem as exc:
        module.fail_json(msg=unreachable(exc))
    if module._diff:
        result["diff"] = {"before": result["before"], "after": result["after"]}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
