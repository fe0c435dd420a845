#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgres_activity_info
short_description: Connection pool evidence from pg_stat_activity and pg_stat_statements
version_added: 0.1.0
description:
  - Reads what the DatabaseConnectionPoolExhausted procedure (runbook section 4) looks at,
    in one round trip per question.
  - Client connections per C(application_name) and state (active, idle, idle in transaction)
    with the pool use ratio per application when O(pool_sizes) are given; a very high idle
    count for one application points at a connection leak.
  - Long-running queries (active for at least O(min_query_age) seconds), oldest first.
  - C(max_connections), C(superuser_reserved_connections) and the current number of client
    connections.
  - Optionally the top statements of C(pg_stat_statements) by total time. PostgreSQL 13
    renamed the columns the runbook uses (C(total_time), C(mean_time)) to
    C(total_exec_time), C(mean_exec_time); the module picks whichever the server has.
  - Read-only; a missing or unloaded C(pg_stat_statements) is reported, not an error.
options:
  min_query_age:
    description:
      - Active queries running for at least this many seconds are listed in RV(long_running_queries).
      - The runbook uses 5 minutes.
    type: float
    default: 300
  pool_sizes:
    description:
      - Client pool size per application (for example C(DB_POOL_SIZE) of each service's
        ConfigMap), to compute C(pool_use_ratio) in RV(applications).
    type: dict
    default: {}
  databases:
    description:
      - Only count sessions connected to these databases. Default is every database.
    type: list
    elements: str
  query_length:
    description:
      - Query texts are cut to this many characters.
    type: int
    default: 200
  statements:
    description:
      - Also read the top statements of C(pg_stat_statements) (installed in the connected database).
    type: bool
    default: false
  statements_limit:
    description:
      - How many statements to return, by total execution time.
    type: int
    default: 10
extends_documentation_fragment:
  - octollm.alert_response.postgres
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same queries in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership: [octollm.alert_response.postgres]
seealso:
  - module: octollm.alert_response.postgres_terminate_backends
author:
  - OctoLLM SRE (@octollm)
"""

EXAMPLES = r"""
- name: Read connection activity of the services sharing the database
  octollm.alert_response.postgres_activity_info:
    dsn: "{{ alert_response_pg_dsn }}"
    pool_sizes:
      orchestrator: 20
      arm-planner: 10
    min_query_age: 300
  register: db_pool_activity

- name: Name the application holding the most idle connections
  ansible.builtin.debug:
    msg: >-
      {{ db_pool_activity.applications | dict2items
         | sort(attribute='value.idle', reverse=true) | first }}

- name: Top statements by total execution time (pg_stat_statements)
  octollm.alert_response.postgres_activity_info:
    login_host: 127.0.0.1
    login_user: octollm_runner
    login_password: "{{ vault_runner_password }}"
    login_db: octollm
    statements: true
    statements_limit: 10
  register: db_statements
"""

RETURN = r"""
server:
  description: Server facts.
  returned: success
  type: dict
  sample: {version: "15.18", num: 150018, database: octollm, login_user: octollm_runner, own_pid: 4242}
max_connections:
  description: The server's C(max_connections).
  returned: success
  type: int
  sample: 100
superuser_reserved_connections:
  description: Slots only superusers may use.
  returned: success
  type: int
  sample: 3
total_connections:
  description: Client backends now (all applications, all databases unless O(databases)),
    not counting the module's own session.
  returned: success
  type: int
  sample: 42
available_connections:
  description: C(max_connections - superuser_reserved_connections - total_connections), what
    ordinary roles can still open (approximate when O(databases) filters).
  returned: success
  type: int
  sample: 55
connection_use_ratio:
  description: C(total_connections / max_connections).
  returned: success
  type: float
  sample: 0.42
applications:
  description:
    - Client connections per C(application_name) (empty name for unnamed sessions), plus one
      entry per O(pool_sizes) key even without sessions.
    - C(states) counts every state; C(active), C(idle), C(idle_in_transaction) are shortcuts.
  returned: success
  type: dict
  sample:
    orchestrator:
      total: 19
      active: 15
      idle: 2
      idle_in_transaction: 2
      states: {active: 15, idle: 2, "idle in transaction": 2}
      last_query_start: "2026-11-29T03:50:01.123+00:00"
      max_idle_in_transaction_s: 42.5
      pool_size: 20
      pool_use_ratio: 0.95
long_running_queries:
  description: Active queries running for at least O(min_query_age) seconds, oldest first.
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
      xact_start: "2026-11-29T03:40:00.000+00:00"
      age_s: 612.3
      query: SELECT * FROM tasks JOIN ...
statements:
  description:
    - Top statements by total execution time (milliseconds). C(time_columns) says which
      columns were read (C(total_exec_time)/C(mean_exec_time) on PostgreSQL 13 and later).
    - C(null) when O(statements) is false or the extension is not usable (see RV(statements_error)).
  returned: success
  type: list
  elements: dict
  sample:
    - queryid: "-7437392791287000"
      query: SELECT * FROM tasks WHERE owner = $1
      calls: 1200
      total_time_ms: 98231.2
      mean_time_ms: 81.859
      rows: 1200
      usename: app
      datname: octollm
      time_columns: [total_exec_time, mean_exec_time]
statements_error:
  description: Why RV(statements) could not be read (extension missing, not preloaded).
  returned: when O(statements) is true and the extension is not usable
  type: str
  sample: the pg_stat_statements extension is not installed in database octollm; ...
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.octollm.alert_response.plugins.module_utils.postgres import (
    DB_ERRORS,
    application_activity,
    connect,
    long_running_queries,
    postgres_argument_spec,
    server_info,
    summarize_applications,
    top_statements,
)


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        min_query_age=dict(type="float", default=300),
        pool_sizes=dict(type="dict", default={}),
        databases=dict(type="list", elements="str"),
        query_length=dict(type="int", default=200),
        statements=dict(type="bool", default=False),
        statements_limit=dict(type="int", default=10),
    )
    return spec


def pool_sizes(module):
    sizes = {}
    for name, value in module.params["pool_sizes"].items():
        try:
            sizes[name] = int(value)
        except (TypeError, ValueError):
            module.fail_json(msg="pool_sizes[%r] must be an integer pool size, got %r" % (name, value))
        if sizes[name] < 0:
            module.fail_json(msg="pool_sizes[%r] must not be negative" % name)
    return sizes


def execute_module(module, conn):
    params = module.params
    info = server_info(conn)
    databases = params["databases"]
    apps = summarize_applications(application_activity(conn, databases), pool_sizes(module))
    total = sum(app["total"] for app in apps.values())
    result = dict(
        changed=False,
        server={k: info[k] for k in ("version", "num", "database", "login_user", "own_pid")},
        max_connections=info["max_connections"],
        superuser_reserved_connections=info["superuser_reserved_connections"],
        total_connections=total,
        available_connections=info["max_connections"] - info["superuser_reserved_connections"] - total,
        connection_use_ratio=round(total / float(info["max_connections"]), 4),
        applications=apps,
        long_running_queries=long_running_queries(conn, params["min_query_age"], params["query_length"],
                                                  databases),
        statements=None,
    )
    if params["statements"]:
        rows, error = top_statements(conn, params["statements_limit"], params["query_length"])
        result["statements"] = rows
        if error:
            result["statements_error"] = error
            module.warn("pg_stat_statements not read: %s" % error)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params["query_length"] < 1 or module.params["statements_limit"] < 1:
        module.fail_json(msg="query_length and statements_limit must be at least 1")
    conn = connect(module)
    try:
        result = execute_module(module, conn)
    except DB_ERRORS as exc:
        module.fail_json(msg="Failed to read pg_stat_activity on database %s: %s; the login role needs "
                             "pg_read_all_stats (or pg_monitor)" % (conn.info.dbname, str(exc).strip()))
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
