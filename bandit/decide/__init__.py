"""Making a decision: guardrails, features, the VW policy, sampling, the control group and
the decider, the one path every route and tool decides through."""
