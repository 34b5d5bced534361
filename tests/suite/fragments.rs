//! IP fragment reassembly end to end. `pcaps/fragments.pcap` (namespace
//! lab, see pcaps/README.md): nmap -f (8-byte fragments) and nmap --mtu 16
//! scans of pk-dmz1, hping3 -f SYNs, and ordinary fragmented pings (IPv4 and
//! IPv6). The scans are found as scans, with their answers matched, and as
//! `tiny_fragment` anomalies; the pings stay silent. A crafted capture adds
//! what the tools do not send: overlapping fragments (RFC 1858).

use crate::common;
use common::*;
use serde_json::Value;

fn events(r: &Run) -> Vec<Value> {
    r.stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect()
}

/// (event type or anomaly kind, source) of every final detection, sorted.
fn finals(evs: &[Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = evs
        .iter()
        .filter(|e| e["event_type"] != "stats" && e["event_type"] != "service_inventory")
        .filter(|e| {
            let t = e["event_type"].as_str().unwrap_or("");
            e[t]["status"] == "final" || e[t]["status"].is_null()
        })
        .map(|e| {
            let t = e["event_type"].as_str().unwrap_or("").to_string();
            let kind = e["anomaly"]["kind"].as_str().map_or(t, |k| format!("anomaly/{k}"));
            (kind, e["src_ip"].as_str().unwrap_or("").to_string())
        })
        .collect();
    v.sort();
    v
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

fn stats(evs: &[Value]) -> &Value {
    let last = evs.last().expect("output");
    assert_eq!(last["event_type"], "stats");
    &last["stats"]
}

#[test]
fn fragmented_scans_are_reassembled_found_and_named_as_tiny_fragments() {
    let r = replay(&[&pcap("fragments.pcap")], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let evs = events(&r);
    assert_eq!(
        finals(&evs),
        pairs(&[
            ("port_scan", "198.51.100.10"),
            ("port_scan", "203.0.113.34"),
            ("anomaly/tiny_fragment", "198.51.100.10"),
            ("anomaly/tiny_fragment", "203.0.113.34"),
            ("anomaly/tiny_fragment", "203.0.113.10"),
        ]),
        "the pings' ordinary fragments are nothing"
    );
    // The SYNs' ports came from the reassembled headers, and the answers
    // (SYN-ACK from 80, RSTs elsewhere) met them.
    for (e, d) in r.port_scan_finals() {
        assert_eq!((d.ports_probed, d.closed, d.open), (13, 12, 1), "{:?}", e.src_ip);
        assert_eq!(d.open_ports[0].port, 80);
        assert_eq!(d.tool, "nmap");
    }
    let tiny: Vec<u64> = evs
        .iter()
        .filter(|e| e["anomaly"]["kind"] == "tiny_fragment" && e["anomaly"]["status"] == "final")
        .map(|e| e["anomaly"]["packets"].as_u64().unwrap())
        .collect();
    assert_eq!(tiny.iter().sum::<u64>(), 13 + 13 + 3, "one per fragmented SYN");
    let f = &stats(&evs)["fragments"];
    assert_eq!(f["fragments"], 95, "{f}");
    // 26 nmap SYNs, 3 hping3 SYNs, 2 + 2 pings and their 2 + 2 replies.
    assert_eq!(f["reassembled"], 37, "{f}");
    assert_eq!(f["tiny"], 29, "{f}");
    for k in ["overlaps", "incomplete", "timeouts", "evicted", "unreassembled", "held"] {
        assert_eq!(f[k], 0, "{k}: {f}");
    }
}

#[test]
fn the_real_nmap_f_decoy_scan_is_a_decoy_scan() {
    // realworld hk_nmap_combined.pcapng (nmap -f -T1 -n -Pn --data-length
    // 200 -D RND:5): the 2,520 fragments are 90 SYNs from six sources.
    let Some(path) = shared("realworld/pcaps/hk_nmap_combined.pcapng") else { return };
    let out = std::process::Command::new(bin())
        .args(["replay", "--home-net", "192.168.29.115/32"])
        .arg(&path)
        .output()
        .expect("run picket");
    let r = finish(out);
    let evs = events(&r);
    let decoys: Vec<&Value> = evs.iter().filter(|e| e["event_type"] == "decoy_scan").collect();
    assert!(!decoys.is_empty(), "no decoy_scan");
    let f = &stats(&evs)["fragments"];
    assert_eq!((f["fragments"].as_u64(), f["reassembled"].as_u64()), (Some(2520), Some(90)), "{f}");
    let tiny = finals(&evs).into_iter().filter(|(k, _)| k == "anomaly/tiny_fragment").count();
    assert_eq!(tiny, 6, "one per source, decoys included");
}

/// Raw IPv4 (LINKTYPE_RAW) fragment of `body` at byte offset `off`.
fn v4(src: [u8; 4], id: u16, off: usize, more: bool, body: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 52, 6, 0, 0];
    h[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&(((off / 8) as u16) | if more { 0x2000 } else { 0 }).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[192, 0, 2, 10]);
    h.extend_from_slice(body);
    h
}

/// A 20-byte TCP SYN header from 40000 to `dport`.
fn syn(dport: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 0x50;
    t[13] = 0x02;
    t
}

#[test]
fn overlapping_fragments_are_an_anomaly_and_replay_is_deterministic() {
    // Crafted: no tool in the lab sends overlaps. 198.51.100.66 sends 5
    // SYNs in 24 + 16 byte pieces plus a piece at offset 8 rewriting the
    // flags to RST+ACK (RFC 1858); 198.51.100.67 sends the same SYNs in
    // clean 24 + 16 byte pieces, each frame twice (a doubled span port).
    let dir = tempdir("fragments");
    let path = dir.join("overlap.pcap");
    let mut frames = Vec::new();
    for i in 0..5u16 {
        let t = 1_700_000_000_000_000 + i64::from(i) * 500_000;
        let mut body = syn(20 + i);
        body.extend_from_slice(&[0u8; 20]);
        let mut evil = body[8..24].to_vec();
        evil[5] = 0x14;
        frames.push((t, v4([198, 51, 100, 66], 100 + i, 0, true, &body[..24])));
        frames.push((t + 10, v4([198, 51, 100, 66], 100 + i, 8, true, &evil)));
        frames.push((t + 20, v4([198, 51, 100, 66], 100 + i, 24, false, &body[24..])));
        for (k, piece) in [
            v4([198, 51, 100, 67], 200 + i, 0, true, &body[..24]),
            v4([198, 51, 100, 67], 200 + i, 24, false, &body[24..]),
        ]
        .into_iter()
        .enumerate()
        {
            frames.push((t + 100 + k as i64 * 10, piece.clone()));
            frames.push((t + 105 + k as i64 * 10, piece));
        }
    }
    write_pcap_link(&path, 101, &frames);
    let mut lines = Vec::new();
    for workers in ["1", "3"] {
        let r = replay(&[&path], &["--workers", workers]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let evs = events(&r);
        let over: Vec<&Value> = evs
            .iter()
            .filter(|e| e["anomaly"]["kind"] == "fragment_overlap" && e["anomaly"]["status"] == "final")
            .collect();
        assert_eq!(over.len(), 1, "one detection, from the overlapping source only");
        assert_eq!(over[0]["src_ip"], "198.51.100.66");
        assert_eq!(over[0]["anomaly"]["packets"], 5);
        assert!(over[0]["summary"].as_str().unwrap().contains("overlap"));
        let f = &stats(&evs)["fragments"];
        assert_eq!((f["overlaps"].as_u64(), f["duplicates"].as_u64()), (Some(5), Some(10)), "{f}");
        assert_eq!(f["reassembled"], 10, "{f}");
        let mut mine: Vec<String> = evs
            .iter()
            .filter(|e| e["event_type"] != "stats")
            .map(|e| {
                let mut e = e.clone();
                e.as_object_mut().map(|o| o.remove("timestamp"));
                e.to_string()
            })
            .collect();
        mine.sort();
        lines.push(mine);
    }
    assert_eq!(lines[0], lines[1], "the same events with 1 and 3 workers");
}
