//! A real browser for the dashboard's tests: Debian's `chromium`, headless, driven over the
//! Chrome DevTools Protocol on a pipe (`--remote-debugging-pipe`: JSON messages separated by
//! NUL bytes on file descriptors 3 and 4, so no WebSocket client is needed). It navigates,
//! reads the DOM, runs a line of script (to fill and submit a form as a person would) and
//! takes screenshots. Cookies live in the browser, as they would for a person.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// How long one protocol call or one page load may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A headless chromium with one page.
pub struct Browser {
    child: Child,
    commands: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    /// Events that arrived while waiting for a reply, oldest first.
    events: Vec<Value>,
    _profile: TempProfile,
}

/// The browser's own profile directory, removed on drop.
struct TempProfile(PathBuf);

impl Drop for TempProfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    /// Starts `chromium --headless` with a fresh profile and opens one page. Panics (naming
    /// the package to install) when there is no chromium.
    pub fn start() -> Browser {
        let found = Command::new("sh")
            .args(["-c", "command -v chromium"])
            .output()
            .is_ok_and(|output| output.status.success());
        assert!(
            found,
            "no chromium: scripts/testbed installs it (apt install chromium)"
        );
        let profile = std::env::temp_dir().join(format!(
            "berth-chromium-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        std::fs::create_dir_all(&profile).expect("a profile directory for chromium");
        // chromium reads commands on fd 3 and writes answers on fd 4: the shell points them at
        // this process's pipes, and sends chromium's own output to a log beside the profile.
        let script = format!(
            "exec chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
             --no-first-run --no-default-browser-check --hide-scrollbars \
             --window-size=1280,900 --user-data-dir={profile} --remote-debugging-pipe \
             about:blank 3<&0 4>&1 0</dev/null 1>{profile}.log 2>&1",
            profile = profile.display()
        );
        let mut child = Command::new("bash")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start chromium (apt install chromium): {error}")
            });
        let commands = child.stdin.take().expect("stdin is piped");
        let answers = child.stdout.take().expect("stdout is piped");
        let (send, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut answers = BufReader::new(answers);
            let mut message = Vec::new();
            while answers
                .read_until(0, &mut message)
                .is_ok_and(|read| read > 0)
            {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                    let _ = send.send(value);
                }
                message.clear();
            }
        });
        let mut browser = Browser {
            child,
            commands,
            messages,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: TempProfile(profile),
        };
        let target = browser.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = browser.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser.call("Page.enable", json!({}));
        browser
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("a message");
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .and_then(|()| self.commands.flush())
            .unwrap_or_else(|error| panic!("chromium stopped reading ({method}): {error}"));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|error| panic!("no answer from chromium to {method}: {error}"));
            if answer["id"] == id {
                if let Some(error) = answer.get("error") {
                    panic!("chromium refused {method}: {error}");
                }
                return answer["result"].clone();
            }
            if answer.get("method").is_some() {
                self.events.push(answer);
            }
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    /// One protocol call on the page; its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    /// Waits for the page's next `load` event.
    fn wait_for_load(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(at) = self
                .events
                .iter()
                .position(|event| event["method"] == "Page.loadEventFired")
            {
                self.events.drain(..=at);
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|error| panic!("the page did not load: {error}"));
            self.events.push(event);
        }
    }

    /// Opens `url` and waits until it has loaded.
    pub fn open(&mut self, url: &str) {
        self.events.clear();
        let navigated = self.call("Page.navigate", json!({"url": url}));
        if let Some(error) = navigated.get("errorText") {
            panic!("chromium could not open {url}: {error}");
        }
        self.wait_for_load();
    }

    /// Runs `script` on the page and returns its value.
    pub fn eval(&mut self, script: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": script, "returnByValue": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{script}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Runs `script`, which submits a form or follows a link, and waits for the next page.
    pub fn submit(&mut self, script: &str) {
        self.events.clear();
        self.eval(script);
        self.wait_for_load();
    }

    /// The page's address now (after redirects).
    pub fn location(&mut self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The DOM as chromium holds it, serialized (what `chromium --dump-dom` prints).
    pub fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The visible text of the page.
    pub fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the whole page, written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .expect("a base64 PNG");
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG from chromium");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("the screenshot directory");
        }
        std::fs::write(path, bytes).expect("the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.send_close();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn send_close(&mut self) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(&json!({"id": 0, "method": "Browser.close"}))?;
        bytes.push(0);
        self.commands.write_all(&bytes)
    }
}
