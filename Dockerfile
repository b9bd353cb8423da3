# syntax=docker/dockerfile:1
# The tagbinder image: a static binary on distroless, non-root, for a read-only root
# filesystem.
#
#   docker build -t tagbinder:0.1.0 .
#
# The binary is linked statically against glibc (-C target-feature=+crt-static): kube and
# reqwest use rustls with ring, so there is no OpenSSL to link, and glibc resolves host names
# through /etc/hosts and DNS without its NSS modules (distroless/static has no libc at all).

ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
ENV CARGO_PROFILE_RELEASE_STRIP=true \
    RUSTFLAGS="-C target-feature=+crt-static"
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tagbinder --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/tagbinder /tagbinder \
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
