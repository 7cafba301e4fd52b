"""The small demo loop runs end to end and the trained policy beats cold start."""

from experiments.loop import run_loop


def test_short_loop_runs_and_learns(settings, capsys) -> None:
    assert run_loop(settings, days=2, per_day=600, seed=3) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line[:3].strip().isdigit()]
    assert len(rows) == 2 and rows[0][1] == "cold-start" and rows[1][1].startswith("file:")
    rev = [float(r[5]) for r in rows]
    assert rev[1] > rev[0]
