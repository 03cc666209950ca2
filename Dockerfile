# syntax=docker/dockerfile:1
# One image for every inferplane process: `inferplane webhook|extender|router|model-init`.
#
#   docker build -t inferplane:dev .        (or: make kind-up)
#
# The builder installs the project into a virtualenv; the final stage copies only that
# virtualenv onto the same base image (so the venv's interpreter symlink resolves) and runs as
# a numeric non-root user, which Pod Security "restricted" needs to verify runAsNonRoot.
# Nothing at runtime needs a shell, a compiler or pip; every dependency ships as a wheel.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ONLY_BINARY=:all:
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, read from pyproject.toml (the one list), so a code-only change reuses
# this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY . .
# pip byte-compiles as it installs, so the read-only root filesystem never needs a .pyc write.
RUN pip install --no-deps . \
    && pip uninstall -y pip setuptools \
    && inferplane --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="inferplane" \
      org.opencontainers.image.description="inferplane webhook, scheduler extender, router and model-init" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
# 65532 is the chart's runAsUser/runAsGroup (tests/unit/test_chart_image.py keeps them equal).
USER 65532:65532
ENTRYPOINT ["inferplane"]
CMD ["--help"]
