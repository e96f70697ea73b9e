"""Pooler adapters: the act stage's routing of reads to the read pool a `Plan` chose.

`render_pgbouncer` turns a plan into PgBouncer's `[databases]` section (pure), `pgbouncer_admin`
talks to one PgBouncer admin console (I/O), and `pgbouncer_apply.PgBouncerRouter` ties them
together for the operator: write the config when its hash changes, RELOAD and RECONNECT every
instance, and count server connections per replica so `decide` can finish a drain. Nothing here
imports `kubernetes` or `kopf`; the ConfigMap write is `rwscaler.kube.configmap`, injected as a
`ConfigStore`.
"""
