//! A real HTTP receiver for tests of what berth sends out (rebuild dispatches, notifications):
//! it listens on loopback, answers with the replies it was given, and records every request
//! whole so tests can check method, path, headers and body against the receiving API's
//! documentation. Signatures are checked with the `openssl` command, not with berth's code.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The part after `?`, as sent; empty without one.
    pub query: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The first header of this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One answer the receiver gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// How long to hold the answer back (a receiver that hangs, for crash tests).
    pub delay: Duration,
}

impl Reply {
    /// This status with one extra header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// This answer, held back for `delay`.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// This status with a body.
    pub fn with_body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }
}

impl From<u16> for Reply {
    fn from(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
}

struct Shared {
    replies: Vec<Reply>,
    received: Vec<Received>,
}

/// A running receiver. It stops with the test process.
pub struct Receiver {
    port: u16,
    shared: Arc<Mutex<Shared>>,
}

/// Requests larger than this are answered 413 and recorded without their body.
const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

impl Receiver {
    /// Starts on 127.0.0.1 at a free port. The replies are given in order, one per request;
    /// after the last, every request is answered 200.
    pub fn start(replies: Vec<Reply>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Mutex::new(Shared {
            replies,
            received: Vec::new(),
        }));
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || serve_connection(stream, &shared));
            }
        });
        Receiver { port, shared }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.shared).received.clone()
    }

    /// Waits until at least `count` requests arrived (or `timeout` passed) and returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.requests();
            if received.len() >= count || Instant::now() >= deadline {
                return received;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads requests off one connection (keep-alive) until the peer closes it.
fn serve_connection(stream: TcpStream, shared: &Mutex<Shared>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    while let Some((request, oversized)) = read_request(&mut reader) {
        let reply = {
            let mut shared = lock(shared);
            shared.received.push(request);
            if oversized {
                Reply::from(413)
            } else if shared.replies.is_empty() {
                Reply::from(200)
            } else {
                shared.replies.remove(0)
            }
        };
        std::thread::sleep(reply.delay);
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
            reply.status,
            reason(reply.status),
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(reply.body.as_bytes()).is_err()
        {
            return;
        }
    }
}

/// One HTTP/1.1 request: request line, headers, a `content-length` or chunked body.
pub(crate) fn read_request(reader: &mut impl BufRead) -> Option<(Received, bool)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (target, String::new()),
    };
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut body = Vec::new();
    let mut oversized = false;
    if find("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            if body.len() + size > BODY_BYTES_MAX {
                oversized = true;
            } else {
                body.extend_from_slice(&chunk[..size]);
            }
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().ok()?;
        if length > BODY_BYTES_MAX {
            oversized = true;
            std::io::copy(&mut reader.take(length as u64), &mut std::io::sink()).ok()?;
        } else {
            body = vec![0; length];
            reader.read_exact(&mut body).ok()?;
        }
    }
    if oversized {
        body.clear();
    }
    Some((
        Received {
            method,
            path,
            query,
            headers,
            body,
        },
        oversized,
    ))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Checks a request's Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature: v1,<base64>`, possibly several space-separated) with the HMAC-SHA256
/// that the `openssl` command computes over `{id}.{timestamp}.{body}` with `key`.
pub fn verify_standard_signature(key: &[u8], request: &Received) -> Result<(), String> {
    let id = request.header("webhook-id").ok_or("no webhook-id header")?;
    let timestamp = request
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp header")?;
    timestamp
        .parse::<i64>()
        .map_err(|_| format!("webhook-timestamp {timestamp:?} is not a number"))?;
    let signatures = request
        .header("webhook-signature")
        .ok_or("no webhook-signature header")?;
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = openssl_hmac_sha256_base64(key, &signed)?;
    let matches = signatures
        .split(' ')
        .filter_map(|one| one.strip_prefix("v1,"))
        .any(|one| one == expected);
    if matches {
        Ok(())
    } else {
        Err(format!(
            "webhook-signature {signatures:?} does not match v1,{expected}"
        ))
    }
}

fn openssl_hmac_sha256_base64(key: &[u8], data: &[u8]) -> Result<String, String> {
    use std::process::{Command, Stdio};
    let hex_key: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt"])
        .arg(format!("hexkey:{hex_key}"))
        .arg("-binary")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run openssl: {error}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(data)
        .map_err(|error| error.to_string())?;
    let output = child
        .wait_with_output()
        .map_err(|error| error.to_string())?;
    if !output.status.success() || output.stdout.len() != 32 {
        return Err(format!("openssl dgst failed: {:?}", output.status));
    }
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.encode(&output.stdout))
}
