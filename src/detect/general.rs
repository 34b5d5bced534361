//! `[general]`: the settings every detector shares (the update interval of
//! the detection lifecycle, the per-source table, and the SIGNATURES.md
//! section 9 severity terms for targets without asset data).

crate::rules_section! {
    /// Settings shared by every detector.
    /// severity = (criticality + lethality) - (system + network countermeasures); lethality comes from each detector.
    pub struct General["general"] {
        /// SIGNATURES.md section 1: one growing event per source/target; re-emit at most every 60 s of packet time
        update_interval_s: f64 = 60.0, floats(0.0, 86_400.0);
        /// SIGNATURES.md section 8: per-host counters; cap on the per-source table across all workers
        max_sources: usize = 65536, entries();
        /// SIGNATURES.md section 2: a source's distinct ports/hosts are counted over 10 min of activity
        source_idle_s: f64 = 600.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 9: criticality of a target without asset data
        criticality: i64 = 3, ints(1, 5);
        /// SIGNATURES.md section 9: how hardened a target system is
        system_countermeasures: i64 = 2, ints(1, 5);
        /// SIGNATURES.md section 9: how strong the firewall in front of it is
        network_countermeasures: i64 = 2, ints(1, 5);
    }
}
