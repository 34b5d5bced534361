//! The output contract: one JSON object per line, in Suricata EVE's envelope
//! (`timestamp`, `event_type`, `src_ip`, `src_port`, `dest_ip`, `dest_port`,
//! `proto`, `community_id`, ...), plus picket's `severity`, `summary`,
//! `sensor` and an object named after the event type.
//!
//! Events are rare next to packets, so building them may allocate.

use crate::output::community_id::community_id;
use crate::output::timefmt::rfc3339_us;
use serde_json::{Map, Value, json};
use std::net::IpAddr;

/// An event ready for the output thread: its type (for the stats) and its
/// serialized line, without the trailing newline.
#[derive(Debug)]
pub struct EventLine {
    pub kind: &'static str,
    pub line: String,
}

/// The flow an event is about.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Ports (for ICMP: type and code), when the event concerns one flow.
    pub ports: Option<(u16, u16)>,
}

/// EVE's name for an IP protocol.
pub fn proto_name(proto: u8) -> String {
    match proto {
        6 => "TCP".to_string(),
        17 => "UDP".to_string(),
        1 => "ICMP".to_string(),
        58 => "IPv6-ICMP".to_string(),
        132 => "SCTP".to_string(),
        n => n.to_string(),
    }
}

/// An event's score (SIGNATURES.md section 9, `detect::severity`): the
/// `severity` number, the `severity_terms` object that explains it, and for
/// an event about one service of a home host, `target_service`.
#[derive(Clone, Debug)]
pub struct Judged {
    pub severity: i64,
    pub terms: Value,
    pub target_service: Option<&'static str>,
}

/// The `sensor` of run-wide events: the one input's name, or "N files".
pub fn run_label(sensors: &[String]) -> String {
    if sensors.len() == 1 { sensors[0].clone() } else { format!("{} files", sensors.len()) }
}

/// Builds one event line.
pub struct EventBuilder {
    obj: Map<String, Value>,
}

impl EventBuilder {
    /// Starts an event of `kind` at packet time `ts_us` seen by `sensor`.
    pub fn new(kind: &str, ts_us: i64, sensor: &str) -> EventBuilder {
        let mut obj = Map::new();
        obj.insert("timestamp".into(), json!(rfc3339_us(ts_us)));
        obj.insert("event_type".into(), json!(kind));
        obj.insert("sensor".into(), json!(sensor));
        EventBuilder { obj }
    }

    /// Adds the flow fields and its Community ID.
    pub fn flow(mut self, f: &Flow, seed: u16) -> EventBuilder {
        self.obj.insert("src_ip".into(), json!(f.src.to_string()));
        self.obj.insert("dest_ip".into(), json!(f.dst.to_string()));
        self.obj.insert("proto".into(), json!(proto_name(f.proto)));
        if let Some((sp, dp)) = f.ports {
            if f.proto == 6 || f.proto == 17 || f.proto == 132 {
                self.obj.insert("src_port".into(), json!(sp));
                self.obj.insert("dest_port".into(), json!(dp));
            }
            let cid = community_id(seed, f.src, f.dst, f.proto, sp, dp);
            if !cid.is_empty() {
                self.obj.insert("community_id".into(), json!(cid));
            }
        }
        self
    }

    /// Adds the destination port alone (an event about many source ports).
    pub fn dest_port(mut self, port: u16) -> EventBuilder {
        self.obj.insert("dest_port".into(), json!(port));
        self
    }

    pub fn severity(mut self, s: i64) -> EventBuilder {
        self.obj.insert("severity".into(), json!(s));
        self
    }

    /// Adds `severity`, `severity_terms` and `target_service` (when known).
    pub fn judged(mut self, j: Judged) -> EventBuilder {
        self.obj.insert("severity".into(), json!(j.severity));
        self.obj.insert("severity_terms".into(), j.terms);
        if let Some(t) = j.target_service {
            self.obj.insert("target_service".into(), json!(t));
        }
        self
    }

    pub fn summary(mut self, s: String) -> EventBuilder {
        self.obj.insert("summary".into(), json!(s));
        self
    }

    /// Adds any other top-level field.
    pub fn field(mut self, k: &str, v: Value) -> EventBuilder {
        self.obj.insert(k.into(), v);
        self
    }

    /// Finishes with the details object named after the event type.
    pub fn details(mut self, kind: &'static str, details: Value) -> EventLine {
        self.obj.insert(kind.into(), details);
        let line = serde_json::to_string(&Value::Object(self.obj))
            .unwrap_or_else(|e| format!("{{\"event_type\":\"error\",\"error\":\"{e}\"}}"));
        EventLine { kind, line }
    }
}

/// A deterministic detection id: FNV-1a 64 over the detector's name and its
/// key bytes, rendered as 16 hex digits. The same replay gives the same ids.
/// The incident a detection belongs to: the same for every detection about
/// one source retrying one destination, protocol and port (`syn_retry`,
/// `periodic_probe`, `source_port_sequence`, `verdict`), so they can be
/// joined (`jq 'select(.[.event_type].incident == "...")'`).
pub fn incident_id(src: &IpAddr, dst: &IpAddr, proto: u8, dport: u16) -> String {
    detection_id("incident", &[&ip_bytes(src), &ip_bytes(dst), &[proto], &dport.to_be_bytes()])
}

pub fn detection_id(kind: &str, key: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(kind.as_bytes());
    for part in key {
        eat(&[0xff]);
        eat(part);
    }
    format!("{h:016x}")
}

/// Bytes of an address, for detection ids.
pub fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Seconds between two packet times, for details fields.
pub fn secs(us: i64) -> f64 {
    (us as f64 / 1e6 * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = detection_id("syn_retry", &[b"1", b"2"]);
        assert_eq!(a, detection_id("syn_retry", &[b"1", b"2"]));
        assert_ne!(a, detection_id("syn_retry", &[b"12"]));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn envelope_has_eve_names() {
        let f = Flow {
            src: "198.51.100.2".parse().unwrap(),
            dst: "192.0.2.10".parse().unwrap(),
            proto: 6,
            ports: Some((40000, 158)),
        };
        let ev = EventBuilder::new("syn_retry", 0, "x.pcap")
            .flow(&f, 0)
            .severity(2)
            .summary("s".into())
            .details("syn_retry", json!({"attempts": 3}));
        let v: Value = serde_json::from_str(&ev.line).unwrap();
        assert_eq!(v["event_type"], "syn_retry");
        assert_eq!(v["src_ip"], "198.51.100.2");
        assert_eq!(v["dest_port"], 158);
        assert_eq!(v["proto"], "TCP");
        assert_eq!(v["syn_retry"]["attempts"], 3);
    }
}
