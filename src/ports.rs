//! The port knowledge base (rules/ports.toml): what a port means and what an
//! attacker wants there, so every event can name the service.

/// One port's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub note: String,
}

/// Port -> meaning, per transport protocol.
#[derive(Clone, Debug, Default)]
pub struct PortTable {}

impl PortTable {
    /// Looks up `port` for IP protocol `proto` (6 TCP, 17 UDP).
    pub fn lookup(&self, proto: u8, port: u16) -> Option<&PortInfo> {
        let _ = (proto, port);
        None
    }
}
