#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: certmanager_certificate_renew
short_description: Trigger the re-issuance of one cert-manager Certificate, as cmctl renew does
version_added: 0.1.0
description:
  - Sets the C(Issuing) condition of the Certificate (status V(True), reason V(ManuallyTriggered),
    message V(Certificate re-issuance manually triggered)) on its C(status) subresource, with
    optimistic locking on C(resourceVersion), exactly like C(cmctl renew). cert-manager's
    controller then creates a new CertificateRequest with the next revision.
  - The runbook's trigger (section 6) deletes every CertificateRequest of the namespace and so
    touches other certificates (runbook defect 7.16). This module never deletes anything.
  - A Certificate that is already issuing is left alone and reported unchanged, so the module
    is idempotent while the issuance is in progress.
  - With O(wait) the module waits for the new CertificateRequest (revision greater than the
    Certificate's current C(status.revision)) and returns it. Issuance itself (the ACME order,
    the new Secret) takes longer; follow it with
    M(octollm.alert_response.certmanager_certificate_info).
options:
  name:
    description:
      - The Certificate.
    type: str
    required: true
  namespace:
    description:
      - Its namespace.
    type: str
    required: true
  wait:
    description:
      - Wait for cert-manager to create the new CertificateRequest.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for it. The module fails after that (the condition stays set).
    type: int
    default: 120
  wait_sleep:
    description:
      - Seconds between two looks.
    type: float
    default: 2
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Reads the Certificate and reports whether the condition would be set (and the
      condition itself); writes nothing and does not wait.
  diff_mode:
    support: full
    details: The C(Issuing) condition before and after.
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.k8s]
requirements:
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
notes:
  - Tested against the cert-manager v1.21 CRDs.
  - The identity needs get on certificates, update on certificates/status and list on
    certificaterequests.
seealso:
  - module: octollm.alert_response.certmanager_certificate_info
  - name: cmctl renew
    description: The command whose behaviour this module reproduces.
    link: https://cert-manager.io/docs/reference/cmctl/#renew
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Renew the certificate the alert names and wait for its new request
  octollm.alert_response.certmanager_certificate_renew:
    kubeconfig: "{{ alert_response_kubeconfig }}"
    name: api-gateway-tls
    namespace: octollm-prod
    wait_timeout: 180
  register: cert_renewal

- name: Show the new request
  ansible.builtin.debug:
    msg: "{{ cert_renewal.certificate_request.name }} is {{ cert_renewal.certificate_request.state }}"
  when: cert_renewal.certificate_request

- name: Only trigger (do not wait)
  octollm.alert_response.certmanager_certificate_renew:
    name: api-gateway-tls
    namespace: octollm-prod
    wait: false
"""

RETURN = r"""
already_issuing:
  description: The Certificate already had C(Issuing=True); nothing was written.
  returned: success
  type: bool
  sample: false
revision:
  description: The Certificate's C(status.revision) before the task (V(0) if never issued).
  returned: success
  type: int
  sample: 3
issuing:
  description: The C(Issuing) condition now (in check mode, the one that would be written).
  returned: success
  type: dict
  sample: {status: "True", reason: ManuallyTriggered, message: Certificate re-issuance manually triggered,
           last_transition_time: "2026-11-29T04:00:00Z"}
certificate_request:
  description: The new CertificateRequest (same shape as C(requests[]) of
    M(octollm.alert_response.certmanager_certificate_info)); C(null) without O(wait), in check
    mode and when nothing was triggered.
  returned: success
  type: dict
  sample: {name: api-gateway-tls-4, namespace: octollm-prod, revision: 4, state: pending, failure_reason: null,
           ready: {status: "False", reason: Pending, message: "Waiting on certificate issuance from order",
                   last_transition_time: "2026-11-29T04:00:01Z"}}
diff:
  description: The C(Issuing) condition before and after.
  returned: when diff mode is on
  type: dict
  sample: {before: {issuing: null}, after: {issuing: {status: "True", reason: ManuallyTriggered}}}
"""

from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

from ansible_collections.octollm.alert_response.plugins.module_utils.certmanager import (
    CertManager,
    CertManagerError,
    condition,
    is_true,
    request_summary,
    utcnow,
)


def argument_spec():
    spec = dict(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=120),
        wait_sleep=dict(type="float", default=2),
    )
    spec.update(AUTH_ARG_SPEC)
    return spec


def execute_module(client, module):
    params = module.params
    name, namespace = params["name"], params["namespace"]
    manager = CertManager(client)
    cert = manager.get_certificate(name, namespace)
    if cert is None:
        raise CertManagerError("Certificate %s/%s not found; check the name and namespace "
                               "(certmanager_certificate_info lists them)" % (namespace, name))
    before = condition(cert, "Issuing")
    revision = int((cert.get("status") or {}).get("revision") or 0)
    result = dict(changed=False, already_issuing=is_true(before), revision=revision, issuing=before,
                  certificate_request=None)
    if result["already_issuing"]:
        return result
    known = {req["metadata"]["name"] for req in manager.requests_for(cert)}
    if module.check_mode:
        cert, changed = manager.with_issuing(cert, utcnow()), True
    else:
        cert, changed = manager.set_issuing(cert)
    result.update(changed=changed, issuing=condition(cert, "Issuing"), already_issuing=not changed)
    if module._diff:
        result["diff"] = dict(before={"issuing": before}, after={"issuing": result["issuing"]})
    if changed and params["wait"] and not module.check_mode:
        request = manager.wait_for_request(cert, known, revision, params["wait_timeout"], params["wait_sleep"])
        if request is None:
            module.fail_json(msg="Issuing condition set on Certificate %s/%s, but no CertificateRequest with a "
                                 "revision above %d appeared within %ss; check that the cert-manager controller "
                                 "is running (pods in namespace cert-manager) and read its logs"
                                 % (namespace, name, revision, params["wait_timeout"]), **result)
        result["certificate_request"] = request_summary(request)
    return result


def main():
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argument_spec(), supports_check_mode=True)
    if module.params["wait_timeout"] < 0 or module.params["wait_sleep"] <= 0:
        module.fail_json(msg="wait_timeout must not be negative and wait_sleep must be positive")
    try:
        client = get_api_client(module=module)
        module.exit_json(**execute_module(client, module))
    except CertManagerError as exc:
        module.fail_json(msg=str(exc))
    except CoreException as exc:
        module.fail_from_exception(exc)


if __name__ == "__main__":
    main()
