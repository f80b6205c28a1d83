//! Why each rate-limit unit was spent: what the fleet benchmark explains
//! its gap to the physical limit with. Counted where units are counted
//! (`Proxy::account_upstream`), one cause per unit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ghcache_peer::LookupEnd;
use serde::{Deserialize, Serialize};

/// Why an upstream exchange was needed (known before it is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Writes and uncacheable reads, passed through.
    PassThrough,
    /// Our own entry's validator was answered with a new body.
    Changed,
    /// A body held elsewhere (another partition's, a member's) was offered
    /// with a synthesised ETag and GitHub sent a body: a newer version, or
    /// one that differs per token.
    NotConfirmed,
    /// No copy anywhere, by the lookup's end (see [`LookupEnd`]).
    NoCopy(LookupEnd),
    /// No copy here and no claimed lookup (other partitions' copies off,
    /// or another request of ours fetched it and stored nothing).
    NoCopyUnclaimed,
}

/// Units spent, by cause (`Proxy::unit_causes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitCauses {
    pub pass_through: u64,
    pub changed: u64,
    pub not_confirmed: u64,
    /// Every member asked said it held none: a first fetch (or a member
    /// that had not claimed it yet when asked).
    pub nothing_held: u64,
    /// Some member had not answered by the peer deadline.
    pub peer_deadline: u64,
    /// Waited for an earlier claimant's fetch (here or a member's) and got
    /// nothing from it.
    pub waited_in_vain: u64,
    /// No claimed lookup was made (no mesh, cross-partition copies off, or
    /// a fetch of another request here that stored nothing).
    pub unclaimed: u64,
}

impl UnitCauses {
    pub fn add(&mut self, other: &UnitCauses) {
        self.pass_through += other.pass_through;
        self.changed += other.changed;
        self.not_confirmed += other.not_confirmed;
        self.nothing_held += other.nothing_held;
        self.peer_deadline += other.peer_deadline;
        self.waited_in_vain += other.waited_in_vain;
        self.unclaimed += other.unclaimed;
    }
}

#[derive(Debug, Default)]
pub(crate) struct CauseCounters([AtomicU64; 7]);

impl CauseCounters {
    pub(crate) fn count(&self, cause: Cause) {
        let slot = match cause {
            Cause::PassThrough => 0,
            Cause::Changed => 1,
            Cause::NotConfirmed => 2,
            Cause::NoCopy(LookupEnd::NotHeld | LookupEnd::Found) => 3,
            Cause::NoCopy(LookupEnd::Deadline) => 4,
            Cause::NoCopy(LookupEnd::WaitedInVain) => 5,
            Cause::NoCopy(LookupEnd::NoPeers) | Cause::NoCopyUnclaimed => 6,
        };
        self.0[slot].fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> UnitCauses {
        let v = |i: usize| self.0[i].load(Relaxed);
        UnitCauses {
            pass_through: v(0),
            changed: v(1),
            not_confirmed: v(2),
            nothing_held: v(3),
            peer_deadline: v(4),
            waited_in_vain: v(5),
            unclaimed: v(6),
        }
    }
}
