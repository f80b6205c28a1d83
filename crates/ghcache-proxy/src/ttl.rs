//! Per-operation freshness overrides from `operation_ttls`.

use std::time::Duration;

/// `{pattern: ttl}` rules. A pattern starting with `/` matches the whole
/// path (`*` one segment, `**` any number); without `/` it matches the last
/// segments of the path (`actions/runners`). The longest pattern wins.
#[derive(Debug, Clone, Default)]
pub struct OperationTtls {
    rules: Vec<(Vec<String>, bool, Duration)>,
}

impl OperationTtls {
    pub fn new<'a>(rules: impl IntoIterator<Item = (&'a str, Duration)>) -> Self {
        let mut rules: Vec<_> = rules
            .into_iter()
            .map(|(pattern, ttl)| {
                let anchored = pattern.starts_with('/');
                let segments = segments(pattern).map(str::to_owned).collect();
                (segments, anchored, ttl)
            })
            .collect();
        rules.sort_by_key(|(segments, _, _): &(Vec<String>, bool, Duration)| {
            std::cmp::Reverse(segments.len())
        });
        OperationTtls { rules }
    }

    pub fn lookup(&self, path: &str) -> Option<Duration> {
        let path: Vec<&str> = segments(path).collect();
        self.rules
            .iter()
            .find(|(pattern, anchored, _)| {
                if *anchored {
                    glob(pattern, &path)
                } else {
                    (0..path.len()).any(|start| tail_glob(pattern, &path[start..]))
                }
            })
            .map(|(_, _, ttl)| *ttl)
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
}

fn glob(pattern: &[String], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(p), _) if p == "**" => {
            (0..=path.len()).any(|skip| glob(&pattern[1..], &path[skip..]))
        }
        (Some(p), Some(s)) if p == "*" || p == s => glob(&pattern[1..], &path[1..]),
        _ => false,
    }
}

fn tail_glob(pattern: &[String], path: &[&str]) -> bool {
    pattern.len() == path.len() && pattern.iter().zip(path).all(|(p, s)| p == "*" || p == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_and_floating_patterns() {
        let ttls = OperationTtls::new([
            ("/repos/*/*/actions/runners", Duration::from_secs(30)),
            ("actions/runs", Duration::from_secs(10)),
            ("/orgs/**", Duration::from_secs(5)),
        ]);
        assert_eq!(
            ttls.lookup("/repos/a/b/actions/runners"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            ttls.lookup("/repos/a/b/actions/runs?page=2"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            ttls.lookup("/orgs/acme/actions/runners"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(ttls.lookup("/repos/a/b"), None);
        assert_eq!(ttls.lookup("/repos/a/b/actions/runs/5"), None);
    }
}
