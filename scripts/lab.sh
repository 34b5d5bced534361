#!/usr/bin/env bash
# picket network lab: a DMZ behind a firewall, a span port in front of it,
# and outside hosts at different hop distances, all in network namespaces.
#
#   scripts/lab.sh up|down|status
#   source scripts/lab.sh   # then lab_up / lab_down / lab_status / lab_exec NS CMD...
#
# Sourcing does not change the caller's shell options: the public functions
# run in subshells with `set -euo pipefail` and return non-zero on failure.
#
# Nothing here routes out of the lab: no namespace has a default route, and
# every address is from the documentation ranges (RFC 5737, RFC 3849).
#
# Topology (TTL seen on the span for a host's packets in brackets):
#
#   pk-o1 (Linux, ttl 64, [63]) ---------------------------+
#     198.51.100.10/28  2001:db8:1::10                     |
#   pk-o3 (ttl 128 "Windows", [126]) --- pk-r1 ---------- pk-edge
#     203.0.113.10/28   2001:db8:3::10     |                 | 192.0.2.249/30  2001:db8:d:ff::1
#   pk-o2 (ttl 64, [61]) --- pk-r2 --------+                 |
#     203.0.113.34/28   2001:db8:5::34                 [pk-span bridge in netns pk-tap]
#                                                            |  <- capture here
#                                                          pk-fw (iptables)  192.0.2.250/30  2001:db8:d:ff::2
#                                              +-------------+--------------+
#                            DMZ 192.0.2.0/25 (fw .1)        bcast DMZ 192.0.2.128/26 (fw .129)
#                            2001:db8:d::/64 (fw ::1)        broadcast 192.0.2.191
#                            pk-dmz1 192.0.2.10 ::10         pk-dmz3 192.0.2.130
#                            pk-dmz2 192.0.2.20 ::20         pk-dmz4 192.0.2.140
#
# Home net: 192.0.2.0/24,2001:db8:d::/48

# Strict mode when executed; when sourced, each public function sets it in
# its own subshell (see below) so an interactive shell is never killed.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
fi

LAB_PREFIX=pk-
LAB_NAMESPACES=(pk-o1 pk-o2 pk-o3 pk-r1 pk-r2 pk-edge pk-tap pk-fw pk-dmz1 pk-dmz2 pk-dmz3 pk-dmz4)
LAB_ROUTERS=(pk-r1 pk-r2 pk-edge pk-fw)
LAB_SPAN_NS=pk-tap
LAB_SPAN_IF=pk-span
LAB_HOME_NET="192.0.2.0/24,2001:db8:d::/48"
export LAB_PREFIX LAB_SPAN_NS LAB_SPAN_IF LAB_HOME_NET

# Commands the lab and the recordings need, and the Debian package of each.
LAB_TOOLS=(
  "ip:iproute2" "bridge:iproute2" "tcpdump:tcpdump" "nmap:nmap" "hping3:hping3"
  "traceroute:traceroute" "nbtscan:nbtscan" "nmblookup:samba-common-bin"
  "iptables:iptables" "ip6tables:iptables" "curl:curl" "dnsmasq:dnsmasq-base"
  "dig:bind9-dnsutils" "ethtool:ethtool" "python3:python3" "sysctl:procps"
  "ping:iputils-ping" "ulogd:ulogd2" "nft:nftables" "chronyd:chrony" "openssl:openssl"
  "masscan:masscan" "zmap:zmap" "swaks:swaks" "aiosmtpd:python3-aiosmtpd" "hydra:hydra"
  "sshd:openssh-server" "ssh-keygen:openssh-client" "ssh:openssh-client"
)

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

lab_require_root() {
  [[ $(id -u) -eq 0 ]] || lab_die "must run as root (network namespaces, raw sockets)"
}

# Install whatever is missing; never fails if everything is there already.
lab_ensure_tools() {
  local entry cmd pkg missing=()
  for entry in "${LAB_TOOLS[@]}"; do
    cmd=${entry%%:*}
    pkg=${entry#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
      [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  lab_require_root
  lab_log "installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq "${missing[@]}" >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  for entry in "${LAB_TOOLS[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || lab_die "still missing: ${entry%%:*} (package ${entry#*:})"
  done
}

# lab_exec NS CMD... : run a command inside a lab namespace.
lab_exec() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

lab_ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }

lab_is_up() {
  local ns
  for ns in "${LAB_NAMESPACES[@]}"; do
    lab_ns_exists "$ns" || return 1
  done
}

_lab_sysctl() { # NS key=value...
  local ns=$1
  shift
  ip netns exec "$ns" sysctl -q -w "$@" >/dev/null
}

_lab_new_ns() {
  local ns=$1
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  # No reverse-path filtering anywhere: the decoy recordings spoof sources.
  _lab_sysctl "$ns" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  # Quiet, immediate IPv6: no DAD delay, no router solicitations, no SLAAC.
  _lab_sysctl "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
    net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0
}

# Real-looking packets on the wire: no segmentation/checksum offload on veths.
_lab_no_offload() { # NS IF
  ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
}

# _lab_link NS1 IF1 NS2 IF2 : a veth pair between two namespaces, links up.
_lab_link() {
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  ip netns exec "$1" ip link set "$2" up
  ip netns exec "$3" ip link set "$4" up
  _lab_no_offload "$1" "$2"
  _lab_no_offload "$3" "$4"
}

_lab_addr() { # NS IF ADDR...
  local ns=$1 dev=$2 a
  shift 2
  for a in "$@"; do
    if [[ $a == *:* ]]; then
      ip netns exec "$ns" ip -6 addr add "$a" dev "$dev" nodad
    else
      ip netns exec "$ns" ip addr add "$a" dev "$dev"
    fi
  done
}

_lab_route() { # NS PREFIX via GW | NS PREFIX blackhole
  local ns=$1 prefix=$2 kind=$3 fam=-4
  [[ $prefix == *:* ]] && fam=-6
  if [[ $kind == blackhole ]]; then
    ip netns exec "$ns" ip "$fam" route add blackhole "$prefix"
  else
    ip netns exec "$ns" ip "$fam" route add "$prefix" via "$4"
  fi
}

# _lab_bridge NS BR : a bridge inside a namespace (no STP, no forwarding delay).
_lab_bridge() {
  ip netns exec "$1" ip link add "$2" type bridge stp_state 0 forward_delay 0
  ip netns exec "$1" ip link set "$2" up
}

_lab_bridge_port() { # NS BR IF
  ip netns exec "$1" ip link set "$3" master "$2"
}

lab_up() (
  set -euo pipefail
  lab_require_root
  lab_ensure_tools
  if lab_is_up; then
    lab_log "already up"
    return 0
  fi
  lab_down quiet
  lab_log "creating namespaces"
  local ns
  for ns in "${LAB_NAMESPACES[@]}"; do
    _lab_new_ns "$ns"
  done
  for ns in "${LAB_ROUTERS[@]}"; do
    _lab_sysctl "$ns" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  done
  # The span namespace only bridges: no addresses, no IPv6 chatter of its own.
  _lab_sysctl pk-tap net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  # Classic exponential SYN back-off (1, 3, 7, 15 s after the first SYN) on
  # the outside hosts; kernels since 6.x retransmit the first 4 SYNs 1 s
  # apart by default (net.ipv4.tcp_syn_linear_timeouts=4).
  for ns in pk-o1 pk-o2 pk-o3; do
    _lab_sysctl "$ns" net.ipv4.tcp_syn_linear_timeouts=0 2>/dev/null || true
  done
  # pk-o3 looks like Windows.
  _lab_sysctl pk-o3 net.ipv4.ip_default_ttl=128 net.ipv6.conf.all.hop_limit=128 \
    net.ipv6.conf.default.hop_limit=128
  # The firewall forwards directed broadcasts into the small DMZ (smurf/fraggle).
  _lab_sysctl pk-fw net.ipv4.conf.all.bc_forwarding=1 net.ipv4.conf.default.bc_forwarding=1
  for ns in pk-dmz3 pk-dmz4; do
    _lab_sysctl "$ns" net.ipv4.icmp_echo_ignore_broadcasts=0
  done

  lab_log "wiring links"
  # Outside.
  _lab_link pk-o1 to-edge pk-edge to-o1
  _lab_addr pk-o1 to-edge 198.51.100.10/28 2001:db8:1::10/64
  _lab_addr pk-edge to-o1 198.51.100.1/28 2001:db8:1::1/64
  _lab_link pk-edge to-r1 pk-r1 to-edge
  _lab_addr pk-edge to-r1 198.51.100.17/28 2001:db8:2::1/64
  _lab_addr pk-r1 to-edge 198.51.100.18/28 2001:db8:2::2/64
  _lab_link pk-o3 to-r1 pk-r1 to-o3
  _lab_addr pk-o3 to-r1 203.0.113.10/28 2001:db8:3::10/64
  _lab_addr pk-r1 to-o3 203.0.113.1/28 2001:db8:3::1/64
  _lab_link pk-r1 to-r2 pk-r2 to-r1
  _lab_addr pk-r1 to-r2 203.0.113.17/28 2001:db8:4::1/64
  _lab_addr pk-r2 to-r1 203.0.113.18/28 2001:db8:4::2/64
  _lab_link pk-o2 to-r2 pk-r2 to-o2
  _lab_addr pk-o2 to-r2 203.0.113.34/28 2001:db8:5::34/64
  _lab_addr pk-r2 to-o2 203.0.113.33/28 2001:db8:5::33/64

  # The span: edge <-> [bridge pk-span in pk-tap] <-> fw.
  _lab_bridge pk-tap "$LAB_SPAN_IF"
  _lab_link pk-edge to-fw pk-tap span-edge
  _lab_link pk-fw to-edge pk-tap span-fw
  _lab_bridge_port pk-tap "$LAB_SPAN_IF" span-edge
  _lab_bridge_port pk-tap "$LAB_SPAN_IF" span-fw
  _lab_addr pk-edge to-fw 192.0.2.249/30 2001:db8:d:ff::1/64
  _lab_addr pk-fw to-edge 192.0.2.250/30 2001:db8:d:ff::2/64

  # DMZ (bridge pk-dmz in pk-fw) and the small broadcast DMZ (bridge pk-bcast).
  _lab_bridge pk-fw pk-dmz
  _lab_addr pk-fw pk-dmz 192.0.2.1/25 2001:db8:d::1/64
  _lab_bridge pk-fw pk-bcast
  ip netns exec pk-fw ip addr add 192.0.2.129/26 broadcast 192.0.2.191 dev pk-bcast
  local h
  for h in dmz1 dmz2; do
    _lab_link "pk-$h" to-fw pk-fw "$h-p"
    _lab_bridge_port pk-fw pk-dmz "$h-p"
  done
  _lab_addr pk-dmz1 to-fw 192.0.2.10/25 2001:db8:d::10/64
  _lab_addr pk-dmz2 to-fw 192.0.2.20/25 2001:db8:d::20/64
  for h in dmz3 dmz4; do
    _lab_link "pk-$h" to-fw pk-fw "$h-p"
    _lab_bridge_port pk-fw pk-bcast "$h-p"
  done
  ip netns exec pk-dmz3 ip addr add 192.0.2.130/26 broadcast 192.0.2.191 dev to-fw
  ip netns exec pk-dmz4 ip addr add 192.0.2.140/26 broadcast 192.0.2.191 dev to-fw

  lab_log "routing (no default routes)"
  local p
  # Hosts: the three lab /24s and the lab /32 of IPv6, via their gateway.
  for p in 192.0.2.0/24 203.0.113.0/24 198.51.100.0/24; do
    [[ $p == 198.51.100.0/24 ]] || _lab_route pk-o1 "$p" via 198.51.100.1
    [[ $p == 203.0.113.0/24 ]] || _lab_route pk-o3 "$p" via 203.0.113.1
    [[ $p == 203.0.113.0/24 ]] || _lab_route pk-o2 "$p" via 203.0.113.33
    _lab_route pk-dmz1 "$p" via 192.0.2.1
    _lab_route pk-dmz2 "$p" via 192.0.2.1
    _lab_route pk-dmz3 "$p" via 192.0.2.129
    _lab_route pk-dmz4 "$p" via 192.0.2.129
  done
  _lab_route pk-o1 198.51.100.0/24 via 198.51.100.1
  _lab_route pk-o3 203.0.113.0/24 via 203.0.113.1
  _lab_route pk-o2 203.0.113.0/24 via 203.0.113.33
  _lab_route pk-o1 2001:db8::/32 via 2001:db8:1::1
  _lab_route pk-o3 2001:db8::/32 via 2001:db8:3::1
  _lab_route pk-o2 2001:db8::/32 via 2001:db8:5::33
  _lab_route pk-dmz1 2001:db8::/32 via 2001:db8:d::1
  _lab_route pk-dmz2 2001:db8::/32 via 2001:db8:d::1
  # Edge: home net to the fw, 203.0.113/24 to r1; the rest of 198.51.100/24
  # is a blackhole so answers to spoofed sources vanish without ICMP noise.
  _lab_route pk-edge 192.0.2.0/24 via 192.0.2.250
  _lab_route pk-edge 2001:db8:d::/48 via 2001:db8:d:ff::2
  _lab_route pk-edge 203.0.113.0/24 via 198.51.100.18
  _lab_route pk-edge 2001:db8:3::/64 via 2001:db8:2::2
  _lab_route pk-edge 2001:db8:4::/64 via 2001:db8:2::2
  _lab_route pk-edge 2001:db8:5::/64 via 2001:db8:2::2
  _lab_route pk-edge 198.51.100.0/24 blackhole
  _lab_route pk-edge 2001:db8::/32 blackhole
  # r1: towards the edge for 192.0.2/24 and 198.51.100/24, r2 for o2's net.
  _lab_route pk-r1 192.0.2.0/24 via 198.51.100.17
  _lab_route pk-r1 198.51.100.0/24 via 198.51.100.17
  _lab_route pk-r1 203.0.113.32/28 via 203.0.113.18
  _lab_route pk-r1 203.0.113.0/24 blackhole
  _lab_route pk-r1 2001:db8:d::/48 via 2001:db8:2::1
  _lab_route pk-r1 2001:db8:1::/64 via 2001:db8:2::1
  _lab_route pk-r1 2001:db8:5::/64 via 2001:db8:4::2
  _lab_route pk-r1 2001:db8::/32 blackhole
  # r2: everything via r1.
  _lab_route pk-r2 192.0.2.0/24 via 203.0.113.17
  _lab_route pk-r2 198.51.100.0/24 via 203.0.113.17
  _lab_route pk-r2 203.0.113.0/24 via 203.0.113.17
  _lab_route pk-r2 2001:db8::/32 via 2001:db8:4::1
  # fw: outside via the edge.
  _lab_route pk-fw 198.51.100.0/24 via 192.0.2.249
  _lab_route pk-fw 203.0.113.0/24 via 192.0.2.249
  _lab_route pk-fw 2001:db8::/32 via 2001:db8:d:ff::1

  lab_fw_reset
  lab_log "up (home net $LAB_HOME_NET, span ${LAB_SPAN_NS}/${LAB_SPAN_IF})"
)

# Firewall back to its neutral state: forward everything, no rules.
lab_fw_reset() (
  set -euo pipefail
  local t
  for t in iptables ip6tables; do
    ip netns exec pk-fw "$t" -P FORWARD ACCEPT
    ip netns exec pk-fw "$t" -F FORWARD
    ip netns exec pk-fw "$t" -P INPUT ACCEPT
    ip netns exec pk-fw "$t" -F INPUT
  done
)

# Idempotent: removes every pk- namespace (and with it every veth and bridge).
lab_down() (
  set -euo pipefail
  local quiet=${1:-} ns pid removed=0
  lab_require_root
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -- "^${LAB_PREFIX}" || true); do
    # Stop anything still running inside (servers, tcpdump) before deleting.
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      kill "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
    removed=$((removed + 1))
  done
  [[ $quiet == quiet ]] || lab_log "down (removed $removed namespaces)"
)

lab_status() (
  set -euo pipefail
  if ! lab_is_up; then
    local n
    n=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -c -- "^${LAB_PREFIX}" || true)
    echo "lab is down ($n ${LAB_PREFIX} namespaces present)"
    return 0
  fi
  sed -n '/^# Topology/,/^# Home net/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  echo
  echo "Addresses:"
  local ns
  for ns in "${LAB_NAMESPACES[@]}"; do
    printf '  %-8s ' "$ns"
    ip netns exec "$ns" ip -br addr show 2>/dev/null | awk '$1 != "lo" {
        sub(/@.*/, "", $1); a = ""
        for (i = 3; i <= NF; i++) if ($i !~ /^fe80/) a = a (a == "" ? "" : " ") $i
        if (a != "") printf "%s[%s] ", $1, a }'
    echo
  done
  echo "Span: bridge $LAB_SPAN_IF in netns $LAB_SPAN_NS (capture: ip netns exec $LAB_SPAN_NS tcpdump -i $LAB_SPAN_IF)"
  echo "Span bridge ports: $(ip netns exec "$LAB_SPAN_NS" bridge link show | awk '{sub(/@.*/, "", $2); sub(/:$/, "", $2); print $2}' | xargs)"
  echo "Firewall FORWARD (IPv4):"
  ip netns exec pk-fw iptables -S FORWARD | sed 's/^/  /'
  echo "Firewall FORWARD (IPv6):"
  ip netns exec pk-fw ip6tables -S FORWARD | sed 's/^/  /'
)

lab_main() {
  case ${1:-} in
    up) lab_up ;;
    down) lab_down ;;
    status) lab_status ;;
    *)
      echo "usage: $0 up|down|status" >&2
      return 2
      ;;
  esac
}

# Run as a script, not when sourced.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  lab_main "$@"
fi
