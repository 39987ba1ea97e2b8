//! Numbers as the tables, the targets and the chart print them.

/// Three decimals below 10x, so that 0.995x does not print as 1.00x.
pub fn times(x: f64) -> String {
    if x.abs() < 10.0 {
        format!("{x:.3}x")
    } else {
        format!("{x:.1}x")
    }
}

pub fn us(x: f64) -> String {
    format!("{x:.1} us")
}

pub fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// 123456.7 -> "123,457".
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// `-` for a value not measured.
pub fn opt(x: Option<f64>, show: impl Fn(f64) -> String) -> String {
    x.map_or_else(|| "-".into(), show)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(times(0.9952), "0.995x");
        assert_eq!(times(16.24), "16.2x");
        assert_eq!(mib(2048.0), "2.0 MiB");
        assert_eq!(opt(None, us), "-");
    }
}
