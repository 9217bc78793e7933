//! Kubernetes quantities (`10Gi`, `500m`, `1.5`, `2e3`) as exact values, so
//! that sizes can be compared and `1024Mi` is known to equal `1Gi`.

use std::cmp::Ordering;

/// An exact non-negative quantity: `mantissa * 10^-scale * multiplier`.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    mantissa: u128,
    scale: u32,
    multiplier: Multiplier,
}

#[derive(Debug, Clone, Copy)]
enum Multiplier {
    /// Multiply by this.
    Times(u128),
    /// Divide by 1000 (`m`).
    Milli,
}

const SUFFIXES: &[(&str, u128)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

impl Quantity {
    /// Parses a quantity; `None` when `s` is not one (or is negative, or
    /// too large to compare exactly).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix('+').unwrap_or(s);
        let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, suffix) = s.split_at(end);
        let (whole, frac) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return None;
        }
        let digits = format!("{whole}{frac}");
        if digits.len() > 30 {
            return None;
        }
        let mantissa: u128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        let mut scale = u32::try_from(frac.len()).ok()?;
        let multiplier = if suffix.is_empty() {
            Multiplier::Times(1)
        } else if suffix == "m" {
            Multiplier::Milli
        } else if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
            let exp: i32 = exp.parse().ok()?;
            if exp >= 0 {
                Multiplier::Times(10u128.checked_pow(u32::try_from(exp).ok()?)?)
            } else {
                scale = scale.checked_add(exp.unsigned_abs())?;
                Multiplier::Times(1)
            }
        } else {
            let (_, m) = SUFFIXES.iter().find(|(name, _)| *name == suffix)?;
            Multiplier::Times(*m)
        };
        Some(Self {
            mantissa,
            scale,
            multiplier,
        })
    }

    /// The value as a fraction `numerator / denominator`.
    fn fraction(self) -> Option<(u128, u128)> {
        let mut den = 10u128.checked_pow(self.scale)?;
        let mut num = self.mantissa;
        match self.multiplier {
            Multiplier::Times(m) => num = num.checked_mul(m)?,
            Multiplier::Milli => den = den.checked_mul(1000)?,
        }
        Some((num, den))
    }

    /// Compares two quantities exactly; `None` if they are too large.
    pub fn compare(self, other: Self) -> Option<Ordering> {
        let (a, b) = self.fraction()?;
        let (c, d) = other.fraction()?;
        Some(a.checked_mul(d)?.cmp(&c.checked_mul(b)?))
    }

    /// Whether the quantity is zero.
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }
}

/// Whether two strings are the same quantity written differently.
pub fn same_quantity(a: &str, b: &str) -> bool {
    match (Quantity::parse(a), Quantity::parse(b)) {
        (Some(x), Some(y)) => x.compare(y) == Some(Ordering::Equal),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Option<Ordering> {
        Quantity::parse(a)?.compare(Quantity::parse(b)?)
    }

    #[test]
    fn compares_exactly() {
        assert_eq!(cmp("1Gi", "1024Mi"), Some(Ordering::Equal));
        assert_eq!(cmp("10Gi", "20Gi"), Some(Ordering::Less));
        assert_eq!(cmp("1.5Gi", "1536Mi"), Some(Ordering::Equal));
        assert_eq!(cmp("500m", "0.5"), Some(Ordering::Equal));
        assert_eq!(cmp("1k", "1000"), Some(Ordering::Equal));
        assert_eq!(cmp("2e3", "2k"), Some(Ordering::Equal));
        assert_eq!(cmp("1G", "1Gi"), Some(Ordering::Less));
        assert_eq!(cmp("100m", "1"), Some(Ordering::Less));
        assert!(same_quantity("1Gi", "1073741824"));
        assert!(!same_quantity("1Gi", "1G"));
        assert!(!same_quantity("latest", "latest"));
    }

    #[test]
    fn refuses_non_quantities() {
        for s in ["", "Gi", "-1Gi", "1Gib", "1.2.3", "abc", "1 Gi x", "."] {
            assert!(Quantity::parse(s).is_none(), "{s:?}");
        }
        assert!(Quantity::parse("0").is_some_and(Quantity::is_zero));
        assert!(Quantity::parse(".5").is_some());
    }
}
