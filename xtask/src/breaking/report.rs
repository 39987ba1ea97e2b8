//! What a check found, and how it is printed: one line per finding and a
//! summary, or one JSON object for tools.

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Binary peers of the two versions misread or cannot call each other: fails.
    Wire,
    /// JSON/text-format names or generated code change: a warning.
    Source,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Wire => "wire-breaking",
            Class::Source => "source-breaking",
        }
    }
}

/// One broken rule, at one proto element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub class: Class,
    /// buf's rule name, e.g. `FIELD_NO_DELETE`.
    pub rule: &'static str,
    /// Full name of the element, e.g. `ecommerce.Order.price`.
    pub element: String,
    pub file: String,
    /// 1-based; from today's proto where the element exists, else from the
    /// baseline, else where today's proto declares its parent.
    pub line: Option<u32>,
    /// The whole sentence, naming the element.
    pub message: String,
}

/// The result of one check, ready to print.
#[derive(Debug)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// What the baseline was, as given: a git ref or a file.
    pub against: String,
    /// The reason of a `Breaking-Change:` line that accepted wire-breaking findings.
    pub allowed_by: Option<String>,
}

impl Outcome {
    fn count(&self, class: Class) -> usize {
        self.findings.iter().filter(|f| f.class == class).count()
    }

    /// Whether the command must exit non-zero.
    pub fn failed(&self) -> bool {
        self.count(Class::Wire) > 0 && self.allowed_by.is_none()
    }

    /// One line per finding, then a summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let at = match f.line {
                Some(line) => format!("{}:{line}", f.file),
                None => f.file.clone(),
            };
            let (class, rule, message) = (f.class.as_str(), f.rule, &f.message);
            out.push_str(&format!("{at}: {class} [{rule}] {message}\n"));
        }
        let counts = format!(
            "{} and {} against {}",
            plural(self.count(Class::Wire), "wire-breaking change"),
            plural(self.count(Class::Source), "source-breaking warning"),
            self.against
        );
        let summary = match (&self.allowed_by, self.failed()) {
            (_, true) => format!("FAILED: {counts}"),
            (Some(reason), false) if self.count(Class::Wire) > 0 => {
                format!(
                    "allowed: {counts}, accepted by \"Breaking-Change: {reason}\" in HEAD's commit message"
                )
            }
            _ => format!("ok: {counts}"),
        };
        out + &summary + "\n"
    }

    /// A JSON object for tools: counts, the verdict and every finding.
    pub fn json(&self) -> String {
        let findings: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "class": f.class.as_str(),
                    "rule": f.rule,
                    "element": f.element,
                    "file": f.file,
                    "line": f.line,
                    "message": f.message,
                })
            })
            .collect();
        let report = serde_json::json!({
            "against": self.against,
            "failed": self.failed(),
            "allowed_by": self.allowed_by,
            "wire_breaking": self.count(Class::Wire),
            "source_breaking": self.count(Class::Source),
            "findings": findings,
        });
        serde_json::to_string_pretty(&report).expect("a JSON value always serializes") + "\n"
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
