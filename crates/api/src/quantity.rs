//! Kubernetes resource quantities (`10Gi`, `500M`, `1.5Ti`, `1e9`) as bytes, to compare storage
//! sizes written in different units.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The number of bytes `quantity` denotes, or `None` when it is not a quantity.
pub fn bytes(quantity: &Quantity) -> Option<u128> {
    let value = parse(&quantity.0)?;
    (value.is_finite() && value >= 0.0).then(|| value.ceil() as u128)
}

/// A Kubernetes quantity as a number (`500m` is 0.5, `1Ki` 1024, `1e3` 1000); `None` when the
/// text is not one.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let e: i32 = exponent.strip_prefix(['e', 'E'])?.parse().ok()?;
            10f64.powi(e)
        }
    };
    let number: f64 = number.parse().ok()?;
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Option<u128> {
        bytes(&Quantity(text.into()))
    }

    #[test]
    fn units_compare_as_bytes() {
        assert_eq!(q("10Gi"), Some(10 * 1024 * 1024 * 1024));
        assert_eq!(q("10Gi"), q("10240Mi"));
        assert_eq!(q("5G"), Some(5_000_000_000));
        assert_eq!(q("1e9"), q("1G"));
        assert_eq!(q("1.5Ki"), Some(1536));
        assert_eq!(q("1024"), Some(1024));
        assert!(q("20Gi") > q("20G"));
    }

    #[test]
    fn garbage_is_none() {
        for bad in ["", "Gi", "10Xi", "ten", "-1Gi", "1e"] {
            assert_eq!(q(bad), None, "{bad}");
        }
    }
}
