//! `[decoy_scan]`: the detector's rules section, and how sure a verdict must
//! be to be reported.

use crate::config::ConfigError;
use crate::config::error::printable;
use crate::config::schema::{At, RuleValue, quoted};
use toml::Spanned;

/// How sure a `decoy_scan` verdict is (ordered: low < medium < high).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn name(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    fn parse(s: &str) -> Option<Confidence> {
        match s {
            "low" => Some(Confidence::Low),
            "medium" => Some(Confidence::Medium),
            "high" => Some(Confidence::High),
            _ => None,
        }
    }
}

impl RuleValue for Confidence {
    type Raw = String;
    type Bounds = ();
    fn from_raw(raw: &Spanned<String>, _: &(), at: &At) -> Result<Confidence, ConfigError> {
        Confidence::parse(raw.get_ref()).ok_or_else(|| {
            at.err(
                raw.span(),
                format!("must be \"low\", \"medium\" or \"high\", got {:?}", printable(raw.get_ref(), 40)),
            )
        })
    }
    fn to_toml(&self) -> String {
        quoted(self.name())
    }
    fn describe(_: &()) -> String {
        "\"low\", \"medium\" or \"high\"".to_string()
    }
}

crate::rules_section! {
    /// SIGNATURES.md section 6: attempts on the same set of ports from widely
    /// varying sources (nmap -D): one machine sent them all, the others are forged.
    /// The TTL, the sources' shared fingerprints (source port, ISN, IP ID, window,
    /// options) and the sensor's long memory of earlier contacts tell them apart.
    pub struct DecoyScanRules["decoy_scan"] {
        /// SIGNATURES.md section 6: report decoy scans
        enabled: bool = true;
        /// SIGNATURES.md section 6: "widely varying sources": at least this many probing the same ports of one destination
        min_sources: u32 = 3, ints(2, 256);
        /// SIGNATURES.md section 6: "the same set of ports": each source probes at least this many distinct ports there; 1-2 popular ports (80, 443) are ordinary clients
        min_ports: u32 = 5, ints(2, 1024);
        /// SIGNATURES.md section 6: Jaccard similarity of two sources' port sets to count as the same set
        min_overlap: f64 = 0.8, above(0.0, 1.0);
        /// SIGNATURES.md section 6: probes, not clients: at most this share of a source's ports may carry real conversations (data after the handshake)
        max_completed_share: f64 = 0.5, floats(0.0, 1.0);
        /// SIGNATURES.md section 6: sources count together when they probe within 5 min; a detection ends after 5 min without probes
        window_s: f64 = 300.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 6: a source's scan TTL within 2 of its learned baseline is consistent with it (route changes); further off contradicts it
        ttl_tolerance: u8 = 2, ints(0, 64);
        /// SIGNATURES.md section 6: "report the evidence and the confidence": verdicts below this are not reported
        min_confidence: Confidence = Confidence::Low;
        /// SIGNATURES.md section 6: the long memory (first contact, baseline TTL) keeps an idle address for a day
        history_idle_s: f64 = 86_400.0, above(0.0, 30.0 * 86_400.0);
        /// SIGNATURES.md section 6: cap on remembered addresses across all workers, about 100 B each; probe-only addresses are evicted first
        history_max_tracked: usize = 262_144, entries();
        /// SIGNATURES.md section 6: cap on (source, destination) pairs that probed a second port (full 650 B records), across all workers; candidates are evicted last
        max_tracked: usize = 8_192, entries();
        /// SIGNATURES.md section 6: cap on (source, destination) pairs that probed one port (about 100 B; a spoofed flood lands here, oldest out first), across all workers
        max_probation: usize = 32_768, entries();
        /// SIGNATURES.md section 6: cap on (destination, source) candidates the aggregator holds
        max_candidates: usize = 16_384, ints(1, 1 << 20);
    }
}

/// The rules section's own checks (the loader's are in `crate::rules`).
#[cfg(test)]
mod rules_tests {
    use super::Confidence;
    use super::DecoyScanRules;
    use crate::config::schema::Section;

    #[test]
    fn rules_section_checks_ranges() {
        let text = "[decoy_scan]\nmin_sources = 4\nmin_overlap = 0.9\nmin_confidence = \"medium\"\nwindow_s = 60\n";
        let d = DecoyScanRules::parse("x", text).unwrap();
        assert_eq!((d.min_sources, d.min_overlap, d.window_s), (4, 0.9, 60.0));
        assert_eq!(d.min_confidence, Confidence::Medium);
        assert_eq!(d.min_ports, 5);
        let e = DecoyScanRules::parse("x", "[decoy_scan]\nmin_source = 3\n").unwrap_err();
        assert!(e.to_string().contains("unknown key `min_source` in [decoy_scan]"), "{e}");
        for (bad, key) in [
            ("[decoy_scan]\nmin_sources = 1", "min_sources"),
            ("[decoy_scan]\nmin_ports = 1", "min_ports"),
            ("[decoy_scan]\nmin_overlap = 0", "min_overlap"),
            ("[decoy_scan]\nmin_overlap = 1.5", "min_overlap"),
            ("[decoy_scan]\nmax_completed_share = -0.1", "max_completed_share"),
            ("[decoy_scan]\nwindow_s = nan", "window_s"),
            ("[decoy_scan]\nttl_tolerance = 65", "ttl_tolerance"),
            ("[decoy_scan]\nmin_confidence = \"sure\"", "min_confidence"),
            ("[decoy_scan]\nhistory_idle_s = 0", "history_idle_s"),
            ("[decoy_scan]\nhistory_max_tracked = 0", "history_max_tracked"),
            ("[decoy_scan]\nmax_tracked = 0", "max_tracked"),
            ("[decoy_scan]\nmax_candidates = 99999999", "max_candidates"),
        ] {
            let e = DecoyScanRules::parse("rules/picket.toml", bad).unwrap_err();
            assert_eq!(e.line, Some(2), "{bad}: {e}");
            let s = e.to_string();
            assert!(s.starts_with("rules/picket.toml:2: [decoy_scan] "), "{s}");
            assert!(s.contains(key), "{bad}: {s}");
        }
    }
}
