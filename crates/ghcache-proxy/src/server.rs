//! The accept loop: HTTP/1.1 with keep-alive, header limits and timeouts,
//! graceful shutdown; and a tiny client for the control API.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Proxy, ProxyError};

/// A proxy serving on a socket.
#[derive(Debug)]
pub struct RunningProxy {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningProxy {
    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Proxy {
    /// Binds the configured address and serves until shut down.
    pub async fn serve(self) -> Result<RunningProxy, ProxyError> {
        let addr = self.config().listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ProxyError::Bind { addr, source })?;
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let graceful = GracefulShutdown::new();
            let mut builder = http1::Builder::new();
            builder
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .max_buf_size(256 * 1024);
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = &mut stopped => break,
                };
                let _ = stream.set_nodelay(true);
                let proxy = self.clone();
                let service = service_fn(move |request| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, std::convert::Infallible>(proxy.handle(request).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "client connection ended with an error");
                    }
                });
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
        });
        tracing::info!(%addr, "proxy listening");
        Ok(RunningProxy {
            addr,
            stop: Some(stop),
            task,
        })
    }
}

/// GETs a control API path (`/_ghcache/stats`) from a running daemon.
pub async fn control_get(addr: SocketAddr, path: &str) -> Result<serde_json::Value, ProxyError> {
    let failed = |message: String| ProxyError::Control { addr, message };
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| failed("no answer within 5 s".into()))?
        .map_err(|e| failed(format!("{e} (is `ghcache daemon` running?)")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(failed(format!("answered {status}")));
    }
    serde_json::from_slice(&body).map_err(|e| failed(format!("not JSON: {e}")))
}
