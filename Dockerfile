# ghcache: one static binary on `scratch`.
#
# Two ways to produce the binary (the runtime stage is the same for both):
#   release:  docker buildx build --platform linux/amd64,linux/arm64 .
#             compiles in the Rust image pinned below, cross-compiling for
#             TARGETARCH on the build platform (no emulation).
#   offline:  scripts/build-image (no registry needed): a static binary built
#             on the host is copied from the context, BINARY_FROM=host-binary.
# Needs BuildKit (buildx, or DOCKER_BUILDKIT=1 with an engine that has it):
# the stage not chosen by BINARY_FROM is never built or pulled.

ARG BINARY_FROM=build
# rust:1.89-bookworm, pinned by its multi-platform index digest; refresh deliberately.
ARG RUST_IMAGE=docker.io/library/rust:1.89-bookworm@sha256:948f9b08a66e7fe01b03a98ef1c7568292e07ec2e4fe90d88c07bb14563c84ff

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
# The arm64 cross linker comes from the Debian release the pinned image is built on.
# hadolint ignore=DL3008
RUN if [ "$TARGETARCH" = arm64 ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
        && rm -rf /var/lib/apt/lists/* \
        && rustup target add aarch64-unknown-linux-gnu; \
    fi
WORKDIR /src
COPY . .
# crt-static: glibc linked in, so the binary needs nothing from the image.
# --target keeps build scripts and proc-macros dynamic (they run here).
RUN case "$TARGETARCH" in \
        amd64) triple=x86_64-unknown-linux-gnu ;; \
        arm64) triple=aarch64-unknown-linux-gnu \
               && export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
                         CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc ;; \
        *) echo "unsupported TARGETARCH=$TARGETARCH" >&2; exit 1 ;; \
    esac \
    && RUSTFLAGS='-C target-feature=+crt-static' \
       cargo build --locked --release --target "$triple" -p ghcache \
    && install -D -m 0755 "target/$triple/release/ghcache" /out/ghcache \
    && install -d -m 0700 /out/state/ghcache

FROM scratch AS host-binary
ARG TARGETARCH
# scripts/build-image lays out dist/<arch>/ghcache and dist/<arch>/state/ghcache (mode 0700).
COPY dist/${TARGETARCH}/ /out/

# hadolint ignore=DL3006
FROM ${BINARY_FROM} AS binary

# The binary alone, for the release's downloads: --target binary-only --output type=local.
FROM scratch AS binary-only
COPY --from=binary /out/ghcache /ghcache

FROM scratch
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ghcache" \
      org.opencontainers.image.description="Per-host GitHub API caching proxy for self-hosted Actions runners, shared over libp2p" \
      org.opencontainers.image.source="https://github.com/ghcache/ghcache" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=binary /out/ghcache /usr/local/bin/ghcache
# The state directory is the daemon user's (a named volume inherits this;
# a bind mount keeps the host directory's owner, see README "The image").
COPY --from=binary --chown=65532:65532 /out/state/ /var/lib/
ENV GHCACHE_STATE_DIR=/var/lib/ghcache
# No NSS, no CA bundle in the image: glibc >= 2.34 resolves through
# /etc/hosts and /etc/resolv.conf (docker mounts both) without NSS modules;
# TLS roots fall back to the bundled webpki set (SSL_CERT_FILE adds a corporate CA).
USER 65532:65532
EXPOSE 8787 9100
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/ghcache", "-q", "health"]
ENTRYPOINT ["/usr/local/bin/ghcache"]
CMD ["daemon"]
