//! Real failures for the outage drills: a small file system that fills up, and a PostgreSQL server of
//! the test's own that can be stopped and started while the product runs.
//!
//! Each reports itself skipped when the machine cannot provide it, unless CI asks for it: with
//! `BIHUAN_TEST_MOUNT=1` a tmpfs that cannot be mounted fails the test, and with `BIHUAN_TEST_PG_URL`
//! set (PostgreSQL is installed) a private server that cannot be started fails it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted on a fresh folder, unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB (the drills that call this run only with `BIHUAN_TEST_MOUNT` set,
    /// as root; failing to mount is then a failure).
    pub fn mount(mib: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Self { dir },
            other => panic!("BIHUAN_TEST_MOUNT is set but a tmpfs cannot be mounted: {other:?}"),
        }
    }

    /// The mounted folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with one file until no byte is left; returns the file.
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A PostgreSQL server in a temporary folder, on a free port, trust authentication.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl PgCluster {
    /// Creates and starts a server (the drills that call this run only with `BIHUAN_TEST_PG_URL`
    /// set; missing PostgreSQL server binaries are then a failure).
    pub fn start() -> Self {
        let bin = pg_bin().unwrap_or_else(|| {
            panic!(
                "{} is set but no PostgreSQL server binaries (initdb, pg_ctl) were found",
                bihuan_test_support::PG_URL_VAR
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let _ = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status();
        let port = free_port();
        let cluster = Self { dir, bin, port };
        let init = cluster
            .as_postgres(&cluster.bin.join("initdb"))
            .args(["-D"])
            .arg(cluster.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        cluster.start_again();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command run as the `postgres` user when this process is root (initdb refuses root).
    fn as_postgres(&self, program: &Path) -> Command {
        if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) {
        let out = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.dir.path().display()
            ))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < until, "the server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server the way an operator restarting it does (`pg_ctl stop -m fast`: open
    /// transactions are rolled back and the connections closed).
    pub fn stop(&self) {
        let out = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Freezes every process of the server (`SIGSTOP`): connections stay open and nothing answers,
    /// as with a hung machine or a cut network.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server run on (`SIGCONT`).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        let pid = pid_file.lines().next().unwrap().trim().to_owned();
        // The postmaster first on stopping (so it starts no new backend), last on continuing.
        let postmaster = || {
            let status = Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap();
            assert!(status.success(), "kill -{name} {pid}");
        };
        if name == "STOP" {
            postmaster();
        }
        let _ = Command::new("pkill")
            .args([&format!("-{name}"), "-P", &pid])
            .status();
        if name != "STOP" {
            postmaster();
        }
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database; returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let admin = bihuan_store::Store::connect(&self.url("postgres"))
            .await
            .unwrap();
        sea_orm::ConnectionTrait::execute_unprepared(
            admin.connection(),
            &format!("CREATE DATABASE {name}"),
        )
        .await
        .unwrap();
        admin.close().await.unwrap();
        self.url(name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// The folder of PostgreSQL's server binaries: `pg_config --bindir`, or the newest under
/// /usr/lib/postgresql.
fn pg_bin() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").exists() && dir.join("pg_ctl").exists();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Some(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| has_server(d))
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
