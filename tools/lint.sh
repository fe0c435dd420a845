#!/usr/bin/env bash
# Lint and sanity: ruff on every Python file, ansible-lint (production profile) on roles
# and playbooks, ansible-test sanity on exactly what `ansible-galaxy collection build`
# ships. Exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"

echo "[lint] ruff"
ruff check plugins extensions tests tools bench

if compgen -G "roles/*/tasks/*.yml" >/dev/null || compgen -G "playbooks/*.yml" >/dev/null; then
  echo "[lint] ansible-lint --profile production"
  ansible-lint --profile production --offline -q roles playbooks
fi

echo "[lint] changelog fragments"
antsibull-changelog lint

echo "[lint] ansible-test sanity (on the built collection)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ansible-galaxy collection build . --output-path "$work" >/dev/null
dest="$work/ansible_collections/octollm/alert_response"
mkdir -p "$dest"
tar -xzf "$work"/octollm-alert_response-*.tar.gz -C "$dest"
# the Kubernetes modules extend kubernetes.core's doc fragment: ansible-test finds other
# collections only beside this one
kcore=$(python -c 'import ansible_collections.kubernetes.core as m; print(list(m.__path__)[0])')
mkdir -p "$work/ansible_collections/kubernetes"
ln -s "$kcore" "$work/ansible_collections/kubernetes/core"
# ansible-test bootstraps pip from ci-files.testing.ansible.com, which is not reachable
# here; give it a stand-in that bootstraps from the standard library and PyPI.
mkdir -p ~/.ansible/test/cache
# (ansible-core 2.19 pins pip 24.2 for its test venvs)
cp tools/get_pip_shim.py ~/.ansible/test/cache/get_pip_24_2.py
( cd "$dest" && ansible-test sanity --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --local )
