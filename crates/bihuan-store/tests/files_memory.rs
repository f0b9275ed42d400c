//! A large evidence file is stored, checked and read back with memory that stays flat: the process's
//! peak resident memory grows by a few parts of an upload, not by the file's size. A test binary of
//! its own, so no other test's memory counts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.
#![cfg(target_os = "linux")] // The peak is read from /proc.

use std::io::Write;

use bihuan_store::files::{FileCheck, Files};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

/// The peak resident memory of this process so far, in bytes (`VmHWM`).
fn peak_resident() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_200_mib_is_stored_checked_and_read_back_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::from_location(dir.path().join("files").to_str().unwrap()).unwrap();
    // Written and hashed a mebibyte at a time, as an upload handler streams it.
    let path = dir.path().join("upload");
    let mut out = std::fs::File::create(&path).unwrap();
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; MIB];
    for i in 0..200u32 {
        block.iter_mut().enumerate().for_each(|(j, b)| {
            *b = (j as u32).wrapping_mul(31).wrapping_add(i) as u8;
        });
        hasher.update(&block);
        out.write_all(&block).unwrap();
    }
    drop(out);
    let (sha, size) = (hex::encode(hasher.finalize()), 200 * MIB as u64);
    let before = peak_resident();

    files.put_file(&path, &sha, size).await.unwrap();
    assert_eq!(files.check(&sha, size).await.unwrap(), FileCheck::Present);
    let (stored, mut bytes) = files.open(&sha).await.unwrap();
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.unwrap();
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!((stored, read), (size, size));
    assert_eq!(hex::encode(hasher.finalize()), sha);

    // Two parts on their way and one being read: 15 MiB, and room for the allocator's slack.
    let grown = peak_resident().saturating_sub(before);
    assert!(
        grown < 40 * MIB,
        "the peak resident memory grew by {} MiB",
        grown / MIB
    );
}
