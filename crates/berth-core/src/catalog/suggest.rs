//! "Did you mean": the names closest to a mistyped one, by edit distance.

/// How many suggestions to offer at most.
pub const SUGGESTIONS_MAX: usize = 3;

/// The candidates closest to `target` (transpositions count as one edit; a candidate that starts
/// with what was typed counts as one edit away), best first, ties by name, at most `limit`.
pub fn closest<'a>(
    target: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<&'a str> {
    let target_lower = target.to_ascii_lowercase();
    let target_length = target_lower.chars().count();
    let threshold = (target_length / 3).max(2);
    let mut scored: Vec<(usize, &'a str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let starts_with = target_lower.len() >= 3
                && candidate
                    .get(..target_lower.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(&target_lower));
            if starts_with {
                return Some((1, candidate));
            }
            // The distance is at least the difference in length: skip the far ones cheaply.
            if candidate.len().abs_diff(target_lower.len()) > threshold * 4
                || candidate.chars().count().abs_diff(target_length) > threshold
            {
                return None;
            }
            let distance = edit_distance(&target_lower, &candidate.to_ascii_lowercase());
            (distance <= threshold).then_some((distance, candidate))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(limit)
        .map(|(_, candidate)| candidate)
        .collect()
}

/// Optimal string alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions, each costing one.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut rows = vec![0usize; (a.len() + 1) * width];
    for (j, cell) in rows.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[(i - 1) * width + j] + 1)
                .min(rows[i * width + j - 1] + 1)
                .min(rows[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[(i - 2) * width + j - 2] + 1);
            }
            rows[i * width + j] = best;
        }
    }
    rows[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let cases = [
            ("", "", 0),
            ("abc", "", 3),
            ("python3.11", "python3.11", 0),
            ("pyhton3.11", "python3.11", 1),
            ("python311", "python3.11", 1),
            ("node20", "node18", 2),
            ("kitten", "sitting", 3),
        ];
        for (a, b, expect) in cases {
            assert_eq!(edit_distance(a, b), expect, "{a} / {b}");
        }
    }

    #[test]
    fn suggests_the_closest_names() {
        let names = [
            "python3.11",
            "python3.12",
            "node20",
            "bookworm",
            "php8.2",
            "tf-python311",
        ];
        let cases: &[(&str, &[&str])] = &[
            ("pyhton3.11", &["python3.11", "python3.12"]),
            ("python", &["python3.11", "python3.12"]),
            ("Node20", &["node20"]),
            ("bookwrm", &["bookworm"]),
            ("ruby", &[]),
        ];
        for (typed, expect) in cases {
            assert_eq!(closest(typed, names, SUGGESTIONS_MAX), *expect, "{typed}");
        }
    }
}
