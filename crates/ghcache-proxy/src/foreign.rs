//! Step 4: copies of a resource other than our own fresh one — another
//! partition's here, or a peer's — and, for a copy the fleet marked
//! stale, the newer version. Served as is only when trusted; otherwise the
//! body step 5 asks GitHub to confirm with the requester's synthesised
//! ETag (a free `304`).

use std::ops::ControlFlow;
use std::time::Duration;

use ghcache_core::{ContentId, Partition};
use ghcache_store::Hit;

use crate::Proxy;
use crate::freshness::secondary_key_matches;
use crate::peer::{PeerCopy, PeerTrust};
use crate::pipeline::{Ctx, Lookup};
use crate::respond::Served;
use crate::stats::Outcome;
use ghcache_peer::LookupEnd;

/// A copy held for another partition (or a newer version), here or by a
/// peer.
pub(crate) struct Foreign {
    pub partition: Partition,
    pub hit: Hit,
    pub from_peer: bool,
}

impl Foreign {
    fn from_peer(copy: PeerCopy) -> Foreign {
        Foreign {
            partition: copy.partition,
            hit: Hit {
                meta: copy.meta,
                body: copy.body,
            },
            from_peer: true,
        }
    }
}

impl Proxy {
    /// Step 4.
    pub(crate) async fn foreign_copy(&self, mut lookup: Lookup) -> ControlFlow<Served, Lookup> {
        if let Some(own) = &lookup.own {
            // Our copy is an old version (the fleet or another partition
            // saw a new one): the new body, held here or by a peer, is what
            // to ask GitHub to confirm.
            if own.meta.stale {
                lookup.foreign = self
                    .newer_than(&lookup.ctx, own)
                    .await
                    .filter(|copy| self.may_use(&lookup.ctx, copy));
            }
            return ControlFlow::Continue(lookup);
        }
        let i = &self.inner;
        let mut local = self.local_copy(&lookup.ctx);
        if local.is_none() && i.config.cross_partition {
            // Another partition fetching it here, or a member under an
            // earlier claim, gives us a body to confirm for free.
            let (claim, copy) = self.await_flight(&lookup.ctx).await;
            lookup.claim = claim;
            local = copy;
        }
        let ctx = &lookup.ctx;
        let claim = lookup.claim.as_ref().map(ghcache_peer::Claim::value);
        // Another partition's body confirms only where GitHub gives every
        // token the same bytes: unless fleet trust serves it as is, a
        // member holding our own partition's copy is worth asking.
        let usable_as_is = local.as_ref().is_some_and(|l| {
            l.partition == ctx.partition || self.fleet_may_serve(ctx, &l.partition)
        });
        let foreign = if usable_as_is {
            local
        } else {
            let (copy, end) = self.peer_copy(ctx, None, claim).await;
            lookup.looked = end;
            match copy {
                Some(copy) if copy.partition == ctx.partition || local.is_none() => {
                    Some(Foreign::from_peer(copy))
                }
                _ => local,
            }
        };
        let foreign = foreign.filter(|copy| self.may_use(ctx, copy));
        if let Some(copy) = &foreign {
            // A peer's label is not proof: by default its copy is served
            // only after GitHub answers our synthesised ETag with a 304.
            let vouched = !copy.from_peer || i.config.peer_trust == PeerTrust::Members;
            let trusted = vouched
                && (copy.partition == ctx.partition || self.fleet_may_serve(ctx, &copy.partition));
            if trusted
                && !ctx.client_cc.no_cache
                && self.is_fresh(ctx, &copy.hit.meta)
                && secondary_key_matches(&copy.hit.meta.vary, &ctx.headers, ctx.present)
            {
                self.count_saved(ctx);
                self.keep(ctx, copy.hit.meta.clone(), copy.hit.body.clone());
                return ControlFlow::Break(self.serve_hit(ctx, &copy.hit, Outcome::Hit, None));
            }
        }
        lookup.foreign = foreign;
        ControlFlow::Continue(lookup)
    }

    /// Another partition's copy is used only with `cross_partition` on
    /// (the benchmark's per-host and mesh-only modes turn it off).
    fn may_use(&self, ctx: &Ctx, copy: &Foreign) -> bool {
        self.inner.config.cross_partition || copy.partition == ctx.partition
    }

    /// A newer version than `own`: a member's copy for our partition, else
    /// another partition's here, else a member's for another partition.
    async fn newer_than(&self, ctx: &Ctx, own: &Hit) -> Option<Foreign> {
        let (peer, _) = self.peer_copy(ctx, Some(&own.meta.body_cid), None).await;
        if let Some(copy) = peer.as_ref()
            && copy.partition == ctx.partition
        {
            return peer.map(Foreign::from_peer);
        }
        if let Some((partition, hit)) = self.inner.store.get_any(&ctx.resource)
            && hit.meta.body_cid != own.meta.body_cid
        {
            return Some(Foreign {
                partition,
                hit,
                from_peer: false,
            });
        }
        peer.map(Foreign::from_peer)
    }

    /// Any partition's copy held here.
    pub(crate) fn local_copy(&self, ctx: &Ctx) -> Option<Foreign> {
        self.inner
            .store
            .get_any(&ctx.resource)
            .map(|(partition, hit)| Foreign {
                partition,
                hit,
                from_peer: false,
            })
    }

    /// A member's copy (its body checked against its CID by the mesh),
    /// within the peer deadline; with `not`, only one of another body.
    /// With our `claim`, a member fetching it under an earlier claim is
    /// waited for, at most `in_flight_wait` more.
    async fn peer_copy(
        &self,
        ctx: &Ctx,
        not: Option<&ContentId>,
        claim: Option<u64>,
    ) -> (Option<PeerCopy>, Option<LookupEnd>) {
        let i = &self.inner;
        let deadline = i.peers.deadline(i.config.peer_deadline);
        let wait = i.config.in_flight_wait;
        let limit = deadline + claim.map_or(Duration::ZERO, |_| wait);
        let lookup = async {
            match (not, claim) {
                (None, Some(claim)) => {
                    let claimed = i
                        .peers
                        .lookup_claimed(&ctx.resource, &ctx.partition, claim, deadline, wait)
                        .await;
                    (claimed.copy, Some(claimed.end))
                }
                (None, None) => {
                    let copy = i
                        .peers
                        .lookup(&ctx.resource, &ctx.partition, deadline)
                        .await;
                    (copy, None)
                }
                (Some(held), _) => {
                    let copy = i
                        .peers
                        .newer_version(&ctx.resource, &ctx.partition, held, deadline)
                        .await;
                    (copy, None)
                }
            }
        };
        match tokio::time::timeout(limit, lookup).await {
            Ok(found) => found,
            Err(_) => (None, claim.map(|_| LookupEnd::Deadline)),
        }
    }
}
