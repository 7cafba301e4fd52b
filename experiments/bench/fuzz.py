"""Schema fuzzing of the served service: every operation of its OpenAPI document, with schemathesis.

For each operation of ``/docs.json`` (the document a real served instance serves), schemathesis
generates requests from the schema, valid ones (``positive``) and ones that break it
(``negative``), and each is sent with the key its route needs (the admin key on admin routes,
a channel key elsewhere, none on the public ones). Part of the generated requests name a
real event id or offer id instead of a generated one, so that outcomes, activations and the
kill switch run past the lookup. Every answer must:

- not be a 5xx, but the 501 of an operation the document says is not done here (whose
  body says what to do instead);
- be a status code, content type and body that the document declares for the operation
  (including the answers the document adds for every operation: keys, size, validation)
  (schemathesis' ``status_code_conformance``, ``content_type_conformance`` and
  ``response_schema_conformance``);
- if it is a rejection (4xx), name the problem in our error format (``service.answers``):
  ``{"error": "..."}`` with, for a 422, each field in ``detail`` and the first one in the
  message; on the Personalizer routes ``{"error": {"code", "message"}}`` and never a 422.

The test suite runs it briefly against its own served instance (``tests/service/test_fuzz.py``);
this script starts one and runs it for longer:

    python experiments/bench/fuzz.py [--max-examples 200] [--seed 1] [--database-url URL]

Sends traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PUBLIC = ("/livez", "/healthz", "/readyz", "/metrics")
CHANNEL_KEY, ADMIN_KEY = "fuzz-channel-key", "fuzz-admin-key"


@dataclass
class Keys:
    channel: str
    admin: str


@dataclass
class Report:
    """What a fuzzing run sent and what broke the contract."""

    answers: collections.Counter = field(default_factory=collections.Counter)  # by (operation, status)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.answers.values())

    @property
    def operations(self) -> collections.Counter:
        out: collections.Counter = collections.Counter()
        for (op, _), n in self.answers.items():
            out[op] += n
        return out

    def count(self, operations: tuple[str, ...], statuses: range = range(200, 300)) -> int:
        """Answers to these operations with these statuses (default: the 2xx)."""
        return sum(n for (op, status), n in self.answers.items() if op in operations and status in statuses)

    def summary(self) -> str:
        statuses: collections.Counter = collections.Counter()
        for (_, status), n in self.answers.items():
            statuses[status] += n
        by_status = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
        return (f"{self.total} cases over {len(self.operations)} operations ({by_status}); "
                f"{len(self.failures)} failures")


def headers_for(path: str, keys: Keys) -> dict[str, str]:
    """The key a route needs, sent the way its callers send it (the admin key on the admin
    routes and Personalizer's management operations)."""
    if path.startswith(PUBLIC):
        return {}
    from service.personalizer_admin import is_management

    if path.startswith("/admin/") or is_management(path):  # Personalizer's management: admin key too
        return {"X-API-Key": keys.admin}
    if path.startswith("/personalizer/"):
        return {"Ocp-Apim-Subscription-Key": keys.channel}
    return {"X-API-Key": keys.channel}


def contract_problem(path: str, status: int, content: bytes) -> str | None:
    """Why an answer breaks the error contract (see the module docstring), or ``None``."""
    if status >= 500 and status != 501:
        return f"{status}: a server error"
    if status < 400:
        return None
    try:
        body = json.loads(content)
    except ValueError:
        return f"{status}: the body is not JSON: {content[:200]!r}"
    if not isinstance(body, dict):
        return f"{status}: the body is not an object: {content[:200]!r}"
    error = body.get("error")
    if path.startswith("/personalizer/"):
        if status == 422:
            return "422 on a Personalizer route (Personalizer answers 400)"
        if not (isinstance(error, dict) and error.get("code") and error.get("message")):
            return f"{status}: no Personalizer error code and message: {content[:200]!r}"
        return None
    if not isinstance(error, str) or not error.strip():
        return f"{status}: no error message: {content[:200]!r}"
    if status == 422 and "problems" not in body:  # /admin/reload lists configuration problems instead
        detail = body.get("detail")
        if not (isinstance(detail, list) and detail
                and all(isinstance(d, dict) and d.get("field") and d.get("message") for d in detail)):
            return f"422 without the fields at fault: {content[:200]!r}"
        if detail[0]["field"] not in error:
            return f"422 whose message does not name its field {detail[0]['field']!r}: {error!r}"
    return None


def describe(failure: Any) -> str:
    """One line for a schemathesis check failure."""
    message = " ".join(str(failure.message).split())
    return f"{failure.title}: {message[:300]}" if message else failure.title


def judge(report: Report, label: str, case: Any, response: Any, headers: dict[str, str], max_failures: int) -> None:
    """Count one answer and hold it to the contract (the module docstring): our error format
    (``contract_problem``) and schemathesis' checks, a documented 501 being an answer, not a
    failure (``status_code_conformance`` holds it to the document)."""
    from schemathesis.checks import (  # type: ignore[attr-defined]
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.core.failures import Failure, FailureGroup

    report.answers[(case.operation.label, response.status_code)] += 1
    problems = []
    why = contract_problem(case.path, response.status_code, response.content)
    if why:
        problems.append(why)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    active = [c for c in checks if c is not not_a_server_error or response.status_code != 501]
    try:
        case.validate_response(response, checks=active, headers=headers)
    except FailureGroup as group:
        problems += [describe(f) for f in group.exceptions]
    except Failure as exc:
        problems.append(describe(exc))
    if problems and len(report.failures) < max_failures:
        report.failures.append(f"{label}: {'; '.join(problems)}\n    {case.as_curl_command(headers=headers)}")


def substitute(case: Any, event_ids: Sequence[str], offer_ids: Sequence[str], pick: int) -> None:
    """Name a real event id or offer id where the case has a generated one."""
    if event_ids and "eventId" in (case.path_parameters or {}):
        case.path_parameters["eventId"] = event_ids[pick % len(event_ids)]
    if offer_ids and "offer_id" in (case.path_parameters or {}):
        case.path_parameters["offer_id"] = offer_ids[pick % len(offer_ids)]
    if event_ids and isinstance(case.body, dict) and "event_id" in case.body:
        case.body["event_id"] = event_ids[pick % len(event_ids)]


def fuzz(url: str, keys: Keys, max_examples: int, seed: int, event_ids: Sequence[str] = (),
         offer_ids: Sequence[str] = (), max_failures: int = 50) -> Report:
    """Fuzz every operation of ``<url>/docs.json`` (see the module docstring); up to
    ``max_examples`` generated requests per operation and mode. Failures are collected,
    not raised, so one run counts every case."""
    import hypothesis
    import hypothesis.errors
    import requests
    import schemathesis
    from hypothesis import strategies as st

    schema = schemathesis.openapi.from_url(f"{url}/docs.json")
    report = Report()
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @hypothesis.seed(seed)
            @hypothesis.settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                                 phases=[hypothesis.Phase.generate], report_multiple_bugs=False,
                                 suppress_health_check=list(hypothesis.HealthCheck))
            @hypothesis.given(case=strategy, pick=st.integers(0, 7))
            def one(case: Any, pick: int) -> None:
                if pick < 4:  # half the cases name a real event or offer
                    substitute(case, list(event_ids), list(offer_ids), pick)
                headers = headers_for(case.path, keys)
                response = case.call(session=session, headers=headers, timeout=30)
                judge(report, f"{operation.label} ({mode.value})", case, response, headers, max_failures)

            try:
                one()
            except hypothesis.errors.Unsatisfiable:  # nothing to break: no parameters, no body
                pass
    session.close()
    return report


LINKED = r"^/(decide|outcome|activate|personalizer(/v1\.0)?/(rank|events/\{eventId\}/(reward|activate)))$"


def stateful(url: str, keys: Keys, max_examples: int, seed: int, max_steps: int = 8,
             max_failures: int = 50) -> Report:
    """Stateful fuzzing: sequences of calls that follow the document's links (a decision's
    event id into an outcome and an activation, a rank's into a reward and an activation),
    each answer held to the same contract as ``fuzz``. ``max_examples`` sequences of up to
    ``max_steps`` calls."""
    import hypothesis
    import requests
    import schemathesis

    # The linked operations only (the stateless run covers the rest): schemathesis' own
    # dependency analysis takes an ``event_id`` input for a resource nothing produces, and
    # would start no sequence from /decide while other operations are candidates.
    schema = schemathesis.openapi.from_url(f"{url}/docs.json").include(path_regex=LINKED)
    report = Report()
    session = requests.Session()

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers_for(case.path, keys), "session": session, "timeout": 30}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            judge(report, f"{case.operation.label} (stateful)", case, response, kwargs.get("headers") or {},
                  max_failures)

    Machine.run(settings=hypothesis.settings(
        max_examples=max_examples, stateful_step_count=max_steps, deadline=None, database=None,
        derandomize=True, phases=[hypothesis.Phase.generate], report_multiple_bugs=False,
        suppress_health_check=list(hypothesis.HealthCheck)))
    session.close()
    return report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--max-examples", type=int, default=200, help="generated requests per operation and mode")
    p.add_argument("--seed", type=int, default=1, help="Hypothesis seed (same seed, same requests)")
    p.add_argument("--database-url", help="decision log of the served instance (default: SQLite in a temp home)")
    p.add_argument("--stateful", type=int, default=0, metavar="N",
                   help="also N stateful sequences following the document's links (decide -> outcome, activate)")
    args = p.parse_args()

    from experiments.served import Server, free_port, serve_command
    import httpx

    work = Path(tempfile.mkdtemp(prefix="fuzz-service-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OFFER_BANDIT_HOME": str(work / "home"), "OFFER_BANDIT_API_KEYS": CHANNEL_KEY,
           "OFFER_BANDIT_ADMIN_KEY": ADMIN_KEY, "OFFER_BANDIT_CATALOG": str(REPO / "config/offers.yaml"),
           "OFFER_BANDIT_POLICY": str(REPO / "config/policy.yaml"), "DO_NOT_TRACK": "1",
           "BENTOML_DO_NOT_TRACK": "True", **({"OFFER_BANDIT_DATABASE_URL": args.database_url}
                                              if args.database_url else {})}
    print(f"starting the service ... (work dir {work})", flush=True)
    server = Server(serve_command(port), env, f"{url}/readyz", work / "serve.log")
    try:
        event_ids = seed_events(url, CHANNEL_KEY)
        offers = [o["id"] for o in httpx.get(f"{url}/offers", headers={"X-API-Key": CHANNEL_KEY}).json()["offers"]]
        print(f"fuzzing every operation of {url}/docs.json, up to {args.max_examples} requests per operation"
              f" and mode (seed {args.seed}) ...", flush=True)
        report = fuzz(url, Keys(CHANNEL_KEY, ADMIN_KEY), args.max_examples, args.seed, event_ids, offers)
        if args.stateful:
            print(f"stateful: {args.stateful} sequences following the document's links ...", flush=True)
            linked = stateful(url, Keys(CHANNEL_KEY, ADMIN_KEY), args.stateful, args.seed)
            print("stateful: " + linked.summary())
            report.answers.update(linked.answers)
            report.failures += linked.failures
    finally:
        server.stop()
    for op, n in sorted(report.operations.items()):
        print(f"  {n:>6}  {op}")
    print(report.summary())
    for f in report.failures:
        print("FAIL", f)
    return 1 if report.failures else 0


def seed_events(url: str, key: str, n: int = 40) -> list[str]:
    """Event ids of real decisions, some deferred and some with an offer, for the fuzzer to name."""
    import httpx

    ids = []
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as c:
        for i in range(n):
            r = c.post("/decide", json={
                "channel": "phone", "customer": {"id": f"fuzz-{i}", "tier": "gold", "tenure_months": 30},
                "interaction": {"request_type": "advisory", "resolved": "true", "sentiment": 0.6},
                "candidates": ["premium_bundle"], "defer_activation": i % 3 == 0})
            r.raise_for_status()
            ids.append(r.json()["event_id"])
    return ids


if __name__ == "__main__":
    sys.exit(main())
