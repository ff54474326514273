//! The blob service over real gRPC against the in-process coordinator: uploads resume
//! where they stopped, bytes that do not match their hash are refused, downloads come
//! back whole, and nothing is served without a credential.

use sha2::{Digest, Sha256};
use sweep_proto as pb;
use sweep_testkit::app::with_token;

fn chunk(sha: &str, size: u64, offset: u64, data: &[u8]) -> pb::BlobChunk {
    pb::BlobChunk { sha256: sha.into(), size, offset, data: data.to_vec() }
}

#[tokio::test]
async fn uploads_resume_mismatches_are_refused_and_downloads_are_whole() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().to_str().unwrap().to_string();
    let Some(app) = sweep_testkit::app::spawn_with(|s| s.blob_store = Some(dir)).await else { return };
    let mut c = pb::blob_service_client::BlobServiceClient::new(app.channel.clone());
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&data));
    let size = data.len() as u64;

    // Nothing without a credential.
    let refused = c.stat_blob(pb::StatBlobRequest { sha256: sha.clone(), size }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // The first million bytes, then the stream ends: held, not stored.
    let first = vec![chunk(&sha, size, 0, &data[..1_000_000])];
    let cut = c.put_blob(with_token(&app.admin, futures::stream::iter(first))).await.unwrap_err();
    assert!(cut.message().contains("resume at 1000000"), "{}", cut.message());
    let stat = c.stat_blob(with_token(&app.admin, pb::StatBlobRequest { sha256: sha.clone(), size })).await.unwrap();
    assert_eq!((stat.get_ref().stored, stat.get_ref().received), (false, 1_000_000));

    // A chunk at the wrong offset is refused; resuming at the right one stores it.
    let wrong = vec![chunk(&sha, size, 0, &data[..10])];
    let e = c.put_blob(with_token(&app.admin, futures::stream::iter(wrong))).await.unwrap_err();
    assert!(e.message().contains("resume at 1000000"), "{}", e.message());
    let rest: Vec<_> = data[1_000_000..]
        .chunks(512 << 10)
        .scan(1_000_000u64, |off, piece| {
            let c = chunk(&sha, size, *off, piece);
            *off += piece.len() as u64;
            Some(c)
        })
        .collect();
    c.put_blob(with_token(&app.admin, futures::stream::iter(rest))).await.unwrap();
    let stat = c.stat_blob(with_token(&app.admin, pb::StatBlobRequest { sha256: sha.clone(), size })).await.unwrap();
    assert!(stat.get_ref().stored);

    // Down again, whole and equal, and from an offset.
    let mut s = c
        .get_blob(with_token(&app.admin, pb::GetBlobRequest { sha256: sha.clone(), offset: 0 }))
        .await
        .unwrap()
        .into_inner();
    let mut back = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        assert_eq!(m.offset as usize, back.len());
        back.extend_from_slice(&m.data);
    }
    assert!(back == data, "the download equals the upload");
    let mut s = c
        .get_blob(with_token(&app.admin, pb::GetBlobRequest { sha256: sha.clone(), offset: 2_999_990 }))
        .await
        .unwrap()
        .into_inner();
    let tail = s.message().await.unwrap().unwrap();
    assert_eq!((tail.offset, tail.data.as_slice()), (2_999_990, &data[2_999_990..]));

    // Bytes that are not what their name says: refused, nothing stored under that name.
    let fake = hex::encode(Sha256::digest(b"something else"));
    let lie = vec![chunk(&fake, 5, 0, b"hello")];
    let e = c.put_blob(with_token(&app.admin, futures::stream::iter(lie))).await.unwrap_err();
    assert!(e.message().contains("hash to"), "{}", e.message());
    let stat = c.stat_blob(with_token(&app.admin, pb::StatBlobRequest { sha256: fake, size: 5 })).await.unwrap();
    assert_eq!((stat.get_ref().stored, stat.get_ref().received), (false, 0));

    // A name that is not a hash, a blob that is not there.
    let e = c
        .stat_blob(with_token(&app.admin, pb::StatBlobRequest { sha256: "../etc/passwd".into(), size: 1 }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let missing = hex::encode(Sha256::digest(b"never uploaded"));
    let e = c.get_blob(with_token(&app.admin, pb::GetBlobRequest { sha256: missing, offset: 0 })).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}
