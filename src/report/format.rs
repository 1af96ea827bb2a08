//! How numbers read in reports and decisions: percentages, counts per split. A leaf: it uses
//! nothing of the crate, so every writer of text can use it (means are [`crate::numeric::mean`]).

/// Percent with two decimals.
pub fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

/// Counts per split as `a / b / c`, or one number when all splits agree.
pub fn per_split(counts: &[usize]) -> String {
    if counts.windows(2).all(|w| w[0] == w[1]) {
        counts.first().map_or("0".into(), |n| n.to_string())
    } else {
        let all: Vec<String> = counts.iter().map(ToString::to_string).collect();
        all.join(" / ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_that_agree_read_as_one_number() {
        assert_eq!(per_split(&[3, 3, 3]), "3");
        assert_eq!(per_split(&[3, 4]), "3 / 4");
        assert_eq!(per_split(&[]), "0");
        assert_eq!(pct(0.948), "94.80");
    }
}
