# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# Versions of the local control plane (sourced by the other scripts in hack/cluster).
# Changing a version here changes the cache key ($RWSCALER_CACHE/bin/<name>-<version>/),
# so the next `make cluster-build` builds the new one and keeps the old one untouched.
# After changing KUBE_VERSION or ETCD_VERSION run hack/cluster/gen-modules.sh and commit
# the regenerated hack/cluster/{k8s,etcd}/go.{mod,sum}.

KUBE_VERSION=v1.33.13   # newest 1.33 patch on the Go module proxy
ETCD_VERSION=v3.5.35    # newest 3.5 patch on the Go module proxy
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
