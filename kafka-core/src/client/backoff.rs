//! Exponential backoff with jitter, as KIP-580 specifies for the Java client.
//!
//! The n-th retry (counting from 0) waits `retry.backoff.ms × 2ⁿ`, capped at
//! `retry.backoff.max.ms`, then multiplied by a random factor in `[0.8, 1.2]` so that many
//! clients failing at once do not retry in lockstep. Defaults: 100 ms growing to 1 s.
//!
//! Sans-IO: [`Backoff`] only computes durations; the caller sleeps. Its random numbers come
//! from a small xorshift generator that tests seed, so delays are reproducible.

use std::time::Duration;

/// Backoff settings (`retry.backoff.ms`, `retry.backoff.max.ms`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// First delay (`retry.backoff.ms`). Default 100 ms.
    pub initial: Duration,
    /// Largest delay before jitter (`retry.backoff.max.ms`). Default 1 s. If it is below
    /// `initial`, every delay is `max` (as in the Java client).
    pub max: Duration,
    /// Growth factor per attempt. Default 2.
    pub multiplier: u32,
    /// Relative jitter: each delay is scaled by a factor drawn from `[1 - jitter, 1 + jitter]`.
    /// Default 0.2.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            multiplier: 2,
            jitter: 0.2,
        }
    }
}

impl BackoffConfig {
    /// The delay before retry number `attempt` (0-based) without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let max = self.max;
        if self.initial >= max {
            return max;
        }
        // Saturating: 2^attempt overflows quickly, and the cap applies anyway.
        let factor = (self.multiplier.max(1) as u64).saturating_pow(attempt.min(63));
        let nanos = (self.initial.as_nanos() as u64).saturating_mul(factor);
        Duration::from_nanos(nanos).min(max)
    }

    /// The delay before retry number `attempt`, jittered by `unit`, a number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0);
        self.base_delay(attempt).mul_f64(factor)
    }
}

/// A xorshift64* generator: tiny, fast, good enough for jitter; never for anything secret.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator from `seed` (0 is replaced, as xorshift would stay at 0 forever).
    pub fn new(seed: u64) -> Self {
        XorShift64 {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// A generator seeded from the process's random hasher keys (no extra dependency).
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        );
        XorShift64::new(h.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The backoff state of one retry loop (or one broker's reconnects).
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempts: u32,
    rng: XorShift64,
}

impl Backoff {
    /// A backoff with a randomly seeded generator.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff::with_rng(config, XorShift64::from_entropy())
    }

    /// A backoff with a given generator (tests seed it for reproducible delays).
    pub fn with_rng(config: BackoffConfig, rng: XorShift64) -> Self {
        Backoff {
            config,
            attempts: 0,
            rng,
        }
    }

    /// The delay to wait before the next retry; each call counts one more attempt.
    pub fn next_delay(&mut self) -> Duration {
        let unit = self.rng.next_unit();
        let d = self.config.delay(self.attempts, unit);
        self.attempts = self.attempts.saturating_add(1);
        d
    }

    /// How many delays were handed out since creation or the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over from the initial delay (after a success).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The settings.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_by_two_up_to_the_cap() {
        let c = BackoffConfig::default();
        let base: Vec<_> = (0..8).map(|n| c.base_delay(n)).collect();
        assert_eq!(
            base,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
        assert_eq!(c.base_delay(u32::MAX), ms(1000));
    }

    #[test]
    fn jitter_is_plus_minus_twenty_percent() {
        let c = BackoffConfig::default();
        assert_eq!(c.delay(0, 0.0), ms(80));
        assert_eq!(c.delay(0, 0.5), ms(100));
        assert_eq!(c.delay(4, 0.0), ms(800));
        let mut b = Backoff::with_rng(c, XorShift64::new(7));
        for n in 0..200u32 {
            let d = b.next_delay();
            let base = c.base_delay(n);
            assert!(
                d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                "{n}: {d:?}"
            );
        }
        assert_eq!(b.attempts(), 200);
        b.reset();
        assert!(b.next_delay() <= ms(120));
    }

    #[test]
    fn seeded_delays_are_reproducible() {
        let c = BackoffConfig::default();
        let run = |seed| {
            let mut b = Backoff::with_rng(c, XorShift64::new(seed));
            (0..10).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn max_below_initial_means_max() {
        let c = BackoffConfig {
            initial: ms(500),
            max: ms(50),
            jitter: 0.0,
            ..Default::default()
        };
        assert_eq!(c.delay(0, 0.3), ms(50));
        assert_eq!(c.delay(9, 0.3), ms(50));
    }

    #[test]
    fn unit_is_in_range() {
        let mut r = XorShift64::new(0);
        for _ in 0..10_000 {
            let u = r.next_unit();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(3) < 3);
        }
    }
}
