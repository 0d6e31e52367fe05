"""Experiments: a TOML grid expanded into cached collect -> train -> probe/inspect -> eval jobs.

    jepa-mpc experiment run experiments/planners.toml [--dry-run] [--jobs N]

`spec` reads and checks the file (jepa_mpc.experiment.spec: the schema), `resolve` turns override
tables into flags and resolves them as the verbs do, `plan` expands it into jobs
with content digests, `execute` runs them as `jepa-mpc VERB` subprocesses (started by an `executor`: here, or
on a Ray cluster: `ray_executor`), `main` is the verb. Output:
results/<name>/{experiment.toml, plan.json, status.json, evals/<id>/, models/<id>/, logs/, jobs/};
large artifacts in the content-addressed store data/store/<digest16>, runs/store/<digest16>.
"""
