"""How a decision was made: its ``mode``, one value of ``Mode``.

One definition, read by the decision path (``bandit.decide.decider``), the log's import
(``bandit.log.dsjson``: an imported history's decisions), the monitor (which modes are
the bandit's) and the API, whose document lists the values as an enumeration.
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """A decision's mode, as the answer and the log carry it."""

    online = "online"
    """The served model's exploring policy chose."""
    cold_start = "cold_start"
    """No model (or it failed to score): exploration around ``no_offer``."""
    apprentice = "apprentice"
    """Policy ``mode: apprentice``: ``no_offer`` served, the model's choice logged."""
    control = "control"
    """A control-group customer, served by the control policy."""
    not_logged = "not_logged"
    """The log could not be read or written: ``no_offer``, ``logged: false``."""
    imported = "imported"
    """A decision of an imported DSJSON history (``offer-bandit import-dsjson``)."""
