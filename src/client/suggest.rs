//! "Did you mean `search`?": a word that is neither an order nor a command
//! is compared with the commands' names.

use super::cli::COMMANDS;

/// The command `word` was probably meant to be: one at most two edits
/// away (a typo, a swapped pair), or one it starts.
pub fn command_like(word: &str) -> Option<&'static str> {
    let word = word.to_lowercase();
    if word.is_empty() {
        return None;
    }
    COMMANDS
        .iter()
        .map(|name| (distance(&word, name), *name))
        .filter(|(d, name)| {
            *d <= 2.min(name.len() / 2) || (word.len() >= 3 && name.starts_with(&word))
        })
        .min()
        .map(|(_, name)| name)
}

/// What the user probably wanted when `word` is no command and no order:
/// a command, or `--version` / `--help` typed without their dashes.
pub fn hint(word: &str) -> Option<String> {
    match word.to_lowercase().as_str() {
        "version" | "-v" => Some("`client --version`".to_owned()),
        "help" => Some("`client --help`".to_owned()),
        _ => command_like(word).map(|name| format!("`{name}`")),
    }
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and transpositions of neighbours each cost one.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_command_and_ids_do_not() {
        assert_eq!(command_like("serach"), Some("search"));
        assert_eq!(command_like("SEARCH"), Some("search"));
        assert_eq!(command_like("proces"), Some("process"));
        assert_eq!(command_like("updte"), Some("update"));
        assert_eq!(command_like("healht"), Some("health"));
        assert_eq!(command_like("comp"), Some("completions"));
        assert_eq!(command_like("101"), None);
        assert_eq!(command_like("pixel"), None);
        assert_eq!(command_like("a1"), None);
        assert_eq!(hint("version").as_deref(), Some("`client --version`"));
    }
}
