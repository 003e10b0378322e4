//! `.dev.vars`, wrangler's local secrets file, so one file serves both hosts.

use std::collections::HashMap;

/// Parses `NAME=value` lines; `#` comments, blank lines, `export ` prefixes and matching
/// single or double quotes around the value are allowed, as in wrangler's dotenv format.
pub fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(value);
            Some((name.trim().to_owned(), unquoted.to_owned()))
        })
        .collect()
}

/// Reads `.dev.vars` from the working directory; an absent file is no secrets.
pub fn load() -> HashMap<String, String> {
    std::fs::read_to_string(".dev.vars")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrangler_style_lines() {
        let vars = parse("# comment\nA=1\nexport B = \"two = 2\"\n\nC='3'\nnot a var\nD=\n");
        assert_eq!(vars.get("A").map(String::as_str), Some("1"));
        assert_eq!(vars.get("B").map(String::as_str), Some("two = 2"));
        assert_eq!(vars.get("C").map(String::as_str), Some("3"));
        assert_eq!(vars.get("D").map(String::as_str), Some(""));
        assert_eq!(vars.len(), 4);
    }
}
