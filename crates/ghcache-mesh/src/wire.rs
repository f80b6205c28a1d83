//! Plaintext encodings of mesh payloads (what goes inside envelopes), and the
//! length-prefixed framing of the fetch protocol.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ghcache_core::{ContentId, Partition, ResourceId};
use ghcache_store::EntryMeta;
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

/// Request-response protocol for fetches.
pub const FETCH_PROTOCOL: &str = "/ghcache/fetch/1.0.0";
/// Associated-data names of the two fetch directions.
pub const FETCH_REQUEST_AAD: &str = "/ghcache/fetch/1.0.0 request";
pub const FETCH_RESPONSE_AAD: &str = "/ghcache/fetch/1.0.0 response";
/// Kademlia protocol name: private, so we never join the public DHT.
pub const KAD_PROTOCOL: &str = "/ghcache/kad/1.0.0";

/// Gossipsub topic (and announcement AAD name) of a network.
pub fn announce_topic(network_id: &str) -> String {
    format!("ghcache/{network_id}/announce/1")
}

/// Why a peer's message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    Decrypt,
    CidMismatch,
    Oversized,
    Malformed,
    Replayed,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Decrypt => "decrypt",
            Reject::CidMismatch => "cid_mismatch",
            Reject::Oversized => "oversized",
            Reject::Malformed => "malformed",
            Reject::Replayed => "replayed",
        }
    }
}

impl From<crate::envelope::OpenError> for Reject {
    fn from(e: crate::envelope::OpenError) -> Self {
        match e {
            crate::envelope::OpenError::Malformed => Reject::Malformed,
            crate::envelope::OpenError::Decrypt => Reject::Decrypt,
        }
    }
}

// ---- fetch payloads -------------------------------------------------------

/// Fetch request plaintext: the preferred partition (0 or 32 bytes).
pub fn encode_request(partition: &Partition) -> Vec<u8> {
    partition.as_bytes().to_vec()
}

pub fn decode_request(plain: &[u8]) -> Result<Partition, Reject> {
    Partition::from_bytes(plain).map_err(|_| Reject::Malformed)
}

/// A requester's claim on a resource it is about to fetch upstream, and how
/// long it will wait for an earlier claimant's fetch (0: just say whether
/// there is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimAsk {
    pub claim: u64,
    pub wait_ms: u32,
}

/// Fetch request plaintext with a claim: `partition | claim (8, BE) |
/// wait ms (4, BE)`. Its length (12 or 44) tells it from a plain request;
/// a daemon that predates claims reads no partition in it and answers "not
/// found", which only costs the requester a unit.
pub fn encode_claimed_request(partition: &Partition, ask: ClaimAsk) -> Vec<u8> {
    let mut out = partition.as_bytes().to_vec();
    out.extend_from_slice(&ask.claim.to_be_bytes());
    out.extend_from_slice(&ask.wait_ms.to_be_bytes());
    out
}

/// A request's partition and, when it carries one, its claim.
pub fn decode_entry_request(plain: &[u8]) -> Result<(Partition, Option<ClaimAsk>), Reject> {
    if plain.len() < 12 || plain.len() == 32 {
        return decode_request(plain).map(|p| (p, None));
    }
    let (partition, tail) = plain.split_at(plain.len() - 12);
    let (claim, wait) = tail.split_at(8);
    let claim = u64::from_be_bytes(claim.try_into().map_err(|_| Reject::Malformed)?);
    let wait_ms = u32::from_be_bytes(wait.try_into().map_err(|_| Reject::Malformed)?);
    Ok((
        decode_request(partition)?,
        Some(ClaimAsk { claim, wait_ms }),
    ))
}

/// Response plaintext "not held, but fetched upstream here under this
/// earlier claim": `2 | claim (8, BE)`. Sent only to claimed requests.
pub fn encode_in_flight(claim: u64) -> Vec<u8> {
    let mut out = vec![2];
    out.extend_from_slice(&claim.to_be_bytes());
    out
}

/// The claim of an in-flight answer, if `plain` is one.
pub fn decode_in_flight(plain: &[u8]) -> Option<u64> {
    match plain.split_first() {
        Some((2, claim)) => claim.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// A found entry as carried in a fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub partition: Partition,
    pub meta: EntryMeta,
    pub body: Vec<u8>,
}

/// Fetch response plaintext: `0` (not found) or
/// `1 | partition len (1) | partition | meta len (4, BE) | meta JSON | body`.
pub fn encode_response(found: Option<(&Partition, &EntryMeta, &[u8])>) -> Vec<u8> {
    match found {
        None => vec![0],
        Some((p, meta, body)) => {
            let meta = serde_json::to_vec(meta).unwrap_or_default();
            let pb = p.as_bytes();
            let mut out = Vec::with_capacity(6 + pb.len() + meta.len() + body.len());
            out.push(1);
            out.push(pb.len() as u8);
            out.extend_from_slice(pb);
            out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
            out.extend_from_slice(&meta);
            out.extend_from_slice(body);
            out
        }
    }
}

pub fn decode_response(mut plain: Vec<u8>) -> Result<Option<Found>, Reject> {
    let bad = Reject::Malformed;
    match plain.first() {
        Some(0) if plain.len() == 1 => return Ok(None),
        Some(1) => {}
        _ => return Err(bad),
    }
    let plen = *plain.get(1).ok_or(bad)? as usize;
    let p_end = 2 + plen;
    let partition = Partition::from_bytes(plain.get(2..p_end).ok_or(bad)?).map_err(|_| bad)?;
    let len_bytes: [u8; 4] = plain
        .get(p_end..p_end + 4)
        .ok_or(bad)?
        .try_into()
        .map_err(|_| bad)?;
    let mlen = u32::from_be_bytes(len_bytes) as usize;
    let m_start = p_end + 4;
    let m_end = m_start.checked_add(mlen).ok_or(bad)?;
    let meta: EntryMeta =
        serde_json::from_slice(plain.get(m_start..m_end).ok_or(bad)?).map_err(|_| bad)?;
    let body = plain.split_off(m_end);
    Ok(Some(Found {
        partition,
        meta,
        body,
    }))
}

// ---- announcements -------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnounceKind {
    Version {
        resource: ResourceId,
        cid: ContentId,
        etag: Option<String>,
        size: u64,
    },
    Invalidate {
        paths: Vec<String>,
    },
}

/// Announcement plaintext (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub kind: AnnounceKind,
    /// Sender's clock (unix ms).
    pub time_ms: u64,
    /// Random id, for replay detection.
    pub id: [u8; 16],
}

impl Announcement {
    pub fn new(kind: AnnounceKind) -> Announcement {
        use rand::RngCore;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Announcement {
            kind,
            time_ms: now_ms(),
            id,
        }
    }

    /// The header (resource, cid) its envelope is bound to.
    pub fn header(&self) -> (Option<ResourceId>, Option<ContentId>) {
        match &self.kind {
            AnnounceKind::Version { resource, cid, .. } => (Some(*resource), Some(*cid)),
            AnnounceKind::Invalidate { .. } => (None, None),
        }
    }

    /// Seals this announcement for `topic`.
    pub fn seal(&self, key: &[u8; 32], topic: &str) -> Vec<u8> {
        let (r, c) = self.header();
        let plain = serde_json::to_vec(self).unwrap_or_default();
        crate::envelope::seal_message(key, topic, r.as_ref(), c.as_ref(), &plain)
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---- framing of the fetch protocol ----------------------------------------

/// One message of the fetch protocol as read off a stream. Reading never
/// fails on a peer's bad input: an oversized or truncated message is reported
/// as such so the event loop can count and penalise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Bytes(Vec<u8>),
    /// The length prefix announced this many bytes, over our limit.
    Oversized(u64),
    /// The stream ended before the announced length.
    Truncated,
}

impl Frame {
    /// The message, or why it is refused.
    pub fn into_bytes(self) -> Result<Vec<u8>, Reject> {
        match self {
            Frame::Bytes(b) => Ok(b),
            Frame::Oversized(_) => Err(Reject::Oversized),
            Frame::Truncated => Err(Reject::Malformed),
        }
    }
}

/// Length-prefixed (u32 BE) codec for `/ghcache/fetch/1.0.0`.
#[derive(Debug, Clone)]
pub struct FetchCodec {
    pub max_bytes: usize,
}

impl FetchCodec {
    async fn read_frame<T: AsyncRead + Unpin + Send>(&self, io: &mut T) -> io::Result<Frame> {
        let mut len = [0u8; 4];
        // A stream closed before its first byte is a peer that chose not to
        // answer (it could not read our request): an I/O failure, not a
        // malformed message to hold against it.
        if io.read(&mut len[..1]).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the stream without answering",
            ));
        }
        match io.read_exact(&mut len[1..]).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Frame::Truncated),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(len) as u64;
        if len > self.max_bytes as u64 {
            return Ok(Frame::Oversized(len));
        }
        let mut buf = Vec::with_capacity(len as usize);
        let read = io.take(len).read_to_end(&mut buf).await?;
        if (read as u64) < len {
            return Ok(Frame::Truncated);
        }
        Ok(Frame::Bytes(buf))
    }

    async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: Frame) -> io::Result<()> {
        let bytes = match frame {
            Frame::Bytes(b) => b,
            Frame::Oversized(_) | Frame::Truncated => Vec::new(),
        };
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&bytes).await?;
        io.close().await
    }
}

impl libp2p::request_response::Codec for FetchCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Frame;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_frame(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_frame(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Self::write_frame(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Self::write_frame(io, res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(body: &[u8]) -> EntryMeta {
        EntryMeta {
            headers: vec![("a".into(), "b".into())].into(),
            etag: Some("\"x\"".into()),
            stored_at_ms: 1,
            ttl_ms: 2,
            ..EntryMeta::for_body(body)
        }
    }

    #[test]
    fn claimed_requests_and_in_flight_answers_round_trip() {
        let keyed = Partition::from_bytes(&[7; 32]).expect("32 bytes");
        let ask = ClaimAsk {
            claim: 0x0123_4567_89ab_cdef,
            wait_ms: 5000,
        };
        for p in [Partition::Anonymous, keyed] {
            let enc = encode_claimed_request(&p, ask);
            assert_eq!(decode_entry_request(&enc), Ok((p, Some(ask))));
            // A daemon that predates claims reads no partition: "not found".
            assert!(decode_request(&enc).is_err());
            assert_eq!(decode_entry_request(&encode_request(&p)), Ok((p, None)));
        }
        assert!(decode_entry_request(&[1; 20]).is_err());
        assert_eq!(decode_in_flight(&encode_in_flight(42)), Some(42));
        assert_eq!(decode_in_flight(&[0]), None);
        assert_eq!(decode_in_flight(&[2, 1, 2]), None);
        // Never mistaken for an entry.
        assert!(decode_response(encode_in_flight(42)).is_err());
    }

    #[test]
    fn response_round_trip_and_garbage() {
        let m = meta(b"body");
        let enc = encode_response(Some((&Partition::Anonymous, &m, b"body")));
        let f = decode_response(enc.clone()).expect("ok").expect("found");
        assert_eq!(f.meta, m);
        assert_eq!(f.body, b"body");
        assert_eq!(decode_response(vec![0]), Ok(None));
        for cut in 0..enc.len() - 4 {
            assert!(decode_response(enc[..cut].to_vec()).is_err(), "cut {cut}");
        }
        assert!(decode_response(vec![2]).is_err());
        assert!(decode_response(vec![]).is_err());
    }

    #[tokio::test]
    async fn framing_limits() {
        use futures::io::Cursor;
        let codec = FetchCodec { max_bytes: 8 };
        let mut buf = Vec::new();
        FetchCodec::write_frame(&mut Cursor::new(&mut buf), Frame::Bytes(b"abc".to_vec()))
            .await
            .expect("write");
        let mut r = Cursor::new(buf.clone());
        assert_eq!(
            codec.read_frame(&mut r).await.ok(),
            Some(Frame::Bytes(b"abc".to_vec()))
        );
        let mut r = Cursor::new(buf[..5].to_vec());
        assert_eq!(codec.read_frame(&mut r).await.ok(), Some(Frame::Truncated));
        let mut r = Cursor::new(buf[..2].to_vec());
        assert_eq!(codec.read_frame(&mut r).await.ok(), Some(Frame::Truncated));
        let mut r = Cursor::new(Vec::new());
        assert_eq!(
            codec.read_frame(&mut r).await.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::UnexpectedEof)
        );
        let mut big = 100u32.to_be_bytes().to_vec();
        big.extend_from_slice(&[0; 100]);
        let mut r = Cursor::new(big);
        assert_eq!(
            codec.read_frame(&mut r).await.ok(),
            Some(Frame::Oversized(100))
        );
    }
}
