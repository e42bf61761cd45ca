//! Blobs in an S3-compatible bucket: `<prefix>/blobs/<hh>/<hash>`, the
//! layout of the store's own folder. Uploads stream from the spooled file
//! (one request below 8 MiB, a multipart upload above), downloads stream
//! to the reader; nothing is held whole in memory.
//!
//! The store is synchronous and object_store is async: the client lives on
//! a small runtime of its own, and callers wait on a channel, never with
//! `block_on`, so a call is safe from any thread, a runtime's or not.
//! Retries are bounded (a few, within seconds), so a bucket that is down
//! answers [`StoreError::Unavailable`] promptly instead of hanging a
//! request for minutes.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::io::AsyncWriteExt;

use super::{ArtifactLocation, Blobs, is_blob_name};
use crate::error::{Result, StoreError};
use crate::versions::Placement;

/// Bytes sent in one request; larger files go as a multipart upload of
/// parts this size (S3 wants at least 5 MiB per part).
const PART_BYTES: usize = 8 << 20;
/// Read from the spooled file per write into the upload.
const READ_BYTES: usize = 1 << 20;
/// Chunks (a few KiB each) a download may run ahead of its reader.
const READ_AHEAD: usize = 64;

pub(crate) struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    /// The same bucket without retries and with short timeouts: for HEAD
    /// and DELETE, which may run under the write lock.
    brief: Arc<dyn ObjectStore>,
    root: Key,
    location: ArtifactLocation,
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ObjectBlobs {
    /// The store may be dropped on a server's async worker (at shutdown),
    /// where a runtime may not wait for its tasks: they are left to end
    /// with the process.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ObjectBlobs {
    pub(crate) fn new(bucket: &str, prefix: &str) -> Result<ObjectBlobs> {
        let location = ArtifactLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            })
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "3 seconds",
            );
        if let Some(endpoint) = builder.get_config_value(&AmazonS3ConfigKey::Endpoint) {
            // A server of one's own (s3s, MinIO, Ceph) is reached by path,
            // not by a bucket subdomain, and often over plain http.
            if std::env::var_os("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_none() {
                builder = builder.with_virtual_hosted_style_request(false);
            }
            if endpoint.starts_with("http://") && std::env::var_os("AWS_ALLOW_HTTP").is_none() {
                builder = builder.with_allow_http(true);
            }
        }
        let unavailable = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!(
                "cannot use the artifact bucket {}: {e}",
                location.url()
            ))
        };
        let store = builder.clone().build().map_err(|e| unavailable(&e))?;
        // Calls made under the store's write lock (a blob's presence before
        // it is recorded, a removal) must fail fast, never retry for
        // seconds while every writer waits.
        let brief = builder
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "1 second",
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                "5 seconds",
            )
            .build()
            .map_err(|e| unavailable(&e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("labbook-s3")
            .enable_all()
            .build()
            .map_err(|e| unavailable(&e))?;
        let root = if prefix.is_empty() {
            Key::from("blobs")
        } else {
            Key::from(format!("{prefix}/blobs"))
        };
        Ok(ObjectBlobs {
            store: Arc::new(store),
            brief: Arc::new(brief),
            root,
            location,
            runtime: Some(runtime),
        })
    }

    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(work);
        }
    }

    fn key(&self, hash: &str) -> Key {
        self.root
            .clone()
            .join(hash.get(..2).unwrap_or("00"))
            .join(hash)
    }

    /// Runs `work` on the client's runtime and waits for it.
    fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Internal("the artifact bucket's client stopped".into()))
    }

    fn failed(&self, what: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound {
                what: "artifact contents",
                id: what.to_string(),
            },
            e => StoreError::Unavailable(format!(
                "the artifact bucket {} did not answer ({what}): {}{}",
                self.location.url(),
                one_line(&e),
                if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                    " (no AWS_ACCESS_KEY_ID is set in this process)"
                } else {
                    ""
                }
            )),
        }
    }

    fn upload(&self, temp: &Path, hash: &str) -> Result<u64> {
        let store = self.store.clone();
        let key = self.key(hash);
        let temp = temp.to_path_buf();
        let sent = self.run(async move {
            let mut file = std::fs::File::open(&temp)?;
            let mut writer = BufWriter::with_capacity(store, key, PART_BYTES);
            let mut buf = vec![0u8; READ_BYTES];
            let mut total = 0u64;
            loop {
                // The spooled file is local and already synced: reading it
                // here stalls only this client's own worker.
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(e);
                    }
                };
                if let Err(e) = writer.write_all(&buf[..n]).await {
                    let _ = writer.abort().await;
                    return Err(e);
                }
                total += n as u64;
            }
            // Until this completes the object does not exist: an upload cut
            // short leaves nothing visible under the blob's name.
            writer.shutdown().await?;
            Ok::<u64, std::io::Error>(total)
        })?;
        sent.map_err(|e| {
            match e
                .get_ref()
                .and_then(|e| e.downcast_ref::<object_store::Error>())
            {
                Some(_) => StoreError::Unavailable(format!(
                    "the artifact bucket {} did not take contents {hash}: {}",
                    self.location.url(),
                    one_line(&e)
                )),
                None => StoreError::Io {
                    context: format!("cannot upload contents {hash}"),
                    source: e,
                },
            }
        })
    }
}

impl Blobs for ObjectBlobs {
    fn location(&self) -> ArtifactLocation {
        self.location.clone()
    }

    fn check(&self) -> Result<()> {
        // A write and its removal: a bucket that is missing, or that these
        // credentials may read but not write, is found out now.
        let store = self.store.clone();
        let probe = self
            .root
            .clone()
            .join(format!("write-check-{:016x}", crate::random_bits()));
        let root = self.root.clone();
        let done = self.run(async move {
            // A listing first: some servers make a bucket on a first write.
            store.list_with_delimiter(Some(&root)).await?;
            store
                .put(&probe, Bytes::from_static(b"labbook").into())
                .await?;
            store.delete(&probe).await
        })?;
        done.map_err(|e| match self.failed("a test write", e) {
            StoreError::NotFound { .. } => StoreError::Unavailable(format!(
                "the artifact bucket {} does not exist",
                self.location.url()
            )),
            e => e,
        })
    }

    fn stage(&self, temp: &Path, hash: &str) -> Result<u64> {
        if self.contains(hash)? {
            return Ok(0);
        }
        self.upload(temp, hash)
    }

    fn place(&self, temp: &Path, hash: &str) -> Result<u64> {
        // Staged before the lock in the common case; uploaded here only if
        // a concurrent delete removed it since.
        let sent = if self.contains(hash)? {
            0
        } else {
            self.upload(temp, hash)?
        };
        let _ = std::fs::remove_file(temp);
        Ok(sent)
    }

    fn contains(&self, hash: &str) -> Result<bool> {
        let store = self.brief.clone();
        let key = self.key(hash);
        match self.run(async move { store.head(&key).await })? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed(hash, e)),
        }
    }

    fn open(&self, hash: &str) -> Result<Box<dyn Read + Send>> {
        let store = self.store.clone();
        let key = self.key(hash);
        let got = self.run(async move { store.get(&key).await })?;
        let got = got.map_err(|e| self.failed(hash, e))?;
        let size = got.meta.size;
        let stream = got.into_stream();
        let (tx, rx) = mpsc::sync_channel::<std::io::Result<Bytes>>(READ_AHEAD);
        self.spawn(async move {
            let mut stream = stream;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(std::io::Error::other);
                let stop = chunk.is_err();
                // A reader that went away ends the download.
                if tx.send(chunk).is_err() || stop {
                    return;
                }
            }
        });
        Ok(Box::new(ChannelReader {
            chunks: rx,
            current: Bytes::new(),
            remaining: size,
        }))
    }

    fn remove(&self, hashes: &[&str]) -> Vec<bool> {
        let store = self.brief.clone();
        let keys: Vec<Key> = hashes.iter().map(|h| self.key(h)).collect();
        self.run(async move {
            futures_util::stream::iter(keys)
                .map(|key| {
                    let store = store.clone();
                    async move { store.delete(&key).await.is_ok() }
                })
                .buffered(16)
                .collect::<Vec<bool>>()
                .await
        })
        .unwrap_or_else(|_| vec![false; hashes.len()])
    }

    fn list(&self) -> Result<Vec<(String, u64)>> {
        let store = self.store.clone();
        let root = self.root.clone();
        let listed = self.run(async move {
            let mut out = Vec::new();
            let mut objects = store.list(Some(&root));
            while let Some(meta) = objects.next().await {
                let meta = meta?;
                if let Some(name) = meta.location.filename()
                    && is_blob_name(name)
                {
                    out.push((name.to_string(), meta.size));
                }
            }
            Ok::<_, object_store::Error>(out)
        })?;
        listed.map_err(|e| self.failed("listing", e))
    }

    fn fetch(&self, hash: &str, target: &Path, placement: Placement) -> Result<()> {
        let mut reader = self.open(hash)?;
        super::local::replace_via_staging(target, |staging| {
            let mut file = std::fs::File::create(staging)?;
            std::io::copy(&mut reader, &mut file)?;
            file.sync_all()?;
            drop(file);
            match placement {
                Placement::Copy => super::local::make_writable(staging),
                Placement::Link => {
                    // As a linked blob would be: the download is not for editing.
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o444))?;
                    }
                    Ok(())
                }
            }
        })
        .map_err(|e| StoreError::Io {
            context: format!("cannot write {}", target.display()),
            source: e,
        })
    }

    fn space_available(&self) -> Option<u64> {
        None
    }

    fn sync(&self) -> Result<()> {
        // A completed PUT is durable by the bucket's own guarantee.
        Ok(())
    }
}

/// A download's bytes, chunk by chunk, as the client's runtime receives
/// them.
struct ChannelReader {
    chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
    /// Bytes the object holds that have not arrived: a stream that ends
    /// early is an error, never a short file.
    remaining: u64,
}

impl ChannelReader {
    /// Makes `current` hold bytes if any can be had: waiting for the next
    /// chunk when `wait`, else only taking one already there. False at the
    /// end of the stream (or, without `wait`, when none has arrived yet).
    fn refill(&mut self, wait: bool) -> std::io::Result<bool> {
        while self.current.is_empty() {
            let next = if wait {
                self.chunks
                    .recv()
                    .map_err(|_| mpsc::TryRecvError::Disconnected)
            } else {
                self.chunks.try_recv()
            };
            match next {
                Ok(chunk) => self.current = chunk?,
                Err(mpsc::TryRecvError::Empty) => return Ok(false),
                Err(mpsc::TryRecvError::Disconnected) if self.remaining == 0 => return Ok(false),
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the download stopped {} bytes short", self.remaining),
                    ));
                }
            }
        }
        Ok(true)
    }
}

impl Read for ChannelReader {
    /// Fills `buf` from every chunk already arrived (a response's chunks
    /// are a few KiB each), waiting only for the first.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.refill(filled == 0) {
                Ok(true) => {}
                Ok(false) => break,
                // Bytes already copied go first; the error comes again on
                // the next read, from the channel's end.
                Err(_) if filled > 0 => break,
                Err(e) => return Err(e),
            }
            let n = (buf.len() - filled).min(self.current.len());
            buf[filled..filled + n].copy_from_slice(&self.current[..n]);
            self.current = self.current.slice(n..);
            self.remaining = self.remaining.saturating_sub(n as u64);
            filled += n;
        }
        Ok(filled)
    }
}

/// An error's text on one line (object_store's nest their sources with
/// newlines).
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
