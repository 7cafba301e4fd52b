"""The contact-center simulator (``world``: its parameters, customers, interactions and
hidden truth; ``simulator.yaml``: every number, documented) and the simulated traffic that
benchmarks and tests send through the decision path (``traffic``)."""

from experiments.simulator.world import (
    DEFAULT_PARAMS,
    ZERO,
    Expectation,
    Interaction,
    Response,
    SimCustomer,
    SimParams,
    SimState,
    Simulator,
    load_params,
    outcomes,
    parse_params,
)

__all__ = [
    "DEFAULT_PARAMS", "ZERO", "Expectation", "Interaction", "Response", "SimCustomer", "SimParams", "SimState",
    "Simulator", "load_params", "outcomes", "parse_params",
]
