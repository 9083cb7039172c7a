//! CSV sources for the loader: any `std::io::Read` ([`load_csv`]: a file) or a stream of byte
//! chunks ([`load_csv_chunks`]: an HTTP upload).
//!
//! ```text
//! chunks ──(≤ 4 in flight)──▶ ChunkReader ─▶ CsvRows on a blocking thread ─(≤ 4 batches of 1,024 rows)─▶ load
//! ```
//!
//! Both channels are bounded, so a slow database slows the reading down instead of filling
//! memory: at most a few chunks and a few thousand parsed rows are held whatever the input size.

use std::fmt::Display;
use std::io::{self, Read};
use std::pin::pin;

use futures_util::{stream, Stream, StreamExt};
use tokio::sync::mpsc;
use uuid::Uuid;
use zixly_domain::ingest::{CsvRows, IngestContext};

use super::{load, Input, LoadOptions, LoadReport, Loadable, RejectSink};
use crate::error::DbResult;
use crate::AppDb;

/// What [`load_csv`] reports to a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadProgress {
    /// Bytes of the input read so far.
    Read(u64),
    /// The input is read to its end (`bytes`, `rows` data rows); the database work follows.
    Done { bytes: u64, rows: u64 },
}

/// Rows per message from the parsing thread to the loader.
const BATCH: usize = 1024;
/// Messages in flight on each channel.
const IN_FLIGHT: usize = 4;

/// Parses `input` on a blocking thread and streams the rows into [`load`] through a bounded
/// channel (at most 4 batches of 1,024 rows in flight). A header error or a read error of `input`
/// aborts the load (a `failed` sync run records it, [`LoadReport::aborted`] says why).
/// `progress`, when given, is called with the bytes read so far after each batch, then once with
/// [`ReadProgress::Done`] when the whole input is read: what follows (the end of the COPY, the
/// checks, the upsert) is database work that takes seconds on a large file.
pub async fn load_csv<T: Loadable, R: Read + Send + 'static>(
    app: &AppDb,
    tenant: Uuid,
    options: &LoadOptions,
    ctx: IngestContext,
    input: R,
    progress: Option<Box<dyn Fn(ReadProgress) + Send>>,
    rejects: Option<&mut dyn RejectSink>,
) -> DbResult<LoadReport> {
    let (tx, rx) = mpsc::channel::<Vec<Input<T>>>(IN_FLIGHT);
    let producer = std::thread::spawn(move || {
        let mut rows = match CsvRows::<_, T>::new(input, ctx) {
            Ok(rows) => rows,
            Err(header_errors) => {
                let reasons: Vec<String> = header_errors.iter().map(ToString::to_string).collect();
                let _ = tx.blocking_send(vec![Input::Abort(format!(
                    "header: {}",
                    reasons.join("; ")
                ))]);
                return;
            }
        };
        let mut batch = Vec::with_capacity(BATCH);
        let mut rows_seen = 0u64;
        while let Some(item) = rows.next() {
            rows_seen += 1;
            batch.push(Input::from(item));
            if let Some(failure) = rows.read_failure() {
                batch.push(Input::Abort(failure.to_string()));
                break;
            }
            if batch.len() == BATCH {
                if let Some(p) = &progress {
                    p(ReadProgress::Read(rows.bytes_read()));
                }
                if tx
                    .blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                    .is_err()
                {
                    return; // the loader stopped
                }
            }
        }
        let done = rows.read_failure().is_none();
        if !batch.is_empty() && tx.blocking_send(batch).is_err() {
            return;
        }
        if let (Some(p), true) = (&progress, done) {
            p(ReadProgress::Done {
                bytes: rows.bytes_read(),
                rows: rows_seen,
            });
        }
    });
    let rows = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|batch| (stream::iter(batch), rx))
    })
    .flatten();
    let report = load::<T, _, _>(app, tenant, options, rows, rejects).await;
    // The receiver is gone now: a producer still sending stops at its next batch.
    let _ = tokio::task::spawn_blocking(move || producer.join()).await;
    report
}

/// [`load_csv`] from a stream of byte chunks (e.g. the file part of a multipart upload), at most
/// 4 chunks buffered. An `Err` item ends the input there: the load is aborted (nothing written)
/// and the error is handed back next to the report, so that the caller can tell a source failure
/// (a body over its size limit, a dropped connection) from invalid rows.
///
/// When the load stops early (a header error), the rest of the stream is not read.
pub async fn load_csv_chunks<T, S, B, E>(
    app: &AppDb,
    tenant: Uuid,
    options: &LoadOptions,
    ctx: IngestContext,
    chunks: S,
    rejects: Option<&mut dyn RejectSink>,
) -> DbResult<(LoadReport, Option<E>)>
where
    T: Loadable,
    S: Stream<Item = Result<B, E>> + Send,
    B: AsRef<[u8]> + Send + 'static,
    E: Display + Send,
{
    let (tx, rx) = mpsc::channel::<Result<B, String>>(IN_FLIGHT);
    let reader = ChunkReader {
        rx,
        current: None,
        pos: 0,
    };
    let forward = async move {
        let mut chunks = pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(bytes) => {
                    if tx.send(Ok(bytes)).await.is_err() {
                        return None; // the parser stopped reading
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    return Some(e);
                }
            }
        }
        None
    };
    let loading = load_csv::<T, _>(app, tenant, options, ctx, reader, None, rejects);
    let (source_error, report) = tokio::join!(forward, loading);
    Ok((report?, source_error))
}

/// `Read` over chunks arriving on a channel (for the blocking parser thread). The end of the
/// channel is the end of the input; an `Err` chunk is a read error.
struct ChunkReader<B> {
    rx: mpsc::Receiver<Result<B, String>>,
    current: Option<B>,
    pos: usize,
}

impl<B: AsRef<[u8]>> Read for ChunkReader<B> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(chunk) = &self.current {
                let rest = &chunk.as_ref()[self.pos..];
                if !rest.is_empty() {
                    let n = rest.len().min(out.len());
                    out[..n].copy_from_slice(&rest[..n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.current = Some(chunk);
                    self.pos = 0;
                }
                Some(Err(reason)) => return Err(io::Error::other(reason)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_reader_joins_chunks_and_reports_errors() {
        let (tx, rx) = mpsc::channel::<Result<Vec<u8>, String>>(8);
        for c in [&b"ab"[..], b"", b"cde"] {
            tx.try_send(Ok(c.to_vec())).unwrap();
        }
        tx.try_send(Err("too large".into())).unwrap();
        drop(tx);
        let mut r = ChunkReader {
            rx,
            current: None,
            pos: 0,
        };
        let mut buf = [0u8; 2];
        let mut got = Vec::new();
        let err = loop {
            match r.read(&mut buf) {
                Ok(0) => panic!("end before the error"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(got, b"abcde");
        assert_eq!(err.to_string(), "too large");
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }
}
