#!/usr/bin/env bash
# Install, from Debian 12's packages, everything the PostgreSQL test setup
# (tests/support/pgenv.py) needs, without leaving any system service running.
#
#   hack/pgenv/install.sh           # PostgreSQL 15, PgBouncer, Prometheus, both exporters
#   hack/pgenv/install.sh --mysql   # ... and MariaDB + prometheus-mysqld-exporter
#
# The PgBouncer exporter: Debian 12's prometheus-pgbouncer-exporter (1.7, the
# cbaines exporter) crashes on PgBouncer >= 1.8 (SHOW STATS has no total_requests
# column any more: KeyError on every scrape), and the Go exporter
# (prometheus-community/pgbouncer_exporter) is not served by the Go module proxy
# here. So the exporter used is PyPI's prometheus-pgbouncer-exporter 2.1.2
# (Spreaker), installed with --no-deps into a venv under $RWSCALER_CACHE that sees
# Debian's python3-psycopg2 / python3-prometheus-client / python3-yaml /
# python3-pythonjsonlogger (its own pins, psycopg2==2.8.5 etc., would need a compiler).
#
# Idempotent and quiet: when every package is already installed it only checks
# that no service was left running. Must run as root (or via sudo).
set -euo pipefail

want_mysql=0
for arg in "$@"; do
  case "$arg" in
    --mysql) want_mysql=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

# Debian 12 (bookworm) names. postgresql-15 already ships the contrib modules
# (pg_stat_statements, ...) and pgbench; postgresql-contrib is a meta package kept
# for completeness.
packages=(
  postgresql-15 postgresql-client-15 postgresql-contrib
  pgbouncer
  prometheus
  prometheus-postgres-exporter
  python3-venv python3-psycopg2 python3-prometheus-client python3-yaml python3-pythonjsonlogger
)
services=(postgresql pgbouncer prometheus prometheus-postgres-exporter)
if [[ $want_mysql == 1 ]]; then
  packages+=(mariadb-server mariadb-client prometheus-mysqld-exporter)
  services+=(mariadb mysql prometheus-mysqld-exporter)
fi

SUDO=""
if [[ $(id -u) != 0 ]]; then
  SUDO="sudo"
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if (( ${#missing[@]} > 0 )); then
  echo "pgenv: installing ${missing[*]}"
  # Forbid service starts while installing (restore whatever policy was there).
  policy=/usr/sbin/policy-rc.d
  backup=""
  if [[ -e $policy ]]; then
    backup=$(mktemp)
    $SUDO cp -p "$policy" "$backup"
  fi
  restore_policy() {
    if [[ -n $backup ]]; then
      $SUDO cp -p "$backup" "$policy"; rm -f "$backup"
    else
      $SUDO rm -f "$policy"
    fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"

  # Refresh the package lists when they are missing or older than a day.
  lists=/var/lib/apt/lists
  if [[ -z $(find "$lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1) ]]; then
    $SUDO apt-get update -qq >/dev/null
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" 2>&1 >/dev/null | grep -v 'apt-utils is not installed' >&2 || true
  restore_policy
  trap - EXIT
  # apt-get's own status is hidden by the filter above: check what actually got installed.
  still=()
  for p in "${missing[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || still+=("$p")
  done
  if (( ${#still[@]} > 0 )); then
    echo "pgenv: apt-get could not install: ${still[*]}" >&2
    exit 1
  fi
fi

# Stop and disable anything the packages may have started anyway (systemd hosts
# and sysvinit hosts alike): the tests start their own processes on free ports.
for s in "${services[@]}"; do
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/$s ]]; then
    $SUDO /etc/init.d/"$s" stop >/dev/null 2>&1 || true
    $SUDO update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
done
# The postgresql-common cluster "main" (if one was created) must not autostart.
if command -v pg_lsclusters >/dev/null; then
  while read -r ver name _; do
    [[ -z ${ver:-} ]] && continue
    $SUDO pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
    conf=/etc/postgresql/$ver/$name/start.conf
    if [[ -f $conf ]] && ! grep -qx manual "$conf"; then
      echo manual | $SUDO tee "$conf" >/dev/null
    fi
  done < <(pg_lsclusters -h 2>/dev/null)
fi

# The PgBouncer exporter (see the header): a venv keyed by version.
PGB_EXPORTER_VERSION=2.1.2
cache=${RWSCALER_CACHE:-$HOME/.cache/rwscaler}
venv=$cache/pgbouncer-exporter-$PGB_EXPORTER_VERSION
if [[ ! -x $venv/bin/pgbouncer-exporter ]]; then
  echo "pgenv: installing prometheus-pgbouncer-exporter $PGB_EXPORTER_VERSION (PyPI) into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    "prometheus-pgbouncer-exporter==$PGB_EXPORTER_VERSION" 2>&1 | grep -v '^\s*$' >&2 || true
  [[ -x $venv/bin/pgbouncer-exporter ]] || { echo "pgenv: pip install of the PgBouncer exporter failed" >&2; exit 1; }
fi
# A later apt upgrade of Debian's Python must not break it silently.
"$venv/bin/python" -c 'import prometheus_pgbouncer_exporter.collector, pythonjsonlogger, yaml, psycopg2' \
  || { echo "pgenv: $venv is broken; remove it and rerun" >&2; exit 1; }

# Report what is there (one line per tool).
bin=/usr/lib/postgresql/15/bin
for b in "$bin/postgres" "$bin/pg_basebackup" "$bin/pgbench" /usr/sbin/pgbouncer \
         /usr/bin/prometheus /usr/bin/prometheus-postgres-exporter; do
  if [[ ! -x $b ]]; then
    echo "pgenv: missing $b after install" >&2
    exit 1
  fi
done
if [[ $want_mysql == 1 ]]; then
  for b in /usr/sbin/mariadbd /usr/bin/prometheus-mysqld-exporter; do
    [[ -x $b ]] || { echo "pgenv: missing $b after install" >&2; exit 1; }
  done
fi
echo "pgenv: ready ($(dpkg-query -W -f='${Package} ${Version}, ' "${packages[@]}")prometheus-pgbouncer-exporter $PGB_EXPORTER_VERSION (PyPI))"
