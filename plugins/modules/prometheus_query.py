#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: prometheus_query
short_description: Instant and range PromQL queries, optionally waiting for a condition
version_added: 0.1.0
description:
  - Runs an instant query (C(/api/v1/query)) or, with O(start) or O(range_seconds), a range
    query (C(/api/v1/query_range)) against the Prometheus HTTP API.
  - Returns the result as Prometheus shapes it and, when the answer is a single sample, that
    sample as a float in RV(scalar).
  - With O(wait_until) the instant query is repeated until RV(scalar) satisfies a comparison.
    Every procedure ends by verifying "with the same signals that fired the alert"; this is
    how a role does it (for example, wait until the pool ratio is below 0.95).
  - A query Prometheus rejects (bad PromQL, unknown function) fails with Prometheus' own
    error text.
options:
  query:
    description:
      - The PromQL expression.
    type: str
    required: true
  time:
    description:
      - Evaluation time of an instant query, unix seconds or RFC 3339. Default is now.
    type: str
  start:
    description:
      - Start of a range query, unix seconds or RFC 3339.
    type: str
  end:
    description:
      - End of a range query, unix seconds or RFC 3339. Default is now.
    type: str
  range_seconds:
    description:
      - Range query over the last this many seconds (up to O(end)), instead of O(start).
    type: float
  step:
    description:
      - Resolution of a range query, a Prometheus duration (V(15s)) or seconds.
      - Default gives at most 1000 points, and at least one second between points.
    type: str
  wait_until:
    description:
      - Repeat the instant query until RV(scalar) satisfies RV(scalar) O(wait_until.op)
        O(wait_until.value). A result that is not a single sample (no series, several series)
        never satisfies it; write the query so that it answers one number (C(sum(...)),
        C(... or vector(0))).
    type: dict
    suboptions:
      op:
        description: The comparison.
        type: str
        required: true
        choices: ["<", "<=", ">", ">=", "==", "!="]
      value:
        description: The number to compare with.
        type: float
        required: true
      timeout:
        description: Seconds to keep trying.
        type: float
        default: 300
      interval:
        description: Seconds between two queries.
        type: float
        default: 10
      fail_on_timeout:
        description:
          - Fail when the condition is still false after O(wait_until.timeout). With V(false)
            the module returns C(wait.satisfied=false) instead (to branch on, for example to escalate).
        type: bool
        default: true
extends_documentation_fragment:
  - octollm.alert_response.prometheus
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Queries are reads and run in check mode too. O(wait_until) evaluates the
      condition once and neither waits nor fails, since the remediation it would wait for
      did not happen in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.prometheus]
seealso:
  - name: Prometheus HTTP API
    description: The query endpoints and their result formats.
    link: https://prometheus.io/docs/prometheus/latest/querying/api/
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Pool use ratio of the service, now
  octollm.alert_response.prometheus_query:
    url: "{{ alert_response_prometheus_url }}"
    query: >-
      max(db_pool_active_connections{service="orchestrator"}
        / db_pool_max_connections{service="orchestrator"})
  register: pool_ratio

- name: Error ratio over the last 30 minutes, one point a minute
  octollm.alert_response.prometheus_query:
    url: "{{ alert_response_prometheus_url }}"
    query: sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))
    range_seconds: 1800
    step: 60s

- name: Verify with the signal that fired the alert - wait until the pool is below 95 %
  octollm.alert_response.prometheus_query:
    url: "{{ alert_response_prometheus_url }}"
    bearer_token: "{{ prometheus_token }}"
    query: >-
      max(db_pool_active_connections{service="orchestrator"}
        / db_pool_max_connections{service="orchestrator"})
    wait_until:
      op: "<"
      value: 0.95
      timeout: 600
      interval: 15
      fail_on_timeout: false
  register: pool_verified
"""

RETURN = r"""
query:
  description: The query as sent.
  returned: success
  type: str
  sample: count(up == 1)
result_type:
  description: Prometheus' C(resultType) - V(vector) or V(scalar) for instant queries, V(matrix) for ranges.
  returned: success
  type: str
  sample: vector
result:
  description:
    - One entry per series, C({metric, value}) for instant queries and C({metric, values})
      for range queries; samples are C([unix_time, "value"]) as Prometheus sends them.
  returned: success
  type: list
  elements: dict
  sample: [{metric: {__name__: up, job: redis}, value: [1795924280.339, "1"]}]
scalar:
  description: The value as a float when the answer is one sample (a scalar or a one-element
    vector); C(null) otherwise, and for C(NaN) and infinite values.
  returned: success
  type: float
  sample: 3.0
start:
  description: Start of the range (unix seconds).
  returned: for range queries
  type: float
  sample: 1795922480.0
end:
  description: End of the range (unix seconds).
  returned: for range queries
  type: float
  sample: 1795924280.0
step:
  description: Step of the range.
  returned: for range queries
  type: str
  sample: "60"
warnings:
  description: Warnings Prometheus attached to the answer.
  returned: success
  type: list
  elements: str
  sample: []
wait:
  description: How the wait went.
  returned: when O(wait_until) is set
  type: dict
  sample: {satisfied: true, attempts: 3, elapsed_s: 20.1, op: "<", value: 0.95, last_scalar: 0.62}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.prometheus import (
    OPERATORS,
    PrometheusClient,
    PrometheusError,
    default_step,
    normalize,
    prometheus_argument_spec,
    to_unix,
    wait_until,
)


def argument_spec():
    spec = prometheus_argument_spec()
    spec.update(
        query=dict(type="str", required=True),
        time=dict(type="str"),
        start=dict(type="str"),
        end=dict(type="str"),
        range_seconds=dict(type="float"),
        step=dict(type="str"),
        wait_until=dict(type="dict", options=dict(
            op=dict(type="str", required=True, choices=list(OPERATORS)),
            value=dict(type="float", required=True),
            timeout=dict(type="float", default=300),
            interval=dict(type="float", default=10),
            fail_on_timeout=dict(type="bool", default=True),
        )),
    )
    return spec


MUTUALLY_EXCLUSIVE = [("time", "start"), ("time", "range_seconds"), ("start", "range_seconds"),
                      ("wait_until", "start"), ("wait_until", "range_seconds")]


def time_range(module):
    """(start, end, step) of a range query, in unix seconds."""
    params = module.params
    try:
        end = to_unix(params["end"]) if params["end"] else time.time()
        start = to_unix(params["start"]) if params["start"] else end - params["range_seconds"]
    except ValueError as exc:
        module.fail_json(msg="start/end must be unix seconds or RFC 3339 times: %s" % exc)
    if start >= end:
        module.fail_json(msg="The range is empty: start (%s) is not before end (%s)" % (start, end))
    return start, end, params["step"] or str(default_step(start, end))


def run_instant(client, params):
    data, warnings = client.query(params["query"], params["time"])
    return normalize(data) + (warnings,)


def execute_module(module, client):
    params = module.params
    result = dict(changed=False, query=params["query"])
    if params["start"] or params["range_seconds"] is not None:
        start, end, step = time_range(module)
        data, warnings = client.query_range(params["query"], start, end, step)
        rtype, series, scalar = normalize(data)
        result.update(start=start, end=end, step=step)
    elif params["wait_until"]:
        (rtype, series, scalar, warnings), result["wait"] = wait_for(module, client)
    else:
        rtype, series, scalar, warnings = run_instant(client, params)
    result.update(result_type=rtype, result=series, scalar=scalar, warnings=warnings)
    return result


def wait_for(module, client):
    """Poll the instant query until the condition holds; (last answer, wait summary)."""
    params = module.params
    cond = params["wait_until"]
    if cond["timeout"] < 0 or cond["interval"] <= 0:
        module.fail_json(msg="wait_until.timeout must not be negative and wait_until.interval must be positive")
    # In check mode the remediation being verified did not run: evaluate once, do not wait.
    timeout = 0 if module.check_mode else cond["timeout"]
    answer, ok, attempts, elapsed = wait_until(lambda: run_instant(client, params), cond["op"], cond["value"],
                                               timeout, cond["interval"])
    return answer, dict(satisfied=ok, attempts=attempts, elapsed_s=round(elapsed, 3), op=cond["op"],
                        value=cond["value"], last_scalar=answer[2])


def timeout_message(params, wait):
    last = "no single sample" if wait["last_scalar"] is None else wait["last_scalar"]
    return ("Prometheus query %r did not satisfy scalar %s %s within %ss (%d attempts, last value: %s); "
            "the remediation has not taken effect yet: investigate again or escalate"
            % (params["query"], wait["op"], wait["value"], params["wait_until"]["timeout"], wait["attempts"], last))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), mutually_exclusive=MUTUALLY_EXCLUSIVE,
                           supports_check_mode=True)
    client = PrometheusClient.from_module(module)
    try:
        result = execute_module(module, client)
    except PrometheusError as exc:
        kind = "rejected" if exc.error_type else "failed on"
        module.fail_json(msg="Prometheus %s query %r: %s%s; fix the query or check url/credentials"
                             % (kind, module.params["query"], "%s: " % exc.error_type if exc.error_type else "",
                                exc), error_type=exc.error_type, status=exc.status)
    wait = result.get("wait")
    if wait and not wait["satisfied"] and module.params["wait_until"]["fail_on_timeout"] and not module.check_mode:
        module.fail_json(msg=timeout_message(module.params, wait), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
