"""Stand-in for the pip bootstrap script that ansible-test downloads from
ci-files.testing.ansible.com (not reachable from this network). It takes the same
arguments, bootstraps pip with the standard library's ensurepip and installs the
requested pip version from PyPI. tools/lint.sh copies it into ansible-test's cache."""
import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

env = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
# ensurepip points PIP_CONFIG_FILE at /dev/null for its own run; give pip its config back
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", *args], env=env))
