# syntax=docker/dockerfile:1
# The tagbinder image: a static binary on distroless, non-root, for a read-only root
# filesystem; for linux/amd64 and linux/arm64 (TARGETARCH).
#
#   docker build -t tagbinder:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/tagbinder:0.1.0 .
#
# The binary is linked statically against musl (x86_64- or aarch64-unknown-linux-musl, by
# TARGETARCH): kube and reqwest use rustls with ring, so there is no OpenSSL to link, and
# distroless/static has no libc at all. The build stage runs on the target platform (natively,
# or under QEMU with buildx), so ring's C code is compiled by the platform's own musl-gcc.
# .github/workflows/release.yml builds and pushes it for both platforms.

ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RUST_IMAGE} AS build
ARG TARGETARCH
WORKDIR /src
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo x86_64-unknown-linux-musl ;; \
      arm64) echo aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}: linux/amd64 and linux/arm64 are built" >&2; exit 1 ;; \
    esac > /rust-target \
 && rustup target add "$(cat /rust-target)"
ENV CARGO_PROFILE_RELEASE_STRIP=true
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=tagbinder-target-${TARGETARCH} \
    target="$(cat /rust-target)" \
 && cargo build --release --locked --bin tagbinder --target "$target" \
 && cp "target/$target/release/tagbinder" /tagbinder \
 && /tagbinder --version

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="tagbinder" \
      org.opencontainers.image.description="Kubernetes operator that manages cloud resource tags declaratively" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /tagbinder /tagbinder
# nonroot in distroless: uid and gid 65532, as the chart's securityContext expects.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/tagbinder"]
CMD ["run"]
