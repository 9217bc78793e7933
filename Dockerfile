# syntax=docker/dockerfile:1
#
# One image for the whole of SignalDB: the data plane (`signaldb`, every role
# is a subcommand) and the Kubernetes operator (`signaldb-operator`).
#
#   docker build -t signaldb:dev .
#   docker run --rm -p 4317:4317 -p 4318:4318 -p 3200:3200 signaldb:dev   # all roles in one process
#
# The operator starts data-plane pods with `args: [<role>, --config, ...]` and
# no command, so the entrypoint is `signaldb`; its own Deployment sets
# `command: ["signaldb-operator"]`.
#
# Needs BuildKit (the default builder of current Docker; DOCKER_BUILDKIT=1 on
# older versions) for the cache mounts below.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder

# A C compiler and libc headers are all the native build needs: ring,
# zstd-sys and the bundled SQLite of libsqlite3-sys compile C through the `cc`
# crate. TLS is rustls with ring (no OpenSSL), the OTLP protobuf types come
# pre-generated (no protoc). The slim Rust image ships both packages already;
# installing them here keeps the build working if that ever changes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The registry and the target directory live in BuildKit cache mounts, so a
# rebuild after a source change recompiles only what changed. The target
# directory is not part of the image: the binaries are copied out of it in the
# same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p signaldb -p signaldb-operator \
    && mkdir -p /out \
    && cp target/release/signaldb target/release/signaldb-operator /out/

# ---------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="SignalDB" \
      org.opencontainers.image.description="Observability database: OpenTelemetry in, Parquet on object storage, Grafana Tempo's API out; with its Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/signaldb/signaldb" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# ca-certificates: S3 over TLS verifies servers against the system trust
# store. Nothing else is needed at run time (glibc comes with the base image,
# which is the same Debian release as the builder's).
#
# The user has a fixed id (65532, as the operator's pods run with) and no
# login shell; its home is the data directory.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 signaldb \
    && useradd --system --uid 65532 --gid 65532 --no-create-home \
        --home-dir /var/lib/signaldb --shell /usr/sbin/nologin signaldb \
    && mkdir -p /var/lib/signaldb \
    && chown 65532:65532 /var/lib/signaldb

COPY --from=builder /out/signaldb /out/signaldb-operator /usr/local/bin/

# Without --config the data plane keeps its data under ./data: here
# /var/lib/signaldb/data, writable by the signaldb user. In Kubernetes this
# directory is a volume.
WORKDIR /var/lib/signaldb
USER 65532:65532

# 4317 OTLP/gRPC, 4318 OTLP/HTTP (acceptor); 3200 Tempo HTTP API and
# 50053 Flight SQL (router); 50051 writer Flight; 50052 querier Flight;
# 9091 admin (/metrics, /ready, /live, /drain); 8080 operator (/metrics, /healthz).
EXPOSE 4317 4318 3200 50051 50052 50053 9091 8080

ENTRYPOINT ["signaldb"]
