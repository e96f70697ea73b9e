"""The simulator: a documented model of a primary and N read replicas, driven by the same
`decide` as the operator, and baselines (HPA, static, oracle) on the same model and traces.

model.py is the physics, scenarios.py the built-in traces, policies.py the policies, engine.py
the loop, report.py the summaries, tables and plot; command_*.py are the CLI subcommands.
"""
