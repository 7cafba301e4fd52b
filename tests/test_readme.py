"""The README's quick-start script runs as written, and VW's own CLI trains on its export."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- readme-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README has no <!-- readme-example --> python block"
    return m.group(1)


def test_readme_example_runs_and_its_export_trains_in_vw(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    p = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    # the lines the README shows are what it prints
    shown = re.search(r"Output, abbreviated[^\n]*\n\n```\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert shown, "README shows no output after its example"
    for line in shown.group(1).splitlines()[:2]:
        assert line in p.stdout, line
    exported = sorted(tmp_path.rglob("*.json"))
    assert exported, f"the example wrote no DSJSON file under {tmp_path}:\n{p.stdout}"
    vw = subprocess.run([sys.executable, "-m", "vowpalwabbit", "--dsjson", "--cb_explore_adf", "-d", str(exported[0])],
                        capture_output=True, text=True, timeout=120)
    assert vw.returncode == 0, vw.stderr
    assert re.search(r"number of examples = [1-9]", vw.stdout + vw.stderr)
