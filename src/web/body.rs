//! Request bodies must keep coming: a client that sends a body slowly (or
//! stops half-way) holds a connection and a worker's attention, and a few
//! hundred of them would exhaust the server's connections. Every body is
//! read through a stream that fails when no data arrives for
//! [`IDLE`] or the whole body takes longer than [`TOTAL`].

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use futures_util::{Stream, StreamExt};

/// Longest pause between two pieces of a body.
pub const IDLE: Duration = Duration::from_secs(30);
/// Longest a whole body may take (a 100 MiB upload at under 120 KB/s fails).
pub const TOTAL: Duration = Duration::from_secs(15 * 60);

pub async fn deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let payload = req.take_payload();
    req.set_payload(Payload::Stream {
        payload: Box::pin(paced(payload, IDLE, TOTAL)),
    });
    next.call(req).await
}

/// `body`, failing with a timeout when a piece takes longer than `idle` or
/// the whole longer than `total`; nothing more is read after that.
pub fn paced(
    body: impl Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
    idle: Duration,
    total: Duration,
) -> impl Stream<Item = Result<Bytes, PayloadError>> {
    let end = tokio::time::Instant::now() + total;
    futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        let wait = idle.min(end.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, body.next()).await {
            Ok(Some(piece)) => Some((piece, Some(body))),
            Ok(None) => None,
            Err(_) => Some((
                Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body stopped arriving",
                ))),
                None,
            )),
        }
    })
    // Readers may poll again after the end; a fused stream answers None.
    .fuse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_stalled_body_fails_and_a_steady_one_arrives_whole() {
        let idle = Duration::from_millis(50);
        // Two pieces, then silence.
        let stalled = futures_util::stream::iter([Ok(Bytes::from_static(b"{\"a\":"))])
            .chain(futures_util::stream::pending());
        let got: Vec<_> = paced(Box::pin(stalled), idle, TOTAL).collect().await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(got[1], Err(PayloadError::Io(_))), "{got:?}");
        // A body that keeps coming, each piece well within the idle limit.
        let steady = futures_util::stream::iter(0..5).then(|i| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, PayloadError>(Bytes::from(vec![b'x'; i + 1]))
        });
        let got: Vec<_> = paced(Box::pin(steady), idle, TOTAL).collect().await;
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(Result::is_ok));
        // The total applies however steady the pieces are.
        let endless = futures_util::stream::repeat_with(|| Ok(Bytes::from_static(b"x"))).then(
            |b| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                b
            },
        );
        let got: Vec<_> = paced(Box::pin(endless), idle, Duration::from_millis(60))
            .collect()
            .await;
        assert!(matches!(got.last(), Some(Err(PayloadError::Io(_)))));
        assert!(got.len() < 40, "{}", got.len());
    }
}
