#!/usr/bin/env bash
# Captures real adverts from Debian's keepalived 2.2.7 into keepalived/*.pcap: VRRPv2 with
# and without PASS authentication, VRRPv3 over IPv4 (multicast and unicast) and IPv6.
# Runs keepalived in a throwaway network namespace pair (removed on exit). Needs root.
set -euo pipefail
cd "$(dirname "$0")"
ns="evcap$$"
work=$(mktemp -d)
cleanup() {
  pkill -f "$work/" 2>/dev/null || true
  ip netns del "${ns}a" 2>/dev/null || true
  ip netns del "${ns}b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "${ns}a"
ip netns add "${ns}b"
ip link add eth0 netns "${ns}a" type veth peer name eth0 netns "${ns}b"
for n in a b; do
  ip netns exec "${ns}$n" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  ip -n "${ns}$n" link set lo up
  ip -n "${ns}$n" link set eth0 up
done
ip -n "${ns}a" addr add 192.0.2.11/24 dev eth0
ip -n "${ns}b" addr add 192.0.2.12/24 dev eth0
ip -n "${ns}a" link set eth0 address 02:00:00:00:00:11

capture() { # name, vrrp_instance body
  local name=$1 body=$2
  cat > "$work/$name.conf" <<CONF
global_defs {
  router_id cap
}
vrrp_instance VI_1 {
  state MASTER
  interface eth0
$body
}
CONF
  ip netns exec "${ns}b" timeout 10 tcpdump -q -n -i eth0 -c 3 -w "keepalived/$name.pcap" 'ip proto 112 or ip6 proto 112' 2>/dev/null &
  local dump=$!
  sleep 0.5
  ip netns exec "${ns}a" keepalived --dont-fork --vrrp --use-file "$work/$name.conf" \
    --pid "$work/$name.pid" --vrrp_pid "$work/$name.vpid" --checkers_pid "$work/$name.cpid" >/dev/null 2>&1 &
  local ka=$!
  wait "$dump" || true
  kill "$ka" 2>/dev/null || true
  wait "$ka" 2>/dev/null || true
  echo "captured keepalived/$name.pcap"
}

capture v2-noauth "  virtual_router_id 51
  priority 150
  advert_int 1
  version 2
  virtual_ipaddress {
    192.0.2.100/24
  }"
capture v2-pass "  virtual_router_id 52
  priority 200
  advert_int 2
  version 2
  authentication {
    auth_type PASS
    auth_pass s3cret
  }
  virtual_ipaddress {
    192.0.2.100/24
    192.0.2.101/24
  }"
capture v3-ipv4 "  virtual_router_id 53
  priority 150
  advert_int 0.1
  version 3
  virtual_ipaddress {
    192.0.2.100/24
  }"
capture v3-ipv4-unicast "  virtual_router_id 54
  priority 100
  advert_int 0.5
  version 3
  unicast_src_ip 192.0.2.11
  unicast_peer {
    192.0.2.12
  }
  virtual_ipaddress {
    192.0.2.100/24
  }"
capture v3-ipv6 "  virtual_router_id 55
  priority 150
  advert_int 0.1
  version 3
  virtual_ipaddress {
    2001:db8::100/64
    2001:db8::101/64
  }"
