//! `[general]`: the settings every detector shares (the update interval of
//! the detection lifecycle and the per-source table). Severity's target
//! terms are asset data (`rules/assets.toml`), its lethality the
//! `[lethality]` section (`detect/severity.rs`).

crate::rules_section! {
    /// Settings shared by every detector.
    pub struct General["general"] {
        /// SIGNATURES.md section 1: one growing event per source/target; re-emit at most every 60 s of packet time
        update_interval_s: f64 = 60.0, floats(0.0, 86_400.0);
        /// SIGNATURES.md section 8: per-host counters; cap on the per-source table across all workers
        max_sources: usize = 65536, entries();
        /// SIGNATURES.md section 2: a source's distinct ports/hosts are counted over 10 min of activity
        source_idle_s: f64 = 600.0, above(0.0, 86_400.0);
    }
}
