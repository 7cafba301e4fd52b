"""The architecture's contracts (pyproject.toml ``[tool.importlinter]``, docs/architecture.md):
the core imports no framework and no adapter, its stages import only the stages below them,
the service never imports the orchestration and the flows never import the service.
A broken contract fails the suite."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    p = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
    assert "BROKEN" not in p.stdout and " kept, 0 broken" in p.stdout, p.stdout


def test_the_service_process_loads_no_orchestration_and_the_help_no_framework() -> None:
    """What the contracts say of the import graph, seen in a running interpreter: the
    service's module (what ``bentoml serve`` imports) loads neither Prefect nor the flows,
    and ``offer-bandit --help`` (every plugin's commands listed) loads no framework at all."""
    probe = ("import sys, {mod}\n{call}\n"
             "print(sorted(m for m in sys.modules if m in {{'prefect', 'flows', 'mlflow', 'bentoml', 'fastapi'}}))")
    env = {"OFFER_BANDIT_API_KEYS": "k", "PATH": "/usr/bin:/bin", "DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "True"}
    served = subprocess.run([sys.executable, "-c", probe.format(mod="service.service", call="")], cwd=REPO,
                            capture_output=True, text=True, timeout=120, env=env)
    assert served.returncode == 0, served.stderr
    assert served.stdout.split("\n")[-2] == "['bentoml', 'fastapi']", served.stdout
    helped = subprocess.run([sys.executable, "-c", probe.format(
        mod="bandit.cli", call="try:\n    bandit.cli.build_parser().parse_args(['--help'])\nexcept SystemExit:\n    pass")],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert helped.returncode == 0, helped.stderr
    assert "retrain" in helped.stdout and "serve" in helped.stdout and "demo" in helped.stdout
    assert helped.stdout.split("\n")[-2] == "['flows']", helped.stdout  # flows.cli, which imports no Prefect
