//! What leaves picket: the EVE envelope of every event (`event`), its
//! Community ID (`community_id`) and RFC 3339 timestamps (`timefmt`), and
//! the writer thread that puts one JSON line per event on stdout or a file
//! (`writer`), or their text for a terminal (`text`, `--format text`).

pub mod community_id;
pub mod event;
pub mod text;
pub mod timefmt;
pub mod writer;
