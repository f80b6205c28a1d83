//! The local channel's messages: one length-prefixed JSON request and one
//! response per connection. Values travel only inside `WireSecret`, which
//! never prints.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Claims, RecordInfo, Scope};

/// Bound on one frame (requests and responses): values are at most
/// [`MAX_VALUE_BYTES`]; a selection of many values still fits.
pub const MAX_FRAME_BYTES: u32 = 8 << 20;
/// Bound on one credential value (GitHub's own secrets stop at 48 KiB).
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// A value on the wire: serialised as a plain string, redacted in `Debug`.
#[derive(Clone)]
pub struct WireSecret(pub SecretString);

impl std::fmt::Debug for WireSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WireSecret(<redacted>)")
    }
}

impl Serialize for WireSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

impl<'de> Deserialize<'de> for WireSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| WireSecret(SecretString::from(s)))
    }
}

/// One request and who makes it (claims as the caller states them).
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub claims: Claims,
    pub request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    List,
    Get {
        name: String,
        scope: Scope,
    },
    Set {
        name: String,
        scope: Scope,
        value: WireSecret,
        ttl_secs: Option<u64>,
        description: Option<String>,
    },
    Rotate {
        name: String,
        scope: Scope,
        value: WireSecret,
        ttl_secs: Option<u64>,
        grace_secs: u64,
    },
    Remove {
        name: String,
        scope: Scope,
    },
    /// What a job gets: `names` required (all matching when `None`).
    Select {
        names: Option<Vec<String>>,
    },
    /// The last `last` audit lines.
    Audit {
        last: usize,
    },
    AuditVerify,
}

impl Request {
    /// The action's name, as the audit log records it.
    pub fn action(&self) -> &'static str {
        match self {
            Request::List => "list",
            Request::Get { .. } => "get",
            Request::Set { .. } => "set",
            Request::Rotate { .. } => "rotate",
            Request::Remove { .. } => "rm",
            Request::Select { .. } => "inject",
            Request::Audit { .. } => "audit",
            Request::AuditVerify => "audit-verify",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    Records {
        records: Vec<RecordInfo>,
        problems: Vec<String>,
    },
    Record {
        record: RecordInfo,
    },
    Value {
        record: RecordInfo,
        value: WireSecret,
    },
    Removed {
        versions: usize,
    },
    Selection {
        chosen: Vec<(RecordInfo, WireSecret)>,
        expired: Vec<RecordInfo>,
        missing: Vec<String>,
        problems: Vec<String>,
    },
    AuditLines {
        lines: Vec<String>,
    },
    Verified {
        lines: u64,
    },
    /// A refusal; `usage` is true when the caller asked for something
    /// invalid (exit 2) rather than something failing (exit 1).
    Error {
        message: String,
        usage: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("frame of {0} bytes is over the {MAX_FRAME_BYTES}-byte bound")]
    TooLarge(u32),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub async fn write_frame<W, T>(out: &mut W, message: &T) -> Result<(), FrameError>
where
    W: tokio::io::AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec(message).map_err(malformed)?);
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&n| n <= MAX_FRAME_BYTES)
        .ok_or(FrameError::TooLarge(u32::MAX))?;
    out.write_all(&len.to_be_bytes()).await?;
    out.write_all(&bytes).await?;
    out.flush().await?;
    Ok(())
}

pub async fn read_frame<R, T>(input: &mut R) -> Result<T, FrameError>
where
    R: tokio::io::AsyncRead + Unpin,
    T: serde::de::DeserializeOwned,
{
    let mut len = [0u8; 4];
    match input.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; len as usize]);
    input.read_exact(&mut bytes).await?;
    serde_json::from_slice(&bytes).map_err(malformed)
}

/// Where and what kind, never the text: serde_json quotes offending input,
/// which could be a value.
fn malformed(e: serde_json::Error) -> FrameError {
    FrameError::Malformed(format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    ))
}
