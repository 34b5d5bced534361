//! OpenBSD pf's log, as a pflog capture (LINKTYPE_PFLOG, 117), read by
//! `replay`. No pf runs here (it is a BSD firewall), so the capture is
//! written by this test from the documented header: OpenBSD
//! net/if_pflog.h `struct pfloghdr` (length 100: length, af, action,
//! reason, ifname[16], ruleset[16], rulenr, subrulenr, uid, pid, rule_uid,
//! rule_pid, dir, rewritten, naf, pad, saddr, daddr, sport, dport), and
//! FreeBSD's shorter one (length 61, padded to 64). The packets behind it
//! are a retry loop: five SYNs, source port +1, two seconds apart, that pf
//! blocked (action 1, PF_DROP).

use crate::common;
use common::*;

/// A pfloghdr of `len` bytes (100 or 61) for an IPv4 packet pf dropped on em0.
fn pflog_header(len: u8) -> Vec<u8> {
    let mut h = vec![0u8; (usize::from(len) + 3) & !3];
    h[0] = len;
    h[1] = 2; // AF_INET
    h[2] = 1; // PF_DROP
    h[4..7].copy_from_slice(b"em0");
    h[36..40].copy_from_slice(&7u32.to_be_bytes()); // rule 7
    h[40..44].copy_from_slice(&u32::MAX.to_be_bytes()); // no subrule
    h[60] = 1; // PF_IN
    h
}

/// IPv4 + TCP SYN (no options) from 203.0.113.9:`sport` to 192.0.2.10:158.
fn syn(sport: u16, id: u16) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 113, 6, 0, 0, 203, 0, 113, 9, 192, 0, 2, 10, // IPv4, TTL 113
        0, 0, 0, 158, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0, // TCP SYN
    ];
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p
}

#[test]
fn a_pflog_capture_replays_like_the_wire() {
    let dir = tempdir("pflog");
    for (name, len) in [("openbsd.pflog", 100u8), ("freebsd.pflog", 61)] {
        let frames: Vec<(i64, Vec<u8>)> = (0..5u16)
            .map(|i| {
                let mut f = pflog_header(len);
                f.extend(syn(3100 + i, 500 + i));
                (1_700_000_000_000_000 + i64::from(i) * 2_000_000, f)
            })
            .collect();
        let path = dir.join(name);
        write_pcap_link(&path, 117, &frames);
        let run = replay(&[&path], &[]);
        assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
        let st = run.stats();
        assert_eq!(st.link_types.get("pflog"), Some(&5), "{name}: {st:?}");
        assert!(st.decode_errors.values().all(|n| *n == 0), "{name}: {st:?}");
        let finals = run.syn_retry_finals();
        assert_eq!(finals.len(), 1, "{name}: {:?}", run.of_type("syn_retry"));
        assert_eq!(finals[0].attempts, 5);
        assert_eq!((finals[0].first_source_port, finals[0].last_source_port), (3100, 3104));
        assert_eq!(finals[0].direction.as_deref(), Some("inbound"));
    }
    // A header claiming less than pf's minimum is counted, not fatal.
    let mut f = pflog_header(100);
    f[0] = 12;
    f.extend(syn(3100, 1));
    let path = dir.join("broken.pflog");
    write_pcap_link(&path, 117, &[(1_700_000_000_000_000, f)]);
    let run = replay(&[&path], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stats().decode_errors.get("truncated_link"), Some(&1));
}
