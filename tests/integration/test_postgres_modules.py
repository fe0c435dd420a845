"""postgres_activity_info and postgres_terminate_backends against the test bed's PostgreSQL.

The tests open their own sessions (role `app`, application_name `orchestrator-test-<random>`):
long `pg_sleep(600)` queries in threads, idle-in-transaction and idle sessions, and one
superuser session with the same application_name. The modules run for real through
ansible-playbook as the runner role (pg_signal_backend + pg_read_all_stats), and every
claim is checked with an independent query as the superuser.
"""
from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
from module_runner import run_module  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODULES = ["postgres_activity_info", "postgres_terminate_backends"]
RUNNER_DSN = "{{ lookup('env', 'OCTOLLM_PG_DSN') }}"


# ------------------------------------------------------------------ helpers


def doc_and_spec(env, module):
    """(documented options, argument spec) of a module."""
    proc = subprocess.run(["ansible-doc", "--json", f"octollm.alert_response.{module}"], check=False, cwd=REPO,
                          env=env,
                          text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[f"octollm.alert_response.{module}"]["doc"]
    mod = __import__(f"ansible_collections.octollm.alert_response.plugins.modules.{module}", fromlist=["x"])
    return doc, mod.argument_spec()


def assert_doc_matches_spec(options, spec, where=""):
    assert sorted(options) == sorted(spec), where
    for name, opt in spec.items():
        doc = options[name]
        label = f"{where}{name}"
        assert doc.get("type", "str") == opt.get("type", "str"), label
        assert bool(doc.get("required")) == bool(opt.get("required")), label
        assert doc.get("default") == opt.get("default"), label
        assert doc.get("choices") == opt.get("choices"), label
        assert doc.get("elements") == opt.get("elements"), label
        if opt.get("options"):
            assert_doc_matches_spec(doc["suboptions"], opt["options"], f"{label}.")


# ------------------------------------------------------------------ sessions
class Sessions:
    """Real client sessions of one application name, and an independent superuser view."""

    def __init__(self, testbed):
        self.testbed = testbed
        self.app = f"orchestrator-test-{secrets.token_hex(4)}"
        self.conns, self.threads = [], []
        self.admin = psycopg.connect(testbed["OCTOLLM_PG_ADMIN_DSN"], autocommit=True)

    def _connect(self, dsn_key, app=None, autocommit=True):
        conn = psycopg.connect(self.testbed[dsn_key], application_name=app or self.app, autocommit=autocommit)
        self.conns.append(conn)
        return conn, conn.info.backend_pid

    def sleeper(self, dsn_key="OCTOLLM_PG_APP_DSN", app=None):
        """A session running SELECT pg_sleep(600) in a thread."""
        conn, pid = self._connect(dsn_key, app)

        def run():
            try:
                conn.execute("SELECT pg_sleep(600)")
            except psycopg.Error:
                pass  # terminated: what the tests want

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        self.wait_state(pid, "active")
        return pid

    def idle_in_transaction(self):
        conn, pid = self._connect("OCTOLLM_PG_APP_DSN", autocommit=False)
        conn.execute("SELECT 1")  # opens the transaction, then the session waits on us
        self.wait_state(pid, "idle in transaction")
        return pid

    def idle(self):
        conn, pid = self._connect("OCTOLLM_PG_APP_DSN")
        conn.execute("SELECT 1")
        self.wait_state(pid, "idle")
        return pid

    def wait_state(self, pid, state, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.admin.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row and row[0] == state:
                return
            time.sleep(0.05)
        raise AssertionError(f"backend {pid} never reached state {state!r}")

    def alive(self, pids):
        rows = self.admin.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),))
        return {r[0] for r in rows.fetchall()}

    def close(self):
        self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
                           (self.app + "%",))
        for thread in self.threads:
            thread.join(timeout=10)
        for conn in self.conns:
            conn.close()
        self.admin.close()


@pytest.fixture()
def sessions(testbed):
    s = Sessions(testbed)
    yield s
    s.close()


pytestmark = pytest.mark.testbed


# ------------------------------------------------------------------ docs
@pytest.mark.parametrize("module", MODULES)
def test_docs_render_and_match_the_argument_spec(testbed_env, module):
    proc = subprocess.run(["ansible-doc", f"octollm.alert_response.{module}"], check=False, cwd=REPO,
                          env=testbed_env,
                          text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0 and "EXAMPLES" in proc.stdout, proc.stderr
    doc, spec = doc_and_spec(testbed_env, module)
    assert_doc_matches_spec(doc["options"], spec)
    assert doc["attributes"]["check_mode"]["support"] == "full"


# ------------------------------------------------------------------ activity info
def test_activity_info_sees_sessions_and_long_queries(testbed, testbed_env, sessions):
    sleepers = {sessions.sleeper(), sessions.sleeper()}
    in_tx = sessions.idle_in_transaction()
    sessions.idle()
    table = "t_" + sessions.app.replace("-", "_")
    with psycopg.connect(testbed["OCTOLLM_PG_APP_DSN"], autocommit=True) as conn:
        # A statement of our own for pg_stat_statements: a new temporary table gives it a
        # queryid no earlier run has (constants and comments do not count in the queryid).
        conn.execute(f"CREATE TEMPORARY TABLE {table} AS SELECT generate_series(1, 1000) AS n")
        for _round in range(3):
            conn.execute(f"SELECT count(*) FROM {table}")
        queryid = conn.execute("SELECT queryid::text FROM pg_stat_statements WHERE query = %s",
                               (f"SELECT count(*) FROM {table}",)).fetchone()[0]
    time.sleep(1.2)
    res = run_module(testbed_env, "postgres_activity_info", {
        "dsn": RUNNER_DSN, "min_query_age": 1, "query_length": 10, "pool_sizes": {sessions.app: 8},
        "statements": True, "statements_limit": 5000})
    assert not res.get("failed"), res.get("msg")
    app = res["applications"][sessions.app]
    assert (app["active"], app["idle_in_transaction"], app["idle"], app["total"]) == (2, 1, 1, 4)
    assert app["states"] == {"active": 2, "idle in transaction": 1, "idle": 1}
    assert app["pool_size"] == 8 and app["pool_use_ratio"] == 0.5
    assert app["max_idle_in_transaction_s"] >= 1
    mine = [q for q in res["long_running_queries"] if q["application_name"] == sessions.app]
    assert {q["pid"] for q in mine} == sleepers and in_tx not in {q["pid"] for q in mine}
    assert all(q["query"] == "SELECT pg_" and q["age_s"] >= 1 and q["usename"] == "app" for q in mine)
    settings = dict(sessions.admin.execute(
        "SELECT name, setting::int FROM pg_settings WHERE name IN "
        "('max_connections', 'superuser_reserved_connections')").fetchall())
    assert res["max_connections"] == settings["max_connections"]
    assert res["superuser_reserved_connections"] == settings["superuser_reserved_connections"]
    assert res["total_connections"] >= 4
    assert res["available_connections"] == (res["max_connections"] - res["superuser_reserved_connections"]
                                            - res["total_connections"])
    # PostgreSQL 15: the PG13+ column names are the ones read
    ours = [s for s in res["statements"] if s["queryid"] == queryid]
    assert ours and ours[0]["calls"] == 3 and ours[0]["time_columns"] == ["total_exec_time", "mean_exec_time"]
    assert ours[0]["query"] == "SELECT cou" and ours[0]["usename"] == "app"
    assert "statements_error" not in res
    # the password inside the DSN is masked, the rest of the DSN is not
    password = psycopg.conninfo.conninfo_to_dict(testbed["OCTOLLM_PG_DSN"])["password"]
    assert password not in res["_stdout"] and "octollm_runner" in res["_stdout"]


def test_statement_columns_follow_the_server_version():
    from ansible_collections.octollm.alert_response.plugins.module_utils.postgres import statement_time_columns
    assert statement_time_columns({"total_exec_time", "mean_exec_time", "calls"}) == ("total_exec_time",
                                                                                      "mean_exec_time")
    assert statement_time_columns({"total_time", "mean_time", "calls"}) == ("total_time", "mean_time")  # PG <= 12
    assert statement_time_columns({"calls"}) is None


# ------------------------------------------------------------------ terminate
def test_terminate_check_real_check_real(testbed_env, sessions):
    targets = {sessions.sleeper(), sessions.sleeper(), sessions.idle_in_transaction()}
    superuser = sessions.sleeper("OCTOLLM_PG_ADMIN_DSN")  # same application_name, superuser
    idle = sessions.idle()  # state not selected by default
    other_app = sessions.sleeper(app=sessions.app + "-other")
    bystanders = {superuser, idle, other_app}
    time.sleep(1.2)
    args = {"dsn": RUNNER_DSN, "application_name": [sessions.app], "min_query_age": 1,
            "allowed_applications": [sessions.app, "orchestrator"]}

    check = run_module(testbed_env, "postgres_terminate_backends", args, check=True, diff=True)
    assert check["changed"] is True and not check.get("failed"), check.get("msg")
    assert {b["pid"] for b in check["backends"]} == targets
    assert check["terminated"] == [] and check["matched"] == 3
    assert set(check["diff"]["before"]["backends"]) == targets
    assert "NOT r.rolsuper" in check["queries"][0]
    assert sessions.alive(targets | bystanders) == targets | bystanders

    real = run_module(testbed_env, "postgres_terminate_backends", args)
    assert real["changed"] is True and not real.get("failed"), real.get("msg")
    assert set(real["terminated"]) == targets and real["failures"] == [] and real["still_present"] == []
    assert sessions.alive(targets | bystanders) == bystanders

    again = run_module(testbed_env, "postgres_terminate_backends", args)
    assert again["changed"] is False and again["backends"] == [] and again["terminated"] == []
    check_again = run_module(testbed_env, "postgres_terminate_backends", args, check=True)
    assert check_again["changed"] is False and check_again["backends"] == []
    assert sessions.alive(bystanders) == bystanders


def test_terminate_respects_limit_and_age(testbed_env, sessions):
    pids = {sessions.sleeper(), sessions.sleeper(), sessions.sleeper()}
    args = {"dsn": RUNNER_DSN, "application_name": [sessions.app], "state": ["active"]}
    young = run_module(testbed_env, "postgres_terminate_backends", args, check=True)  # default 300 s
    assert young["changed"] is False and young["matched"] == 0
    time.sleep(1.2)
    limited = run_module(testbed_env, "postgres_terminate_backends", dict(args, min_query_age=1, limit=2))
    assert limited["changed"] is True and limited["truncated"] is True and limited["matched"] == 3
    assert len(limited["terminated"]) == 2 and set(limited["terminated"]) <= pids
    assert len(sessions.alive(pids)) == 1


def test_terminate_refuses_applications_outside_the_allow_list(testbed_env, sessions):
    pid = sessions.sleeper()
    time.sleep(1.2)
    res = run_module(testbed_env, "postgres_terminate_backends", {
        "dsn": RUNNER_DSN, "application_name": [sessions.app], "min_query_age": 1,
        "allowed_applications": ["orchestrator", "arm-planner"]})
    assert res["failed"] is True and res["changed"] is False
    assert "not in allowed_applications" in res["msg"] and sessions.app in res["msg"]
    assert sessions.alive({pid}) == {pid}
    empty = run_module(testbed_env, "postgres_terminate_backends", {"dsn": RUNNER_DSN, "application_name": [""]})
    assert empty["failed"] is True and "non-empty" in empty["msg"]


def test_connection_error_names_the_target_without_the_password(testbed_env):
    res = run_module(testbed_env, "postgres_activity_info", {
        "dsn": "postgresql://octollm_runner:not-the-password-xyz@127.0.0.1:1/octollm", "connect_timeout": 3})
    assert res["failed"] is True
    assert "octollm_runner@127.0.0.1:1/octollm" in res["msg"] and "check dsn" in res["msg"]
    assert "not-the-password-xyz" not in res["_stdout"]
