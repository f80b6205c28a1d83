//! The findings as one report: `--json` serialises it as is; the text form
//! shows one line per finding with ✔ ℹ ⚠ ✘ and the fix under it.

use serde::Serialize;

use crate::{Finding, Level};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// No finding failed (the command exits 0).
    pub healthy: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn new(findings: Vec<Finding>) -> Self {
        Report {
            healthy: findings.iter().all(|f| f.level != Level::Fail),
            findings,
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let mark = match f.level {
                Level::Ok => "✔",
                Level::Info => "ℹ",
                Level::Warn => "⚠",
                Level::Fail => "✘",
            };
            out.push_str(&format!("{mark} {:<13} {}\n", f.area, f.message));
            if !f.fix.is_empty() {
                out.push_str(&format!("  {:<13} fix: {}\n", "", f.fix));
            }
        }
        let failed = self
            .findings
            .iter()
            .filter(|f| f.level == Level::Fail)
            .count();
        out.push_str(&if failed == 0 {
            "all checks passed\n".to_owned()
        } else {
            format!("{failed} check(s) failed\n")
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding;

    #[test]
    fn a_failure_makes_the_report_unhealthy_and_shows_its_fix() {
        let ok = Report::new(vec![finding(Level::Ok, "daemon", "up".into(), "")]);
        assert!(ok.healthy);
        assert!(ok.text().starts_with("✔ daemon"), "{}", ok.text());
        let bad = Report::new(vec![
            finding(Level::Warn, "mesh", "lonely".into(), "add peers"),
            finding(Level::Fail, "upstream", "down".into(), "fix it"),
        ]);
        assert!(!bad.healthy);
        let text = bad.text();
        assert!(
            text.contains("⚠ mesh") && text.contains("✘ upstream"),
            "{text}"
        );
        assert!(text.contains("fix: fix it") && text.contains("1 check(s) failed"));
        let json = serde_json::to_value(&bad).expect("json");
        assert_eq!(json["healthy"], false);
        assert_eq!(json["findings"][1]["level"], "fail");
        assert_eq!(json["findings"][1]["area"], "upstream");
    }
}
