//! The one shared copy of test helpers: where the test bed (`scripts/testbed`) runs its
//! registries, with which credentials, and what it pushed (digests obtained from skopeo, an
//! implementation independent of berth's).

pub mod browser;
pub mod metrics;
pub mod receiver;
pub mod referrers;
mod serve;
pub use serve::ServeProcess;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The running test bed, as described by `$BERTH_TESTBED_DIR/env` and `images.json`.
#[derive(Debug)]
pub struct Testbed {
    pub dir: PathBuf,
    vars: HashMap<String, String>,
    /// `images.json`: image → expected digests, as skopeo reported them.
    pub images: serde_json::Value,
}

impl Testbed {
    /// The test bed, read once per test process. Panics with instructions when it is not running:
    /// registry tests must not silently pass without a registry.
    pub fn get() -> &'static Testbed {
        static TESTBED: OnceLock<Testbed> = OnceLock::new();
        TESTBED.get_or_init(|| {
            #[allow(clippy::disallowed_methods)]
            let dir = std::env::var("BERTH_TESTBED_DIR")
                .unwrap_or_else(|_| "/tmp/berth-testbed".to_string());
            let dir = PathBuf::from(dir);
            let env_file = dir.join("env");
            let text = std::fs::read_to_string(&env_file).unwrap_or_else(|error| {
                panic!(
                    "the test bed is not running ({}: {error}); start it with `scripts/testbed start`, \
                     or run the whole suite with `scripts/test`",
                    env_file.display()
                )
            });
            // scripts/postgres writes the PostgreSQL URL beside the registries' variables.
            let pg_text = std::fs::read_to_string(dir.join("pg.env")).unwrap_or_default();
            let vars = text
                .lines()
                .chain(pg_text.lines())
                .filter_map(|line| line.trim().strip_prefix("export "))
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| {
                    (key.to_string(), value.trim_matches(|c| c == '"' || c == '\'').to_string())
                })
                .collect();
            let images_file = dir.join("images.json");
            let images = std::fs::read(&images_file)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_else(|| panic!("{} is missing or not JSON", images_file.display()));
            Testbed { dir, vars, images }
        })
    }

    /// A variable from the env file (`BERTH_TEST_PLAIN_REGISTRY`, ...) or from `pg.env`
    /// (`BERTH_TEST_PG_URL`, when `scripts/postgres start` ran).
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("the test bed's env file has no {name}"))
    }

    /// The plain-HTTP registry, `127.0.0.1:PORT`.
    pub fn plain(&self) -> &str {
        self.var("BERTH_TEST_PLAIN_REGISTRY")
    }

    /// The TLS + basic-auth registry, `127.0.0.1:PORT`.
    pub fn tls(&self) -> &str {
        self.var("BERTH_TEST_TLS_REGISTRY")
    }

    /// The token-auth registry, `127.0.0.1:PORT` (TLS with the test bed's CA; bearer tokens
    /// from [`Testbed::token_realm`]). It holds berth/base:1 and :latest, berth/child:1 and
    /// berth/multi:1, with the digests of [`Testbed::digest`].
    pub fn token_registry(&self) -> &str {
        self.var("BERTH_TEST_TOKEN_REGISTRY")
    }

    /// The token issuer's realm (`https://127.0.0.1:PORT/token`).
    pub fn token_realm(&self) -> &str {
        self.var("BERTH_TEST_TOKEN_REALM")
    }

    /// The token registry's user that may pull, push and delete everywhere, and its password.
    pub fn token_user(&self) -> (&str, &str) {
        (
            self.var("BERTH_TEST_TOKEN_USER"),
            self.var("BERTH_TEST_TOKEN_PASSWORD"),
        )
    }

    /// A user that may only pull from berth/*, and its password.
    pub fn token_reader(&self) -> (&str, &str) {
        (
            self.var("BERTH_TEST_TOKEN_READER"),
            self.var("BERTH_TEST_TOKEN_READER_PASSWORD"),
        )
    }

    /// A user that may pull from berth/* with tokens that live two seconds, and its password.
    pub fn token_brief(&self) -> (&str, &str) {
        (
            self.var("BERTH_TEST_TOKEN_BRIEF"),
            self.var("BERTH_TEST_TOKEN_BRIEF_PASSWORD"),
        )
    }

    /// The pushing user's refresh token (what docker stores as `identitytoken`).
    pub fn token_refresh(&self) -> &str {
        self.var("BERTH_TEST_TOKEN_REFRESH")
    }

    /// The one repository anonymous clients may pull from the token registry.
    pub fn token_public_repository(&self) -> &str {
        self.var("BERTH_TEST_TOKEN_PUBLIC")
    }

    /// The issuer's log: one JSON line per token request (user, scopes, what it granted).
    pub fn token_issuer_log(&self) -> PathBuf {
        PathBuf::from(self.var("BERTH_TEST_TOKEN_ISSUER_LOG"))
    }

    /// The directory holding the test bed's CA as `ca.crt` (skopeo's `--cert-dir`).
    /// The TLS registry's serving certificate and key (a leaf for 127.0.0.1 signed by
    /// `BERTH_TEST_CA`), for tests that serve TLS themselves.
    pub fn server_cert_pair(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        let state = std::path::Path::new(self.var("BERTH_TEST_CA"))
            .parent()
            .and_then(std::path::Path::parent)
            .expect("the CA file is in the test bed's certs directory");
        (state.join("tls/server.crt"), state.join("tls/server.key"))
    }

    pub fn cert_dir(&self) -> String {
        std::path::Path::new(self.var("BERTH_TEST_CA"))
            .parent()
            .and_then(|dir| dir.to_str())
            .expect("the CA file has a UTF-8 parent directory")
            .to_string()
    }

    /// Expected facts of an image (`berth/base:1`) as recorded by the test bed.
    pub fn image(&self, name: &str) -> &serde_json::Value {
        let found = self
            .images
            .get(name)
            .unwrap_or_else(|| panic!("images.json has no {name}"));
        found.get(self.plain()).unwrap_or(found)
    }

    /// The expected top-level digest of an image.
    pub fn digest(&self, name: &str) -> String {
        self.image(name)["digest"]
            .as_str()
            .unwrap_or_else(|| panic!("images.json: {name} has no digest"))
            .to_string()
    }
}

/// The SHA-256 of `bytes` in lowercase hex, computed by the `sha256sum` command (not by berth):
/// an API token's hash as an operator configures it (`printf %s TOKEN | sha256sum`), a blob's
/// digest without `sha256:`.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(bytes.as_ref())
        .expect("write to sha256sum");
    let output = child.wait_with_output().expect("sha256sum");
    assert!(output.status.success(), "sha256sum failed");
    let hex = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(hex.len(), 64, "sha256sum printed {hex:?}");
    hex
}

/// Runs `skopeo` with arguments and returns its stdout; panics with stderr on failure.
pub fn skopeo(args: &[&str]) -> String {
    let output = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed by scripts/testbed");
    assert!(
        output.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("skopeo prints UTF-8")
}

/// The digest a reference (in a plain-HTTP registry) resolves to now, as skopeo sees it.
pub fn digest_at(reference: &str) -> String {
    skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{reference}"),
    ])
    .trim()
    .to_string()
}

/// A free loopback port (bound and released: nothing else on this machine takes it at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A registry of a test's own (same binary as the test bed's), on a free loopback port, with
/// its own storage: for tests that delete, break or stop a registry. Stopped when dropped.
pub struct OwnRegistry {
    child: Option<std::process::Child>,
    pub address: String,
    dir: PathBuf,
    config: PathBuf,
}

impl OwnRegistry {
    /// Starts a plain-HTTP registry with deletes enabled and waits until it answers.
    pub fn start() -> OwnRegistry {
        OwnRegistry::start_on(free_port(), "")
    }

    /// Starts one on `port` (from [`free_port`], so that a test can name it before it runs),
    /// with `extra` appended to its config.yml (a `notifications:` block, say).
    pub fn start_on(port: u16, extra: &str) -> OwnRegistry {
        let testbed = Testbed::get();
        let address = format!("127.0.0.1:{port}");
        let dir = testbed.dir.join(format!("own-registry-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("own registry directory");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: \"{address}\", secret: own}}\n{extra}",
                dir.join("storage").display()
            ),
        )
        .expect("own registry config");
        let mut registry = OwnRegistry {
            child: None,
            address,
            dir,
            config,
        };
        registry.restart();
        registry
    }

    /// Starts the registry again after [`OwnRegistry::stop`], with the same storage.
    pub fn restart(&mut self) {
        let child = std::process::Command::new(Testbed::get().var("BERTH_TEST_REGISTRY_BIN"))
            .arg("serve")
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(&self.address).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("the registry on {} did not start", self.address);
    }

    /// Kills the registry (SIGKILL): it is down, as a crashed registry is.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Copies an image from the test bed's plain registry into this one, digests preserved.
    pub fn copy_from_testbed(&self, source: &str, destination: &str) {
        let plain = Testbed::get().plain();
        skopeo(&[
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{plain}/{source}"),
            &format!("docker://{}/{destination}", self.address),
        ]);
    }
}

impl OwnRegistry {
    /// Uploads one blob into `repository` and no manifest: the registry's `_catalog` lists the
    /// repository, its tag list answers 404 (as after an interrupted push, or what distribution
    /// keeps of a repository whose content went).
    /// PUTs a manifest under `tag` with curl, its Content-Type the body's `mediaType` (an OCI
    /// image manifest when it names none); returns its digest as the registry answered it
    /// (`Docker-Content-Digest`).
    pub fn put_manifest(&self, repository: &str, tag: &str, body: &[u8]) -> String {
        let media_type = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| value["mediaType"].as_str().map(str::to_string))
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string());
        let file = self.dir.join(format!(
            "manifest-{}",
            DERIVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&file, body).unwrap();
        let output = std::process::Command::new("curl")
            .args(["-sS", "--fail", "-X", "PUT", "-D", "-", "-o", "/dev/null"])
            .arg("-H")
            .arg(format!("Content-Type: {media_type}"))
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!(
                "http://{}/v2/{repository}/manifests/{tag}",
                self.address
            ))
            .output()
            .expect("curl is installed by scripts/testbed");
        assert!(
            output.status.success(),
            "PUT {tag}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| value.trim().to_string())
            })
            .expect("the registry answers with Docker-Content-Digest")
    }

    /// Uploads a blob of "hello" only (a repository with content but no manifest).
    pub fn push_blob_only(&self, repository: &str) {
        self.put_blob(repository, b"hello");
    }

    /// Uploads `bytes` as a blob (POST then PUT with its digest, computed by `sha256sum`, not
    /// by berth); returns the digest.
    pub fn put_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let file = self.dir.join(format!(
            "blob-{}",
            DERIVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&file, bytes).unwrap();
        let digest = format!("sha256:{}", sha256_hex(bytes));
        let curl = |args: &[&str]| {
            let output = std::process::Command::new("curl")
                .args(["-sS", "--fail", "-D", "-", "-o", "/dev/null"])
                .args(args)
                .output()
                .expect("curl is installed by scripts/testbed");
            assert!(
                output.status.success(),
                "curl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let headers = curl(&[
            "-X",
            "POST",
            &format!("http://{}/v2/{repository}/blobs/uploads/", self.address),
        ]);
        let location = headers
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("location")
                    .then(|| value.trim().to_string())
            })
            .expect("the registry answers an upload start with a Location");
        let separator = if location.contains('?') { '&' } else { '?' };
        curl(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("{location}{separator}digest={digest}"),
        ]);
        digest
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds an image on top of `from` (a `docker://` reference skopeo can read without TLS
/// verification): one more layer holding `path` with `content`, made with umoci (rootless), and
/// pushes it to `to`. What a CI job rebuilding an image on its base does, with real tools.
pub fn derive_image(from: &str, to: &str, path: &str, content: &str) {
    let work = std::env::temp_dir().join(format!(
        "berth-derive-{}-{}",
        std::process::id(),
        DERIVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let layout = format!("{}:image", work.join("layout").display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{from}"),
        &format!("oci:{layout}"),
    ]);
    let bundle = work.join("bundle");
    let umoci = |args: &[&str]| {
        let output = std::process::Command::new("umoci")
            .args(args)
            .output()
            .expect("umoci is installed by scripts/testbed");
        assert!(
            output.status.success(),
            "umoci {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let bundle_text = bundle.display().to_string();
    umoci(&["unpack", "--rootless", "--image", &layout, &bundle_text]);
    let file = bundle.join("rootfs").join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, content).unwrap();
    umoci(&["repack", "--image", &layout, &bundle_text]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{layout}"),
        &format!("docker://{to}"),
    ]);
    let _ = std::fs::remove_dir_all(&work);
}

static DERIVED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
