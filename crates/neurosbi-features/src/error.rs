//! Typed errors: configuration mistakes (unknown feature names, bad parameters) and
//! recordings that cannot be analysed at all (a failed simulation).

use thiserror::Error;

/// An error building a [`crate::FeatureSet`] or running it on a batch.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FeatureError {
    /// A feature name that the catalogue does not know.
    #[error("unknown feature `{name}`{}", suggest(.close_matches))]
    UnknownFeature {
        /// The name as written.
        name: String,
        /// Catalogue names within a small edit distance, best first.
        close_matches: Vec<String>,
    },
    /// A parameter the feature does not take.
    #[error("feature `{feature}` has no parameter `{param}`{}; it takes: {}", suggest(.close_matches), .accepted.join(", "))]
    UnknownParameter {
        /// Feature name.
        feature: String,
        /// Parameter as written.
        param: String,
        /// Accepted parameter names within a small edit distance.
        close_matches: Vec<String>,
        /// All accepted parameter names.
        accepted: Vec<String>,
    },
    /// A parameter whose value is out of range or of the wrong kind.
    #[error("feature `{feature}`, parameter `{param}`: {reason}")]
    BadParameter {
        /// Feature name.
        feature: String,
        /// Parameter name.
        param: String,
        /// What was expected.
        reason: String,
    },
    /// A feature specification that does not parse, e.g. `mean(window=`.
    #[error("cannot parse feature specification `{spec}` at character {position}: {reason}")]
    Syntax {
        /// The specification as written.
        spec: String,
        /// Character offset of the problem.
        position: usize,
        /// What was expected.
        reason: String,
    },
    /// The batch does not divide into rows.
    #[error("batch layout: {0}")]
    Layout(String),
}

fn suggest(matches: &[String]) -> String {
    if matches.is_empty() {
        String::new()
    } else {
        format!(
            " (did you mean {}?)",
            matches
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Why a whole recording cannot be analysed. This is what a failed simulation looks
/// like to this crate, as opposed to a feature that is merely undefined for valid data.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum RecordingError {
    /// The trace has no samples.
    #[error("recording is empty")]
    Empty,
    /// A sample is NaN or infinite (the simulation blew up).
    #[error("sample {index} is not finite ({value})")]
    NonFinite {
        /// First offending sample.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// The sampling interval is not a positive finite number.
    #[error("sampling interval dt = {0} must be positive and finite")]
    BadDt(f64),
    /// The stimulus window is not finite or ends before it starts.
    #[error("stimulus window ({on}, {off}) must be finite with on <= off")]
    BadStimulus {
        /// Stimulus onset.
        on: f64,
        /// Stimulus offset.
        off: f64,
    },
    /// A spike time is not finite.
    #[error("spike time {index} is not finite")]
    NonFiniteSpike {
        /// Index in the spike train.
        index: usize,
    },
}

/// Levenshtein distance, used to suggest close matches for misspelt names.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Names among `candidates` close to `name`, best first (at most five).
pub(crate) fn close_matches<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(2);
    let lower = name.to_lowercase();
    let mut scored: Vec<(usize, String)> = candidates
        .filter_map(|c| {
            let d = edit_distance(name, c);
            let contains = c.to_lowercase().contains(&lower) && lower.len() >= 3;
            (d <= limit || contains)
                .then(|| (if contains { d.min(limit) } else { d }, c.to_string()))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ISI_CV", "isi_cv"), 0);
    }

    #[test]
    fn close_matches_orders_by_distance() {
        let c = close_matches(
            "spike_cont",
            ["spike_count", "spike_time", "mean"].into_iter(),
        );
        assert_eq!(c[0], "spike_count");
        assert!(!c.contains(&"mean".to_string()));
    }
}
