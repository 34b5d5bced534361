//! Least privilege for `picket live --user USER[:GROUP]`: once the capture
//! handle is active, the syslog socket bound and the output opened, picket
//! becomes USER for good, before it starts any thread and before it reads
//! a packet, a log line or a datagram.
//!
//! The drop, in order: no_new_privs; the ambient set cleared; the bounding
//! set emptied (while CAP_SETPCAP is still held); the supplementary groups
//! (USER's groups from the group database, `initgroups`), the real,
//! effective and saved gid, then the three uids; the inheritable, effective
//! and permitted sets cleared. Then it is checked: every id is the target,
//! every capability set is empty, no_new_privs reads 1, and (for a target
//! other than root) `setuid(0)` fails. Anything short of that is an error
//! that ends the run; picket never goes on as root when `--user` was asked.
//!
//! Capability sets and no_new_privs belong to a thread, not to the process,
//! and threads inherit them when created: the drop refuses to run once a
//! second thread exists (`/proc/self/task`), so no thread can keep what the
//! main thread gave up. `nix` (ids, groups, prctl) and `caps` (capability
//! sets) hold the system calls; no `unsafe` here.

use caps::CapSet;
use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;

/// Who `--user` names, looked up before anything is opened.
#[derive(Clone, Debug)]
pub struct Target {
    /// The USER[:GROUP] text as given, for messages.
    spec: String,
    uid: Uid,
    gid: Gid,
    /// The user's name for `initgroups` (none for a bare number without a
    /// passwd entry: then the only group is `gid`).
    name: Option<CString>,
}

/// Why the drop did not happen. `Display` is one line naming the user.
#[derive(Debug, thiserror::Error)]
#[error("--user {spec}: {msg}")]
pub struct PrivError {
    /// `--user`'s value.
    pub spec: String,
    /// What failed, in a few words.
    pub msg: String,
}

fn err(spec: &str, msg: impl Into<String>) -> PrivError {
    PrivError { spec: spec.to_string(), msg: msg.into() }
}

impl Target {
    /// Parses `USER[:GROUP]`; each is a name or a number. A name must
    /// exist in the user (group) database; a number need not.
    pub fn resolve(spec: &str) -> Result<Target, PrivError> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        if u.is_empty() || g.is_some_and(str::is_empty) {
            return Err(err(spec, "expected USER or USER:GROUP"));
        }
        let lookup = |e: nix::Error| err(spec, format!("cannot read the user database: {e}"));
        let (uid, mut gid, name) = match u.parse::<u32>() {
            Ok(n) => match User::from_uid(Uid::from_raw(n)).map_err(lookup)? {
                Some(pw) => (pw.uid, pw.gid, Some(pw.name)),
                None => (Uid::from_raw(n), Gid::from_raw(n), None),
            },
            Err(_) => match User::from_name(u).map_err(lookup)? {
                Some(pw) => (pw.uid, pw.gid, Some(pw.name)),
                None => return Err(err(spec, format!("no such user `{u}`"))),
            },
        };
        if let Some(g) = g {
            gid = match g.parse::<u32>() {
                Ok(n) => Gid::from_raw(n),
                Err(_) => match Group::from_name(g).map_err(lookup)? {
                    Some(gr) => gr.gid,
                    None => return Err(err(spec, format!("no such group `{g}`"))),
                },
            };
        }
        let name = match name {
            Some(n) => Some(CString::new(n).map_err(|_| err(spec, "user name holds a NUL byte"))?),
            None => None,
        };
        Ok(Target { spec: spec.to_string(), uid, gid, name })
    }

    pub fn uid(&self) -> u32 {
        self.uid.as_raw()
    }

    pub fn gid(&self) -> u32 {
        self.gid.as_raw()
    }

    /// Becomes the target user with no capability at all; see the module
    /// comment. Returns the line picket prints about it.
    pub fn drop_privileges(&self) -> Result<String, PrivError> {
        let spec = self.spec.as_str();
        let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0);
        if threads != 1 {
            return Err(err(spec, format!("refusing to drop privileges with {threads} threads running (expected 1)")));
        }
        let capsf =
            |what: &str, e: caps::errors::CapsError| err(spec, format!("cannot clear the {what} capabilities: {e}"));
        nix::sys::prctl::set_no_new_privs().map_err(|e| err(spec, format!("cannot set no_new_privs: {e}")))?;
        caps::clear(None, CapSet::Ambient).map_err(|e| capsf("ambient", e))?;
        // Emptying the bounding set needs CAP_SETPCAP; without it (a
        // file-capability start) the bounding set stays, and no_new_privs
        // already keeps exec from gaining anything through it.
        if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false) {
            caps::clear(None, CapSet::Bounding).map_err(|e| capsf("bounding", e))?;
        }
        let res_u = nix::unistd::getresuid().map_err(|e| err(spec, format!("getresuid: {e}")))?;
        let res_g = nix::unistd::getresgid().map_err(|e| err(spec, format!("getresgid: {e}")))?;
        let already = [res_u.real, res_u.effective, res_u.saved].iter().all(|u| *u == self.uid)
            && [res_g.real, res_g.effective, res_g.saved].iter().all(|g| *g == self.gid);
        // Started as the user already (file capabilities): no id to change,
        // and no CAP_SETGID to change the groups with; the capabilities
        // still go below.
        let can_switch = [caps::Capability::CAP_SETUID, caps::Capability::CAP_SETGID]
            .into_iter()
            .all(|c| caps::has_cap(None, CapSet::Effective, c).unwrap_or(false));
        if !already && !can_switch {
            return Err(err(
                spec,
                format!(
                    "switching users needs root (CAP_SETUID and CAP_SETGID), and picket runs as uid {} without \
                     them: started with file or ambient capabilities, --user can only name that same user \
                     (picket then clears the capabilities)",
                    res_u.effective
                ),
            ));
        }
        if !already {
            let groups = match &self.name {
                Some(n) => nix::unistd::initgroups(n, self.gid),
                None => nix::unistd::setgroups(&[self.gid]),
            };
            groups.map_err(|e| err(spec, format!("cannot set the supplementary groups: {e}")))?;
            nix::unistd::setresgid(self.gid, self.gid, self.gid)
                .map_err(|e| err(spec, format!("cannot switch to gid {}: {e}", self.gid)))?;
            nix::unistd::setresuid(self.uid, self.uid, self.uid)
                .map_err(|e| err(spec, format!("cannot switch to uid {}: {e}", self.uid)))?;
        }
        for (set, what) in
            [(CapSet::Inheritable, "inheritable"), (CapSet::Effective, "effective"), (CapSet::Permitted, "permitted")]
        {
            caps::clear(None, set).map_err(|e| capsf(what, e))?;
        }
        self.verify()?;
        let groups = nix::unistd::getgroups().map(|g| g.len()).unwrap_or(0);
        Ok(format!(
            "picket: note: running as {spec} (uid {}, gid {}, {groups} supplementary group(s)), no capabilities, no_new_privs",
            self.uid, self.gid
        ))
    }

    /// Checks what `drop_privileges` did, from the kernel's side.
    fn verify(&self) -> Result<(), PrivError> {
        let spec = self.spec.as_str();
        let u = nix::unistd::getresuid().map_err(|e| err(spec, format!("getresuid: {e}")))?;
        let g = nix::unistd::getresgid().map_err(|e| err(spec, format!("getresgid: {e}")))?;
        if [u.real, u.effective, u.saved].iter().any(|x| *x != self.uid)
            || [g.real, g.effective, g.saved].iter().any(|x| *x != self.gid)
        {
            return Err(err(spec, format!("ids are uid {u:?} gid {g:?} after the switch")));
        }
        for set in [CapSet::Ambient, CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
            let held = caps::read(None, set).map_err(|e| err(spec, format!("cannot read capabilities: {e}")))?;
            if !held.is_empty() {
                return Err(err(spec, format!("{set:?} capabilities still held: {held:?}")));
            }
        }
        if !nix::sys::prctl::get_no_new_privs().unwrap_or(false) {
            return Err(err(spec, "no_new_privs is not set"));
        }
        if !self.uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(err(spec, "setuid(0) still succeeds after the switch"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_numbers_and_names_what_is_missing() {
        let root = Target::resolve("root").unwrap();
        assert_eq!((root.uid(), root.gid()), (0, 0));
        let n = Target::resolve("4242:4343").unwrap();
        assert_eq!((n.uid(), n.gid()), (4242, 4343));
        let e = Target::resolve("no-such-user-picket").unwrap_err().to_string();
        assert!(e.contains("--user no-such-user-picket") && e.contains("no such user"), "{e}");
        let e = Target::resolve("root:no-such-group-picket").unwrap_err().to_string();
        assert!(e.contains("no such group `no-such-group-picket`"), "{e}");
        assert!(Target::resolve(":x").is_err());
        assert!(Target::resolve("root:").is_err());
    }
}
