//! The process environment, read once: the only place the binary looks at environment
//! variables, so that tests can hand commands a map instead.

use std::collections::HashMap;

/// Environment variables berth reads. See docs/configuration.md for the list.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
    /// The machine's name (the last fallback for who is acting); not an environment variable,
    /// but read once here with them.
    hostname: Option<String>,
}

impl Environment {
    /// Captures the real process environment.
    pub fn capture() -> Environment {
        #[allow(clippy::disallowed_methods)]
        let vars = std::env::vars().collect();
        let hostname = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|path| std::fs::read_to_string(path).ok())
            .map(|text| text.trim().to_string())
            .filter(|name| !name.is_empty());
        Environment { vars, hostname }
    }

    /// An environment of these variables only, for tests.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Environment {
        let vars = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Environment {
            vars,
            hostname: None,
        }
    }

    /// The same environment on a machine of this name, for tests.
    #[cfg(test)]
    pub fn on_host(mut self, hostname: &str) -> Environment {
        self.hostname = Some(hostname.to_string());
        self
    }

    /// The machine's name, when it could be read.
    pub fn hostname(&self) -> Option<String> {
        self.hostname.clone()
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .filter(|value| !value.is_empty())
            .cloned()
    }
}
