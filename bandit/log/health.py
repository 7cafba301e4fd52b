"""Whether the decision log takes writes, as the request path last found it.

Why: a decision that cannot be logged is answered ``no_offer`` (``logged: false``), which
keeps customers safe but makes the replica useless; a load balancer should send traffic
elsewhere. ``/readyz`` reads this: unready, with the error, from the first failed write
until a write (or a probe of the log, ``DecisionStore.probe``) succeeds again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class LogHealth:
    failing_since: float | None = None
    last_error: str | None = None
    failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if self.failing_since is None:
                self.failing_since = time.time()
            self.last_error = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            self.failures += 1

    def succeeded(self) -> None:
        if self.failing_since is None:  # the request path's common case: no lock taken
            return
        with self._lock:
            self.failing_since, self.last_error, self.failures = None, None, 0

    def describe(self) -> str | None:
        """What ``/readyz`` says while failing, else ``None``."""
        if self.failing_since is None:
            return None
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.failing_since))
        return f"the decision log cannot be written since {since} ({self.failures} failures): {self.last_error}"
