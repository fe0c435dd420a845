# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the PostgreSQL modules (spec: module_utils/postgres.py)."""
from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  dsn:
    description:
      - libpq connection string, as a URI (V(postgresql://user:secret@host:5432/db)) or as
        C(key=value) pairs.
      - Only the password inside it is hidden from the task output (it is added to the
        module's C(no_log_values)); the rest stays visible so that results show where the
        module connected.
      - O(login_host), O(login_port), O(login_user), O(login_password) and O(login_db)
        override the matching parts of the DSN.
      - When neither the DSN nor the C(login_*) options name a server, libpq's defaults and
        C(PG*) environment variables apply.
    type: str
  login_host:
    description:
      - Host running the database (a name, an address or a Unix socket directory).
    type: str
  login_port:
    description:
      - Database port.
    type: int
  login_user:
    description:
      - Role to log in as. Terminating backends needs a role with C(pg_signal_backend);
        reading other roles' query text needs C(pg_read_all_stats).
    type: str
  login_password:
    description:
      - Password of O(login_user).
    type: str
  login_db:
    description:
      - Database to connect to. C(pg_stat_activity) shows every database of the server;
        C(pg_stat_statements) must be installed in this one to be read.
    type: str
  ssl_mode:
    description:
      - libpq C(sslmode). Unset means libpq's default (V(prefer)) or the DSN's value.
    type: str
    choices: [ allow, disable, prefer, require, verify-ca, verify-full ]
  ca_cert:
    description:
      - CA certificate file used to verify the server (libpq C(sslrootcert)).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection.
    type: int
    default: 10
requirements:
  - psycopg >= 3.1 (the C(psycopg) package, on the host that runs the module)
notes:
  - The module's own session sets C(application_name=octollm-alert-response) so that it can
    be recognised in C(pg_stat_activity).
"""
