//! [`SplitMix64`]: a tiny, fast, seedable generator for jitter when ChaCha8's cost matters.

/// SplitMix64 (Steele, Lea and Flood, 2014): 8 bytes of state, a few nanoseconds per draw,
/// good statistical quality, not cryptographic. Jitter needs spread, not secrecy: use it with
/// [`RetryMachine::with_rng`](crate::RetryMachine::with_rng) where ChaCha8's ~3 ns per draw
/// and its ~300-byte state matter (see BENCHMARKS.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next value.
    pub fn next_value(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
}

/// The SplitMix64 finaliser: a strong 64-bit mixing function (useful to derive per-call
/// seeds from a counter).
pub fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl rand_core::TryRng for SplitMix64 {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.next_value() >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next_value())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_value().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

impl rand_core::SeedableRng for SplitMix64 {
    type Seed = [u8; 8];
    fn from_seed(seed: [u8; 8]) -> SplitMix64 {
        SplitMix64(u64::from_le_bytes(seed))
    }
    fn seed_from_u64(state: u64) -> SplitMix64 {
        SplitMix64(state)
    }
}
