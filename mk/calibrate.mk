# The simulator's model against real PostgreSQL (docs/calibration.md).
CALIBRATED_MODEL := operator/rwscaler/sim/models/pg15-local.yaml

.PHONY: calibrate

calibrate: venv pgenv-deps ## Measure PostgreSQL 15 here (pgbench on a replica and the primary), fit the model, write $(CALIBRATED_MODEL)
	$(PY) -m tests.support.calibrate --write $(CALIBRATED_MODEL)
