//! Community ID v1 flow hashing (https://github.com/corelight/community-id-spec).

use std::net::IpAddr;

/// The Community ID v1 string ("1:" + base64 SHA-1) of a flow. For ICMP and
/// ICMPv6 pass the type as `sport` and the code as `dport`.
pub fn community_id(seed: u16, src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> String {
    let _ = (seed, src, dst, proto, sport, dport);
    String::new()
}
