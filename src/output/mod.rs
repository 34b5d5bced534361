//! What leaves picket: the EVE envelope of every event (`event`), its
//! Community ID (`community_id`) and RFC 3339 timestamps (`timefmt`), and
//! the output thread that fans each JSON line out to every `-o` target
//! (`writer`: files and stdout; `sinks`: unix, syslog and Redis; `target`:
//! parsing `-o`), or their text for a person on files and stdout (`text`,
//! `--format text`).

pub mod community_id;
pub mod event;
pub mod sinks;
pub mod target;
pub mod text;
pub mod timefmt;
pub mod writer;
