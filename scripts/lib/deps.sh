# shellcheck shell=bash
# Installs what picket's scripts need on Debian, when it is missing.
# Sourced by scripts/demo, scripts/test and scripts/bench.

# need_pkgs CMD:PKG ... installs PKG when CMD (or, for "lib:NAME", the
# pkg-config-less header check; for "dpkg:PKG", the package itself) is missing.
picket_need() {
    local missing=() spec cmd pkg
    for spec in "$@"; do
        cmd=${spec%%:*}
        pkg=${spec#*:}
        case "$cmd" in
            libpcap) [ -e /usr/include/pcap.h ] || [ -e /usr/include/pcap/pcap.h ] || missing+=("$pkg") ;;
            # A package with no command of its own (a plugin): asked of dpkg.
            dpkg) dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg") ;;
            *) command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg") ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "picket: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
        return 1
    fi
    echo "picket: installing ${missing[*]} ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The build needs libpcap's headers and a C toolchain for the pcap crate.
picket_build_deps() {
    picket_need libpcap:libpcap-dev cc:gcc
    command -v cargo >/dev/null 2>&1 || { echo "picket: cargo not found; install Rust from rustup.rs" >&2; return 1; }
}

# The tests also drive real tools inside network namespaces; the fuzz
# targets build libFuzzer's C++ (g++).
picket_test_deps() {
    picket_build_deps
    picket_need ip:iproute2 tcpdump:tcpdump hping3:hping3 nmap:nmap python3:python3 logger:bsdutils setcap:libcap2-bin iptables:iptables c++:g++ \
        chromium:chromium jq:jq script:bsdutils man:man-db systemd-analyze:systemd redis-server:redis-server
    # tests/suite/syslog_tcp.rs: a private rsyslogd forwarding over TCP and TLS
    # (ossl driver), and openssl for its certificates and a TLS client.
    picket_need rsyslogd:rsyslog dpkg:rsyslog-openssl openssl:openssl nsenter:util-linux
    # tests/suite/packaging.rs packs the binary under test into a .deb with
    # cargo-deb (dpkg-deb reads it back); Debian has no cargo-deb package.
    picket_need dpkg-deb:dpkg
    if ! command -v cargo-deb >/dev/null 2>&1; then
        echo "picket: installing cargo-deb (cargo install) ..." >&2
        cargo install cargo-deb --locked --quiet
    fi
}
