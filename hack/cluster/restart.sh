#!/usr/bin/env bash
# Restart one process of the running local control plane with exactly the arguments it runs
# with: `hack/cluster/restart.sh kube-apiserver [DOWN]` (or etcd, ...). Stops it (SIGTERM, then
# SIGKILL after 20 s), keeps it down DOWN (seconds, default 0; or `until:PATH`: until PATH
# exists, at most 300 s, so a test can do its work during the outage), starts it again
# detached as up.sh does (its log appended), and waits until it answers again. For the fault
# tests (tests/integration/cluster/test_cluster_faults.py); everything stays on 127.0.0.1.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

name=${1:?usage: restart.sh COMPONENT [DOWN_SECONDS|until:PATH]}
down=${2:-0}
pidfile=$CLUSTER_DIR/$name.pid
[[ -s $pidfile ]] || die "$name is not running (no $pidfile); start the plane with 'make cluster'"
pid=$(cat "$pidfile")
running "$pid" || die "$name (pid $pid) is not running"
exe=$(readlink "/proc/$pid/exe")
ours "$exe" || die "pid $pid is not this plane's $name ($exe)"
mapfile -d '' args < <(cat "/proc/$pid/cmdline")

kill -TERM "$pid"
for _ in $(seq 200); do running "$pid" || break; sleep 0.1; done
running "$pid" && kill -KILL "$pid"
for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
if [[ $down == until:* ]]; then
	release=${down#until:}
	log "stopped $name (pid $pid); down until $release exists"
	for _ in $(seq 3000); do [[ -e $release ]] && break; sleep 0.1; done
	[[ -e $release ]] || log "$release did not appear within 300s: starting $name anyway"
else
	log "stopped $name (pid $pid); down for ${down}s"
	sleep "$down"
fi

setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" "${args[@]}" \
	>>"$CLUSTER_DIR/logs/$name.log" 2>&1 </dev/null 9>&- &
for _ in $(seq 50); do [[ $(cat "$pidfile" 2>/dev/null) != "$pid" && -s $pidfile ]] && break; sleep 0.1; done

case $name in
kube-apiserver) url=https://$LISTEN_ADDR:$APISERVER_PORT/readyz ;;
etcd) url=http://$LISTEN_ADDR:$ETCD_CLIENT_PORT/health ;;
*) url= ;;
esac
if [[ -n $url ]]; then
	for _ in $(seq 600); do curl -fsSk --max-time 2 "$url" >/dev/null 2>&1 && break; sleep 0.1; done
	curl -fsSk --max-time 2 "$url" >/dev/null 2>&1 || die "$name did not answer $url within 60s"
fi
log "restarted $name (pid $(cat "$pidfile"))"
