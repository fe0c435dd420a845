# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL for the alert-response modules: connection, option spec and the SQL.

The two modules (``postgres_activity_info``, ``postgres_terminate_backends``) stay thin;
everything that touches the server is here so that the selection a check run reports and
the selection a real run terminates come from the same query.
"""
from __future__ import annotations

import time
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import dict_row
    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
    DB_ERRORS = (psycopg.Error,)
except ImportError:  # pragma: no cover - depends on the environment
    psycopg = sql = conninfo_to_dict = dict_row = None
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

    class _PsycopgUnavailable(Exception):
        """Stands in for psycopg's errors when psycopg is missing (the module fails first)."""

    DB_ERRORS = (_PsycopgUnavailable,)

APPLICATION_NAME = "octollm-alert-response"

# Backend states as pg_stat_activity spells them.
STATES = ["active", "idle", "idle in transaction", "idle in transaction (aborted)",
          "fastpath function call", "disabled"]

# Age of a backend in seconds: the running time of the current query when it is active,
# otherwise the time spent in its current state (for "idle in transaction" that is how
# long the open transaction has been waiting on the client).
AGE_SQL = ("EXTRACT(EPOCH FROM clock_timestamp() - CASE WHEN a.state = 'active' "
           "THEN a.query_start ELSE a.state_change END)::float8")

# Only ordinary client sessions of non-superusers can ever be selected for termination:
# never our own backend, never autovacuum/walsender/background workers (their
# backend_type differs), never a superuser's session.
_TERMINATE_GUARD = """a.pid <> pg_backend_pid()
  AND a.backend_type = 'client backend'
  AND NOT r.rolsuper"""


def postgres_argument_spec():
    """Connection options (documented in doc_fragments/postgres.py)."""
    return dict(
        dsn=dict(type="str"),
        login_host=dict(type="str"),
        login_port=dict(type="int"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        login_db=dict(type="str"),
        ssl_mode=dict(type="str", choices=["allow", "disable", "prefer", "require", "verify-ca",
                                           "verify-full"]),
        ca_cert=dict(type="path"),
        connect_timeout=dict(type="int", default=10),
    )


def ensure_required_libs(module):
    if not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib("psycopg (>= 3.1)"), exception=PSYCOPG_IMPORT_ERROR)


def conn_params(module):
    """libpq keywords from the DSN and the login_* options; hides the DSN's password."""
    params = module.params
    try:
        kwargs = conninfo_to_dict(params["dsn"] or "")
    except psycopg.ProgrammingError as exc:
        # The message may quote the DSN: do not echo it.
        module.fail_json(msg="The dsn option is not a valid libpq connection string (%s); "
                             "use postgresql://user:password@host:port/db" % type(exc).__name__)
    if kwargs.get("password"):
        module.no_log_values.add(str(kwargs["password"]))
    for option, keyword in (("login_host", "host"), ("login_port", "port"), ("login_user", "user"),
                            ("login_password", "password"), ("login_db", "dbname"),
                            ("ssl_mode", "sslmode"), ("ca_cert", "sslrootcert"),
                            ("connect_timeout", "connect_timeout")):
        if params.get(option) is not None:
            kwargs[keyword] = params[option]
    kwargs.setdefault("application_name", APPLICATION_NAME)
    return kwargs


def describe_target(kwargs):
    """user@host:port/db for messages (never the password)."""
    return "%s@%s:%s/%s" % (kwargs.get("user", "<default user>"), kwargs.get("host", "<default host>"),
                            kwargs.get("port", 5432), kwargs.get("dbname", "<default db>"))


def connect(module):
    """An autocommit connection with dict rows; fails the module with the next step."""
    ensure_required_libs(module)
    kwargs = conn_params(module)
    try:
        conn = psycopg.connect(autocommit=True, row_factory=dict_row, **kwargs)
    except psycopg.Error as exc:
        module.fail_json(msg="Failed to connect to PostgreSQL %s: %s; check dsn/login_* options, "
                             "that the server is reachable and that the role may log in"
                             % (describe_target(kwargs), str(exc).strip()))
    return conn


def server_info(conn):
    row = conn.execute(
        "SELECT current_setting('server_version_num')::int AS num, current_setting('server_version') AS version,"
        " current_setting('max_connections')::int AS max_connections,"
        " current_setting('superuser_reserved_connections')::int AS superuser_reserved_connections,"
        " current_database() AS database, current_user AS login_user,"
        " pg_backend_pid() AS own_pid").fetchone()
    return dict(row)


# ---------------------------------------------------------------- activity (read-only)
def application_activity(conn, databases=None):
    """Client backends grouped by application_name and state.

    Other backend types and the module's own session are left out."""
    query = sql.SQL("""
SELECT a.application_name, coalesce(a.state, 'unknown') AS state, count(*)::int AS n,
       max(a.query_start) AS last_query_start, max({age})::float8 AS max_age_s
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
  AND ({all_dbs} OR a.datname = ANY(%(dbs)s))
GROUP BY 1, 2 ORDER BY 1, 2""").format(age=sql.SQL(AGE_SQL), all_dbs=sql.Literal(not databases))
    return conn.execute(query, {"dbs": databases or []}).fetchall()


def summarize_applications(rows, pool_sizes=None):
    """{application: {total, active, idle, idle_in_transaction, states, pool_use_ratio, ...}}."""
    apps = {}
    for row in rows:
        app = apps.setdefault(row["application_name"], {
            "total": 0, "active": 0, "idle": 0, "idle_in_transaction": 0, "states": {},
            "last_query_start": None, "max_idle_in_transaction_s": None})
        app["total"] += row["n"]
        app["states"][row["state"]] = row["n"]
        key = row["state"].replace(" ", "_")
        if key in ("active", "idle", "idle_in_transaction"):
            app[key] = row["n"]
        if row["state"].startswith("idle in transaction"):
            app["max_idle_in_transaction_s"] = max(app["max_idle_in_transaction_s"] or 0.0, row["max_age_s"] or 0.0)
        if row["last_query_start"] is not None:
            stamp = row["last_query_start"].isoformat()
            app["last_query_start"] = max(app["last_query_start"] or stamp, stamp)
    for name, app in apps.items():
        size = (pool_sizes or {}).get(name)
        app["pool_size"] = size
        app["pool_use_ratio"] = round(app["total"] / float(size), 4) if size else None
    for name, size in (pool_sizes or {}).items():
        # An application with a pool but no session is worth showing too: ratio 0.
        if name not in apps:
            apps[name] = {"total": 0, "active": 0, "idle": 0, "idle_in_transaction": 0, "states": {},
                          "last_query_start": None, "max_idle_in_transaction_s": None,
                          "pool_size": size, "pool_use_ratio": 0.0 if size else None}
    return apps


def backend_row(row):
    """JSON-friendly copy of a pg_stat_activity row."""
    out = dict(row)
    for key in ("query_start", "state_change", "backend_start", "xact_start"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    if out.get("age_s") is not None:
        out["age_s"] = round(out["age_s"], 3)
    return out


def long_running_queries(conn, min_age, query_length, databases=None):
    """Active client queries running for at least min_age seconds, oldest first."""
    query = sql.SQL("""
SELECT a.pid, a.application_name, a.usename, a.datname, a.state, a.query_start, a.xact_start,
       {age} AS age_s, left(a.query, %(qlen)s) AS query
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend' AND a.state = 'active' AND a.pid <> pg_backend_pid()
  AND {age} >= %(min_age)s AND ({all_dbs} OR a.datname = ANY(%(dbs)s))
ORDER BY a.query_start""").format(age=sql.SQL(AGE_SQL), all_dbs=sql.Literal(not databases))
    rows = conn.execute(query, {"qlen": query_length, "min_age": min_age, "dbs": databases or []})
    return [backend_row(r) for r in rows.fetchall()]


def statement_time_columns(columns):
    """(total, mean) column names of pg_stat_statements for this server.

    PostgreSQL 13 renamed total_time/mean_time to total_exec_time/mean_exec_time; the
    runbook still uses the old names (runbook defect 7.6)."""
    if "total_exec_time" in columns and "mean_exec_time" in columns:
        return "total_exec_time", "mean_exec_time"
    if "total_time" in columns and "mean_time" in columns:
        return "total_time", "mean_time"
    return None


def top_statements(conn, limit, query_length):
    """Top statements by total time, or (None, reason) when pg_stat_statements is not usable."""
    ext = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                       " WHERE e.extname = 'pg_stat_statements'").fetchone()
    if ext is None:
        return None, ("the pg_stat_statements extension is not installed in database %s; "
                      "CREATE EXTENSION pg_stat_statements there (it also needs shared_preload_libraries)"
                      % conn.info.dbname)
    cols = [r["attname"] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        ("%s.pg_stat_statements" % sql.Identifier(ext["nspname"]).as_string(conn),)).fetchall()]
    names = statement_time_columns(cols)
    if names is None:
        return None, "pg_stat_statements has neither total_exec_time nor total_time columns"
    query = sql.SQL("""
SELECT s.queryid::text AS queryid, left(s.query, %(qlen)s) AS query, s.calls::bigint AS calls,
       s.{total}::float8 AS total_time_ms, s.{mean}::float8 AS mean_time_ms, s.rows::bigint AS rows,
       r.rolname AS usename, d.datname
FROM {schema}.pg_stat_statements s
LEFT JOIN pg_roles r ON r.oid = s.userid LEFT JOIN pg_database d ON d.oid = s.dbid
ORDER BY s.{total} DESC LIMIT %(limit)s""").format(
        total=sql.Identifier(names[0]), mean=sql.Identifier(names[1]), schema=sql.Identifier(ext["nspname"]))
    try:
        rows = conn.execute(query, {"qlen": query_length, "limit": limit}).fetchall()
    except psycopg.Error as exc:
        # e.g. "pg_stat_statements must be loaded via shared_preload_libraries"
        return None, str(exc).strip()
    for row in rows:
        row["total_time_ms"] = round(row["total_time_ms"], 3)
        row["mean_time_ms"] = round(row["mean_time_ms"], 3)
        row["time_columns"] = list(names)
    return rows, None


# ---------------------------------------------------------------- termination
def selection_filter(applications, states, min_age, databases=None):
    """WHERE clause + params shared by the selection and by each pg_terminate_backend."""
    clause = sql.SQL("""{guard}
  AND a.application_name = ANY(%(apps)s)
  AND a.state = ANY(%(states)s)
  AND {age} >= %(min_age)s
  AND ({all_dbs} OR a.datname = ANY(%(dbs)s))""").format(
        guard=sql.SQL(_TERMINATE_GUARD), age=sql.SQL(AGE_SQL), all_dbs=sql.Literal(not databases))
    return clause, {"apps": list(applications), "states": list(states), "min_age": float(min_age),
                    "dbs": list(databases or [])}


def select_backends(conn, where, params, limit, query_length):
    """The backends a termination would hit, oldest first, at most `limit`; and the total."""
    query = sql.SQL("""
SELECT a.pid, a.application_name, a.usename, a.datname, a.state, a.query_start, a.state_change,
       {age} AS age_s, left(a.query, %(qlen)s) AS query, count(*) OVER ()::int AS matched
FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
WHERE {where}
ORDER BY age_s DESC, a.pid LIMIT %(limit)s""").format(age=sql.SQL(AGE_SQL), where=where)
    values = dict(params, qlen=query_length, limit=limit)
    rows = conn.execute(query, values).fetchall()
    matched = rows[0]["matched"] if rows else 0
    selected = []
    for row in rows:
        row.pop("matched")
        selected.append(backend_row(row))
    return selected, matched, psycopg.ClientCursor(conn).mogrify(query, values).strip()


def terminate_statement(where):
    return sql.SQL("""SELECT pg_terminate_backend(a.pid) AS terminated
FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.pid = %(pid)s AND {where}""").format(where=where)


def terminate_backends(conn, where, params, pids):
    """Terminate each pid if it still matches the filter; returns (terminated, failed, gone).

    One statement per pid so that a permission error on one backend does not hide the
    others, and the filter is re-checked at the moment of termination: a pid that
    finished its query (or was reused by another session) in between is left alone."""
    statement = terminate_statement(where)
    terminated, failed, gone = [], [], []
    for pid in pids:
        try:
            row = conn.execute(statement, dict(params, pid=pid)).fetchone()
        except psycopg.Error as exc:
            failed.append({"pid": pid, "error": str(exc).strip()})
            continue
        if row is None:
            gone.append(pid)
        elif row["terminated"]:
            terminated.append(pid)
        else:
            failed.append({"pid": pid, "error": "pg_terminate_backend returned false (backend already exiting)"})
    return terminated, failed, gone


def wait_backends_gone(conn, pids, timeout):
    """pids still in pg_stat_activity after up to `timeout` seconds (signals are async)."""
    deadline = time.monotonic() + timeout
    remaining = list(pids)
    while remaining:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (remaining,)).fetchall()
        remaining = [r["pid"] for r in rows]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return remaining
