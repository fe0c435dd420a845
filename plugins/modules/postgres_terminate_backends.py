#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgres_terminate_backends
short_description: Terminate the stuck sessions of named applications, behind guardrails
version_added: 0.1.0
description:
  - The "long-running queries blocking connections" remediation of the DatabaseConnectionPoolExhausted
    procedure (runbook section 4), which the runbook flags as careful work; this module makes
    the "only if you are sure it is safe" part explicit.
  - Selects client backends whose C(application_name) is one of O(application_name), whose
    state is one of O(state) and whose age is at least O(min_query_age) seconds, oldest first,
    at most O(limit); then calls C(pg_terminate_backend) on each.
  - Never selects its own backend, a superuser's backend, or any backend that is not a
    C(client backend) (autovacuum, walsender/replication, background workers).
  - Each C(pg_terminate_backend) re-checks the same filter, so a session that finished its
    query (or a pid reused by another session) between selection and termination is left alone
    and reported in RV(gone).
  - Idempotent; once the matching sessions are gone a second run finds nothing and reports
    no change.
options:
  application_name:
    description:
      - The C(application_name) values whose sessions may be terminated (exact match).
      - An empty name is refused, because it would match every unnamed session (psql, cron jobs).
    type: list
    elements: str
    required: true
  allowed_applications:
    description:
      - Guardrail allow-list. When set, every O(application_name) must be in it or the module
        fails without touching anything.
    type: list
    elements: str
  state:
    description:
      - Backend states to select.
    type: list
    elements: str
    default: [active, idle in transaction]
    choices: [active, idle, idle in transaction, idle in transaction (aborted), fastpath function call, disabled]
  min_query_age:
    description:
      - Minimum age in seconds. For an active backend the age is the running time of its current
        query, for the others it is the time spent in the current state (for C(idle in transaction),
        how long the open transaction has been waiting).
      - The runbook uses 5 minutes.
    type: float
    default: 300
  limit:
    description:
      - At most this many backends are terminated per run, the oldest first. RV(matched) tells
        how many matched in total.
    type: int
    default: 10
  databases:
    description:
      - Only sessions connected to these databases. Default is every database.
    type: list
    elements: str
  query_length:
    description:
      - Query texts in the result are cut to this many characters.
    type: int
    default: 200
  wait_timeout:
    description:
      - Seconds to wait for the terminated backends to leave C(pg_stat_activity)
        (C(pg_terminate_backend) only sends the signal). V(0) does not wait.
    type: float
    default: 5
extends_documentation_fragment:
  - octollm.alert_response.postgres
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Runs the same selection query and returns exactly the backends a real run would
      terminate (RV(backends)), with C(changed) true when there are any. Nothing is signalled.
  diff_mode:
    support: full
    details: The pids before and after.
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.postgres]
notes:
  - The login role needs C(pg_signal_backend) (and C(pg_read_all_stats) to see query texts).
  - The module fails after trying every selected backend when any termination failed; the
    result still lists what was terminated.
seealso:
  - module: octollm.alert_response.postgres_activity_info
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Preview which orchestrator sessions would be terminated
  octollm.alert_response.postgres_terminate_backends:
    dsn: "{{ alert_response_pg_dsn }}"
    application_name: [orchestrator]
    allowed_applications: "{{ alert_response_terminable_applications }}"
    min_query_age: 300
  check_mode: true
  register: db_terminate_preview

- name: Terminate the long-running and idle-in-transaction orchestrator sessions
  octollm.alert_response.postgres_terminate_backends:
    dsn: "{{ alert_response_pg_dsn }}"
    application_name: [orchestrator]
    allowed_applications: "{{ alert_response_terminable_applications }}"
    state: [active, idle in transaction]
    min_query_age: 300
    limit: 20
  register: db_terminated
"""

RETURN = r"""
backends:
  description: The selected backends (what was, or in check mode would be, terminated), oldest first.
  returned: success
  type: list
  elements: dict
  sample:
    - pid: 4711
      application_name: orchestrator
      usename: app
      datname: octollm
      state: active
      query_start: "2026-11-29T03:40:00.000+00:00"
      state_change: "2026-11-29T03:40:00.000+00:00"
      age_s: 612.3
      query: SELECT pg_sleep(600)
matched:
  description: How many backends matched before O(limit) applied.
  returned: success
  type: int
  sample: 12
truncated:
  description: True when O(limit) left matching backends alone.
  returned: success
  type: bool
  sample: false
terminated:
  description: Pids that were signalled (empty in check mode).
  returned: success
  type: list
  elements: int
  sample: [4711, 4712]
failures:
  description: Pids whose termination failed, with the server's error (the module then fails).
  returned: always
  type: list
  elements: dict
  sample: [{pid: 4713, error: "permission denied to terminate process"}]
gone:
  description: Selected pids that no longer matched when their turn came (query finished, session closed).
  returned: success
  type: list
  elements: int
  sample: []
still_present:
  description: Terminated pids still in C(pg_stat_activity) after O(wait_timeout).
  returned: success
  type: list
  elements: int
  sample: []
queries:
  description: The selection query as sent (check mode shows what a real run executes first).
  returned: success
  type: list
  elements: str
  sample: ["SELECT a.pid, ... WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' ..."]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.postgres import (
    DB_ERRORS,
    STATES,
    connect,
    postgres_argument_spec,
    select_backends,
    selection_filter,
    terminate_backends,
    wait_backends_gone,
)


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        application_name=dict(type="list", elements="str", required=True),
        allowed_applications=dict(type="list", elements="str"),
        state=dict(type="list", elements="str", default=["active", "idle in transaction"], choices=STATES),
        min_query_age=dict(type="float", default=300),
        limit=dict(type="int", default=10),
        databases=dict(type="list", elements="str"),
        query_length=dict(type="int", default=200),
        wait_timeout=dict(type="float", default=5),
    )
    return spec


def check_guardrails(module):
    """Refuse before connecting: empty names, names outside the allow-list, bad numbers."""
    params = module.params
    apps = params["application_name"]
    if not apps or any(not (name or "").strip() for name in apps):
        module.fail_json(msg="application_name must list non-empty application names; an empty name "
                             "would match every unnamed session")
    allowed = params["allowed_applications"]
    if allowed is not None:
        refused = [name for name in apps if name not in allowed]
        if refused:
            module.fail_json(msg="Refusing to terminate backends of application(s) %s: not in "
                                 "allowed_applications %s; add them to the allow-list only if their "
                                 "sessions are safe to terminate" % (", ".join(map(repr, refused)), allowed),
                             refused=refused)
    if params["limit"] < 1:
        module.fail_json(msg="limit must be at least 1")
    if params["min_query_age"] < 0 or params["wait_timeout"] < 0:
        module.fail_json(msg="min_query_age and wait_timeout must not be negative")


def execute_module(module, conn):
    params = module.params
    where, values = selection_filter(params["application_name"], params["state"], params["min_query_age"],
                                     params["databases"])
    selected, matched, query = select_backends(conn, where, values, params["limit"], params["query_length"])
    pids = [row["pid"] for row in selected]
    result = dict(changed=bool(selected), backends=selected, matched=matched, truncated=matched > len(selected),
                  terminated=[], failures=[], gone=[], still_present=[], queries=[query])
    if module._diff:
        result["diff"] = dict(before={"backends": pids}, after={"backends": []})
    if module.check_mode or not selected:
        return result
    terminated, failed, gone = terminate_backends(conn, where, values, pids)
    result.update(changed=bool(terminated), terminated=terminated, failures=failed, gone=gone,
                  still_present=wait_backends_gone(conn, terminated, params["wait_timeout"]))
    if module._diff:
        result["diff"]["after"] = {"backends": [f["pid"] for f in failed]}
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_guardrails(module)
    conn = connect(module)
    try:
        result = execute_module(module, conn)
    except DB_ERRORS as exc:
        module.fail_json(msg="Failed to select backends of %s on database %s: %s; the login role needs "
                             "pg_read_all_stats and pg_signal_backend"
                             % (", ".join(module.params["application_name"]), conn.info.dbname, str(exc).strip()))
    finally:
        conn.close()
    if result["failures"]:
        module.fail_json(msg="Terminated %d backend(s) of %s but %d failed (%s); the login role needs "
                             "pg_signal_backend, and superuser backends cannot be signalled by it"
                             % (len(result["terminated"]), ", ".join(module.params["application_name"]),
                                len(result["failures"]),
                                "; ".join("pid %s: %s" % (f["pid"], f["error"]) for f in result["failures"])),
                         **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
