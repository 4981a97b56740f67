//! The process environment, read once: the only place the binary looks at environment
//! variables, so that tests can hand commands a map instead.

use std::collections::HashMap;

/// Environment variables berth reads. See docs/configuration.md for the list.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// Captures the real process environment.
    pub fn capture() -> Environment {
        #[allow(clippy::disallowed_methods)]
        let vars = std::env::vars().collect();
        Environment { vars }
    }

    /// An environment of these variables only, for tests.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Environment {
        let vars = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Environment { vars }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .filter(|value| !value.is_empty())
            .cloned()
    }
}
