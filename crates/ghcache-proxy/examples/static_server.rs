//! The benchmark ceiling: a minimal hyper server returning one fixed
//! response, with no caching logic at all.
//!
//! `static_server ADDR BODY_FILE [HEAD_FILE]`
//!
//! With `HEAD_FILE` (a response head as `curl -D` writes it: status line,
//! then `name: value` lines) it answers that status and those headers, so
//! it sends the same bytes as the server whose head was captured; without
//! it, the body with only a `Content-Type`.
//!
//! `SPIN_NS=N` makes it busy for N ns per request before answering: a
//! calibration of what each microsecond of work per request costs in
//! throughput on the machine at hand.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The status and headers of a captured head; hyper writes the framing
/// headers itself.
fn read_head(text: &str) -> Result<(StatusCode, HeaderMap), Error> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().ok_or("empty head file")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .ok_or("no status in the head file's first line")?
        .parse::<StatusCode>()?;
    let mut headers = HeaderMap::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("a header line without ':'")?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())?;
        if [
            header::CONTENT_LENGTH,
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::DATE,
        ]
        .contains(&name)
            || name == "keep-alive"
        {
            continue;
        }
        headers.append(name, HeaderValue::from_str(value.trim())?);
    }
    Ok((status, headers))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(file)) = (args.next(), args.next()) else {
        return Err("usage: static_server ADDR BODY_FILE [HEAD_FILE]".into());
    };
    let body = Bytes::from(std::fs::read(&file)?);
    let (status, headers) = match args.next() {
        Some(head) => read_head(&std::fs::read_to_string(head)?)?,
        None => {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            (StatusCode::OK, headers)
        }
    };
    let spin = std::time::Duration::from_nanos(
        std::env::var("SPIN_NS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let headers = headers.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request| {
                // Not even a clock read unless asked: it is the ceiling.
                if !spin.is_zero() {
                    let started = std::time::Instant::now();
                    while started.elapsed() < spin {
                        std::hint::spin_loop();
                    }
                }
                let mut response = Response::new(Full::new(body.clone()));
                *response.status_mut() = status;
                *response.headers_mut() = headers.clone();
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
