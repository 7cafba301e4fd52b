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
