//! Docker credential helpers: `docker-credential-NAME get`, the server URL on stdin, a JSON
//! answer `{"ServerURL","Username","Secret"}` on stdout (docker-credential-helpers' protocol).
//!
//! A helper is a program of someone else's, so its run is bounded: a deadline, a cap on what it
//! prints, no stdin beyond the URL, its stderr discarded (helpers print diagnostics there that may
//! hold secrets), and its stdout never repeated in an error. `Username` `<token>` means `Secret`
//! is an identity (refresh) token, as docker reads it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::auth::{Credentials, Secret};

/// A credential helper as a docker config names it, and where the program was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialHelper {
    /// `NAME` of `docker-credential-NAME`: what the user wrote, for messages.
    pub name: String,
    /// The program, found on `PATH` when the configuration was resolved; `None` when it was not
    /// there (an error only when the registry asks for credentials).
    pub program: Option<PathBuf>,
}

impl CredentialHelper {
    /// `docker-credential-NAME`, the program's name.
    pub fn program_name(&self) -> String {
        format!("docker-credential-{}", self.name)
    }
}

/// How long a helper may take and how much it may print.
#[derive(Debug, Clone)]
pub struct HelperLimits {
    pub timeout: Duration,
    pub output_bytes: usize,
}

impl Default for HelperLimits {
    fn default() -> Self {
        HelperLimits {
            timeout: Duration::from_secs(10),
            output_bytes: 64 << 10,
        }
    }
}

/// The server URL a helper is asked about: docker's key for Docker Hub, the host otherwise.
pub fn server_url(registry: &str) -> String {
    if registry == berth_core::reference::DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// Runs `helper get` for `server_url`. `Ok(None)`: the helper holds no credentials for it.
/// The error text names neither the output nor the secret; the caller adds helper and registry.
pub async fn get(
    helper: &CredentialHelper,
    server_url: &str,
    limits: &HelperLimits,
) -> Result<Option<Credentials>, String> {
    let program = helper
        .program
        .as_ref()
        .ok_or_else(|| "is not on PATH".to_string())?;
    let mut child = tokio::process::Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot be run ({}: {error})", program.display()))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let cap = limits.output_bytes;
    let run = async {
        // A helper that does not read its stdin must not block the write: ignore EPIPE.
        let _ = stdin.write_all(server_url.as_bytes()).await;
        drop(stdin);
        let mut output = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let read = stdout
                .read(&mut chunk)
                .await
                .map_err(|error| format!("cannot read its answer: {error}"))?;
            if read == 0 {
                break;
            }
            if output.len() + read > cap {
                return Err(format!("printed more than {cap} bytes"));
            }
            output.extend_from_slice(&chunk[..read]);
        }
        let status = child
            .wait()
            .await
            .map_err(|error| format!("cannot wait for it: {error}"))?;
        Ok((status, output))
    };
    let (status, output) = match tokio::time::timeout(limits.timeout, run).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(format!(
                "did not answer within {} s",
                limits.timeout.as_secs_f64()
            ));
        }
    };
    if !status.success() {
        // docker-credential-helpers' "not found" answer: exit 1, this message on stdout.
        if String::from_utf8_lossy(&output).contains("credentials not found") {
            return Ok(None);
        }
        return Err(match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_string(),
        });
    }
    parse_answer(&output)
}

/// `{"ServerURL":…,"Username":…,"Secret":…}` → credentials; `<token>` marks an identity token.
fn parse_answer(output: &[u8]) -> Result<Option<Credentials>, String> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(output)
        .map_err(|_| "answered something that is not its JSON".to_string())?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if answer.username == "<token>" {
        Credentials::IdentityToken(Secret::new(answer.secret))
    } else {
        Credentials::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_answers_and_identity_tokens() {
        let basic = parse_answer(br#"{"ServerURL":"r","Username":"u","Secret":"p"}"#).unwrap();
        assert!(matches!(basic, Some(Credentials::Basic { username, .. }) if username == "u"));
        let token = parse_answer(br#"{"ServerURL":"r","Username":"<token>","Secret":"t"}"#);
        assert!(matches!(token, Ok(Some(Credentials::IdentityToken(_)))));
        assert!(matches!(parse_answer(br#"{"Secret":""}"#), Ok(None)));
        assert!(parse_answer(b"secret-looking garbage").is_err());
        let message = parse_answer(b"hunter2").unwrap_err();
        assert!(!message.contains("hunter2"));
    }

    #[test]
    fn docker_hub_is_asked_under_dockers_key() {
        assert_eq!(server_url("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(server_url("ghcr.io"), "ghcr.io");
    }
}
