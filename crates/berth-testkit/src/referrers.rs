//! A front for a real registry that lacks the OCI 1.1 referrers API (Debian's
//! `docker-registry` has none): it answers `GET /v2/<name>/referrers/<digest>` from what the
//! test registered, as the distribution spec says (an image index of descriptors, empty for
//! a subject without referrers), and forwards every other request to the registry unchanged,
//! one connection per request.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::receiver::read_request;

/// A running front. It stops with the test process.
pub struct ReferrersFront {
    /// `127.0.0.1:PORT`: the registry to name in image references.
    pub address: String,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    /// (repository, subject digest) → descriptors, in the order added.
    referrers: HashMap<(String, String), Vec<serde_json::Value>>,
    /// Paths of the referrers requests answered, in order.
    asked: Vec<String>,
}

impl ReferrersFront {
    /// Starts on a free loopback port in front of the plain-HTTP registry at `upstream`.
    pub fn start(upstream: &str) -> ReferrersFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("local address").to_string();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let accepting = Arc::clone(&shared);
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&accepting);
                let upstream = upstream.clone();
                std::thread::spawn(move || serve(stream, &upstream, &shared));
            }
        });
        ReferrersFront { address, shared }
    }

    /// Lists `descriptor` (an OCI descriptor with `artifactType`) as a referrer of `subject`
    /// in `repository` from now on.
    pub fn add(&self, repository: &str, subject: &str, descriptor: serde_json::Value) {
        lock(&self.shared)
            .referrers
            .entry((repository.to_string(), subject.to_string()))
            .or_default()
            .push(descriptor);
    }

    /// The referrers requests answered so far (their paths), in order.
    pub fn asked(&self) -> Vec<String> {
        lock(&self.shared).asked.clone()
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Answers one request and closes the connection (`connection: close` both ways).
fn serve(stream: TcpStream, upstream: &str, shared: &Mutex<Shared>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let Some((request, _)) = read_request(&mut reader) else {
        return;
    };
    if let Some((repository, subject)) = request
        .path
        .strip_prefix("/v2/")
        .and_then(|rest| rest.rsplit_once("/referrers/"))
    {
        let manifests = {
            let mut shared = lock(shared);
            shared.asked.push(request.path.clone());
            shared
                .referrers
                .get(&(repository.to_string(), subject.to_string()))
                .cloned()
                .unwrap_or_default()
        };
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        })
        .to_string();
        let _ = write!(
            writer,
            "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.index.v1+json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let Ok(mut forward) = TcpStream::connect(upstream) else {
        let _ = writer.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        return;
    };
    let target = if request.query.is_empty() {
        request.path.clone()
    } else {
        format!("{}?{}", request.path, request.query)
    };
    let mut head = format!("{} {target} HTTP/1.1\r\n", request.method);
    for (name, value) in &request.headers {
        if name != "connection" && name != "content-length" && name != "transfer-encoding" {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        request.body.len()
    ));
    if forward.write_all(head.as_bytes()).is_err() || forward.write_all(&request.body).is_err() {
        return;
    }
    // The registry closes after its answer (the request said `connection: close`, and Go's
    // server then says so in its answer too), so the answer is everything up to EOF.
    let mut answer = Vec::new();
    let _ = forward.read_to_end(&mut answer);
    let _ = writer.write_all(&answer);
}
