"""A short `offer-bandit demo`: the real service, two simulated days over HTTP, the flows
each night under Prefect, the baselines on the same customers, and the JSON table."""

import json
import os
from pathlib import Path
from unittest import mock

import pytest

from bandit.config.settings import get_settings
from conftest import REPO

pytestmark = pytest.mark.slow


def test_a_short_demo_runs_the_whole_loop_and_writes_its_table(tmp_path: Path, prefect_server: None) -> None:
    # no capsys here: Prefect's console log handler keeps the stream it first wrote to, and a
    # capsys stream is closed after the test, failing every later flow run in the session
    from experiments.demo.demo import POLICIES, run_demo

    settings = get_settings(home=tmp_path / "home", catalog=REPO / "config/offers.yaml",
                            policy=REPO / "config/policy.yaml", salt="demo")
    with mock.patch.dict(os.environ):  # the demo points this process's flows at its home
        lines: list[str] = []
        assert run_demo(settings, days=2, per_day=150, seed=3, json_path=tmp_path / "demo.json", log=lines.append) == 0
    out = "\n".join(lines)
    table = json.loads((tmp_path / "demo.json").read_text())
    assert [d["day"] for d in table["days"]] == [1, 2] and set(table["policies"]) == set(POLICIES)
    for day in table["days"]:
        assert all(day[p]["decisions"] == 150 for p in POLICIES)
        assert day["no_offer"]["offer_rate"] == 0 and day["runs"]["retrain"] and day["runs"]["monitor"]
    for figures in table["policies"].values():
        assert set(figures) >= {"revenue_per_interaction", "acceptance_rate", "complaint_rate", "offer_rate"}
    work = tmp_path / "home" / "demo"
    import sqlite3

    with sqlite3.connect(work / "decisions.db") as db:  # every bandit decision went through the service
        assert db.execute("select count(*) from decisions").fetchone()[0] == 300
    assert (work / "demo.png").stat().st_size > 0 and (work / "mlflow.db").is_file()
    assert "MLflow UI:" in out and "Prefect UI:" in out and "rules" in out

    # the breakdown reads the days and decisions the final table reports, from the logs
    from experiments.demo.breakdown import breakdown, render

    b = breakdown(work, ("tone", "offer", "explored"))
    assert b["seed"] == 3 and b["days"] == table["policies_days"]
    n = 150 * len(b["days"])
    for name in ("bandit", "rules", "random", "oracle"):
        total = b["policies"][name]["total"]
        assert total["decisions"] == n and total["offers"] == round(table["policies"][name]["offer_rate"] * n)
        assert sum(r["decisions"] for r in b["policies"][name]["groups"]["tone"].values()) == n
        assert 0 <= total["expected_complaints"] <= total["offers"]
    assert b["policies"]["bandit"]["total"]["complaints"] == round(table["policies"]["bandit"]["complaint_rate"] * n)
    assert "explored" not in b["policies"]["rules"]["groups"] and "tone 0-0.1" in render(b)
