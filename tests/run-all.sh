#!/usr/bin/env bash
# `make test`: lint, unit tests, the test bed, integration tests and every molecule
# scenario, in that order, on one shared test bed. Prints the time of each stage and
# writes them to tests/output/timings.txt.
#   KEEP_TESTBED=1   leave the test bed running afterwards (it is stopped only if this
#                    run started it)
#   ONLY=unit|integration|molecule|lint   run one stage (molecule/<scenario>: one scenario)
#   MOLECULE_LANES=N  molecule scenarios side by side (default 2; 1: one by one)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
rm -rf tests/output/molecule   # converge figures of this run only (tools/molecule_figures.py)
mkdir -p tests/output/molecule
rm -rf tests/output/logs tests/output/molecule-failed.txt && mkdir -p tests/output/logs   # one log per stage
timings=tests/output/timings.txt
: > "$timings"
failed=()
stage() {  # stage <name> <command...>
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ] && [[ "$name" != "$ONLY"/* ]]; then return 0; fi
  local t0=$SECONDS
  local log="tests/output/logs/${name//\//_}.log"
  echo "=== [$name] $*"
  if "$@" 2>&1 | tee "$log"; then
    echo "=== [$name] ok in $((SECONDS - t0)) s" | tee -a "$timings"
  else
    echo "=== [$name] FAILED in $((SECONDS - t0)) s" | tee -a "$timings"
    failed+=("$name")
  fi
}

started_testbed=0
testbed_up() {  # (runs in a pipeline, a subshell: started_testbed is decided below, before any stage)
  python tests/testbed/testbed.py up
}
cleanup() {
  if [ "$started_testbed" = 1 ] && [ "${KEEP_TESTBED:-0}" != 1 ]; then
    python tests/testbed/testbed.py down || true
  fi
}
trap cleanup EXIT
# decided before any stage: the unit tests of the PostgreSQL ledger already bring it up
if [ "${ONLY:-}" != lint ] && ! python tests/testbed/testbed.py status >/dev/null 2>&1; then
  started_testbed=1
fi

stage lint tools/lint.sh
stage unit python -m pytest tests/unit -q -p no:cacheprovider --durations=10
case "${ONLY:-}" in
  lint|unit) ;;  # no test bed needed
  *) stage testbed testbed_up
     # molecule and the integration tests read the test bed's addresses from the env
     set -a; . .testbed/testbed.env; set +a ;;
esac
stage integration python -m pytest tests/integration -q -p no:cacheprovider --durations=20
# every scenario against the one running test bed, MOLECULE_LANES (default 2) at a time where
# that is safe (tools/molecule_lanes.py: node faults alone, shared servers one by one)
if [ -z "${ONLY:-}" ] || [ "$ONLY" = molecule ] || [[ "$ONLY" == molecule/* ]]; then
  t0=$SECONDS
  python tools/molecule_lanes.py --only "${ONLY:-}" 2>&1 | tee tests/output/logs/molecule.log
  rc=${PIPESTATUS[0]}
  echo "=== [molecule] all scenarios in $((SECONDS - t0)) s" | tee -a "$timings"
  if [ -s tests/output/molecule-failed.txt ]; then
    while read -r name; do failed+=("molecule/$name"); done < tests/output/molecule-failed.txt
  elif [ "$rc" != 0 ]; then
    failed+=(molecule)   # the runner itself failed
  fi
fi

echo
cat "$timings"
python tools/molecule_figures.py > tests/output/molecule-figures.md 2>/dev/null || true
if [ ${#failed[@]} -gt 0 ]; then
  # CI shows the end of the output: repeat there why each failed stage failed
  for name in "${failed[@]}"; do
    echo "--- why [$name] failed (tests/output/logs/${name//\//_}.log):"
    # without colours; a failed task with its name and the message that follows it
    sed 's/\x1b\[[0-9;]*m//g' "tests/output/logs/${name//\//_}.log" | awk '
      /TASK \[/ { task = $0 }
      /fatal: \[|failed: \[/ { print task; n = 14 }
      n > 0 { print; n--; next }
      /^(FAILED|ERROR)|ERROR:|[0-9]+ (passed|failed)/ { print }' | tail -60
  done
  echo "FAILED stages: ${failed[*]}"
  exit 1
fi
echo "all stages passed"
