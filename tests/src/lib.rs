//! Helpers of the end-to-end tests: the real `bihuan` binary, run as a user would run it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub mod drills;

/// An HTTP client of the tests, to finish with `.build()`. reqwest's TLS runs on rustls without a
/// crypto provider of its own in this workspace (object_store's S3 client shares this reqwest, and the
/// provider reqwest would bring is aws-lc, kept out of the build), and reqwest builds no client, not
/// even for plain HTTP, before the process has one: this installs ring's first. Hence clippy refuses
/// `reqwest::Client::new`, `reqwest::Client::builder` and `reqwest::get` (clippy.toml).
#[allow(clippy::disallowed_methods)] // The one place that installs the provider first.
pub fn http() -> reqwest::ClientBuilder {
    bihuan_store::files::install_crypto_provider();
    reqwest::Client::builder()
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `bihuan` binary of this build, built first when the tests run under cargo.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // The test executable lives in target/<profile>/deps/.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        if let Ok(cargo) = std::env::var("CARGO") {
            let mut build = Command::new(cargo);
            build
                .current_dir(root())
                .args(["build", "--quiet", "-p", "bihuan", "--bin", "bihuan"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().unwrap();
            assert!(status.success(), "building the bihuan binary failed");
        }
        let bin = profile_dir.join("bihuan");
        assert!(bin.exists(), "{} is missing", bin.display());
        bin
    })
}

/// A `bihuan` command in `dir`, with a clean environment for the variables it reads, on a clock that
/// starts at [`api::START`] (a test that needs another instant sets `BIHUAN_FAKE_NOW` itself): no test
/// of the binary reads the system clock's date either.
pub fn bihuan(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir);
    for var in [
        "BIHUAN_DATABASE_URL",
        "BIHUAN_SMTP_URL",
        "BIHUAN_TZ",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("BIHUAN_FAKE_NOW", api::START);
    cmd
}

/// Runs a command with `input` on standard input.
pub fn run_with_input(mut cmd: Command, input: &str) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Standard output and standard error as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running `bihuan serve`, stopped when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// What it printed before it started listening.
    pub banner: Vec<String>,
    /// Its standard error so far, read as it comes so that a busy log never blocks the server.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `bihuan serve --listen 127.0.0.1:0 ARGS…` in `dir` and waits until it listens.
    pub fn start(mut cmd: Command, args: &[&str]) -> Self {
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    if let Some(addr) = line.split("已启动：").nth(1) {
                        return Self {
                            child,
                            base: addr.trim().to_owned(),
                            banner,
                            log,
                        };
                    }
                    banner.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("serve did not start: {banner:?} {}", log.lock().unwrap());
                }
            }
        }
    }

    /// What it wrote to standard error so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops the server and returns what it wrote to standard error.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread sees the end of the pipe once the process is gone.
        for _ in 0..50 {
            if std::sync::Arc::strong_count(&self.log) == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP API served in-process on port 0 over a test database, with a seeded organization of two
/// towns (沙坝镇 and 马旺镇, so that every role exists in scope and out of it).
/// A multipart form body (text fields, then one file part: name, file name, bytes) and its content
/// type.
pub fn multipart(fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> (String, Vec<u8>) {
    const BOUNDARY: &str = "bihuan-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let (name, file_name, bytes) = file;
    body.extend(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
            .as_bytes(),
    );
    body.extend(bytes);
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

pub mod api {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use bihuan_core::{Engine, Role};
    use bihuan_store::{Clock, NewUnit, NewUser};
    use bihuan_test_support::TestDb;
    use bihuan_web::{AppState, WebConfig};
    use reqwest::{Method, StatusCode};
    use serde_json::{Value, json};

    /// Every seeded user's password.
    pub const PASSWORD: &str = "correct horse battery";

    /// The 行政区划 of 沙坝镇 (its center answers for it) and of 马旺镇.
    pub const SHABA_REGION: &str = "500114112";
    /// See [`SHABA_REGION`].
    pub const MAWANG_REGION: &str = "500114115";

    /// (username, role, unit) of the seeded users; `o_…` belong to the other town.
    pub const USERS: [(&str, Role, Option<&str>); 9] = [
        ("admin", Role::Admin, None),
        ("sup", Role::Supervisor, Some("shaba")),
        ("center", Role::CenterStaff, Some("shaba-center")),
        ("unit", Role::UnitStaff, Some("shaba-social")),
        ("viewer", Role::Viewer, Some("shaba")),
        ("o_sup", Role::Supervisor, Some("mawang")),
        ("o_center", Role::CenterStaff, Some("mawang-center")),
        ("o_unit", Role::UnitStaff, Some("mawang-social")),
        ("o_viewer", Role::Viewer, Some("mawang")),
    ];

    /// A running app.
    #[derive(Debug)]
    pub struct TestApp {
        /// `http://127.0.0.1:PORT`.
        pub base: String,
        /// The HTTP client.
        pub client: reqwest::Client,
        /// The workflows it runs.
        pub engine: Arc<Engine>,
        /// A channel token for pushing ratings.
        pub channel_token: String,
        /// The app's clock.
        pub clock: Clock,
        tokens: Mutex<HashMap<String, String>>,
        /// Where the app keeps evidence files (removed with the app).
        pub files: tempfile::TempDir,
    }

    /// The workflows of the repository.
    pub fn engine() -> Engine {
        bihuan_store::load_dir(&super::root().join("workflows"), chrono_tz::Asia::Shanghai).unwrap()
    }

    /// When the test apps' clocks start: a Thursday, a working day, in the plan's year (tests never
    /// read the system clock's date: none may break at midnight in Shanghai or in another year).
    pub const START: &str = "2021-05-06T11:00:00+08:00";

    /// A clock that starts at [`START`] and runs on.
    pub fn clock() -> Clock {
        Clock::starting_at(
            chrono::DateTime::parse_from_rfc3339(START)
                .unwrap()
                .to_utc(),
        )
    }

    /// Seeds the organization and serves the app on a clock starting at [`START`].
    pub async fn spawn(db: &TestDb, config: WebConfig) -> TestApp {
        spawn_with(db, config, clock()).await
    }

    /// Seeds the organization and serves the app with `clock`; links in its mail point at it.
    pub async fn spawn_with(db: &TestDb, config: WebConfig, clock: Clock) -> TestApp {
        seed_org(&db.store, clock.now()).await;
        serve(db, config, clock, "yukuaiban").await
    }

    /// A second app on a database already seeded (another setting, the same data), its channel
    /// token named `channel`.
    pub async fn spawn_again(db: &TestDb, config: WebConfig, channel: &str) -> TestApp {
        serve(db, config, clock(), channel).await
    }

    /// Seeds the organization and serves the app with its store pushing each step of a 差评's
    /// handling to the provincial platform (数据回传): the pushes wait in the outbox.
    pub async fn spawn_pushing(db: &TestDb) -> TestApp {
        seed_org(&db.store, clock().now()).await;
        serve_store(
            db.store.clone().pushing_upstream(true),
            db,
            WebConfig::default(),
            clock(),
            "yukuaiban",
        )
        .await
    }

    async fn serve(db: &TestDb, config: WebConfig, clock: Clock, channel: &str) -> TestApp {
        serve_store(db.store.clone(), db, config, clock, channel).await
    }

    async fn serve_store(
        store: bihuan_store::Store,
        db: &TestDb,
        config: WebConfig,
        clock: Clock,
        channel: &str,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let engine = engine();
        let letters = engine.letters().clone().with_public_url(&base);
        let engine = Arc::new(engine.with_letters(letters));
        let channel_token = db
            .store
            .add_api_token(
                channel,
                bihuan_store::TokenScope::RatingsWrite,
                None,
                clock.now(),
            )
            .await
            .unwrap();
        let files = tempfile::tempdir().unwrap();
        let state = AppState {
            store,
            engine: engine.clone(),
            clock,
            config,
            files: Arc::new(
                bihuan_store::files::Files::from_location(files.path().to_str().unwrap()).unwrap(),
            ),
        };
        let app = bihuan_web::app(state);
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        TestApp {
            base,
            client: crate::http().build().unwrap(),
            engine,
            channel_token,
            clock,
            tokens: Mutex::new(HashMap::new()),
            files,
        }
    }

    /// The two towns' units and the users of [`USERS`] (password [`PASSWORD`]).
    pub async fn seed_org(store: &bihuan_store::Store, now: chrono::DateTime<chrono::Utc>) {
        for (code, name, parent) in [
            ("shaba", "沙坝镇人民政府", None),
            ("shaba-center", "沙坝镇便民服务中心", Some("shaba")),
            ("shaba-social", "沙坝镇社会保障服务所", Some("shaba")),
            ("shaba-civil", "沙坝镇民政办", Some("shaba")),
            ("mawang", "马旺镇人民政府", None),
            ("mawang-center", "马旺镇便民服务中心", Some("mawang")),
            ("mawang-social", "马旺镇社会保障服务所", Some("mawang")),
        ] {
            let unit = NewUnit {
                code: code.into(),
                name: name.into(),
                parent: parent.map(Into::into),
                email: Some(format!("{code}@example.org")),
                region: match code {
                    "shaba-center" => Some(SHABA_REGION.into()),
                    "mawang-center" => Some(MAWANG_REGION.into()),
                    _ => None,
                },
            };
            store.add_unit(&unit, now).await.unwrap();
        }
        for (username, role, unit) in USERS {
            let user = NewUser {
                username: username.into(),
                role,
                unit: unit.map(Into::into),
                email: Some(format!("{username}@example.org")),
                sms_phone: None,
            };
            store.add_user(&user, PASSWORD, now).await.unwrap();
        }
    }

    impl TestApp {
        /// A raw request with an optional bearer token and JSON body.
        pub async fn raw(
            &self,
            method: Method,
            path: &str,
            token: Option<&str>,
            body: Option<&Value>,
        ) -> (StatusCode, Value) {
            let mut req = self.client.request(method, format!("{}{path}", self.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            let value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            (status, value)
        }

        /// A user's session token (signs in once).
        pub async fn token(&self, user: &str) -> String {
            if let Some(t) = self.tokens.lock().unwrap().get(user) {
                return t.clone();
            }
            let (status, body) = self
                .raw(
                    Method::POST,
                    "/api/v1/session",
                    None,
                    Some(&json!({"username": user, "password": PASSWORD})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{user} signs in: {body}");
            let token = body["token"].as_str().unwrap().to_owned();
            self.tokens
                .lock()
                .unwrap()
                .insert(user.to_owned(), token.clone());
            token
        }

        /// A request as a signed-in user.
        pub async fn call(
            &self,
            user: &str,
            method: Method,
            path: &str,
            body: Option<Value>,
        ) -> (StatusCode, Value) {
            let token = self.token(user).await;
            let answer = self
                .raw(method.clone(), path, Some(&token), body.as_ref())
                .await;
            if answer.0 != StatusCode::UNAUTHORIZED {
                return answer;
            }
            // The session ended (a scheduler pass run with a later `--now` removes the sessions
            // that had ended by then): sign in again, as a user would.
            self.tokens.lock().unwrap().remove(user);
            let token = self.token(user).await;
            self.raw(method, path, Some(&token), body.as_ref()).await
        }

        /// Pushes a rating through the channel API; returns the answer.
        pub async fn push_rating(&self, rating: &Value) -> (StatusCode, Value) {
            self.raw(
                Method::POST,
                "/api/v1/ratings",
                Some(&self.channel_token),
                Some(rating),
            )
            .await
        }

        /// Pushes a negative rating handled at 沙坝镇便民服务中心 and returns its case id.
        pub async fn new_case(&self, source_id: &str) -> String {
            let (status, body) = self
                .push_rating(&rating(source_id, "dissatisfied", "mobile"))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["case_id"].as_str().unwrap().to_owned()
        }

        /// The case as `user` sees it.
        pub async fn case(&self, user: &str, id: &str) -> Value {
            let (status, body) = self
                .call(user, Method::GET, &format!("/api/v1/cases/{id}"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }

        /// Takes an action at the case's current version; returns status and body.
        pub async fn act(
            &self,
            user: &str,
            id: &str,
            action: &str,
            fields: Value,
        ) -> (StatusCode, Value) {
            let version = self.case("admin", id).await["version"].as_i64().unwrap();
            self.call(
                user,
                Method::POST,
                &format!("/api/v1/cases/{id}/actions"),
                Some(json!({"action": action, "version": version, "fields": fields})),
            )
            .await
        }

        /// Accepts and transfers a case to 沙坝镇社会保障服务所.
        pub async fn to_rectifying(&self, id: &str) {
            self.step("center", id, "accept", json!({})).await;
            let case = self
                .step("center", id, "transfer", json!({"unit": "shaba-social"}))
                .await;
            assert_eq!(case["unit"], "shaba-social");
        }

        /// Uploads a file to a case or work item (`subject` is `cases` or `tasks`) as `user`, in a
        /// multipart body with one part named `file`; returns status and body.
        pub async fn upload(
            &self,
            user: &str,
            subject: &str,
            id: &str,
            name: &str,
            bytes: Vec<u8>,
        ) -> (StatusCode, Value) {
            let token = self.token(user).await;
            let (content_type, body) = crate::multipart(&[], ("file", name, &bytes));
            let resp = self
                .client
                .post(format!("{}/api/v1/{subject}/{id}/attachments", self.base))
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }

        /// Attaches a photo to the case as 社保所's staff and answers the `evidence` citing it.
        pub async fn evidence(&self, id: &str) -> Value {
            let (status, body) = self
                .upload("unit", "cases", id, "整改后现场照片.png", png(id))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            json!([body["id"]])
        }

        /// The fields `f` of `action` with the evidence the shipped workflow asks of it (an appeal, a
        /// rectification whose outcome is 已整改, 限期整改完成): a photo attached to the case first.
        pub async fn cited(&self, id: &str, action: &str, mut f: Value) -> Value {
            let needs = match action {
                "appeal" | "complete_scheduled" => true,
                "rectify" => f["outcome"] == "rectified",
                _ => false,
            };
            if needs && f.get("evidence").is_none() {
                f["evidence"] = self.evidence(id).await;
            }
            f
        }

        /// Takes a case through rectification (with its 整改佐证材料) and the return visit to the
        /// rater's review.
        pub async fn to_review(&self, id: &str) {
            self.to_rectifying(id).await;
            let mut rectify = json!({"finding": "partly_true", "measures": "补充一次性告知单", "outcome": "rectified"});
            rectify["evidence"] = self.evidence(id).await;
            self.step("unit", id, "rectify", rectify).await;
            // With a public reply, as an anonymous rater's case needs.
            let feedback = json!({"method": "phone", "summary": "已电话回访", "public_reply": "已补充一次性告知单。"});
            let case = self.step("unit", id, "feedback", feedback).await;
            assert_eq!(case["state"], "pending_review");
        }

        /// Takes an action that must succeed; returns the new case.
        pub async fn step(&self, user: &str, id: &str, action: &str, fields: Value) -> Value {
            let (status, body) = self.act(user, id, action, fields).await;
            assert_eq!(status, StatusCode::OK, "{user} {action}: {body}");
            body
        }
    }

    /// The bytes of a PNG file (its signature and a header chunk), distinct for each `seed`.
    pub fn png(seed: &str) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
        bytes.extend(seed.as_bytes());
        bytes
    }

    /// A rating in the JSON of docs/API.md.
    pub fn rating(source_id: &str, level: &str, channel: &str) -> Value {
        json!({"source":"yukuaiban","source_id":source_id,"project_no":format!("500114-2021-{source_id}"),
         "service_code":"11500114MB1234567X4000117001","service_name":"城乡居民基本养老保险参保登记",
         "unit_code":"shaba-center","region_code":"500114112","channel":channel,"level":level,
         "rated_at":"2021-05-06T10:00:00+08:00","assess_number":1,
         "rater":{"type":"individual","real_name":true,"name":"张三","phone":"13800001234","email":"zhangsan@example.org"},
         "staff":["李四"],"indicators":{"overall":2,"efficiency":2},"comment":"材料要求反复变化"})
    }
}

pub mod pages {
    //! A browser's view of the pages without a browser: a session cookie, forms posted with their
    //! CSRF token, redirects not followed (so each answer can be checked).

    use reqwest::StatusCode;
    use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

    use super::api::{PASSWORD, TestApp};

    /// An answer: status, `Location` (for redirects) and body.
    #[derive(Debug)]
    pub struct Page {
        pub status: StatusCode,
        pub location: Option<String>,
        pub html: String,
    }

    impl Page {
        /// The CSRF token of the page's first form.
        pub fn csrf(&self) -> String {
            hidden(&self.html, "csrf").unwrap_or_else(|| panic!("no CSRF token in {}", self.html))
        }
    }

    /// The value of the first hidden input named `name`.
    pub fn hidden(html: &str, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker)? + marker.len();
        let end = html[start..].find('"')?;
        Some(html[start..start + end].to_owned())
    }

    /// A signed-in browser (or not yet: `cookies` empty).
    #[derive(Debug)]
    pub struct Browser<'a> {
        /// The site's `http://127.0.0.1:PORT`.
        pub base: &'a str,
        client: reqwest::Client,
        cookies: Vec<(String, String)>,
    }

    impl<'a> Browser<'a> {
        /// A browser without cookies.
        pub fn new(app: &'a TestApp) -> Self {
            Self::at(&app.base)
        }

        /// A browser without cookies, on the site at `base` (a `bihuan serve` of a test).
        pub fn at(base: &'a str) -> Self {
            Self {
                base,
                client: crate::http()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap(),
                cookies: Vec::new(),
            }
        }

        /// Signs in through the sign-in page as a seeded user.
        pub async fn signed_in(app: &'a TestApp, user: &str) -> Self {
            Self::signed_in_at(&app.base, user).await
        }

        /// Signs in through the sign-in page of the site at `base` as a seeded user.
        pub async fn signed_in_at(base: &'a str, user: &str) -> Self {
            let mut browser = Self::at(base);
            let login = browser.get("/login").await;
            let answer = browser
                .post(
                    "/login",
                    &[
                        ("csrf", &login.csrf()),
                        ("username", user),
                        ("password", PASSWORD),
                        ("next", "/"),
                    ],
                )
                .await;
            assert_eq!(
                answer.status,
                StatusCode::SEE_OTHER,
                "{user} signs in: {}",
                answer.html
            );
            assert!(browser.cookie("bihuan_session").is_some());
            browser
        }

        /// The value of a cookie the site set.
        pub fn cookie(&self, name: &str) -> Option<&str> {
            self.cookies
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        /// Forgets a cookie.
        pub fn drop_cookie(&mut self, name: &str) {
            self.cookies.retain(|(n, _)| n != name);
        }

        /// The `Cookie` header of the cookies held.
        fn cookie_header(&self) -> String {
            self.cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        }

        async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
            let header = self.cookie_header();
            let req = if header.is_empty() {
                req
            } else {
                req.header(COOKIE, header)
            };
            let resp = req.send().await.unwrap();
            for set in resp.headers().get_all(SET_COOKIE) {
                let c = cookie::Cookie::parse(set.to_str().unwrap().to_owned()).unwrap();
                self.cookies.retain(|(n, _)| n != c.name());
                let expired = c.max_age().is_some_and(|a| a.is_zero()) || c.value().is_empty();
                if !expired {
                    self.cookies
                        .push((c.name().to_owned(), c.value().to_owned()));
                }
            }
            Page {
                status: resp.status(),
                location: resp
                    .headers()
                    .get(LOCATION)
                    .map(|l| l.to_str().unwrap().to_owned()),
                html: resp.text().await.unwrap(),
            }
        }

        /// Opens a page.
        pub async fn get(&mut self, path: &str) -> Page {
            let req = self.client.get(format!("{}{path}", self.base));
            self.send(req).await
        }

        /// Posts a form.
        pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
            let req = self
                .client
                .post(format!("{}{path}", self.base))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).unwrap());
            self.send(req).await
        }

        /// Posts a multipart form (a file upload): text fields and one file.
        pub async fn post_file(
            &mut self,
            path: &str,
            fields: &[(&str, &str)],
            file: (&str, &str, &[u8]),
        ) -> Page {
            let (content_type, body) = crate::multipart(fields, file);
            let req = self
                .client
                .post(format!("{}{path}", self.base))
                .header(CONTENT_TYPE, content_type)
                .body(body);
            self.send(req).await
        }

        /// Fetches a resource with the session cookie (an export, a chart): status, content type, bytes.
        pub async fn fetch(&mut self, path: &str) -> (StatusCode, String, Vec<u8>) {
            let header = self.cookie_header();
            let resp = self
                .client
                .get(format!("{}{path}", self.base))
                .header(COOKIE, header)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let kind = resp
                .headers()
                .get(CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, kind, resp.bytes().await.unwrap().to_vec())
        }
    }
}

/// A real SMTP server in-process: the SMTP protocol of the `mailin` crate (the engine of
/// mailin-embedded) served over TCP, a thread per connection; it keeps every message it accepts, raw,
/// for the tests to parse. It can be stopped (the port then refuses connections) and started again.
pub mod smtp {
    use std::io::{BufRead, BufReader, BufWriter, Write};
    use std::net::{IpAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use mail_parser::{Message, MessageParser};
    use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder, response};

    /// A message as the server received it.
    #[derive(Debug, Clone)]
    pub struct Received {
        /// The envelope sender.
        pub from: String,
        /// The envelope recipients, sorted.
        pub to: Vec<String>,
        /// The user that logged in, if any.
        pub user: Option<String>,
        /// The message as sent (headers and MIME body).
        pub raw: Vec<u8>,
    }

    impl Received {
        fn parsed(&self) -> Message<'_> {
            MessageParser::default()
                .parse(&self.raw)
                .expect("a parsable message")
        }

        /// The decoded subject.
        pub fn subject(&self) -> String {
            self.parsed().subject().unwrap_or_default().to_owned()
        }

        /// The decoded plain-text part.
        pub fn text(&self) -> String {
            self.parsed()
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default()
        }

        /// The decoded HTML part.
        pub fn html(&self) -> String {
            self.parsed()
                .body_html(0)
                .map(|t| t.into_owned())
                .unwrap_or_default()
        }

        /// The Message-ID, without brackets.
        pub fn message_id(&self) -> String {
            self.parsed().message_id().unwrap_or_default().to_owned()
        }

        /// The raw header block as text (to check the encoding of the subject).
        pub fn raw_headers(&self) -> String {
            let text = String::from_utf8_lossy(&self.raw);
            text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
        }
    }

    /// A held answer: the server has the message and waits before it says 250.
    #[derive(Debug)]
    struct Hold {
        arrived: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    }

    struct Collector {
        inbox: Arc<Mutex<Vec<Received>>>,
        hold: Arc<Mutex<Option<Hold>>>,
        login: Option<(String, String)>,
        user: Option<String>,
        from: String,
        to: Vec<String>,
        data: Vec<u8>,
    }

    impl Handler for Collector {
        fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
            self.from = from.to_owned();
            self.to.clear();
            self.data.clear();
            response::OK
        }

        fn rcpt(&mut self, to: &str) -> Response {
            self.to.push(to.to_owned());
            response::OK
        }

        fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
            self.data.extend_from_slice(buf);
            Ok(())
        }

        fn data_end(&mut self) -> Response {
            let held = self.hold.lock().unwrap().take();
            if let Some(hold) = held {
                let _ = hold.arrived.send(());
                let _ = hold.release.recv();
            }
            let mut to = std::mem::take(&mut self.to);
            to.sort();
            self.inbox.lock().unwrap().push(Received {
                from: std::mem::take(&mut self.from),
                to,
                user: self.user.clone(),
                raw: std::mem::take(&mut self.data),
            });
            response::OK
        }

        fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
            self.auth_login(user, password)
        }

        fn auth_login(&mut self, user: &str, password: &str) -> Response {
            match &self.login {
                Some((u, p)) if u == user && p == password => {
                    self.user = Some(user.to_owned());
                    response::AUTH_OK
                }
                _ => response::INVALID_CREDENTIALS,
            }
        }
    }

    /// A running server.
    #[derive(Debug, Clone)]
    pub struct SmtpServer {
        /// Its port on 127.0.0.1.
        pub port: u16,
        inbox: Arc<Mutex<Vec<Received>>>,
        hold: Arc<Mutex<Option<Hold>>>,
        stopped: Arc<AtomicBool>,
    }

    impl SmtpServer {
        /// Starts a server on a free port.
        pub fn start() -> Self {
            Self::start_on(0, None)
        }

        /// Starts a server on `port` (0: a free one); with `login`, it asks clients to log in with
        /// that user and password.
        pub fn start_on(port: u16, login: Option<(&str, &str)>) -> Self {
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
            let port = listener.local_addr().unwrap().port();
            let inbox = Arc::new(Mutex::new(Vec::new()));
            let hold = Arc::new(Mutex::new(None));
            let stopped = Arc::new(AtomicBool::new(false));
            let mut builder = SessionBuilder::new("smtp.test");
            let login = login.map(|(u, p)| (u.to_owned(), p.to_owned()));
            if login.is_some() {
                builder
                    .enable_auth(AuthMechanism::Plain)
                    .insecure_enable_plaintext_auth();
            }
            let (accepting, server_inbox, server_hold) =
                (stopped.clone(), inbox.clone(), hold.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if accepting.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let collector = Collector {
                        inbox: server_inbox.clone(),
                        hold: server_hold.clone(),
                        login: login.clone(),
                        user: None,
                        from: String::new(),
                        to: Vec::new(),
                        data: Vec::new(),
                    };
                    let builder = builder.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &builder, collector);
                    });
                }
            });
            Self {
                port,
                inbox,
                hold,
                stopped,
            }
        }

        /// Holds the answer to the next message: the server keeps it but says 250 only once
        /// `release` is sent to. `arrived` hears when it came.
        pub fn hold_next(&self) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
            let (arrived, arrived_rx) = std::sync::mpsc::channel();
            let (release_tx, release) = std::sync::mpsc::channel();
            *self.hold.lock().unwrap() = Some(Hold { arrived, release });
            (arrived_rx, release_tx)
        }

        /// Stops accepting: the port refuses connections from now on.
        pub fn stop(&self) {
            self.stopped.store(true, Ordering::SeqCst);
            // Wake the accepting thread so it drops the listener.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }

        /// A port nothing listens on (yet): a mail server that is down.
        pub fn free_port() -> u16 {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        }

        /// `smtp://127.0.0.1:PORT`.
        pub fn url(&self) -> String {
            format!("smtp://127.0.0.1:{}", self.port)
        }

        /// The messages received since the last call.
        pub fn take(&self) -> Vec<Received> {
            std::mem::take(&mut *self.inbox.lock().unwrap())
        }
    }

    /// One SMTP session over a connection.
    fn serve(
        stream: TcpStream,
        builder: &SessionBuilder,
        collector: Collector,
    ) -> std::io::Result<()> {
        let remote = stream.peer_addr()?.ip();
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = BufWriter::new(stream);
        let mut session = builder.build(remote, collector);
        session.greeting().write_to(&mut writer)?;
        writer.flush()?;
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let response = session.process(&line);
            match response.action {
                Action::NoReply => continue,
                Action::Close => {
                    response.write_to(&mut writer)?;
                    writer.flush()?;
                    return Ok(());
                }
                Action::Reply | Action::UpgradeTls => {
                    response.write_to(&mut writer)?;
                    writer.flush()?;
                }
            }
        }
    }
}
