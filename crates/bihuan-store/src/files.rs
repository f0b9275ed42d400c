//! The evidence files (整改佐证材料): kept by the SHA-256 of their content, so the same file uploaded
//! twice is stored once and a stored file can be proved unchanged by hashing it again (`audit verify`).
//!
//! Where they go is one string (`BIHUAN_FILES`, [`DEFAULT_LOCATION`] when unset), read by
//! [`Files::from_location`]:
//! - a folder path, relative or absolute, created when missing: the files are kept on this machine;
//! - `s3://bucket/prefix` (the prefix may be left out): an S3 bucket or any S3 API server, configured
//!   by the usual `AWS_*` variables (see [`Files::from_location`]).
//!
//! Under that place a file's object is `sha256/{first two hex digits}/{64 hex digits}` (after the
//! prefix on S3). Files are streamed both ways in bounded pieces: memory stays flat whatever their
//! size. A file larger than one part goes up in parts that become the object only when all arrived;
//! an upload cut off midway (the process killed) leaves its parts behind, never a partial object: on
//! S3 give the bucket a lifecycle rule that aborts incomplete multipart uploads after a day; in a
//! folder they are files named `{hash}#{n}` beside the objects.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// Where files go when `BIHUAN_FILES` is not set.
pub const DEFAULT_LOCATION: &str = "./files";

/// The size of one part of an upload. A file of at most one part is stored in one request; a larger
/// one in parts of this size (S3 accepts parts of 5 MiB and more, the last one excepted).
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts of one upload on their way at once. With the part being read, an upload holds at most
/// `(PARTS_IN_FLIGHT + 1) * PART_SIZE` bytes in memory, whatever the file's size.
const PARTS_IN_FLIGHT: usize = 2;

/// The words of an error about the location: what is accepted.
const ACCEPTED: &str = "应为文件夹路径（如 ./files）或 s3://桶名/前缀";

/// Installs ring as the process's TLS crypto provider, unless one is installed already.
///
/// The S3 client's HTTPS runs on rustls without a provider of its own (the one reqwest would bring is
/// aws-lc, a heavy C build kept out of this project), and reqwest refuses to build a client, even for
/// plain HTTP, until the process has one. [`Files::from_location`] calls this; so must anything else
/// in the process that builds a reqwest client first (the tests' HTTP clients do).
pub fn install_crypto_provider() {
    // An error only says a provider is installed already (ring or another): either way there is one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The evidence files: a local folder or an S3 bucket, behind one small API.
#[derive(Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    /// The key every object's key starts with (empty for a folder, the URL's path on S3).
    prefix: Key,
    /// Where the files go, for log lines and errors: never credentials.
    place: String,
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Files").field("place", &self.place).finish()
    }
}

/// What [`Files::check`] found for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCheck {
    /// Stored, with the size and SHA-256 it was stored under.
    Present,
    /// Nothing is stored under that hash.
    Missing,
    /// Something is stored under that hash, but its content is not that file any more.
    Changed {
        /// The SHA-256 of what is stored (lowercase hex).
        actual_sha256: String,
        /// The size of what is stored, in bytes.
        actual_size: u64,
    },
}

/// Everything that can go wrong with the evidence files. No message carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The location is not one this understands, or its store could not be set up.
    #[error("佐证材料存储位置无效（{location}）：{reason}")]
    BadLocation {
        /// The location as given (credentials in it hidden).
        location: String,
        /// Why it was refused.
        reason: String,
    },
    /// The hash given is not a SHA-256 in lowercase hex (64 characters `0-9a-f`).
    #[error("无效的 SHA-256（{given:?}）：应为 64 位小写十六进制")]
    BadSha256 {
        /// What was given (its first 80 characters).
        given: String,
    },
    /// Nothing is stored under this hash.
    #[error("佐证材料 {sha256} 不存在")]
    Missing {
        /// The hash asked for.
        sha256: String,
    },
    /// The file to store is not what the caller said it is: nothing was stored.
    #[error(
        "待存文件 {} 与声明不符（声明 {expected_size} 字节、SHA-256 {expected_sha256}，实为 {actual_size} 字节、{actual_sha256}），未存储",
        path.display()
    )]
    NotAsDeclared {
        /// The file.
        path: PathBuf,
        /// The hash the caller gave.
        expected_sha256: String,
        /// The size the caller gave.
        expected_size: u64,
        /// The hash of the file's content.
        actual_sha256: String,
        /// The file's size.
        actual_size: u64,
    },
    /// The file to store could not be read.
    #[error("无法读取待存文件 {}：{source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The storage failed (a disk error, a refused or unanswered request).
    #[error("佐证材料 {sha256} {action}失败（{place}）：{source}")]
    Storage {
        /// What was being done.
        action: &'static str,
        /// The file's hash.
        sha256: String,
        /// Where the files go ([`Files::describe`]).
        place: String,
        /// The store's error (boxed: it is large, and errors travel in every `Result` here).
        source: Box<object_store::Error>,
    },
}

/// Where a location string points.
enum Place<'a> {
    Folder(&'a str),
    S3 { bucket: &'a str, prefix: Key },
}

impl Files {
    /// The files at `location` (what `BIHUAN_FILES` holds; see the module's documentation).
    ///
    /// For `s3://bucket/prefix` the S3 client reads every environment variable whose name starts
    /// with `AWS_` and that it knows (object_store's `AmazonS3Builder::from_env`), among them:
    /// - `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`: the credentials (without
    ///   them: a web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`), the container's
    ///   (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, `AWS_CONTAINER_CREDENTIALS_FULL_URI`), else the
    ///   instance metadata service);
    /// - `AWS_REGION`, else `AWS_DEFAULT_REGION` (default `us-east-1`);
    /// - `AWS_ENDPOINT_URL` or `AWS_ENDPOINT` (the same setting: set one), or `AWS_ENDPOINT_URL_S3`,
    ///   which wins over them: another S3 API server than AWS's, addressed by path
    ///   (`AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true` for `bucket.host` addressing);
    /// - `AWS_ALLOW_HTTP=true` to reach an endpoint over plain `http://` (a test server);
    /// - also the client settings `AWS_TIMEOUT`, `AWS_CONNECT_TIMEOUT`, `AWS_PROXY_URL`, and the
    ///   encryption ones (`AWS_SERVER_SIDE_ENCRYPTION`, `AWS_SSE_KMS_KEY_ID`, ...).
    ///
    /// The bucket comes from the location, never from `AWS_BUCKET`. Not read: `AWS_PROFILE` and the
    /// files `~/.aws/config` and `~/.aws/credentials` (object_store has no profiles). Use
    /// [`Files::from_location_with_options`] to leave the environment out.
    pub fn from_location(location: &str) -> Result<Self, FilesError> {
        Self::open_at(location, AmazonS3Builder::from_env())
    }

    /// The files at `location`, an S3 location configured by `options` alone (the environment is
    /// not read): pairs of an object_store S3 setting and its value, named as the variables of
    /// [`Files::from_location`] are, lowercase (`aws_endpoint`, `aws_access_key_id`,
    /// `aws_allow_http`, ...). A folder takes no options.
    pub fn from_location_with_options(
        location: &str,
        options: &[(&str, &str)],
    ) -> Result<Self, FilesError> {
        let mut builder = AmazonS3Builder::new();
        for (name, value) in options {
            let key: AmazonS3ConfigKey = name.parse().map_err(|_| FilesError::BadLocation {
                location: shown(location),
                reason: format!("未知的 S3 设置 {name}"),
            })?;
            builder = builder.with_config(key, *value);
        }
        if !options.is_empty() && matches!(parse(location)?, Place::Folder(_)) {
            return Err(FilesError::BadLocation {
                location: shown(location),
                reason: "文件夹不接受 S3 设置".to_owned(),
            });
        }
        Self::open_at(location, builder)
    }

    fn open_at(location: &str, s3: AmazonS3Builder) -> Result<Self, FilesError> {
        install_crypto_provider();
        let bad = |reason: String| FilesError::BadLocation {
            location: shown(location),
            reason,
        };
        match parse(location)? {
            Place::Folder(folder) => {
                std::fs::create_dir_all(folder).map_err(|e| bad(format!("无法创建文件夹：{e}")))?;
                let root = std::fs::canonicalize(folder)
                    .map_err(|e| bad(format!("无法读取文件夹：{e}")))?;
                // fsync: a file cited in the audit chain must survive a crash right after its upload
                // was acknowledged, as it would on S3.
                let store = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| bad(e.to_string()))?
                    .with_fsync(true);
                Ok(Self {
                    store: Arc::new(store),
                    prefix: Key::default(),
                    place: format!("local folder {}", root.display()),
                })
            }
            Place::S3 { bucket, prefix } => {
                let s3 = s3.with_url(format!("s3://{bucket}"));
                let endpoint = s3
                    .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
                    .or_else(|| s3.get_config_value(&AmazonS3ConfigKey::Endpoint))
                    .map_or_else(|| "AWS".to_owned(), |e| shown(&e));
                let region = s3
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".to_owned());
                let store = s3.build().map_err(|e| bad(e.to_string()))?;
                Ok(Self {
                    store: Arc::new(store),
                    place: format!(
                        "S3 bucket {bucket}, prefix {:?}, endpoint {endpoint}, region {region}",
                        prefix.as_ref()
                    ),
                    prefix,
                })
            }
        }
    }

    /// Where the files go, for a log line: the folder, or the bucket, prefix, endpoint and region
    /// (never credentials).
    pub fn describe(&self) -> String {
        self.place.clone()
    }

    /// Stores the file at `path` (an upload the caller streamed into a temporary file and hashed) under
    /// its hash `sha256`, unless that very content is stored already (then this is all: the same
    /// content is kept once). The file is read in parts of 5 MiB, and hashed again as it is read:
    /// content that is not `sha256` and `size` is never stored under that hash.
    pub async fn put_file(&self, path: &FsPath, sha256: &str, size: u64) -> Result<(), FilesError> {
        let key = self.key(sha256)?;
        match self.store.head(&key).await {
            // The same size: stored already, unless it was damaged since (then it is replaced by
            // the content uploaded again, which repairs what `audit verify` found changed).
            Ok(meta) if meta.size == size => {
                if self.check(sha256, size).await? == FileCheck::Present {
                    return Ok(());
                }
            }
            // Something else under this hash (cut short, damaged): it is replaced.
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.failed("查询", sha256, e)),
        }
        let read_failed = |source| FilesError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(read_failed)?;
        let mut hasher = Sha256::new();
        let first = read_part(&mut file, &mut hasher)
            .await
            .map_err(read_failed)?;
        let second = if first.len() == PART_SIZE {
            read_part(&mut file, &mut hasher)
                .await
                .map_err(read_failed)?
        } else {
            Bytes::new()
        };
        if second.is_empty() {
            // One part at most: one request.
            let actual_size = first.len() as u64;
            self.as_declared(path, sha256, size, hasher, actual_size)?;
            self.store
                .put(&key, PutPayload::from(first))
                .await
                .map_err(|e| self.failed("存储", sha256, e))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.failed("存储", sha256, e))?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut actual_size = (first.len() + second.len()) as u64;
        upload.put(first);
        upload.put(second);
        let outcome = async {
            loop {
                upload
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.failed("存储", sha256, e))?;
                let part = read_part(&mut file, &mut hasher)
                    .await
                    .map_err(read_failed)?;
                if part.is_empty() {
                    break;
                }
                actual_size += part.len() as u64;
                upload.put(part);
            }
            self.as_declared(path, sha256, size, hasher, actual_size)
        }
        .await;
        match outcome {
            Ok(()) => {
                upload
                    .finish()
                    .await
                    .map_err(|e| self.failed("存储", sha256, e))?;
                Ok(())
            }
            Err(e) => {
                // The parts sent are dropped; an error of that cleanup would hide the cause.
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    /// The stored file of hash `sha256`: its size, and its bytes as a stream (for a download).
    /// [`FilesError::Missing`] when nothing is stored under that hash.
    pub async fn open(
        &self,
        sha256: &str,
    ) -> Result<
        (
            u64,
            impl Stream<Item = Result<Bytes, FilesError>> + Send + 'static,
        ),
        FilesError,
    > {
        let key = self.key(sha256)?;
        let got = self
            .store
            .get(&key)
            .await
            .map_err(|e| self.failed_read(sha256, e))?;
        let size = got.meta.size;
        let (files, sha256) = (self.clone(), sha256.to_owned());
        let bytes = got
            .into_stream()
            .map_err(move |e| files.failed_read(&sha256, e));
        Ok((size, bytes))
    }

    /// Reads the stored file of hash `sha256` again, streaming, and hashes it: whether it is there,
    /// `size` bytes long and of that hash (what `audit verify` proves of every cited file).
    pub async fn check(&self, sha256: &str, size: u64) -> Result<FileCheck, FilesError> {
        let key = self.key(sha256)?;
        let got = match self.store.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(FileCheck::Missing),
            Err(e) => return Err(self.failed("校验", sha256, e)),
        };
        let mut bytes = got.into_stream();
        let mut hasher = Sha256::new();
        let mut actual_size = 0u64;
        while let Some(chunk) = bytes.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // Removed while it was being read.
                Err(object_store::Error::NotFound { .. }) => return Ok(FileCheck::Missing),
                Err(e) => return Err(self.failed("校验", sha256, e)),
            };
            hasher.update(&chunk);
            actual_size += chunk.len() as u64;
        }
        let actual_sha256 = hex::encode(hasher.finalize());
        Ok(if actual_sha256 == sha256 && actual_size == size {
            FileCheck::Present
        } else {
            FileCheck::Changed {
                actual_sha256,
                actual_size,
            }
        })
    }

    /// The thumbnail of `px` pixels kept for the picture of hash `sha256`, if one was made.
    pub async fn thumbnail(&self, sha256: &str, px: u32) -> Result<Option<Bytes>, FilesError> {
        let key = self.thumbnail_key(sha256, px)?;
        match self.store.get(&key).await {
            Ok(got) => Ok(Some(
                got.bytes()
                    .await
                    .map_err(|e| self.failed("读取缩略图", sha256, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed("读取缩略图", sha256, e)),
        }
    }

    /// Keeps `jpeg` as the thumbnail of `px` pixels of the picture of hash `sha256` (made again
    /// from the original whenever it is missing: it is never cited, never checked by `audit verify`).
    pub async fn put_thumbnail(
        &self,
        sha256: &str,
        px: u32,
        jpeg: Bytes,
    ) -> Result<(), FilesError> {
        let key = self.thumbnail_key(sha256, px)?;
        self.store
            .put(&key, PutPayload::from_bytes(jpeg))
            .await
            .map_err(|e| self.failed("存储缩略图", sha256, e))?;
        Ok(())
    }

    /// `{prefix}/thumbnails/{px}/{first two}/{all 64}.jpg`, beside the originals' folder.
    fn thumbnail_key(&self, sha256: &str, px: u32) -> Result<Key, FilesError> {
        self.key(sha256)?;
        Ok(self
            .prefix
            .clone()
            .join("thumbnails")
            .join(px.to_string())
            .join(&sha256[..2])
            .join(format!("{sha256}.jpg")))
    }

    /// The object key of hash `sha256`: `{prefix}/sha256/{first two}/{all 64}`. The hash is checked
    /// first, so a key is never anything but that (no `..`, no other folder).
    fn key(&self, sha256: &str) -> Result<Key, FilesError> {
        if !bihuan_core::evidence::is_sha256(sha256) {
            return Err(FilesError::BadSha256 {
                given: sha256.chars().take(80).collect(),
            });
        }
        Ok(self
            .prefix
            .clone()
            .join("sha256")
            .join(&sha256[..2])
            .join(sha256))
    }

    /// Whether the content read (hashed into `hasher`, `actual_size` bytes) is what the caller
    /// declared.
    fn as_declared(
        &self,
        path: &FsPath,
        sha256: &str,
        size: u64,
        hasher: Sha256,
        actual_size: u64,
    ) -> Result<(), FilesError> {
        let actual_sha256 = hex::encode(hasher.finalize());
        if actual_sha256 == sha256 && actual_size == size {
            Ok(())
        } else {
            Err(FilesError::NotAsDeclared {
                path: path.to_owned(),
                expected_sha256: sha256.to_owned(),
                expected_size: size,
                actual_sha256,
                actual_size,
            })
        }
    }

    /// The error of a failed store operation.
    fn failed(&self, action: &'static str, sha256: &str, e: object_store::Error) -> FilesError {
        FilesError::Storage {
            action,
            sha256: sha256.to_owned(),
            place: self.place.clone(),
            source: Box::new(e),
        }
    }

    /// The error of a failed read: "not found" is [`FilesError::Missing`] (a store that answers "not
    /// found" to a write, an S3 bucket that is not there, stays a storage error).
    fn failed_read(&self, sha256: &str, e: object_store::Error) -> FilesError {
        match e {
            object_store::Error::NotFound { .. } => FilesError::Missing {
                sha256: sha256.to_owned(),
            },
            e => self.failed("读取", sha256, e),
        }
    }
}

/// The next part of `file` (at most [`PART_SIZE`] bytes; empty at its end), added to `hasher`.
async fn read_part(file: &mut tokio::fs::File, hasher: &mut Sha256) -> std::io::Result<Bytes> {
    let mut part = Vec::new();
    (&mut *file)
        .take(PART_SIZE as u64)
        .read_to_end(&mut part)
        .await?;
    hasher.update(&part);
    Ok(Bytes::from(part))
}

/// Where `location` points, or why it points nowhere this understands.
fn parse(location: &str) -> Result<Place<'_>, FilesError> {
    let bad = |reason: String| FilesError::BadLocation {
        location: shown(location),
        reason,
    };
    if location.trim().is_empty() {
        return Err(bad(format!("为空；{ACCEPTED}")));
    }
    let Some((scheme, rest)) = location.split_once("://") else {
        return Ok(Place::Folder(location));
    };
    if scheme != "s3" {
        return Err(bad(format!("不支持 {scheme}://；{ACCEPTED}")));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // S3's rules for a bucket's name; they also keep credentials (`user:secret@`) and ports out.
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !bucket_ok {
        return Err(bad(format!(
            "桶名应为 3 至 63 个小写字母、数字、点或连字符；{ACCEPTED}"
        )));
    }
    if prefix.contains(['?', '#']) {
        return Err(bad(format!("前缀不能含 ? 或 #；{ACCEPTED}")));
    }
    let prefix = Key::parse(prefix).map_err(|e| bad(format!("前缀无效：{e}")))?;
    Ok(Place::S3 { bucket, prefix })
}

/// `location` for messages: the password of a URL with one hidden.
fn shown(location: &str) -> String {
    match location.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://***{}", &rest[at..]),
                None => location.to_owned(),
            }
        }
        None => location.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn credentials_in_a_location_are_hidden() {
        assert_eq!(shown("s3://key:secret@bucket/p"), "s3://***@bucket/p");
        assert_eq!(shown("s3://bucket/a@b"), "s3://bucket/a@b");
        assert_eq!(shown("./files"), "./files");
    }
}
