#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: certmanager_certificate_info
short_description: cert-manager Certificates with expiry, readiness, issuer and issuance history
version_added: 0.1.0
description:
  - Reads what the CertificateExpiringInSevenDays procedure (runbook section 6) looks at, for
    one Certificate (O(name) and O(namespace)), a namespace, or the whole cluster.
  - For each Certificate, C(notAfter) and the days left (a float, negative once expired), the
    C(Ready) and C(Issuing) conditions, C(renewalTime), the revision and the failed issuance
    attempts.
  - The issuer it references (C(Issuer) in the same namespace, or C(ClusterIssuer)), with the
    issuer's C(Ready) condition and type (acme, ca, ...). Issuers of other API groups
    (external issuers) are reported by reference only.
  - Its CertificateRequests, found by owner reference or by the C(cert-manager.io/certificate-name)
    annotation, newest first, with their C(Ready), C(Approved), C(Denied) and C(InvalidRequest)
    conditions and a failure reason; for ACME issuers their Orders and Challenges with state
    and reason (rate limits and failed challenges show there).
  - Read-only.
options:
  name:
    description:
      - One Certificate. Needs O(namespace).
    type: str
  namespace:
    description:
      - Only Certificates of this namespace. Default is every namespace.
    type: str
  max_days_left:
    description:
      - Only Certificates that expire within this many days (and have been issued). V(7)
        matches the alert.
    type: float
  requests_limit:
    description:
      - At most this many CertificateRequests per Certificate, newest first
        (C(requests_total) tells how many exist).
    type: int
    default: 10
  acme_details:
    description:
      - Read the Orders and Challenges of each listed CertificateRequest.
    type: bool
    default: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Read-only; reads the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.k8s]
requirements:
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
notes:
  - Tested against the cert-manager v1.21 CRDs (C(cert-manager.io/v1), C(acme.cert-manager.io/v1)).
  - The identity needs get/list on certificates, certificaterequests, issuers, clusterissuers,
    orders and challenges.
seealso:
  - module: octollm.alert_response.certmanager_certificate_renew
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: The certificate the alert names
  octollm.alert_response.certmanager_certificate_info:
    kubeconfig: "{{ alert_response_kubeconfig }}"
    name: api-gateway-tls
    namespace: octollm-prod
  register: cert_info

- name: Why did the last issuance fail
  ansible.builtin.debug:
    msg: "{{ cert_info.certificates[0].requests[0].failure_reason | default('no request yet') }}"
  when: cert_info.certificates | length > 0

- name: Every certificate in the cluster expiring within 7 days
  octollm.alert_response.certmanager_certificate_info:
    max_days_left: 7
    acme_details: false
  register: expiring

- name: With the group's connection defaults
  module_defaults:
    group/octollm.alert_response.k8s:
      kubeconfig: "{{ alert_response_kubeconfig }}"
  octollm.alert_response.certmanager_certificate_info:
    namespace: octollm-prod
"""

RETURN = r"""
checked_at:
  description: The time the C(days_left) of RV(certificates) is computed against (UTC).
  returned: success
  type: str
  sample: "2026-11-29T03:51:25Z"
certificates:
  description: The Certificates, ordered by days left (soonest first, never-issued last).
  returned: success
  type: list
  elements: dict
  sample:
    - name: api-gateway-tls
      namespace: octollm-prod
      uid: 0d3113b7-6271-4bd1-99ae-4676c524b0dd
      dns_names: [api.octollm.example]
      common_name: null
      secret_name: api-gateway-tls
      issuer_ref: {name: letsencrypt-prod, kind: ClusterIssuer, group: cert-manager.io}
      issuer:
        kind: ClusterIssuer
        name: letsencrypt-prod
        group: cert-manager.io
        namespace: null
        found: true
        type: acme
        acme_server: https://acme-v02.api.letsencrypt.org/directory
        ready:
          status: "True"
          reason: ACMEAccountRegistered
          message: The ACME account was registered with the ACME server
          last_transition_time: "2026-11-29T03:46:02Z"
      not_before: "2026-10-30T03:46:02Z"
      not_after: "2026-12-04T03:46:02Z"
      days_left: 5.0
      renewal_time: "2026-11-04T03:46:02Z"
      revision: 3
      ready: {status: "False", reason: Expiring, message: Renewing certificate as renewal was scheduled,
              last_transition_time: "2026-11-04T03:46:02Z"}
      issuing: {status: "True", reason: Renewing, message: Renewing certificate,
                last_transition_time: "2026-11-04T03:46:02Z"}
      failed_issuance_attempts: 2
      last_failure_time: "2026-11-28T03:46:02Z"
      requests_total: 4
      requests:
        - name: api-gateway-tls-4
          namespace: octollm-prod
          uid: 5b0f1f0e-1c6a-4c1e-9d51-1d2b1c5e2a10
          revision: 4
          created: "2026-11-28T03:40:00Z"
          state: failed
          failure_reason: "Failed: Failed to wait for order resource to become ready: 429 ... rateLimited"
          failure_time: "2026-11-28T03:46:02Z"
          ready: {status: "False", reason: Failed, message: "...", last_transition_time: "2026-11-28T03:46:02Z"}
          approved:
            status: "True"
            reason: cert-manager.io
            message: Certificate request has been approved by cert-manager.io
            last_transition_time: "2026-11-28T03:40:00Z"
          denied: null
          invalid_request: null
          orders:
            - name: api-gateway-tls-4-1234567890
              state: errored
              reason: "429 urn:ietf:params:acme:error:rateLimited: too many certificates already issued"
              failure_time: "2026-11-28T03:46:02Z"
              challenges: []
"""

from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

from ansible_collections.octollm.alert_response.plugins.module_utils.certmanager import (
    CertManager,
    CertManagerError,
    rfc3339,
    utcnow,
)


def argument_spec():
    spec = dict(
        name=dict(type="str"),
        namespace=dict(type="str"),
        max_days_left=dict(type="float"),
        requests_limit=dict(type="int", default=10),
        acme_details=dict(type="bool", default=True),
    )
    spec.update(AUTH_ARG_SPEC)
    return spec


def sort_key(item):
    left = item["days_left"]
    return (left is None, left if left is not None else 0.0, item["namespace"], item["name"])


def execute_module(client, module):
    params = module.params
    manager = CertManager(client)
    if params["name"]:
        cert = manager.get_certificate(params["name"], params["namespace"])
        certs = [cert] if cert else []
    else:
        certs = manager.list_certificates(params["namespace"])
    now = utcnow()
    items = [manager.summarize(cert, now, params["requests_limit"], params["acme_details"]) for cert in certs]
    limit = params["max_days_left"]
    if limit is not None:
        items = [item for item in items if item["days_left"] is not None and item["days_left"] <= limit]
    return dict(changed=False, checked_at=rfc3339(now), certificates=sorted(items, key=sort_key))


def main():
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argument_spec(),
                              required_by={"name": "namespace"}, supports_check_mode=True)
    if module.params["requests_limit"] < 0:
        module.fail_json(msg="requests_limit must not be negative")
    try:
        client = get_api_client(module=module)
        module.exit_json(**execute_module(client, module))
    except CertManagerError as exc:
        module.fail_json(msg=str(exc))
    except CoreException as exc:
        module.fail_from_exception(exc)


if __name__ == "__main__":
    main()
