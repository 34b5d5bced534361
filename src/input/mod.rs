//! Where picket's input comes from: libpcap (`capture`, live interfaces and
//! savefiles, the latter opened by `savefile` with a large read buffer),
//! firewall log files followed like `tail -F` (`follow`), and syslog
//! datagrams (`syslog_udp`), syslog over TCP and TLS (`syslog_tcp`,
//! `syslog_tls`). Nothing here interprets what it reads.

pub mod capture;
pub mod follow;
pub mod records;
pub mod savefile;
pub mod syslog_tcp;
pub mod syslog_tls;
pub mod syslog_udp;
