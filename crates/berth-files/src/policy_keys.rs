//! The policy's trusted keys from disk: each `signatures.keys[]` entry's PEM (inline, or a file
//! relative to the policy file, at most [`berth_trust::MAX_PEM_BYTES`]) parsed by berth-trust,
//! its fingerprint set on the policy, every problem reported at the key's file:line:column. The
//! CLI (`berth check`, `berth sync --policy`) and `berth serve` load keys through here alike.

use std::io::Read as _;
use std::path::Path;

use berth_core::catalog::diagnostic::{Diagnostic, Severity};
use berth_core::policy::{KeySource, Policy};
use berth_trust::TrustedKey;

/// Reads every key of `policy` (loaded from `policy_path`), sets each one's fingerprint, and
/// returns the keys with the problems found. A key with a problem verifies nothing; callers
/// treat any diagnostic as a refused policy.
pub fn read_keys(policy: &mut Policy, policy_path: &Path) -> (Vec<TrustedKey>, Vec<Diagnostic>) {
    let directory = policy_path.parent().unwrap_or(Path::new("."));
    let mut keys = Vec::new();
    let mut diagnostics = Vec::new();
    for (index, spec) in policy.keys_mut().iter_mut().enumerate() {
        let problem = |field: &str, message: String| Diagnostic {
            file: spec.at.file.clone(),
            line: spec.at.line,
            column: spec.at.column,
            field: format!("signatures.keys[{index}]{field}"),
            message,
            severity: Severity::Error,
        };
        let (pem, field) = match &spec.source {
            KeySource::Pem(pem) => (Ok(pem.clone()), ".pem"),
            KeySource::File(file) => (read_pem(&directory.join(file)), ".file"),
        };
        let pem = match pem {
            Ok(pem) => pem,
            Err(message) => {
                diagnostics.push(problem(field, message));
                continue;
            }
        };
        match TrustedKey::from_pem(&spec.name, &pem) {
            Ok(key) => {
                spec.fingerprint = Some(key.fingerprint().to_string());
                keys.push(key);
            }
            Err(error) => diagnostics.push(problem(field, error.to_string())),
        }
    }
    (keys, diagnostics)
}

fn read_pem(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut text = String::new();
    let limit = berth_trust::MAX_PEM_BYTES as u64;
    file.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if text.len() as u64 > limit {
        return Err(format!(
            "{}: over {limit} bytes, not a PEM public key",
            path.display()
        ));
    }
    Ok(text)
}
