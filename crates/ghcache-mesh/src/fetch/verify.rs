//! Checks of fetch answers: envelope, binding to what was asked, body
//! against its content id. A refused answer is a [`Reject`] verdict.

use bytes::Bytes;
use ghcache_core::{ContentId, ResourceId};
use ghcache_peer::PeerCopy;

use crate::envelope::open_message;
use crate::wire::{FETCH_RESPONSE_AAD, Frame, Reject, decode_in_flight, decode_response};

/// A verified answer to an entry request.
#[derive(Debug)]
pub(crate) enum EntryAnswer {
    Copy(Box<PeerCopy>),
    /// Not held: the peer fetches it upstream under this (earlier) claim.
    InFlight(u64),
}

/// Checks a fetch response: envelope, binding to the requested resource,
/// body against its CID.
pub(crate) fn verify_response(
    key: &[u8; 32],
    rid: &ResourceId,
    frame: Frame,
) -> Result<Option<PeerCopy>, Reject> {
    match verify_entry(key, rid, frame)? {
        Some(EntryAnswer::Copy(copy)) => Ok(Some(*copy)),
        Some(EntryAnswer::InFlight(_)) => Err(Reject::Malformed),
        None => Ok(None),
    }
}

/// As [`verify_response`], also accepting an in-flight answer.
pub(crate) fn verify_entry(
    key: &[u8; 32],
    rid: &ResourceId,
    frame: Frame,
) -> Result<Option<EntryAnswer>, Reject> {
    let opened = open_message(key, FETCH_RESPONSE_AAD, &frame.into_bytes()?)?;
    if opened.resource.as_ref() != Some(rid) {
        return Err(Reject::Malformed);
    }
    if let Some(claim) = decode_in_flight(&opened.plaintext) {
        if opened.cid.is_some() {
            return Err(Reject::Malformed);
        }
        return Ok(Some(EntryAnswer::InFlight(claim)));
    }
    match decode_response(opened.plaintext)? {
        None => {
            if opened.cid.is_some() {
                return Err(Reject::Malformed);
            }
            Ok(None)
        }
        Some(found) => {
            let cid = opened.cid.ok_or(Reject::Malformed)?;
            if found.meta.body_cid != cid || !cid.verify(&found.body) {
                return Err(Reject::CidMismatch);
            }
            if found.meta.body_len != found.body.len() as u64 {
                return Err(Reject::Malformed);
            }
            Ok(Some(EntryAnswer::Copy(Box::new(PeerCopy {
                partition: found.partition,
                meta: found.meta,
                body: found.body.into(),
            }))))
        }
    }
}

/// Checks a response to a fetch by content id: bound to that CID, body
/// matching it.
pub(crate) fn verify_blob_response(
    key: &[u8; 32],
    cid: &ContentId,
    frame: Frame,
) -> Result<Option<Bytes>, Reject> {
    let opened = open_message(key, FETCH_RESPONSE_AAD, &frame.into_bytes()?)?;
    if opened.resource.is_some() || opened.cid.as_ref() != Some(cid) {
        return Err(Reject::Malformed);
    }
    match opened.plaintext.split_first() {
        Some((0, [])) => Ok(None),
        Some((1, body)) if cid.verify(body) => Ok(Some(Bytes::copy_from_slice(body))),
        Some((1, _)) => Err(Reject::CidMismatch),
        _ => Err(Reject::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use ghcache_core::Partition;

    use super::*;
    use crate::envelope::seal_message;
    use crate::wire::encode_response;

    fn meta(body: &[u8]) -> ghcache_store::EntryMeta {
        ghcache_store::EntryMeta::for_body(body)
    }

    fn response(
        key: &[u8; 32],
        rid: &ResourceId,
        cid: &ContentId,
        m: &ghcache_store::EntryMeta,
        body: &[u8],
    ) -> Frame {
        let plain = encode_response(Some((&Partition::Anonymous, m, body)));
        Frame::Bytes(seal_message(
            key,
            FETCH_RESPONSE_AAD,
            Some(rid),
            Some(cid),
            &plain,
        ))
    }

    #[test]
    fn responses_are_verified() {
        let k = [3u8; 32];
        let rid = ResourceId::from_bytes([1; 32]);
        let body = b"body";
        let m = meta(body);
        let cid = ContentId::of(body);
        let ok = verify_response(&k, &rid, response(&k, &rid, &cid, &m, body));
        assert_eq!(
            ok.map(|c| c.map(|c| c.body)),
            Ok(Some(bytes::Bytes::from_static(b"body")))
        );
        // Body swapped for another (the CID in header and meta stay): refused.
        assert_eq!(
            verify_response(&k, &rid, response(&k, &rid, &cid, &m, b"evil")).err(),
            Some(Reject::CidMismatch)
        );
        // Consistent lie: header CID of a different body than the meta says.
        let other = ContentId::of(b"evil");
        assert_eq!(
            verify_response(&k, &rid, response(&k, &rid, &other, &m, b"evil")).err(),
            Some(Reject::CidMismatch)
        );
        // Answer for another resource.
        let rid2 = ResourceId::from_bytes([2; 32]);
        assert_eq!(
            verify_response(&k, &rid2, response(&k, &rid, &cid, &m, body)).err(),
            Some(Reject::Malformed)
        );
        assert_eq!(
            verify_response(&[4; 32], &rid, response(&k, &rid, &cid, &m, body)).err(),
            Some(Reject::Decrypt)
        );
        assert_eq!(
            verify_response(&k, &rid, Frame::Oversized(1 << 30)).err(),
            Some(Reject::Oversized)
        );
        assert_eq!(
            verify_response(&k, &rid, Frame::Truncated).err(),
            Some(Reject::Malformed)
        );
        let nf = Frame::Bytes(seal_message(
            &k,
            FETCH_RESPONSE_AAD,
            Some(&rid),
            None,
            &encode_response(None),
        ));
        assert!(matches!(verify_response(&k, &rid, nf), Ok(None)));
    }

    #[test]
    fn blob_responses_are_verified() {
        let k = [3u8; 32];
        let body = b"sarif or any body";
        let cid = ContentId::of(body);
        let answer = |cid: &ContentId, plain: &[u8]| {
            Frame::Bytes(seal_message(&k, FETCH_RESPONSE_AAD, None, Some(cid), plain))
        };
        let mut found = vec![1u8];
        found.extend_from_slice(body);
        assert_eq!(
            verify_blob_response(&k, &cid, answer(&cid, &found)),
            Ok(Some(Bytes::from_static(body)))
        );
        assert_eq!(verify_blob_response(&k, &cid, answer(&cid, &[0])), Ok(None));
        let mut evil = vec![1u8];
        evil.extend_from_slice(b"evil");
        assert_eq!(
            verify_blob_response(&k, &cid, answer(&cid, &evil)),
            Err(Reject::CidMismatch)
        );
        // An answer bound to another CID, or to a resource, is refused.
        let other = ContentId::of(b"evil");
        assert_eq!(
            verify_blob_response(&k, &cid, answer(&other, &evil)),
            Err(Reject::Malformed)
        );
        let rid = ResourceId::from_bytes([1; 32]);
        let bound = Frame::Bytes(seal_message(
            &k,
            FETCH_RESPONSE_AAD,
            Some(&rid),
            Some(&cid),
            &found,
        ));
        assert_eq!(
            verify_blob_response(&k, &cid, bound),
            Err(Reject::Malformed)
        );
        assert_eq!(
            verify_blob_response(&k, &cid, answer(&cid, &[0, 1])),
            Err(Reject::Malformed)
        );
        assert_eq!(
            verify_blob_response(&[9; 32], &cid, answer(&cid, &found)),
            Err(Reject::Decrypt)
        );
    }
}
