# Mutation testing of the decision core (docs/testing-core.md): mutmut over operator/rwscaler/core/,
# run in a staging copy (build/mutate), niced, with the core's unit tests ([tool.mutmut] in
# pyproject.toml). MUTATE_SCOPE=safety runs only the safety-critical functions' mutants (about 970,
# 40-90 min on 2 shared cores), MUTATE_SCOPE=all every mutant of the core (about 2,400: hours);
# MUTATE_CODE=worktree mutates the working tree instead of HEAD. `make mutate-report` reprints.
MUTATE_SCOPE ?= all
MUTATE_CODE ?= head
MUTATE_CHILDREN ?= 2

.PHONY: mutate mutate-report

mutate: venv ## Mutation-test the decision core (mutmut, niced): survivors of the safety-critical functions and the kill rate
	$(PY) tools/mutate.py run --scope $(MUTATE_SCOPE) --code $(MUTATE_CODE) --children $(MUTATE_CHILDREN)

mutate-report: venv ## Reprint the last `make mutate` report (per function, survivors, kill rate)
	$(PY) tools/mutate.py report

.PHONY: mutate-retest
mutate-retest: venv ## Run the last `make mutate`'s surviving mutants again with the tests as they are now
	$(PY) tools/mutate.py retest --code $(MUTATE_CODE) --children $(MUTATE_CHILDREN)
