#!/usr/bin/env bash
# Print the operator image's size and what dominates it: the base, the venv, its biggest packages.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ref=$(cat "$IMAGE_CACHE/ref")
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$ref")
awk -v r="$ref" -v s="$size" 'BEGIN { printf "image %s: %.0f MB uncompressed (goal: at most 300 MB)\n", r, s / 1e6 }'
"${PODMAN[@]}" run --rm "${ULIMITS[@]}" --network none --entrypoint /bin/sh "$ref" -c '
  echo "  /usr (the Debian base: python3, libc, coreutils, ...): $(du -sm /usr | cut -f1) MB"
  echo "  /opt/rwscaler (the venv):                          $(du -sm /opt/rwscaler | cut -f1) MB"
  echo "  largest packages in the venv (MB):"
  cd /opt/rwscaler/lib/python3*/site-packages && du -sm -- * | sort -rn | head -n 8 | sed "s/^/    /"'
