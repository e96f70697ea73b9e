"""The simulator: a documented model of a primary and N read replicas, driven by the same
`decide` as the operator, and baselines (KEDA's Prometheus scaler on read QPS, the HPA on read
latency, static, oracle) on the same model and traces.

model.py is the physics; trace.py the traces and CSV loading, scenarios.py the built-in ones;
policies.py the policies (keda_qps.py the KEDA baseline, hpa.py the HPA arithmetic both
HPA-based baselines share, decision.py what a policy returns); engine.py the loop; report.py the
summaries, tables and plot; goals.py the bench's goal lines; command_*.py the CLI subcommands.
"""
