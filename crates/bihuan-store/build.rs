//! Which of the tests that need something from outside can run here, decided when they are built
//! (cargo builds them again when one of these variables changes), so that a test that cannot run is
//! reported as ignored, with its reason, never as passed. The end-to-end tests (`tests/`) use this
//! same file.
//! - `bihuan_pg`: `BIHUAN_TEST_PG_URL` is set; the PostgreSQL half of every scenario runs (and fails
//!   when that server cannot be reached).
//! - `bihuan_browser`: `BIHUAN_TEST_BROWSER` is set; the browser test runs (and fails without
//!   chromium and chromedriver).
//! - `bihuan_mount`: `BIHUAN_TEST_MOUNT` is set; the drill on a full tmpfs runs (it needs root).
//! - `bihuan_s3`: `BIHUAN_TEST_S3` is set; the evidence files' test on an S3 API server runs (and fails
//!   when `moto_server` cannot be started: `pip install 'moto[server]'`).
//!
//! The library itself does not look at them.

fn main() {
    for (cfg, var) in [
        ("bihuan_pg", "BIHUAN_TEST_PG_URL"),
        ("bihuan_browser", "BIHUAN_TEST_BROWSER"),
        ("bihuan_mount", "BIHUAN_TEST_MOUNT"),
        ("bihuan_s3", "BIHUAN_TEST_S3"),
    ] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var_os(var).is_some_and(|v| !v.is_empty() && v != "0") {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
