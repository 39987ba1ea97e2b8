//! A protobuf wire-format annotator, so byte snapshots read like a table:
//! each field's bytes in hex, then its number, wire type and value.

use std::fmt::Write as _;

/// The length, then one line per top-level field: its bytes, number and value.
pub fn annotate(bytes: &[u8]) -> String {
    annotate_nested(bytes, &[])
}

/// Like [`annotate`], but the length-delimited fields numbered in `nested`
/// hold messages: their fields are listed, indented, below them.
pub fn annotate_nested(bytes: &[u8], nested: &[u64]) -> String {
    let mut out = format!("{} bytes\n", bytes.len());
    annotate_fields(&mut out, bytes, 0, nested);
    out
}

fn annotate_fields(out: &mut String, mut rest: &[u8], depth: usize, nested: &[u64]) {
    let pad = "  ".repeat(depth);
    while !rest.is_empty() {
        let start = rest;
        let Some(key) = varint(&mut rest) else {
            let _ = writeln!(out, "{pad}{}  # truncated key", hex(start));
            return;
        };
        let (field, wire_type) = (key >> 3, key & 7);
        let value = match wire_type {
            0 => varint(&mut rest).map(|v| format!("varint {v}")),
            1 => take(&mut rest, 8).map(|b| {
                format!(
                    "fixed64 (double) {:?}",
                    f64::from_le_bytes(b.try_into().unwrap())
                )
            }),
            5 => take(&mut rest, 4).map(|b| {
                format!(
                    "fixed32 (float) {:?}",
                    f32::from_le_bytes(b.try_into().unwrap())
                )
            }),
            2 if nested.contains(&field) && depth == 0 => {
                let Some(b) = varint(&mut rest).and_then(|len| take(&mut rest, len as usize))
                else {
                    let _ = writeln!(out, "{pad}{}  # field {field}: truncated", hex(start));
                    return;
                };
                let header = &start[..start.len() - rest.len() - b.len()];
                let _ = writeln!(
                    out,
                    "{pad}{}  # field {field}: message, len {}",
                    hex(header),
                    b.len()
                );
                annotate_fields(out, b, depth + 1, nested);
                continue;
            }
            2 => varint(&mut rest)
                .and_then(|len| take(&mut rest, len as usize))
                .map(|b| match std::str::from_utf8(b) {
                    Ok(s) => format!("len {} {:?}", b.len(), s),
                    Err(_) => format!("len {} (bytes)", b.len()),
                }),
            other => Some(format!("wire type {other} (invalid)")),
        };
        let used = &start[..start.len() - rest.len()];
        match value {
            Some(v) => {
                let _ = writeln!(out, "{pad}{}  # field {field}: {v}", hex(used));
            }
            None => {
                let _ = writeln!(out, "{pad}{}  # field {field}: truncated", hex(start));
                return;
            }
        }
    }
}

fn varint(rest: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in rest.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Some(value);
        }
    }
    None
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
