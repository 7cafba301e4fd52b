"""The command line: every subcommand has --help; errors are precise and exit 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bandit.cli import build_parser, main
from conftest import REPO

COMMANDS = ["init", "validate", "info", "migrate", "decide", "outcome", "activate", "export-dsjson", "import-dsjson", "forget", "purge", "train", "retrain", "rollback", "monitor", "working-well", "tune", "evaluate", "serve", "demo", "flows"]


def test_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in COMMANDS:
        assert cmd in out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_subcommand_has_help(cmd, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and "usage: offer-bandit " + cmd in capsys.readouterr().out


def test_parser_knows_exactly_these_commands() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)


def run(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    # a fixed salt: a generated one would put the test's customer in the 5% control group now and then
    return subprocess.run([sys.executable, "-m", "bandit.cli", *args, "--home", str(home)], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "OFFER_BANDIT_SALT": "cli-test-salt"})


def test_decide_outcome_export_train_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "h"
    body = {"event_id": "cli-1", "channel": "chat",
            "customer": {"id": "c-9", "tier": "gold", "tenure_months": 40, "authenticated": True},
            "interaction": {"request_type": "advisory", "resolved": "true", "sentiment": 0.7}}
    p = run("decide", "-", home=home, stdin=json.dumps(body))
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["event_id"] == "cli-1" and d["mode"] == "cold_start"
    assert run("outcome", "cli-1", "complaint", home=home).stdout.strip() == "recorded"
    assert "duplicate" in run("outcome", "cli-1", "complaint", home=home).stdout
    bad = run("outcome", "nope", "complaint", home=home)
    assert bad.returncode == 2 and "unknown event_id 'nope'" in bad.stderr
    out = tmp_path / "x.json"
    assert "wrote 1 events" in run("export-dsjson", str(out), home=home).stdout
    t = run("train", "--out", str(tmp_path / "m.vw"), home=home)
    assert t.returncode == 0 and "trained on 1 events" in t.stdout
    p = subprocess.run([sys.executable, "-m", "bandit.cli", "decide", "-", "--home", str(home),
                        "--model", str(tmp_path / "m.vw")], input=json.dumps({**body, "event_id": "cli-2"}),
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert json.loads(p.stdout)["model_version"].startswith("file:")


def test_bad_request_names_the_field(tmp_path: Path) -> None:
    body = {"channel": "fax", "customer": {"id": "c"}, "interaction": {"request_type": "advisory", "sentiment": 4}}
    p = run("decide", "-", home=tmp_path, stdin=json.dumps(body))
    assert p.returncode == 2
    assert "field 'channel'" in p.stderr and "field 'interaction.sentiment'" in p.stderr


def test_invalid_catalog_lists_problems_and_exits_2(tmp_path: Path) -> None:
    cat = tmp_path / "offers.yaml"
    cat.write_text("offers:\n  - id: x\n    title: t\n")
    p = run("validate", "--catalog", str(cat), home=tmp_path)
    assert p.returncode == 2
    assert f"{cat}: offer 'x': field 'family'" in p.stderr and f"{cat}: offer 'x': field 'channels'" in p.stderr


def test_flows_serve_refuses_a_policy_file_the_runs_could_not_load(tmp_path: Path) -> None:
    """Checked once at start, before any schedule is registered (else every run would fail)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("monitoring: {min_offers: -1}\n")
    p = run("flows", "serve", "--policy", str(policy), home=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"{policy}: field 'monitoring.min_offers'" in p.stderr


def test_migrate_check_tells_an_unreachable_database_from_an_upgrade_due(tmp_path: Path) -> None:
    import sqlite3

    down = run("migrate", "--check", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/x", home=tmp_path)
    assert down.returncode == 3 and "Traceback" not in down.stderr
    assert down.stderr.startswith("error: the decision log's database does not answer: connection failed")
    assert len(down.stderr.strip().splitlines()) == 1
    old = tmp_path / "old.db"  # a log at an older revision
    assert run("migrate", "--database-url", f"sqlite:///{old}", home=tmp_path).returncode == 0
    with sqlite3.connect(old) as db:
        db.execute("UPDATE alembic_version SET version_num = '0002'")
    due = run("migrate", "--check", "--database-url", f"sqlite:///{old}", home=tmp_path)
    assert due.returncode == 1, due.stderr
    assert run("migrate", "--check", home=tmp_path).returncode == 0  # empty: created when first opened


def test_a_flow_command_whose_tracking_store_does_not_answer_says_so_in_one_line(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "bandit.cli", "retrain", "--no-prefect", "--home", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=300,
                       env={**os.environ, "OFFER_BANDIT_MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
    assert p.returncode == 3 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip() == ("error: the MLflow tracking store http://127.0.0.1:1 does not answer "
                                "(ConnectionError); nothing was recorded")


def test_each_served_instance_gets_bentoml_home_under_its_own_home(tmp_path: Path) -> None:
    """BentoML empties its metrics directory at every start: two services sharing one BentoML
    home (replicas on one host, or the test suite's) lost each other's /metrics."""
    from service.cli import serve_env
    from bandit.config.settings import get_settings

    s = get_settings(home=tmp_path / "replica-1")
    assert serve_env(s, {})["BENTOML_HOME"] == str((tmp_path / "replica-1" / "bentoml").resolve())
    assert serve_env(s, {"BENTOML_HOME": "/srv/bentoml"})["BENTOML_HOME"] == "/srv/bentoml"


def test_import_dsjson_refuses_in_one_line_then_imports_and_trains_on_a_personalizer_history(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from personalizer import personalizer_history

    home = tmp_path / "h"
    lines = personalizer_history(30, datetime(2026, 11, 10, tzinfo=UTC))
    ccb = lines[2].replace('"_multi"', '"_slots": [{"_id": "s1"}], "_multi"')
    for name, body, message in [
        ("ccb.json", "\n".join([*lines[:2], ccb, *lines[3:]]).encode(),
         "line 3: field 'c._slots': a conditional contextual bandit or slates event"),
        ("latin1.json",
         lines[0].encode() + b"\n" + lines[1].replace('"Version": "1"', '"Version": "\xe9"').encode("latin-1"),
         "line 2: not UTF-8 text"),
    ]:
        path = tmp_path / name
        path.write_bytes(body)
        p = run("import-dsjson", str(path), home=home)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.startswith(f"error: {path}: {message}") and p.stderr.endswith("(nothing imported)\n")
    good = tmp_path / "history.json"
    good.write_text("\n".join(lines) + "\n")
    p = run("import-dsjson", str(good), home=home)
    assert p.returncode == 0, p.stderr
    assert "read 30 events" in p.stdout and "30 new" in p.stdout and "3 marked _skipLearn" in p.stdout
    t = run("train", "--out", str(tmp_path / "m.vw"), home=home)
    assert t.returncode == 0 and "trained on 27 events" in t.stdout, t.stderr


def test_init_then_validate_anywhere_with_the_installed_command(tmp_path: Path) -> None:
    """Outside the repository every command failed ("config/offers.yaml: cannot read catalog").
    Now, in an empty directory: the packaged examples serve until ``init`` writes a copy, and
    ``info``/``validate`` say which files are used and where they were found."""
    command = Path(sys.executable).with_name("offer-bandit")  # the installed console script
    work = tmp_path / "anywhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFER_BANDIT_")}

    def ob(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(command), *args], cwd=work, env={**env, "OFFER_BANDIT_SALT": "anywhere"},
                              input=stdin, capture_output=True, text=True, timeout=120)

    info = json.loads(ob("info").stdout)
    assert info["catalog"]["found"] == info["policy"]["found"] == "packaged example"
    assert Path(info["catalog"]["path"]).is_file() and info["home"] == str(work / ".offer-bandit")

    p = ob("init", "demo-config")
    assert p.returncode == 0, p.stderr
    written = work / "demo-config" / "offers.yaml"
    assert written.read_text().startswith("# The offer catalog") and (work / "demo-config" / "policy.yaml").is_file()
    p = ob("validate")
    assert p.returncode == 0 and "(packaged example)" in p.stdout, p.stderr
    p = ob("validate", "--home", "demo-config")
    assert p.returncode == 0 and "demo-config/offers.yaml (home)" in p.stdout, p.stderr

    # what validate reads under that home is the copy init wrote
    written.write_text(written.read_text().replace("value: 120", "value: -1", 1))
    p = ob("validate", "--home", "demo-config")
    assert p.returncode == 2 and "demo-config/offers.yaml: offer 'fiber_upgrade': field 'value'" in p.stderr
    assert ob("init", "demo-config").returncode == 2  # never overwritten without --force
    assert ob("init", "demo-config", "--force").returncode == 0

    # `init` alone writes the home's configuration, which every command then finds
    assert ob("init").returncode == 0
    info = json.loads(ob("info").stdout)
    assert info["catalog"] == {"path": ".offer-bandit/offers.yaml", "found": "home"}
    request = {"channel": "web", "interaction": {"request_type": "informational"}}
    p = ob("decide", "-", stdin=json.dumps(request))
    assert p.returncode == 0 and json.loads(p.stdout)["mode"] == "cold_start", p.stderr
    assert sorted(q.name for q in work.iterdir()) == [".offer-bandit", "demo-config"]  # nothing else written


def test_a_working_directory_config_wins_over_the_home(monkeypatch: pytest.MonkeyPatch) -> None:
    from bandit.config.settings import EXAMPLES, get_settings

    monkeypatch.chdir(REPO)  # the repository's config/
    s = get_settings(home=Path("/nonexistent-home"))
    assert s.config_sources == {"catalog": "working directory", "policy": "working directory"}
    assert s.catalog.resolve() == (EXAMPLES / "offers.yaml").resolve()  # config/ links to the examples
    assert get_settings(catalog=Path("x.yaml")).config_sources["catalog"] == "setting"
