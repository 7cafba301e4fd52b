"""The decision log's tables: decisions, outcomes, contacts and kill-switch state.

Declared once here; the migrations (``bandit.log.migrations``) build exactly this schema
and a test checks that they do. Outcomes are appended by event id and never updated, so
the raw history is kept and the reward is computed at training time
(``bandit.domain.outcomes``).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

decisions = Table(
    "decisions",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("ts", Float, nullable=False),
    Column("customer_key", String(64)),
    Column("channel", String(16)),
    Column("request_type", String(16)),
    Column("mode", String(16), nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("catalog_version", String(32)),
    Column("chosen_id", String(128), nullable=False),
    Column("probability", Float, nullable=False),
    Column("activated", Boolean, nullable=False),
    Column("activated_ts", Float),
    Column("source", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_decisions_ts", "ts"),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), ForeignKey("decisions.event_id"), nullable=False),
    Column("type", String(16), nullable=False),
    Column("value", Float),
    Column("score", Float),
    Column("ts", Float, nullable=False),
    Column("dedupe", String(128), nullable=False),
    UniqueConstraint("event_id", "dedupe", name="uq_outcome_dedupe"),
    Index("ix_outcomes_event", "event_id"),
)

# Contact history: what the guardrails ask of a customer's past (offers shown, declined,
# accepted, complaints), one narrow row per contact, by salted customer key. Why a table of
# its own rather than an index on ``decisions``: most decisions are ``no_offer`` and are no
# contact, and a customer index on the log cost every decision a random index page in the
# commit (WAL pages per 16-row commit: 36.5 with it, 20.6 with this table, measured by
# experiments/bench/log_pages.py). Rows are written with the decision, activation or
# outcome they come from, in its transaction.
contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_key", String(64), nullable=False),
    Column("ts", Float, nullable=False),
    Column("kind", String(16), nullable=False),  # shown | declined | accepted | complaint
    Column("offer_id", String(128), nullable=False),
    Index("ix_contacts_customer_ts", "customer_key", "ts"),
)

# Offers made that count against a capacity (``bandit.config.catalog.Capacity``): one row
# per decision that chose an offer carrying one, written in the decision's transaction.
# A table of its own, indexed by offer and time, so that counting an offer's uses in the
# last hour or day reads those rows only, and decisions without a capacity write nothing.
offer_uses = Table(
    "offer_uses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("offer_id", String(128), nullable=False),
    Column("channel", String(16)),
    Column("ts", Float, nullable=False),
    Column("event_id", String(128), nullable=False),
    Index("ix_offer_uses_offer_ts", "offer_id", "ts"),
)

# Erasures of one customer's data (``offer-bandit forget``): when, and how many rows went.
# Nothing that identifies the customer (not the id, not its salted key): the audit says
# that an erasure happened, not whose.
erasures = Table(
    "erasures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("decisions", Integer, nullable=False),
    Column("outcomes", Integer, nullable=False),
    Column("contacts", Integer, nullable=False),
    Column("requested_by", String(128)),
)

# Every suspension and resume, appended: who (``actor``: the monitor, an admin, a caller's
# ``by``), when and why. ``suspensions`` holds the current state; this, the history, and the
# time of the last resume, from which the monitor judges an offer again.
suspension_events = Table(
    "suspension_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("offer_id", String(128), nullable=False),
    Column("suspended", Boolean, nullable=False),
    Column("reason", Text),
    Column("actor", String(128)),
    Column("ts", Float, nullable=False),
    Index("ix_suspension_events_offer", "offer_id", "ts"),
)

# The catalog and policy file a reload published (``POST /admin/reload``), for every replica:
# each polls the newest row and serves its texts, so that a fleet behind a load balancer
# agrees within seconds whichever replica was told.
config_versions = Table(
    "config_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("catalog_version", String(32), nullable=False),
    Column("policy_version", String(32), nullable=False),
    Column("catalog_text", Text, nullable=False),
    Column("policy_text", Text, nullable=False),
    Column("catalog_source", Text),
    Column("policy_source", Text),
    Column("published_by", String(128)),
)

suspensions = Table(
    "suspensions",
    metadata,
    Column("offer_id", String(128), primary_key=True),
    Column("suspended", Boolean, nullable=False),
    Column("reason", Text),
    Column("ts", Float, nullable=False),
)

DECISION_COLUMNS = [c.name for c in decisions.columns]
CONTACT_COLUMNS = [c.name for c in contacts.columns if c.name != "id"]  # id: the database's
USE_COLUMNS = [c.name for c in offer_uses.columns if c.name != "id"]
