//! Finds the line of a key in block-style YAML so that errors found after parsing
//! (empty `values`, `min > max`, an unknown parameter path) can still say where.

/// 1-based line of the key at `path` (each element one mapping key), or of the
/// deepest ancestor that could be found.
pub fn line_of(source: &str, path: &[&str]) -> Option<usize> {
    let mut found = None;
    let mut parent_indent: isize = -1;
    let mut start = 0usize;
    let lines: Vec<&str> = source.lines().collect();
    'outer: for key in path {
        let mut i = start;
        while i < lines.len() {
            let raw = lines[i];
            let trimmed = raw.trim_start();
            let indent = (raw.len() - trimmed.len()) as isize;
            if trimmed.is_empty() || trimmed.starts_with('#') {
                i += 1;
                continue;
            }
            if found.is_some() && indent <= parent_indent {
                break 'outer; // left the parent's block
            }
            let body = trimmed.trim_start_matches("- ");
            let k = body.split(':').next().unwrap_or("").trim().trim_matches(|c| c == '"' || c == '\'');
            if indent > parent_indent && k == *key && body.contains(':') {
                found = Some(i + 1);
                parent_indent = indent;
                start = i + 1;
                continue 'outer;
            }
            i += 1;
        }
        break;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_and_dotted_keys() {
        let src = "name: x\nloss:\n  focal_gamma: 2\nparameters:\n  loss.focal_gamma:\n    values: []\n";
        assert_eq!(line_of(src, &["loss", "focal_gamma"]), Some(3));
        assert_eq!(line_of(src, &["parameters", "loss.focal_gamma"]), Some(5));
        assert_eq!(line_of(src, &["parameters", "loss.focal_gamma", "values"]), Some(6));
        assert_eq!(line_of(src, &["parameters", "nope"]), Some(4));
        assert_eq!(line_of(src, &["missing"]), None);
    }
}
