//! A duration in seconds, written as `{}` writes an `f64`, without std's
//! float printer.
//!
//! `format!("{}", duration.as_secs_f64())` links std's shortest-float printer
//! (Grisu with a Dragon fallback, about 17 KB of a stripped router build) for
//! one metric. [`seconds`] writes the same text with integer arithmetic; the
//! tests compare the two.

// Implementation notes. `{}` of an f64 writes the decimal with the fewest
// digits that reads back as the same f64 (the nearest of two, a tie rounded
// up), without an exponent. A decimal reads back as `x` when it lies between
// the midpoints from `x` to its neighbouring f64s (the midpoints included
// when `x`'s mantissa is even, as round-half-even reading does). So we try 0,
// 1, 2... decimal places until the decimal just below or just above `x` at
// that many places lies in there; from 2^53 on, `x` is whole and its
// neighbours are 2 or more apart, so the tries start at -19 places (whole
// multiples of 10^19). Every value is an exact fraction of u128s: the loop
// ends by the place where `x * 10^places` is whole, or by 26 places, so
// `quarters * up` stays below 2^116 and `down` below 2^85.

use std::time::Duration;

/// `duration.as_secs_f64()` as `{}` writes it: `0`, `0.25`, `1.000000001`.
pub(crate) fn seconds(duration: Duration) -> String {
    let x = duration.as_secs_f64();
    let bits = x.to_bits();
    // x is 0, or from 1e-9 (one nanosecond) to 2^64: never negative,
    // subnormal, infinite or NaN.
    let biased_exponent = ((bits >> 52) & 0x7ff) as i32;
    if biased_exponent == 0 {
        return "0".to_string();
    }
    let fraction = bits & ((1 << 52) - 1);
    let mantissa = u128::from(fraction | (1 << 52));
    // x = mantissa * 2^exponent exactly; the exponent is from -82 to 12.
    let exponent = biased_exponent - 1075;
    // In quarters of a mantissa step (2^exponent / 4), x is 4 * mantissa and
    // the midpoints are 2 quarters away; the one below is 1 quarter away when
    // x is a power of two, where the steps below are half as long.
    let quarters = 4 * mantissa;
    let below: u128 = if fraction == 0 { 1 } else { 2 };
    let above: u128 = 2;
    let midpoints_read_back = mantissa % 2 == 0;
    // 17 significant digits always read back, so for x >= 1e-9 a decimal is
    // found by 26 places; at 26 the nearest is taken, found or not.
    let first_places = if exponent > 0 { -19 } else { 0 };
    for places in first_places..=26_i32 {
        // x * 10^places = quarters * 2^(exponent - 2) * 5^places * 2^places,
        // as the fraction quarters * up / down.
        let (mut up, mut down) = (1_u128, 1_u128);
        if places >= 0 {
            up *= 5_u128.pow(places.unsigned_abs());
        } else {
            down *= 5_u128.pow(places.unsigned_abs());
        }
        let twos = exponent - 2 + places;
        if twos >= 0 {
            up <<= twos;
        } else {
            down <<= twos.unsigned_abs();
        }
        let scaled = quarters * up;
        let floor = scaled / down;
        // The decimal below x is `rest / down` away, the one above `down - rest`;
        // a midpoint is `below * up / down` or `above * up / down` away.
        let rest = scaled - floor * down;
        let reads_back = |distance: u128, midpoint: u128| {
            distance < midpoint * up || (midpoints_read_back && distance == midpoint * up)
        };
        let floor_reads_back = reads_back(rest, below);
        let ceiling_reads_back = reads_back(down - rest, above);
        let nearest = if rest < down - rest { floor } else { floor + 1 };
        let digits = match (floor_reads_back, ceiling_reads_back) {
            (true, true) => nearest,
            (true, false) => floor,
            (false, true) => floor + 1,
            (false, false) if places == 26 => nearest,
            (false, false) => continue,
        };
        return decimal(digits, places);
    }
    // Not reached: the loop returns at 26 places at the latest.
    "0".to_string()
}

/// `digits` * 10^-places as plain decimal text.
fn decimal(digits: u128, places: i32) -> String {
    let zeros = places.unsigned_abs() as usize;
    if places <= 0 {
        return format!("{digits}{}", "0".repeat(zeros));
    }
    let unit = 10_u128.pow(places.unsigned_abs());
    format!("{}.{:0zeros$}", digits / unit, digits % unit)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::seconds;

    fn check(duration: Duration) {
        assert_eq!(
            seconds(duration),
            format!("{}", duration.as_secs_f64()),
            "{duration:?}"
        );
    }

    #[test]
    fn edges() {
        let whole = [
            0,
            1,
            2,
            9,
            10,
            4_503_599,
            1 << 22,
            1 << 23,
            1 << 32,
            1 << 50,
            (1 << 52) - 1,
            1 << 52,
            (1 << 53) - 1,
            1 << 53,
            (1 << 53) + 1,
            (1 << 54) + 2,
            (1 << 55) - 1,
            1 << 60,
            u64::MAX / 10,
            u64::MAX - 1,
            u64::MAX,
        ];
        let nanos = [
            0,
            1,
            2,
            5,
            9,
            10,
            99,
            100,
            976_562,
            976_563,
            250_000_000,
            500_000_000,
            123_456_789,
            999_999_999,
        ];
        for secs in whole {
            for nanos in nanos {
                check(Duration::new(secs, nanos));
            }
        }
    }

    #[test]
    fn ties_round_up() {
        // 2^23 + 2^-10 s lies midway between two 9-place decimals, both of
        // which read back; so does 2^50 + 0.25 s between two 1-place ones.
        assert_eq!(
            seconds(Duration::new(1 << 23, 976_562)),
            "8388608.000976563"
        );
        assert_eq!(
            seconds(Duration::new(1 << 50, 250_000_000)),
            "1125899906842624.3"
        );
        check(Duration::new(1 << 23, 976_562));
        check(Duration::new(1 << 50, 250_000_000));
    }

    #[test]
    fn random_durations() {
        // xorshift64, so that every run checks the same durations.
        let mut state: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200_000_u64 {
            let bits = (round % 65) as u32;
            let secs = next().checked_shr(64 - bits).unwrap_or(0);
            let nanos = (next() % 1_000_000_000) as u32;
            check(Duration::new(secs, nanos));
            // Nanoseconds near a binary fraction: ties and power-of-two edges.
            let shift = (next() % 31) as u32;
            let numerator = u128::from(next() % (1 << shift));
            let near = ((numerator * 1_000_000_000) >> shift) as u32;
            check(Duration::new(secs, near));
        }
    }
}
