//! The daemons of one run: a store, a proxy and (in the meshed modes) a
//! mesh per runner host, wired as `ghcache daemon` wires them, all in this
//! process on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ghcache_core::PartitionSecret;
use ghcache_mesh::{Mesh, MeshConfig};
use ghcache_proxy::{PeerTrust, Proxy, ProxyConfig, RunningProxy, StatsReport, UnitCauses};
use ghcache_store::{Store, StoreConfig};

use crate::FleetError;
use crate::config::Mode;

/// The demo fleet's own secret: it never leaves this process.
const CLUSTER_SECRET: &[u8] = b"ghcache fleet demo cluster secret";
/// How long the mesh may take to confirm every member.
const MESH_READY: Duration = Duration::from_secs(30);

pub(crate) struct Node {
    proxy: RunningProxy,
    /// The same proxy, for its unit causes (not in `/_ghcache/stats`).
    handle: Proxy,
    mesh: Option<Mesh>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

pub(crate) struct Fleet {
    nodes: Vec<Node>,
    _state: tempfile::TempDir,
}

impl Fleet {
    /// Starts `runners` daemons for `mode` in front of `upstream`.
    pub(crate) async fn start(
        mode: Mode,
        runners: usize,
        upstream: &str,
        peer_deadline: Duration,
    ) -> Result<Fleet, FleetError> {
        let state = tempfile::tempdir().map_err(|e| FleetError::io("a state directory", e))?;
        // Started together: each mesh spends a while deriving its keys.
        let mut starting = tokio::task::JoinSet::new();
        for index in 0..runners {
            let dir = state.path().join(format!("runner-{index}"));
            let upstream = upstream.to_owned();
            starting.spawn(async move {
                let node = Node::start(mode, &dir, &upstream, peer_deadline).await;
                (index, node)
            });
        }
        let mut started = Vec::with_capacity(runners);
        while let Some(joined) = starting.join_next().await {
            let (index, node) =
                joined.map_err(|e| FleetError::Daemon(format!("starting a daemon: {e}")))?;
            started.push((index, node?));
        }
        started.sort_by_key(|(index, _)| *index);
        let nodes = started.into_iter().map(|(_, node)| node).collect();
        let fleet = Fleet {
            nodes,
            _state: state,
        };
        if mode.meshed() {
            fleet.mesh_together().await?;
        }
        Ok(fleet)
    }

    pub(crate) fn base_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.proxy.base_url()).collect()
    }

    /// Each daemon dials the ones started before it; returns once every
    /// daemon counts every other as a confirmed member.
    async fn mesh_together(&self) -> Result<(), FleetError> {
        let meshes: Vec<&Mesh> = self.nodes.iter().filter_map(|n| n.mesh.as_ref()).collect();
        let mut addrs = Vec::new();
        for mesh in &meshes {
            let addr = mesh
                .listen_addrs()
                .await
                .into_iter()
                .next()
                .ok_or_else(|| {
                    FleetError::Mesh("a daemon of the fleet has no listen address".into())
                })?;
            addrs.push(addr);
        }
        for (i, mesh) in meshes.iter().enumerate() {
            for addr in &addrs[..i] {
                mesh.connect(addr.clone())
                    .await
                    .map_err(|e| FleetError::Mesh(format!("dialling a fleet member: {e}")))?;
            }
        }
        let others = meshes.len().saturating_sub(1);
        let deadline = Instant::now() + MESH_READY;
        loop {
            let mut ready = true;
            for mesh in &meshes {
                let stats = mesh.stats().await;
                let members = stats
                    .connected_peers
                    .iter()
                    .filter(|p| p.member == Some(true))
                    .count();
                ready &= members >= others;
            }
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(FleetError::Mesh(format!(
                    "the {} daemons did not all confirm each other within {}s",
                    meshes.len(),
                    MESH_READY.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Each daemon's `/_ghcache/stats`, read over HTTP as `ghcache stats` does.
    pub(crate) async fn stats(&self) -> Result<Vec<StatsReport>, FleetError> {
        let mut all = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let report = ghcache_proxy::control_get_as(node.proxy.addr(), "/_ghcache/stats")
                .await
                .map_err(|e| FleetError::Daemon(e.to_string()))?;
            all.push(report);
        }
        Ok(all)
    }

    /// Units the fleet's daemons spent, by cause.
    pub(crate) fn unit_causes(&self) -> UnitCauses {
        let mut all = UnitCauses::default();
        for node in &self.nodes {
            all.add(&node.handle.unit_causes());
        }
        all
    }

    /// Copies that peers handed to the fleet's daemons.
    pub(crate) async fn peer_hits(&self) -> u64 {
        let mut hits = 0;
        for mesh in self.nodes.iter().filter_map(|n| n.mesh.as_ref()) {
            hits += mesh.stats().await.peer_hits;
        }
        hits
    }

    pub(crate) async fn shutdown(self) {
        for node in self.nodes {
            node.proxy.shutdown().await;
            if let Some(forwarder) = node.forwarder {
                forwarder.abort();
            }
            if let Some(mesh) = node.mesh {
                mesh.shutdown().await;
            }
        }
    }
}

impl Node {
    async fn start(
        mode: Mode,
        dir: &std::path::Path,
        upstream: &str,
        peer_deadline: Duration,
    ) -> Result<Node, FleetError> {
        std::fs::create_dir_all(dir).map_err(|e| FleetError::io("a runner's state", e))?;
        let store = Arc::new(
            Store::open(&dir.join("cache"), StoreConfig::default())
                .map_err(|e| FleetError::Daemon(format!("cannot open a store: {e}")))?,
        );
        let mut config = ProxyConfig::new(([127, 0, 0, 1], 0).into(), upstream);
        config.peer_deadline = peer_deadline;
        config.cross_partition = matches!(mode, Mode::MeshSynthesis | Mode::FleetTrust);
        if mode == Mode::FleetTrust {
            config.fleet_trust = true;
            config.peer_trust = PeerTrust::Members;
        }
        let (secret, mesh) = if mode.meshed() {
            let mut mesh_config = MeshConfig::new(
                "ghcache-fleet",
                CLUSTER_SECRET.to_vec(),
                dir.join("identity.key"),
            );
            mesh_config.listen_ip = std::net::Ipv4Addr::LOCALHOST.into();
            mesh_config.listen_port = 0;
            mesh_config.mdns = false;
            mesh_config.fetch_deadline = peer_deadline;
            let mesh = Mesh::start(mesh_config, store.clone())
                .await
                .map_err(|e| FleetError::Mesh(e.to_string()))?;
            let secret = PartitionSecret::from_key(*mesh.cluster_keys().partition_key());
            (secret, Some(mesh))
        } else {
            let secret = PartitionSecret::load_or_create(&dir.join("partition.key"))
                .map_err(|e| FleetError::Daemon(format!("cannot create a partition key: {e}")))?;
            (secret, None)
        };
        let mut proxy =
            Proxy::new(config, store, secret).map_err(|e| FleetError::Daemon(e.to_string()))?;
        let mut forwarder = None;
        if let Some(mesh) = &mesh {
            proxy = proxy
                .with_peers(Arc::new(mesh.clone()))
                .map_err(|e| FleetError::Daemon(e.to_string()))?;
            forwarder = Some(proxy.follow_invalidations(mesh.invalidations()));
        }
        let handle = proxy.clone();
        let proxy = proxy
            .serve()
            .await
            .map_err(|e| FleetError::Daemon(e.to_string()))?;
        Ok(Node {
            proxy,
            handle,
            mesh,
            forwarder,
        })
    }
}
