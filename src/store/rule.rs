//! The one search rule every store uses, for indexing and for verifying.
//!
//! **Matching.** An order matches a query if any of its items, lowercased
//! with [`str::to_lowercase`], contains the query lowercased the same way.
//! That is the full Unicode lowercase *mapping* (one char may become
//! several: `'İ'` becomes `"i\u{307}"`; a final `'Σ'` becomes `'ς'`), not
//! simple or full case *folding* (`"ß"` stays `"ß"` and does not match
//! `"ss"`; `'ς'` and `'σ'` stay distinct). So the empty query matches every
//! order that has at least one item, and an order without items never
//! matches.
//!
//! **Trigrams.** The trigrams of a text are the windows of 3 consecutive
//! `char`s of its *folded* (lowercased) form. An order's trigrams are the
//! distinct trigrams of each folded item, taken within one item, never
//! across two. If a folded item contains a folded query, every trigram of
//! the query is one of the item's: so the orders holding all of a query's
//! trigrams are a superset of the matches, and checking each candidate
//! with [`matches`] gives exactly the matches. A query whose folded form
//! has fewer than 3 chars has no trigrams ([`query_trigrams`] is `None`)
//! and must be answered by a scan.
//!
//! **Encoding.** A trigram is stored as a `u64`: the three chars' scalar
//! values (21 bits each) packed as `c0 << 42 | c1 << 21 | c2`. That is
//! exact (no two trigrams share a key, so the index never adds candidates
//! of its own), fixed width (8 bytes, compared as one integer by redb) and
//! reversible (see [`trigram_text`], for reports).

use std::collections::BTreeSet;

use crate::pb::Order;

/// A text as the rule compares it: `str::to_lowercase`.
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// Whether `order` matches a query whose folded form is `folded_query`.
pub fn matches(order: &Order, folded_query: &str) -> bool {
    order
        .items
        .iter()
        .any(|item| item_contains(item, folded_query))
}

/// `fold(item).contains(folded_query)`, without allocating for an ASCII
/// item (the common case, checked for every order a search examines): an
/// ASCII text lowercases byte by byte to ASCII, so a query with any other
/// char cannot be in it, and an ASCII query is in it where its bytes equal
/// the item's lowercased ones.
fn item_contains(item: &str, folded_query: &str) -> bool {
    if !item.is_ascii() {
        return fold(item).contains(folded_query);
    }
    let (hay, needle) = (item.as_bytes(), folded_query.as_bytes());
    if needle.is_empty() {
        return true;
    }
    if !folded_query.is_ascii() || needle.len() > hay.len() {
        return false;
    }
    hay.windows(needle.len()).any(|window| {
        window
            .iter()
            .zip(needle)
            .all(|(h, n)| h.to_ascii_lowercase() == *n)
    })
}

/// The distinct trigrams of `order`, in key order.
pub fn order_trigrams(order: &Order) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for item in &order.items {
        out.extend(text_trigrams(&fold(item)));
    }
    out
}

/// The distinct trigrams a folded query needs, in key order; `None` when
/// it has fewer than 3 chars (every order is then a candidate).
pub fn query_trigrams(folded_query: &str) -> Option<Vec<u64>> {
    // Fewer than 3 chars: no trigram.
    folded_query.chars().nth(2)?;
    let set: BTreeSet<u64> = text_trigrams(folded_query).collect();
    Some(set.into_iter().collect())
}

/// The trigrams of an already folded text, in text order, repeats included.
pub fn text_trigrams(folded: &str) -> impl Iterator<Item = u64> + '_ {
    let mut chars = folded.chars();
    let mut window = [chars.next(), chars.next()];
    chars.map(move |c| {
        let key = pack(window[0].unwrap_or('\0'), window[1].unwrap_or('\0'), c);
        window = [window[1], Some(c)];
        key
    })
}

fn pack(a: char, b: char, c: char) -> u64 {
    (u64::from(a) << 42) | (u64::from(b) << 21) | u64::from(c)
}

/// The three chars of a trigram key, for messages (`?` if not a valid key).
pub fn trigram_text(key: u64) -> String {
    let mask = (1 << 21) - 1;
    [key >> 42, (key >> 21) & mask, key & mask]
        .into_iter()
        .map(|v| {
            u32::try_from(v)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('?')
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(items: &[&str]) -> Order {
        Order {
            id: "1".into(),
            items: items.iter().map(|s| s.to_string()).collect(),
            ..Order::default()
        }
    }

    #[test]
    fn matching_is_lowercase_containment_in_one_item() {
        let o = order(&["Amazon Echo", "İstanbul Çay"]);
        assert!(matches(&o, &fold("ECHO")));
        assert!(matches(&o, &fold("çay")));
        assert!(matches(&o, &fold("İSTAN")));
        assert!(matches(&o, &fold("")));
        assert!(!matches(&o, &fold("echoi̇")), "not across items");
        assert!(!matches(&order(&[]), ""), "no items: never matches");
        // Lowercase mapping, not case folding.
        assert!(!matches(&order(&["Straße"]), &fold("STRASSE")));
        assert!(matches(&order(&["STRASSE"]), &fold("strasse")));
    }

    #[test]
    fn the_ascii_shortcut_agrees_with_lowercasing() {
        let texts = [
            "",
            "a",
            "A",
            "ab",
            "Widget 7",
            "widget",
            "WIDGET 77",
            "x-Y z",
            "İs",
            "ß",
            "Σa",
            "é",
            "aaa",
            "aAa",
            "AB CD",
        ];
        for item in texts {
            for query in texts
                .iter()
                .map(|q| fold(q))
                .chain(["d 7".into(), "t 77".into()])
            {
                assert_eq!(
                    item_contains(item, &query),
                    fold(item).contains(&query),
                    "item {item:?}, query {query:?}"
                );
            }
        }
    }

    #[test]
    fn trigrams_are_of_chars_of_the_folded_text_within_items() {
        let got: Vec<String> = order_trigrams(&order(&["AbCd", "cdE"]))
            .into_iter()
            .map(trigram_text)
            .collect();
        let mut want = vec!["abc", "bcd", "cde"];
        want.sort_by_key(|t| {
            let c: Vec<char> = t.chars().collect();
            pack(c[0], c[1], c[2])
        });
        assert_eq!(got, want, "no 'dcd' across the two items");
        // 'İ' folds to two chars, so "İs" has a trigram.
        assert_eq!(
            query_trigrams(&fold("İs")).unwrap(),
            vec![pack('i', '\u{307}', 's')]
        );
        assert_eq!(query_trigrams(&fold("ab")), None);
        assert_eq!(query_trigrams(""), None);
        assert_eq!(query_trigrams("aaaa").unwrap().len(), 1, "distinct");
    }

    #[test]
    fn keys_round_trip_through_text() {
        for t in ["abc", "σς ", "🦀ßİ", "\u{10FFFF}\u{10FFFF}\u{10FFFF}"] {
            let key = text_trigrams(t).next().unwrap();
            assert_eq!(trigram_text(key), t);
        }
    }
}
