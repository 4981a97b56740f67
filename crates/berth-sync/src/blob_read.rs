//! A bridge from the registry client's async blob stream to `std::io::Read`, so that the layer
//! reader (synchronous, CPU-bound) can run on a blocking thread while the network stays async.
//!
//! A pump task moves verified chunks through a small bounded channel; when the reader stops
//! early (the answer is known), dropping it closes the channel and the pump stops fetching.

use std::io::{self, Read};

use berth_oci::{BlobReader, OciError};
use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// Chunks in flight between the network and the reader.
const CHANNEL_DEPTH: usize = 8;

/// Reads a blob that a pump task fetches. Errors from the registry (including a digest
/// mismatch at the end) surface as `io::Error`s wrapping the `OciError`'s message.
pub struct ChannelReader {
    receiver: mpsc::Receiver<Result<Bytes, OciError>>,
    current: Bytes,
    /// Bytes handed to the reader so far: how much of the blob a scan needed.
    pub consumed: u64,
}

/// Starts pumping `blob` on the current runtime and returns the reader end.
pub fn spawn_pump(mut blob: BlobReader) -> ChannelReader {
    let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        loop {
            match blob.next_chunk().await {
                Ok(Some(chunk)) => {
                    if sender.send(Ok(chunk)).await.is_err() {
                        return; // the reader has what it needs
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            }
        }
    });
    ChannelReader {
        receiver,
        current: Bytes::new(),
        consumed: 0,
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => return Err(io::Error::other(error.to_string())),
                None => return Ok(0),
            }
        }
        let count = buffer.len().min(self.current.len());
        buffer[..count].copy_from_slice(&self.current[..count]);
        self.current.advance(count);
        self.consumed += count as u64;
        Ok(count)
    }
}
