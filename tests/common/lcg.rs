//! Fixed pseudo-random values, shared by the library's unit tests and the integration tests
//! (both include this file by path).

/// Deterministic pseudo-random values in [-scale, scale): tests need fixed weights, not good ones.
pub fn lcg_values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            // Knuth's MMIX constants; the top 24 bits are the best mixed.
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            (unit * 2.0 - 1.0) * scale
        })
        .collect()
}
