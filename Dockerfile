# syntax=docker/dockerfile:1
# The rwscaler operator image: `rwscaler run` as a fixed non-root user, and nothing else.
#
# Docker users:   docker build -t rwscaler:0.1.0 .
# Here (no registry): `make image` builds a base from Debian packages with mmdebstrap
# (hack/image/base.sh) and builds this same file with
#   podman build --build-arg BASE_IMAGE=localhost/rwscaler-base:<key> ...
# Any BASE_IMAGE works that has python3 (>= 3.11) with the venv module and CA certificates in
# both stages, at the same path (the venv's interpreter is a symlink into the base).
#
# The default is Docker Hub's python:3.11-slim-bookworm pinned by digest. No registry can be
# reached from where this file is developed, so that digest is not verified here: check it with
# `docker buildx imagetools inspect python:3.11-slim-bookworm` before you rely on it.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# ---- build: a venv with the package and its runtime dependencies (wheels only) ----------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PREFER_BINARY=1
WORKDIR /src
COPY pyproject.toml ./
COPY operator ./operator
# Every runtime dependency installs from a wheel (neither stage has a compiler); only rwscaler
# itself (pure Python) is built here. pip and setuptools leave the venv at the end.
# A CA bundle for pip when the build network needs one (a TLS-intercepting proxy) is an optional
# secret: --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt
RUN --mount=type=secret,id=pip_cert \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    python3 -m venv /opt/rwscaler; \
    /opt/rwscaler/bin/pip install --quiet /src; \
    /opt/rwscaler/bin/pip uninstall --quiet --yes setuptools pip; \
    /opt/rwscaler/bin/python -c "import rwscaler.handlers, rwscaler.metrics.prometheus"

# ---- the image: the base plus the venv ---------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="rwscaler" \
      org.opencontainers.image.description="Kubernetes operator that sizes and routes the read side of a replicated database" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/rwscaler /opt/rwscaler
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only in the chart; the .pyc files were
# written at install time.
ENV PATH=/opt/rwscaler/bin:${PATH} PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# A fixed non-root UID/GID (the chart's securityContext runs as 65532 too).
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
# `docker run rwscaler:0.1.0` runs `rwscaler run` (in-cluster account, every namespace); arguments
# replace the command, so the chart passes `run <flags>`, and `... rwscaler:0.1.0 crd` prints the CRD.
ENTRYPOINT ["rwscaler"]
CMD ["run"]
