//! A running `berth serve` for end-to-end tests: started from a command the test builds (its
//! binary path is only known to the test crate), its JSON log read on a thread so the server
//! never blocks on a full pipe, its address learned from the "listening" line, killed on drop.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `berth --log-json serve ...` process.
pub struct ServeProcess {
    child: Child,
    /// `host:port` it listens on, from its "berth serve listening" log line.
    pub address: String,
    log: mpsc::Receiver<Value>,
}

impl ServeProcess {
    /// Spawns `command` (which must log JSON to stderr: `berth --log-json serve ...`) and
    /// waits up to 30 s for it to listen.
    pub fn start(mut command: Command) -> ServeProcess {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines, log) = mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line).unwrap_or(Value::String(line));
                // The receiver may be gone; keep draining regardless.
                let _ = lines.send(event);
            }
        });
        let mut server = ServeProcess {
            child,
            address: String::new(),
            log,
        };
        let event = server.wait_for_log("berth serve listening");
        server.address = event["fields"]["address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        server
    }

    /// The next log event whose message is `message`, within 30 s; panics with the events
    /// seen otherwise.
    pub fn wait_for_log(&self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            let event = self
                .log
                .recv_timeout(timeout)
                .unwrap_or_else(|error| panic!("no log {message:?} ({error}); seen: {seen:#?}"));
            if event["fields"]["message"] == message {
                return event;
            }
            seen.push(event);
        }
    }

    /// Its process id (to send it a signal).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to exit (after a signal) and returns how it exited.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child
            .wait()
            .unwrap_or_else(|error| panic!("waiting for berth serve: {error}"))
    }

    /// How it exited, if it has.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|error| panic!("checking on berth serve: {error}"))
    }

    /// GETs `path` over plain HTTP/1.0 and returns the status code and the body as JSON (a
    /// JSON string when it is not JSON); status 0 when the server does not answer.
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, &[], "")
    }

    /// Sends one plain HTTP/1.0 request with `headers` (`("Authorization", "Bearer x")`) and
    /// `body`; the status code and the body as [`ServeProcess::get`] returns them.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let (status, _, body) = self.exchange(method, path, headers, body);
        let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, body)
    }

    /// One HTTP/1.0 request: the status, the response's head (status line and headers) and
    /// its body as text; `(0, "", "")` when the server does not answer.
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        use std::io::{Read as _, Write as _};
        let Ok(mut stream) = std::net::TcpStream::connect(&self.address) else {
            return (0, String::new(), String::new());
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n", self.address);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body);
        if stream.write_all(request.as_bytes()).is_err() {
            return (0, String::new(), String::new());
        }
        let mut response = String::new();
        if stream.read_to_string(&mut response).is_err() {
            return (0, String::new(), String::new());
        }
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }

    /// Signs in to the dashboard with an API token's secret through `POST /ui/signin` and
    /// returns the session cookie (`berth_session=...`), having checked its attributes:
    /// HttpOnly, SameSite=Strict, Path=/ui, and eight hours' Max-Age.
    pub fn sign_in(&self, secret: &str) -> String {
        let (status, head, _) = self.exchange(
            "POST",
            "/ui/signin",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &format!("token={secret}"),
        );
        assert_eq!(status, 303, "signed in: {head}");
        let line = head
            .lines()
            .find_map(|line| line.strip_prefix("set-cookie: "))
            .unwrap_or_else(|| panic!("no cookie in {head}"));
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
            assert!(
                line.split("; ").any(|part| part == attribute),
                "{attribute} in {line}"
            );
        }
        line.split(';').next().unwrap_or_default().to_string()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {:?}", self.address))
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
