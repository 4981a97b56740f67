//! `/metrics` text read back for assertions: every sample by its name and labels as written,
//! after checking that each belongs to a family announced with `# HELP` and `# TYPE` (a
//! histogram's `_bucket`, `_sum` and `_count` to its histogram).

use std::collections::{BTreeMap, BTreeSet};

/// The samples of a Prometheus text exposition, by `name{labels}` exactly as written.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub BTreeMap<String, f64>);

impl Samples {
    /// Parses `text`; panics naming the line when a sample is malformed, repeated, or of a
    /// family without its `# HELP` and `# TYPE`.
    pub fn parse(text: &str) -> Samples {
        let mut helped = BTreeSet::new();
        let mut typed = BTreeMap::new();
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|line| !line.is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                helped.insert(name.to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split(' ');
                let name = words.next().unwrap_or_default().to_string();
                let kind = words.next().unwrap_or_default().to_string();
                typed.insert(name, kind);
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number in {line:?}"));
            let name = series.split('{').next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| typed.get(*base).is_some_and(|kind| kind == "histogram"))
                })
                .unwrap_or(name);
            assert!(
                helped.contains(family) && typed.contains_key(family),
                "{line:?}: its family {family} has no # HELP and # TYPE before it"
            );
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "{series} appears twice"
            );
        }
        Samples(samples)
    }

    /// The value of `series` (`name{labels}` as written), 0 when absent.
    pub fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or_default()
    }

    /// The sum of the samples of metric `name` whose labels contain every `label="value"` of
    /// `with`.
    pub fn sum(&self, name: &str, with: &[&str]) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                series.split('{').next() == Some(name)
                    && with.iter().all(|label| series.contains(label))
            })
            .map(|(_, value)| value)
            .sum()
    }
}
