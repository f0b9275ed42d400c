//! The evidence files, on a local folder and on a real S3 API server (moto, started by the test):
//! stored once by their hash, read back whole, proved present, changed or missing by hashing them
//! again; a hash that is not one and a location that is not one are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bihuan_store::files::{FileCheck, Files, FilesError, install_crypto_provider};
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

/// Bytes that look random (xorshift), different for every seed.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An upload as the web layer leaves it: the bytes in a temporary file.
fn upload(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The stored file of `sha256`, read through its stream.
async fn read_back(files: &Files, sha256: &str) -> (u64, Vec<u8>) {
    let (size, stream) = files.open(sha256).await.unwrap();
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    (size, chunks.concat())
}

/// What a test does to the stored objects behind the back of [`Files`].
trait Backend {
    /// Replaces the stored bytes of `sha256` with as many other bytes.
    async fn corrupt(&self, sha256: &str);
    /// Removes the stored object of `sha256`.
    async fn remove(&self, sha256: &str);
    /// How many objects (or files of any kind) are stored.
    async fn objects(&self) -> usize;
}

/// The same scenario on any store: a file of one part and a file of three parts (5 + 5 + 2 MiB)
/// stored, stored again, read back and checked; then one changed, removed and stored again; content
/// that is not what its caller declared is never stored. Returns the hash of the large file.
async fn scenario(files: &Files, store: &impl Backend, work: &Path) -> String {
    let small = content(1, 3 * MIB + 123);
    let large = content(2, 12 * MIB + 7);
    for (stored, bytes) in [(1, &small), (2, &large)] {
        let (sha, size) = (sha256_of(bytes), bytes.len() as u64);
        files
            .put_file(&upload(work, "upload", bytes), &sha, size)
            .await
            .unwrap();
        assert_eq!(store.objects().await, stored);
        // The same content again is kept once, and its file is not even read.
        files
            .put_file(&upload(work, "again", bytes), &sha, size)
            .await
            .unwrap();
        files
            .put_file(&work.join("never-written"), &sha, size)
            .await
            .unwrap();
        assert_eq!(store.objects().await, stored);
        let (read_size, read) = read_back(files, &sha).await;
        assert_eq!(read_size, size);
        assert!(read == *bytes, "the bytes read back differ");
        assert_eq!(files.check(&sha, size).await.unwrap(), FileCheck::Present);
    }

    let (sha, size) = (sha256_of(&small), small.len() as u64);
    store.corrupt(&sha).await;
    match files.check(&sha, size).await.unwrap() {
        FileCheck::Changed {
            actual_sha256,
            actual_size,
        } => {
            assert_ne!(actual_sha256, sha);
            assert_eq!(actual_size, size);
        }
        other => panic!("a changed file checks as {other:?}"),
    }
    store.remove(&sha).await;
    assert_eq!(files.check(&sha, size).await.unwrap(), FileCheck::Missing);
    match files.open(&sha).await {
        Err(FilesError::Missing { sha256 }) => assert_eq!(sha256, sha),
        Err(e) => panic!("opening a removed file: {e}"),
        Ok(_) => panic!("a removed file opens"),
    }
    assert_eq!(store.objects().await, 1);
    files
        .put_file(&upload(work, "upload", &small), &sha, size)
        .await
        .unwrap();
    assert_eq!(files.check(&sha, size).await.unwrap(), FileCheck::Present);

    // A caller whose hash or size is not the file's stores nothing, in one request or in parts.
    for bytes in [content(3, 1000), content(4, 11 * MIB)] {
        let path = upload(work, "liar", &bytes);
        let claimed = sha256_of(b"something else");
        let size = bytes.len() as u64;
        for (sha, size) in [(&claimed, size), (&sha256_of(&bytes), size + 1)] {
            match files.put_file(&path, sha, size).await {
                Err(FilesError::NotAsDeclared {
                    actual_sha256,
                    actual_size,
                    ..
                }) => {
                    assert_eq!(actual_sha256, sha256_of(&bytes));
                    assert_eq!(actual_size, bytes.len() as u64);
                }
                other => panic!("a file not as declared: {other:?}"),
            }
            assert_eq!(files.check(sha, size).await.unwrap(), FileCheck::Missing);
        }
    }
    assert_eq!(store.objects().await, 2);

    refuses_bad_hashes(files, work).await;
    sha256_of(&large)
}

/// No operation takes anything but 64 lowercase hex digits for a hash: never a path.
async fn refuses_bad_hashes(files: &Files, work: &Path) {
    let good = sha256_of(b"x");
    let path = upload(work, "any", b"x");
    for bad in [
        "../etc/passwd".to_owned(),
        format!("../../../../{}", &good[12..]),
        good.to_uppercase(),
        good[..63].to_owned(),
        format!("{good}0"),
        format!("{}g", &good[..63]),
        format!("{}/", &good[..63]),
        String::new(),
    ] {
        let refused = |r: Result<(), FilesError>| match r {
            Err(FilesError::BadSha256 { .. }) => {}
            other => panic!("the hash {bad:?} was taken: {other:?}"),
        };
        refused(files.put_file(&path, &bad, 1).await);
        refused(files.open(&bad).await.map(|_| ()));
        refused(files.check(&bad, 1).await.map(|_| ()));
    }
}

/// A folder on this machine.
struct Folder {
    root: PathBuf,
}

impl Folder {
    fn object(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(&sha256[..2]).join(sha256)
    }
}

impl Backend for Folder {
    async fn corrupt(&self, sha256: &str) {
        let path = self.object(sha256);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1000] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }

    async fn remove(&self, sha256: &str) {
        std::fs::remove_file(self.object(sha256)).unwrap();
    }

    async fn objects(&self) -> usize {
        fn count(dir: &Path) -> usize {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|entry| {
                    let entry = entry.unwrap();
                    if entry.file_type().unwrap().is_dir() {
                        count(&entry.path())
                    } else {
                        1
                    }
                })
                .sum()
        }
        count(&self.root)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_a_local_folder_are_kept_once_by_hash_read_back_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("not/yet/there");
    let files = Files::from_location(root.to_str().unwrap()).unwrap();
    assert!(root.is_dir(), "the folder is created");
    let root = root.canonicalize().unwrap();
    assert_eq!(files.describe(), format!("local folder {}", root.display()));
    let work = tempfile::tempdir().unwrap();
    scenario(&files, &Folder { root }, work.path()).await;
}

#[test]
fn a_location_that_is_neither_a_folder_nor_s3_is_refused_naming_it() {
    for location in [
        "gs://bucket/files",
        "ftp://host/files",
        "file:///srv/files",
        "",
        "  ",
        "s3://",
        "s3:///prefix",
        "s3://Upper/prefix",
        "s3://bucket/a//b",
        "s3://bucket/../b",
    ] {
        let message = Files::from_location(location).unwrap_err().to_string();
        assert!(
            message.contains(&format!("（{location}）")),
            "{location:?}: {message}"
        );
        assert!(
            message.contains("s3://"),
            "says what is accepted: {message}"
        );
    }
    let message = Files::from_location("s3://me:hunter2@bucket/p")
        .unwrap_err()
        .to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("s3://***@bucket/p"), "{message}");
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    assert!(
        Files::from_location_with_options(folder, &[("aws_region", "x")]).is_err(),
        "a folder takes no S3 settings"
    );
    let message = Files::from_location_with_options("s3://bucket", &[("aws_no_such", "x")])
        .unwrap_err()
        .to_string();
    assert!(message.contains("aws_no_such"), "{message}");
}

/// A moto S3 server of this test, stopped when dropped (also when the test panics).
struct Moto {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Moto {
    /// Starts `moto_server` on a free port of 127.0.0.1 and waits until it answers.
    async fn start(dir: &Path, http: &reqwest::Client) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("moto.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "BIHUAN_TEST_S3 is set, but moto_server could not be started ({e}): \
                     pip install 'moto[server]'"
                )
            });
        let mut moto = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!("moto_server ended ({status}): {}", moto.log());
            }
            if http.get(&moto.base).send().await.is_ok() {
                return moto;
            }
            assert!(
                Instant::now() < until,
                "moto_server did not answer within 60 s: {}",
                moto.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bucket of the test, reached with an S3 client of its own (moto answers unsigned requests for
/// objects with 403).
struct Bucket {
    s3: object_store::aws::AmazonS3,
    prefix: &'static str,
}

impl Bucket {
    fn object(&self, sha256: &str) -> object_store::path::Path {
        format!("{}/sha256/{}/{sha256}", self.prefix, &sha256[..2]).into()
    }
}

impl Backend for Bucket {
    async fn corrupt(&self, sha256: &str) {
        let mut bytes = self
            .s3
            .get(&self.object(sha256))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        bytes[1000] ^= 0xff;
        self.s3
            .put(&self.object(sha256), bytes.into())
            .await
            .unwrap();
    }

    async fn remove(&self, sha256: &str) {
        self.s3.delete(&self.object(sha256)).await.unwrap();
    }

    async fn objects(&self) -> usize {
        let all: Vec<_> = self.s3.list(None).try_collect().await.unwrap();
        let prefix = format!("{}/sha256/", self.prefix);
        for object in &all {
            assert!(object.location.as_ref().starts_with(&prefix), "{object:?}");
        }
        all.len()
    }
}

/// The test's HTTP client; reqwest builds none before a crypto provider is installed.
#[allow(clippy::disallowed_methods)] // This is the place that installs it first.
fn http() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

#[cfg_attr(not(bihuan_s3), ignore = "BIHUAN_TEST_S3 is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_on_an_s3_server_are_kept_once_by_hash_read_back_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let http = http();
    let moto = Moto::start(dir.path(), &http).await;
    let url = format!("{}/evidence", moto.base);
    let created = http.put(&url).send().await.unwrap();
    assert!(created.status().is_success(), "{created:?}");

    let secret = "moto-secret-never-logged";
    let options = [
        ("aws_endpoint", moto.base.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test-key"),
        ("aws_secret_access_key", secret),
        ("aws_region", "us-east-1"),
    ];
    let files = Files::from_location_with_options("s3://evidence/some/prefix/", &options).unwrap();
    let described = files.describe();
    assert!(
        described.contains("evidence")
            && described.contains("some/prefix")
            && described.contains(&moto.base),
        "{described}"
    );
    assert!(!described.contains(secret) && !described.contains("test-key"));

    let mut s3 = AmazonS3Builder::new().with_bucket_name("evidence");
    for (key, value) in options {
        s3 = s3.with_config(key.parse().unwrap(), value);
    }
    let bucket = Bucket {
        s3: s3.build().unwrap(),
        prefix: "some/prefix",
    };
    let work = tempfile::tempdir().unwrap();
    let large = scenario(&files, &bucket, work.path()).await;
    // The 12 MiB file went up in three parts: S3 marks such an object's ETag with their count.
    let head = bucket.s3.head(&bucket.object(&large)).await.unwrap();
    let etag = head.e_tag.unwrap();
    assert!(etag.ends_with("-3\""), "{etag}");
}
