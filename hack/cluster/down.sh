#!/usr/bin/env bash
# Stop every process of the local control plane and remove its state ($CLUSTER_DIR:
# certificates, kubeconfigs, etcd data, logs). The cached binaries stay.
# Processes are found by their pid files; as a safety net, any process still running a
# binary from $BIN_ROOT (or $CLUSTER_ETCD_BIN) with $CLUSTER_DIR in its arguments (a plane whose pid files were
# lost) is stopped too. Exits non-zero if one survives.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STOP_TIMEOUT=${CLUSTER_STOP_TIMEOUT:-20}
keep_state=false
[[ ${1:-} == --keep-state ]] && keep_state=true   # used by up.sh after a failed start: keep the logs
# up.sh calls this while holding the lock; standalone runs take it
[[ ${CLUSTER_LOCK_HELD:-} == "$PPID" ]] || lock cluster

# pids of processes running one of our cached binaries on this cluster directory
leftovers() {
	local pid exe
	for pid in $(pgrep -f -- "$CLUSTER_DIR/" || true); do
		exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
		ours "$exe" && echo "$pid"
	done
	return 0
}

pids=()
# reverse start order: kwok first, etcd last
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
	c=${COMPONENTS[i]}
	f=$CLUSTER_DIR/$c.pid
	[[ -s $f ]] || continue
	pid=$(cat "$f")
	if running "$pid"; then
		exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
		if ours "$exe"; then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			log "stopping $c (pid $pid)"
		else
			log "pid $pid of $c is now another program ($exe); not touching it"
		fi
	fi
done
while read -r pid; do
	[[ -n $pid ]] || continue
	[[ " ${pids[*]} " == *" $pid "* ]] && continue
	log "stopping stray control-plane process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80))"
	kill -TERM "$pid" 2>/dev/null || true
	pids+=("$pid")
done < <(leftovers)

deadline=$((SECONDS + STOP_TIMEOUT))
for pid in "${pids[@]}"; do
	while running "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
	if running "$pid"; then
		log "pid $pid did not stop within ${STOP_TIMEOUT}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
done
sleep 0.2

left=$(leftovers)
if [[ -n $left ]]; then
	die "processes still running: $(echo "$left" | tr '\n' ' ')"
fi

if $keep_state; then
	log "stopped; state and logs kept in $CLUSTER_DIR ('make cluster-down' removes them)"
	exit 0
fi
if [[ -d $CLUSTER_DIR ]]; then
	rm -rf "$CLUSTER_DIR"
	log "removed $CLUSTER_DIR"
fi
log "down: no control-plane process is running (binaries kept in $BIN_ROOT)"
