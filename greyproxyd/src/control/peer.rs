//! Who may use the control unix socket without a token: the decision on a connected peer's
//! credentials (`SO_PEERCRED`), as a pure function, and the reading of the peer's groups.
//!
//! The kernel already refuses `connect` to anyone without write permission on the socket file
//! (0600: the daemon's user; 0660: also its group); this check is the second lock, so that a
//! socket whose mode was loosened by hand, or a path under a permissive directory, does not
//! hand the daemon to every local user.

use std::path::Path;

/// The socket's owner as the daemon sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketOwner {
    /// The daemon's effective uid.
    pub(crate) uid: u32,
    /// The socket file's group when group access is on (`control.socket_mode = "0660"`).
    pub(crate) group: Option<u32>,
}

/// Whether a peer is admitted, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerDecision {
    /// The daemon's own user.
    SameUser,
    /// uid 0, which can read the token file anyway.
    Root,
    /// A member (primary or supplementary) of the socket's group, with group access on.
    GroupMember,
    /// Anyone else: needs the token like a TCP client.
    Refused,
}

impl PeerDecision {
    /// Whether the peer needs no token.
    pub(crate) fn admitted(self) -> bool {
        self != PeerDecision::Refused
    }
}

/// Decides on a peer with effective uid `uid` and the groups `gids` (primary first, then the
/// supplementary ones when known).
pub(crate) fn decide(uid: u32, gids: &[u32], owner: SocketOwner) -> PeerDecision {
    if uid == owner.uid {
        PeerDecision::SameUser
    } else if uid == 0 {
        PeerDecision::Root
    } else if owner.group.is_some_and(|g| gids.contains(&g)) {
        PeerDecision::GroupMember
    } else {
        PeerDecision::Refused
    }
}

/// The close reason sent to a refused peer (at most 123 bytes, the WebSocket limit).
pub(crate) fn refusal(uid: u32, owner: SocketOwner) -> String {
    match owner.group {
        Some(g) => format!(
            "unauthorized: uid {uid} is neither the daemon's user ({}) nor in group {g}",
            owner.uid
        ),
        None => format!(
            "unauthorized: uid {uid} is not the daemon's user ({})",
            owner.uid
        ),
    }
}

/// The supplementary groups of process `pid` from its `/proc/PID/status`, but only if that
/// process still has effective uid `uid`: `SO_PEERCRED` carries the primary gid alone, and a
/// pid that exited and was reused by another user's process must not lend its groups.
pub(crate) fn supplementary_groups(pid: i32, uid: u32) -> Vec<u32> {
    let path = Path::new("/proc").join(pid.to_string()).join("status");
    match std::fs::read_to_string(path) {
        Ok(text) => parse_status_groups(&text, uid),
        Err(_) => Vec::new(),
    }
}

/// `Groups:` of a `/proc/PID/status` text when its effective uid (second `Uid:` field) is
/// `uid`; empty otherwise.
pub(crate) fn parse_status_groups(status: &str, uid: u32) -> Vec<u32> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|n| n.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            })
    };
    match field("Uid:") {
        Some(uids) if uids.get(1) == Some(&uid) => field("Groups:").unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PRIVATE: SocketOwner = SocketOwner {
        uid: 1000,
        group: None,
    };
    const SHARED: SocketOwner = SocketOwner {
        uid: 990,
        group: Some(990),
    };

    #[test]
    fn the_daemons_user_and_root_are_admitted() {
        assert_eq!(decide(1000, &[1000], PRIVATE), PeerDecision::SameUser);
        assert_eq!(decide(0, &[0], PRIVATE), PeerDecision::Root);
        assert_eq!(decide(990, &[990], SHARED), PeerDecision::SameUser);
    }

    #[test]
    fn another_uid_is_refused_without_group_access() {
        // Even when it shares the daemon's primary group: 0600 means the user alone.
        assert_eq!(decide(1001, &[1000], PRIVATE), PeerDecision::Refused);
        assert!(!decide(1001, &[1000], PRIVATE).admitted());
    }

    #[test]
    fn group_members_are_admitted_only_with_group_access() {
        assert_eq!(
            decide(1001, &[1001, 990], SHARED),
            PeerDecision::GroupMember
        );
        assert_eq!(decide(1001, &[990], SHARED), PeerDecision::GroupMember);
        assert_eq!(decide(1001, &[1001, 27], SHARED), PeerDecision::Refused);
        assert_eq!(decide(1001, &[], SHARED), PeerDecision::Refused);
    }

    #[test]
    fn refusal_names_the_uid_and_fits_a_close_frame() {
        let r = refusal(4_294_967_294, SHARED);
        assert!(r.contains("4294967294") && r.contains("group 990"), "{r}");
        assert!(r.len() <= 123, "{}", r.len());
        assert!(refusal(7, PRIVATE).contains("not the daemon's user (1000)"));
    }

    #[test]
    fn status_groups_are_read_only_for_the_same_effective_uid() {
        let status = "Name:\tbash\nUid:\t1001\t1001\t1001\t1001\nGid:\t1001\t1001\t1001\t1001\nGroups:\t27 990 1001 \n";
        assert_eq!(parse_status_groups(status, 1001), vec![27, 990, 1001]);
        assert!(parse_status_groups(status, 1002).is_empty());
        assert!(parse_status_groups("Uid:\t1\t1\t1\t1\nGroups:\n", 1).is_empty());
        assert!(parse_status_groups("garbage", 1).is_empty());
    }
}
