//! Errors in routes.toml, rendered the way a person editing the file wants to read them.

use std::fmt;
use std::ops::Range;

/// One problem in routes.toml: where it is, what is wrong, and what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte range in the file the problem points at.
    pub span: Range<usize>,
    /// What is wrong, phrased for the file's author.
    pub message: String,
    /// What would be right.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem at `span` with no help line.
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            help: None,
        }
    }

    /// Adds the line that says what would be right.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Renders `path:line:col: message`, the offending line with a caret marker, and the help.
    pub fn render(&self, path: &str, source: &str) -> String {
        let location = Location::of(source, self.span.start);
        let mut out = format!(
            "{path}:{}:{}: {}",
            location.line, location.column, self.message
        );
        let line_text = source.lines().nth(location.line - 1).unwrap_or("");
        if !line_text.trim().is_empty() {
            let gutter = location.line.to_string().len();
            let end_in_line =
                (self.span.end.min(location.line_start + line_text.len())).max(self.span.start + 1);
            let width = source
                .get(self.span.start..end_in_line)
                .map_or(1, |s| s.chars().count().max(1));
            out.push_str(&format!(
                "\n{:gutter$} |\n{} | {line_text}\n{:gutter$} | {:pad$}{}",
                "",
                location.line,
                "",
                "",
                "^".repeat(width),
                pad = location.column - 1,
            ));
        }
        if let Some(help) = &self.help {
            out.push_str("\n  = help: ");
            out.push_str(help);
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A 1-based line and column (in characters) of a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    line_start: usize,
}

impl Location {
    /// Finds the line and column of byte `offset` in `source`.
    pub fn of(source: &str, offset: usize) -> Self {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            line_start,
        }
    }
}

/// The closest candidate to a misspelt word, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let squash = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let word_squashed = squash(word);
    candidates
        .iter()
        .map(|c| (edit_distance(&word_squashed, &squash(c)), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev + usize::from(ca != *cb);
            prev = row[j + 1];
            row[j + 1] = substitute.min(prev + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(Location::of(src, 0).line, 1);
        let l = Location::of(src, src.find('=').map_or(0, |_| 10));
        assert_eq!((l.line, l.column), (2, 4));
    }

    #[test]
    fn render_points_at_the_span() {
        let src = "[server]\nauth_tokn = \"X\"\n";
        let d =
            Diagnostic::new(9..18, "unknown field `auth_tokn`").help("did you mean `auth_token`?");
        assert_eq!(
            d.render("routes.toml", src),
            "routes.toml:2:1: unknown field `auth_tokn`\n  |\n2 | auth_tokn = \"X\"\n  | ^^^^^^^^^\n  = help: did you mean `auth_token`?"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        let fields = ["provider", "model", "base_url", "api_keys"];
        assert_eq!(did_you_mean("apikeys", &fields), Some("api_keys"));
        assert_eq!(did_you_mean("baseurl", &fields), Some("base_url"));
        assert_eq!(did_you_mean("modle", &fields), Some("model"));
        assert_eq!(did_you_mean("temperature", &fields), None);
    }
}
