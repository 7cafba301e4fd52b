"""A deterministic simulated decision log for the retraining and monitoring tests."""

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def simulated_log(tmp_path: Path, migrated_db: Path | None, day: int = 1,
                  database_url: str | None = None) -> tuple[Path, float]:
    """4,000 decisions with outcomes over three simulated days, a fresh MLflow store (a copy
    of ``migrated_db``; none without it), and a policy file whose gate needs 100 decisions;
    returns the policy file and the as-of time. The log is the home's SQLite file, or the
    one at ``database_url``."""
    from datetime import UTC, datetime, timedelta

    from bandit.config.loader import LiveConfig
    from bandit.decide.decider import Decider, ModelSlot
    from bandit.deploy.runtime import open_store
    from bandit.config.settings import get_settings
    from bandit.decide.vw import ColdStart
    from experiments.simulator.traffic import decide_and_respond, interactions, simulator

    policy = tmp_path / "policy.yaml"
    policy.write_text("promotion: {min_events: 100, min_ess: 10}\n")
    settings = get_settings(home=tmp_path / "home", salt="x", policy=policy, catalog=REPO / "config/offers.yaml",
                            database_url=database_url)
    settings.ensure_home()
    if migrated_db is not None and not (tmp_path / "home" / "mlflow.db").exists():
        shutil.copy(migrated_db, tmp_path / "home" / "mlflow.db")
    store = open_store(settings)
    live = LiveConfig(settings)
    decider = Decider(live, store, ModelSlot(ColdStart(0.5)), settings.secret)
    start = datetime(2026, 11, day, tzinfo=UTC)
    sim = simulator(seed=2 + day)  # its event ids make the sampling deterministic
    decide_and_respond(decider, sim, interactions(sim, 4000), at=lambda i, _: start + timedelta(seconds=i * 60))
    store.close()
    return policy, (start + timedelta(days=7)).timestamp()
