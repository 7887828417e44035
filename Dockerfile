# edgevip container image: one Rust binary on a minimal runtime.
#
#   docker build -t ghcr.io/edgevip/edgevip:0.1.0 .
#
# Runtime base: gcr.io/distroless/cc-debian12. edgevip is a single binary linked against
# glibc and libgcc_s; in Kubernetes mode it needs no shell, no iproute2, no keepalived, no
# modprobe: VIPs, ARP/NA and VRRP all go through its own netlink and raw sockets, the
# ingress check is an HTTP request. distroless/cc holds just glibc, libgcc, CA certificates
# and tzdata: about a third of debian:bookworm-slim's size, with no package manager or
# shell for an intruder to use. Same Debian release (12) in both stages, so the binary runs
# on the glibc it was linked against.
# Exec health checks and notify hooks (argv, no shell) need their programs in the image:
# build with --build-arg RUNTIME_IMAGE=debian:bookworm-slim, or derive from this image.
# The :nonroot variant is not used: the DaemonSet runs as uid 0 with only NET_ADMIN +
# NET_RAW (see deploy/05-daemonset.yaml for why); Kubernetes sets the user anyway, and uid 0
# as the default lets `docker run --network host --cap-drop ALL --cap-add NET_ADMIN
# --cap-add NET_RAW` work as well.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# The whole workspace: cargo needs every member's manifest to resolve it; --locked builds
# exactly the dependency versions of Cargo.lock. No BuildKit-only features (cache mounts,
# syntax directive), so the classic builder, BuildKit, podman and buildah all build it.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN cargo build --release --locked -p edgevip \
 && install -D -m 0755 target/release/edgevip /out/edgevip

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="edgevip" \
      org.opencontainers.image.description="Keeps a Kubernetes edge reachable at one virtual IP (VRRP)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/edgevip/edgevip"
COPY --from=builder /out/edgevip /edgevip
# The API: /healthz, /readyz, /status, /metrics (the DaemonSet uses hostNetwork).
EXPOSE 9180
USER 0
ENTRYPOINT ["/edgevip"]
CMD ["run", "--kubernetes"]
