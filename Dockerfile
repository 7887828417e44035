# edgevip container image: one Rust binary on a slim Debian runtime.
#
#   docker build -t ghcr.io/edgevip/edgevip:0.1.0 .
#   docker build --target bgp -t ghcr.io/edgevip/edgevip:0.1.0-bgp .   (with FRR, below)
#
# Runtime base: debian:bookworm-slim plus Debian's nftables package and CA certificates.
# Not distroless, because of NAT: forwarding is on by default, and `:NAT` entries get their
# rules by edgevip running `nft -j -f -` (the nft program, JSON on stdin); distroless has
# no nft and no package manager to add it, so NAT failed in the default image. Exec health
# checks and notify hooks (argv, run without a shell) get a shell too: /bin/sh and
# coreutils are here, so `["/bin/sh", "-c", "..."]` works, and a derived image can
# apt-get install more. Everything else still goes through edgevip's own sockets: VIPs
# over rtnetlink, ARP/NA and VRRP over raw sockets, the ingress check as an HTTP request;
# no iproute2, keepalived or modprobe.
# Kept small: --no-install-recommends, and the apt lists removed in the same layer (about
# 11 MB over bookworm-slim, most of it libssl3 for ca-certificates). Same Debian release
# (12) in both stages, so the binary runs on the glibc it was linked against.
# uid 0 by default: the DaemonSet runs as uid 0 with only NET_ADMIN, NET_RAW and
# NET_BIND_SERVICE (see deploy/05-daemonset.yaml for why); Kubernetes sets the user anyway,
# and uid 0 as the default lets `docker run --network host --cap-drop ALL --cap-add
# NET_ADMIN --cap-add NET_RAW --cap-add NET_BIND_SERVICE` work as well.

ARG RUST_IMAGE=rust:1.95-bookworm

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# The whole workspace: cargo needs every member's manifest to resolve it; --locked builds
# exactly the dependency versions of Cargo.lock. No BuildKit-only features (cache mounts,
# syntax directive), so the classic builder, BuildKit, podman and buildah all build it.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# Test-support crates (lab, fake API server, manifest checks) are workspace members too.
COPY testing ./testing
RUN cargo build --release --locked -p edgevip \
 && install -D -m 0755 target/release/edgevip /out/edgevip

FROM debian:bookworm-slim AS runtime
# nftables: /usr/sbin/nft (with libnftables' JSON support) for NAT forwarding.
# ca-certificates: the system trust store (distroless/cc had it too), which the kube
# client's rustls loads next to the cluster CA.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nftables ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
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


# The BGP variant (issue 13, Kubernetes mode of BGP): the runtime image plus Debian's FRR
# 8.4 (frr: zebra, bgpd, bfdd, vtysh; frr-pythontools: frr-reload.py, which edgevip runs
# to apply the frr.conf it writes) and packaging/frr/frr-start. One image serves both
# containers of the BGP DaemonSet (deploy/optional/bgp/, or the chart's bgp.enabled):
# edgevip runs /edgevip as above, the FRR sidecar runs /usr/local/bin/frr-start, sharing
# /etc/frr and /var/run/frr as emptyDir volumes. The daemons run as root (uid 0 with only
# the pod's capabilities, like edgevip): root joins frrvty, the group FRR requires of the
# daemons' user for its vty sockets, so no SETUID/SETGID is needed to drop to `frr` and
# edgevip's vtysh (uid 0) reaches the sockets without DAC_OVERRIDE.
# Not the default target: the last stage is, so a plain `docker build .` still gives the
# image without FRR (about 30 MB less).
FROM runtime AS bgp
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      frr frr-pythontools \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && usermod -a -G frrvty root
COPY packaging/frr/frr-start /usr/local/bin/frr-start
LABEL org.opencontainers.image.description="Keeps a Kubernetes edge reachable at one virtual IP (VRRP or BGP with FRR)"

# The default image (the last stage): the runtime without FRR.
FROM runtime
