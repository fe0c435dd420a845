#!/usr/bin/env bash
# Debian packages the test bed and the runner need. Installs only what is missing, so a
# second run costs a few dpkg queries. Needs root or passwordless sudo for apt-get.
set -euo pipefail
PKGS=(
  prometheus                    # Prometheus server + promtool (rules run in the test bed)
  prometheus-alertmanager       # Alertmanager posting to the event source
  postgresql                    # real PostgreSQL for the ledger and the data-tier modules
  postgresql-contrib            # pg_stat_statements (runbook section 4)
  redis-server                  # real Redis for the cache modules
  prometheus-redis-exporter     # real redis_exporter: redis_keyspace_hits_total & co.
  prometheus-postgres-exporter  # real postgres_exporter
  default-jre-headless          # ansible-rulebook's Drools engine (JDK 17 on bookworm)
  time                          # /usr/bin/time for build figures
  procps                        # pgrep/ps used by the launcher
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A JDK already on PATH (this machine's OpenJDK 17) serves ansible-rulebook as well.
if command -v java >/dev/null 2>&1; then
  missing=("${missing[@]/default-jre-headless}")
fi
missing=($(printf '%s\n' "${missing[@]}" | sed '/^$/d'))
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
echo "[system-deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's packages start nothing here (no systemd); the test bed starts its own copies
# on free ports, so make sure no packaged instance holds the default ports either.
