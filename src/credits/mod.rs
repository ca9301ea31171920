//! Money: amounts in integer micro-credits (1 credit = 1,000,000), parsed and
//! shown exactly, and the cost of a call at a model's prices. No floating point.

/// Micro-credits in one credit.
pub const MICROS_PER_CREDIT: i64 = 1_000_000;

/// The most credits one grant gives: a new account's, a plan's monthly grant,
/// an admin's correction. Far below what an `i64` of micro-credits holds.
pub const MOST_CREDITS_GRANTED: i64 = 1_000_000_000;

/// The most a balance may reach by an admin's corrections, in micro-credits
/// (a trillion credits): an eighth of what an `i64` holds, so that repeated
/// corrections cannot overflow a balance, and monthly grants on top of it
/// could not for thousands of years.
pub const MOST_BALANCE_MICROS: i64 = 1_000_000_000_000 * MICROS_PER_CREDIT;

/// Parses a non-negative decimal number of credits (`"2"`, `"0.15"`, at most six
/// decimals) into micro-credits, exactly.
pub fn parse_credits(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 6 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}").parse().ok()?
    };
    whole.checked_mul(MICROS_PER_CREDIT)?.checked_add(fraction)
}

/// Micro-credits as credits for people, e.g. `12.5`.
pub fn format_credits(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let whole = abs / MICROS_PER_CREDIT as u64;
    let fraction = abs % MICROS_PER_CREDIT as u64;
    if fraction == 0 {
        format!("{sign}{whole}")
    } else {
        let fraction = format!("{fraction:06}");
        format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
    }
}

/// Micro-credits as credits for pages, the whole part grouped by thousands
/// (`1,000,000.5`). Not for the APIs, whose amounts must parse back.
pub fn format_credits_grouped(micros: i64) -> String {
    let plain = format_credits(micros);
    let (whole, fraction) = plain.split_once('.').unwrap_or((&plain, ""));
    let (sign, digits) = whole.split_at(usize::from(whole.starts_with('-')));
    let mut text = format!("{sign}{}", group_digits(digits));
    if !fraction.is_empty() {
        text.push('.');
        text.push_str(fraction);
    }
    text
}

/// A count for pages, grouped by thousands (`10,000`).
pub fn format_count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", group_digits(&digits))
}

/// ASCII digits with a comma before each group of three from the right.
fn group_digits(digits: &str) -> String {
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A model's prices, in micro-credits per 1,000 tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prices {
    pub input_per_1k: i64,
    pub output_per_1k: i64,
}

impl Prices {
    /// What `input` and `output` tokens cost, rounded up once to the next
    /// micro-credit: a call never costs less than its tokens at the list
    /// prices, and at most one micro-credit more (rounding each part up could
    /// add two).
    pub fn cost(&self, input: u64, output: u64) -> i64 {
        let part = |tokens: u64, per_1k: i64| i128::from(tokens).saturating_mul(per_1k.into());
        let at_list_prices = part(input, self.input_per_1k)
            .saturating_add(part(output, self.output_per_1k))
            .saturating_add(999);
        i64::try_from(at_list_prices / 1000).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_for_pages_are_grouped_by_thousands() {
        assert_eq!(format_credits_grouped(250_000_000), "250");
        assert_eq!(format_credits_grouped(1_000_000_500_000), "1,000,000.5");
        assert_eq!(format_credits_grouped(1_000_000), "1");
        assert_eq!(format_credits_grouped(1), "0.000001");
        assert_eq!(format_credits_grouped(-12_345_678_900_000), "-12,345,678.9");
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(123_456_789), "123,456,789");
        assert_eq!(format_count(-1_000), "-1,000");
        assert_eq!(format_count(i64::MIN), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn credits_parse_exactly() {
        assert_eq!(parse_credits("2"), Some(2_000_000));
        assert_eq!(parse_credits("0.15"), Some(150_000));
        assert_eq!(parse_credits("0.000001"), Some(1));
        assert_eq!(parse_credits("10.5"), Some(10_500_000));
        for bad in [
            "",
            "-1",
            "1.0000001",
            "1e3",
            "abc",
            ".5",
            "1.2.3",
            "99999999999999999",
        ] {
            assert_eq!(parse_credits(bad), None, "{bad}");
        }
    }

    #[test]
    fn credits_format_exactly() {
        assert_eq!(format_credits(2_000_000), "2");
        assert_eq!(format_credits(150_000), "0.15");
        assert_eq!(format_credits(1), "0.000001");
        assert_eq!(format_credits(-1_500_000), "-1.5");
    }

    #[test]
    fn costs_round_up_once() {
        let prices = Prices {
            input_per_1k: 150_000,
            output_per_1k: 600_000,
        };
        assert_eq!(prices.cost(1000, 1000), 750_000);
        assert_eq!(prices.cost(1, 0), 150);
        assert_eq!(prices.cost(0, 0), 0);
        let tiny = Prices {
            input_per_1k: 1,
            output_per_1k: 1,
        };
        assert_eq!(tiny.cost(1, 1), 1);
        assert_eq!(tiny.cost(1000, 100), 2);
        assert_eq!(tiny.cost(0, 1000), 1);
        // 0.333333 and 0.777777 credits per 1,000: 1,111.11 micro-credits.
        let odd = Prices {
            input_per_1k: 333_333,
            output_per_1k: 777_777,
        };
        assert_eq!(odd.cost(1, 1), 1112);
        assert_eq!(odd.cost(3, 0), 1000);
        assert_eq!(
            Prices {
                input_per_1k: i64::MAX,
                output_per_1k: i64::MAX
            }
            .cost(u64::MAX, u64::MAX),
            i64::MAX
        );
    }
}
