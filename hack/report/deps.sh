#!/usr/bin/env bash
# Install what `tests/integration/prometheus/test_weekly_report.py` opens the weekly report with: Debian
# 12's Chromium (headless screenshots of the page). Idempotent.
set -euo pipefail
# shellcheck source=../apt-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/../apt-install.sh"
apt_install report chromium
