//! Wiring of the CodeQL cache into the daemon: its service answers the
//! proxy's `/_ghcache/codeql/*` control seam and finds analyses through the
//! mesh. Adapters only; behaviour lives in `ghcache-codeql`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ghcache_codeql::{CodeqlService, Fleet, FleetFuture, api};
use ghcache_core::{ContentId, Partition, ResourceId};
use ghcache_mesh::Mesh;
use ghcache_proxy::{ControlExtension, ControlFuture, ControlReply, ControlRequest, MetricCounter};

/// How long a lookup waits for members: a scan takes minutes, so a second
/// to find one is well spent.
pub const FLEET_LOOKUP_DEADLINE: Duration = Duration::from_secs(1);

/// The mesh as the CodeQL service's fleet.
pub struct MeshFleet(pub Mesh);

impl Fleet for MeshFleet {
    fn fetch_entry(
        &self,
        resource: ResourceId,
        deadline: Duration,
    ) -> FleetFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            self.0
                .fetch(&resource, &Partition::Anonymous, deadline)
                .await
                .map(|copy| copy.body)
        })
    }

    fn fetch_blob(&self, cid: ContentId, deadline: Duration) -> FleetFuture<'_, Option<Bytes>> {
        Box::pin(async move { self.0.fetch_blob(&cid, deadline).await })
    }

    fn hold(&self, resource: &ResourceId) {
        self.0.hold(resource);
    }
}

/// The service behind the proxy's control seam.
pub struct CodeqlRoutes(pub Arc<CodeqlService>);

impl ControlExtension for CodeqlRoutes {
    fn prefix(&self) -> &'static str {
        api::PREFIX
    }

    fn max_body(&self) -> usize {
        api::MAX_REQUEST_BYTES
    }

    fn handle(&self, request: ControlRequest) -> ControlFuture<'_> {
        Box::pin(async move {
            let reply = self
                .0
                .route(request.method.as_str(), &request.route, &request.body)
                .await;
            ControlReply {
                status: http_status(reply.status),
                content_type: reply.content_type,
                body: reply.body,
            }
        })
    }

    fn stats(&self) -> (&'static str, serde_json::Value) {
        (
            "codeql",
            serde_json::to_value(self.0.stats()).unwrap_or_default(),
        )
    }

    fn counters(&self) -> Vec<MetricCounter> {
        self.0
            .stats()
            .counters()
            .into_iter()
            .map(|(name, help, samples)| MetricCounter {
                name,
                help,
                samples,
            })
            .collect()
    }
}

fn http_status(code: u16) -> http::StatusCode {
    http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}
