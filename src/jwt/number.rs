//! JSON numbers as `f64`, without std's float parser.
//!
//! `str::parse::<f64>` links std's decimal-to-float code and its tables
//! (about 17 KB of a stripped router build) for the two date claims.
//! [`to_f64`] gives the same `f64`, the nearest one (ties to even), with
//! integer arithmetic; the tests compare the two. It is slower than std's,
//! so the JSON reader checks each number's range with [`is_finite`], which
//! only looks at the digits, and a number becomes an `f64` only when read
//! (`exp` and `nbf`, after the signature is checked).

// Implementation notes. A number is `digits * 10^exponent`, exactly the
// fraction `numerator / denominator` of two big integers. Its f64 is
// `q * 2^k` with `q` of 53 bits (fewer below the smallest normal f64): the
// sizes of the two integers give `k` to within one, a long division gives
// `q`, and the remainder rounds it.
//
// Numbers with more than 800 significant digits keep the first 799 and a
// final 1 when a dropped digit is not 0. A midpoint between two f64s has
// at most 767 significant digits, so it does not lie strictly between the
// number and its shortened form, and both round alike.

use std::cmp::Ordering;

/// 2^1024 - 2^970, the midpoint between `f64::MAX` and 2^1024: numbers from
/// it on round to infinity (this one too: a tie goes to the even 2^1024).
const INFINITE_FROM: &[u8; 309] = b"\
    179769313486231580793728971405303415079934132710037826936173778980444968\
    292764750946649017977587207096330286416692887910946555547851940402630657\
    488671505820681908902000708383676273854845817711531764475730270069855571\
    366959622842914819860834936475292719074168444365510704342711559699508093\
    042880177904174497792";

/// Whether `number`, text the JSON grammar accepts, is below the largest
/// `f64` in size once rounded: what `str::parse::<f64>` would give finite.
pub(crate) fn is_finite(number: &[u8]) -> bool {
    let (_, digits, exponent) = decimal(number);
    // The power of ten of the first digit.
    let top = digits.len() as i64 - 1 + exponent;
    match top.cmp(&308) {
        _ if digits.is_empty() => true,
        Ordering::Less => true,
        Ordering::Greater => false,
        // Both start at 10^308 and have no trailing zeros, so their digits
        // compare as the numbers do.
        Ordering::Equal => {
            let limit = INFINITE_FROM.iter().map(|&digit| digit - b'0');
            digits.iter().copied().cmp(limit) == Ordering::Less
        }
    }
}

/// The `f64` nearest to `number`, text the JSON grammar accepts (such as
/// `-12.5e-1`), ties to even: what `str::parse::<f64>` gives. Infinite past
/// the largest `f64`, zero (signed) below half the smallest.
pub(crate) fn to_f64(number: &[u8]) -> f64 {
    let (negative, digits, exponent) = decimal(number);
    let magnitude = if digits.is_empty() {
        0.0
    } else {
        nearest(digits, exponent)
    };
    if negative { -magnitude } else { magnitude }
}

/// A number as its sign, its significant digits (values 0..=9, no leading
/// or trailing zero; none for zero) and the power of ten they are multiplied by.
fn decimal(number: &[u8]) -> (bool, Vec<u8>, i64) {
    let (negative, number) = match number.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, number),
    };
    let (significand, exponent_text) =
        match number.iter().position(|&byte| byte == b'e' || byte == b'E') {
            Some(at) => (&number[..at], &number[at + 1..]),
            None => (number, &b""[..]),
        };
    let mut exponent = exponent_value(exponent_text);
    let mut digits = Vec::new();
    let mut after_point = false;
    for &byte in significand {
        if byte == b'.' {
            after_point = true;
            continue;
        }
        if after_point {
            exponent -= 1;
        }
        if !(digits.is_empty() && byte == b'0') {
            digits.push(byte.wrapping_sub(b'0'));
        }
    }
    while digits.last() == Some(&0) {
        digits.pop();
        exponent += 1;
    }
    (negative, digits, exponent)
}

/// The exponent's value (`-5` for `-5`, `5` for `+5`), clamped to a million
/// either way: far past where every number is zero or infinite.
fn exponent_value(text: &[u8]) -> i64 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let mut value: i64 = 0;
    for &digit in digits {
        value = (value * 10 + i64::from(digit.wrapping_sub(b'0'))).min(1_000_000);
    }
    if negative { -value } else { value }
}

/// The `f64` nearest to `digits * 10^exponent`, where `digits` has no
/// leading or trailing zero and at least one digit.
fn nearest(mut digits: Vec<u8>, mut exponent: i64) -> f64 {
    if digits.len() > 800 {
        let dropped_non_zero = digits[799..].iter().any(|&digit| digit != 0);
        exponent += (digits.len() - 799) as i64;
        digits.truncate(799);
        if dropped_non_zero {
            digits.push(1);
            exponent -= 1;
        }
    }
    let length = digits.len() as i64;
    // The number lies in [10^(length - 1 + exponent), 10^(length + exponent)).
    if length - 1 + exponent >= 309 {
        // At least 1e309, past f64::MAX (1.8e308) and its midpoint to 2^1024.
        return f64::INFINITY;
    }
    if length + exponent <= -324 {
        // Below 1e-324, under half the smallest f64 (4.9e-324).
        return 0.0;
    }
    let mut numerator = Big::from_digits(&digits);
    let mut denominator = Big::from_digits(&[1]);
    if exponent >= 0 {
        numerator.times_power_of_ten(exponent);
    } else {
        denominator.times_power_of_ten(-exponent);
    }
    // With k from the sizes, numerator / (denominator * 2^k) is in
    // [2^52, 2^54); below 2^-1074 (k < -1074) the number is subnormal and q
    // has fewer bits.
    let mut k = (numerator.bits() - denominator.bits() - 53).max(-1074);
    let (mut q, mut rest) = divide(&numerator, &denominator, k);
    if q >= 1 << 53 {
        // One bit too many: it joins the rest, which now compares with half
        // a divisor twice as large.
        rest = match (q % 2, rest) {
            (0, _) => Rest::UnderHalf,
            (_, Rest::Zero) => Rest::Half,
            _ => Rest::OverHalf,
        };
        q >>= 1;
        k += 1;
    }
    // Round to nearest, ties to even; rounding up may carry into a 54th bit.
    if rest == Rest::OverHalf || (rest == Rest::Half && q % 2 == 1) {
        q += 1;
        if q == 1 << 53 {
            q >>= 1;
            k += 1;
        }
    }
    // q * 2^k as an f64's bits: a normal number holds q's lower 52 bits and
    // the biased exponent k + 52 + 1023; a subnormal one (k = -1074) q itself.
    if k > 971 {
        f64::INFINITY
    } else if q >= 1 << 52 {
        f64::from_bits((((k + 1075) as u64) << 52) | (q - (1 << 52)))
    } else {
        f64::from_bits(q)
    }
}

/// What is left after a division, against the divisor.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rest {
    Zero,
    UnderHalf,
    Half,
    OverHalf,
}

/// `numerator / (denominator * 2^k)`, rounded down (it must be below 2^54),
/// and what is left.
fn divide(numerator: &Big, denominator: &Big, k: i64) -> (u64, Rest) {
    let shift = k.unsigned_abs();
    let (mut rest, divisor) = if k >= 0 {
        (numerator.shifted(0), denominator.shifted(shift))
    } else {
        (numerator.shifted(shift), denominator.shifted(0))
    };
    // Long division, one bit of the quotient at a time from bit 53 down;
    // rather than halve the divisor each time, the rest is doubled.
    let top = divisor.shifted(53);
    let mut quotient: u64 = 0;
    for _ in 0..54 {
        quotient <<= 1;
        if rest.compare(&top) != Ordering::Less {
            rest.subtract(&top);
            quotient |= 1;
        }
        rest.double();
    }
    // The rest is now 2^54 times the remainder: against `top` (2^53 times
    // the divisor) it compares as twice the remainder with the divisor.
    let left = match rest.compare(&top) {
        _ if rest.0.is_empty() => Rest::Zero,
        Ordering::Less => Rest::UnderHalf,
        Ordering::Equal => Rest::Half,
        Ordering::Greater => Rest::OverHalf,
    };
    (quotient, left)
}

/// A non-negative big integer: 32-bit words, least significant first, with
/// no zero word at the top.
struct Big(Vec<u32>);

impl Big {
    /// The integer whose decimal digits (values 0..=9) are `digits`.
    fn from_digits(digits: &[u8]) -> Big {
        let mut big = Big(Vec::new());
        for &digit in digits {
            big.multiply_add(10, u32::from(digit));
        }
        big
    }

    /// `self * factor + add`.
    fn multiply_add(&mut self, factor: u32, add: u32) {
        let mut carry = u64::from(add);
        for word in &mut self.0 {
            let product = u64::from(*word) * u64::from(factor) + carry;
            *word = product as u32;
            carry = product >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    /// `self * 10^power`, nine digits at a time.
    fn times_power_of_ten(&mut self, mut power: i64) {
        while power > 0 {
            let step = power.min(9);
            self.multiply_add(10_u32.pow(step as u32), 0);
            power -= step;
        }
    }

    /// The number of bits, up to the highest one.
    fn bits(&self) -> i64 {
        match self.0.last() {
            None => 0,
            Some(top) => 32 * self.0.len() as i64 - i64::from(top.leading_zeros()),
        }
    }

    /// `self * 2^shift`, as a new integer.
    fn shifted(&self, shift: u64) -> Big {
        if self.0.is_empty() {
            return Big(Vec::new());
        }
        let (words, bits) = ((shift / 32) as usize, (shift % 32) as u32);
        let mut shifted = vec![0; words];
        let mut carry = 0;
        for &word in &self.0 {
            let wide = u64::from(word) << bits;
            shifted.push(wide as u32 | carry);
            carry = (wide >> 32) as u32;
        }
        if carry > 0 {
            shifted.push(carry);
        }
        Big(shifted)
    }

    /// `self * 2`, in place.
    fn double(&mut self) {
        let mut carry = 0;
        for word in &mut self.0 {
            let next_carry = *word >> 31;
            *word = (*word << 1) | carry;
            carry = next_carry;
        }
        if carry > 0 {
            self.0.push(carry);
        }
    }

    fn compare(&self, other: &Big) -> Ordering {
        let longer = self.0.len().cmp(&other.0.len());
        longer.then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// `self - other`, where `other` is at most `self`.
    fn subtract(&mut self, other: &Big) {
        let mut borrow = false;
        for (index, word) in self.0.iter_mut().enumerate() {
            let subtrahend = other.0.get(index).copied().unwrap_or(0);
            let (difference, under) = word.overflowing_sub(subtrahend);
            let (difference, under_again) = difference.overflowing_sub(u32::from(borrow));
            *word = difference;
            borrow = under || under_again;
        }
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Big, INFINITE_FROM, is_finite, to_f64};

    fn check(text: &str) {
        let expected: f64 = text.parse().unwrap();
        let got = to_f64(text.as_bytes());
        assert_eq!(
            got.to_bits(),
            expected.to_bits(),
            "{text}: {got:e} vs {expected:e}"
        );
        assert_eq!(is_finite(text.as_bytes()), expected.is_finite(), "{text}");
    }

    #[test]
    fn infinite_from_is_the_midpoint_past_f64_max() {
        let digits: Vec<u8> = INFINITE_FROM.iter().map(|digit| digit - b'0').collect();
        // (2^54 - 1) * 2^970 = 2^1024 - 2^970.
        let mut midpoint = Big::from_digits(&[1]).shifted(54);
        midpoint.subtract(&Big::from_digits(&[1]));
        let midpoint = midpoint.shifted(970);
        assert!(Big::from_digits(&digits).compare(&midpoint).is_eq());
    }

    #[test]
    fn edges() {
        let limit = std::str::from_utf8(INFINITE_FROM).unwrap();
        let just_under = format!("{}1.999", &limit[..308]);
        let texts = [
            "0",
            "-0",
            "0.0",
            "-0.0e5",
            "1",
            "-1",
            "1700000000",
            "1700000100.75",
            "1699999999.5",
            "4102444800",
            "1e300",
            "-1e300",
            "1e308",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            limit,
            &format!("-{limit}"),
            &format!("{limit}.0000000000001"),
            &format!("{limit}e-5"),
            &format!("{limit}e-309"),
            &just_under,
            "1e309",
            "1e999",
            "-1e400",
            "2.2250738585072014e-308",
            "2.2250738585072011e-308",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1e-323",
            "1e-324",
            "1e-400",
            "-1e-400",
            "9007199254740992",
            "9007199254740993",
            "9007199254740993.0000000000000000000000000000001",
            "9007199254740995",
            "123456789012345678901234567890",
            "0.1",
            "0.3",
            "1e22",
            "1e23",
            "8.589973e9",
            "1.5e3",
            "-12.5e-1",
            "1E+2",
            "0.000000000000000000000000000000000000000000001e45",
            "1e99999999999999999999",
            "1e-99999999999999999999",
        ];
        for text in texts {
            check(text);
        }
    }

    #[test]
    fn long_digit_strings() {
        // Past 800 digits, around a midpoint: 2^53 + 1 and many more digits.
        for tail in ["", "0", "1", "5"] {
            for zeros in [10, 780, 800, 1500] {
                check(&format!("9007199254740993.{}{tail}", "0".repeat(zeros)));
                check(&format!("9007199254740992.{}{tail}", "9".repeat(zeros)));
            }
        }
        check(&format!("0.{}1", "0".repeat(330)));
        check(&format!("{}e-1000", "7".repeat(1000)));
        check(&format!("{}e-690", "7".repeat(1000)));
    }

    #[test]
    fn random_numbers() {
        // xorshift64, so that every run checks the same numbers.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..5_000 {
            // Random bits read back: the shortest and 17-digit spellings.
            let value = f64::from_bits(next() & !(1 << 63));
            if value.is_finite() {
                check(&format!("{value:e}"));
                check(&format!("{value:.16e}"));
            }
            // Random digits and exponents.
            let digits = 1 + (next() % 30) as usize;
            let text: String = (0..digits)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            let exponent = (next() % 700) as i64 - 350;
            check(&format!("{text}e{exponent}"));
            if round % 2 == 0 {
                check(&format!("{text}.{text}e{}", exponent / 2));
            }
        }
    }
}
