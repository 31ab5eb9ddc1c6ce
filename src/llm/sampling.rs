//! Choosing the next token from the logits.

pub use crate::config::SamplingParams;

/// A small, seedable generator (SplitMix64): reproducible across platforms,
/// which is what a `seed` setting promises.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Sampler {
        let seed = params.seed;
        Sampler {
            params,
            rng: Rng(seed),
            candidates: Vec::new(),
        }
    }

    /// Pick the next token. `history` is every token so far (prompt included).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.repeat_penalty != 1.0 && p.repeat_penalty > 0.0 {
            let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
            let mut seen = std::collections::HashSet::new();
            for &t in recent {
                if seen.insert(t)
                    && let Some(l) = logits.get_mut(t as usize)
                {
                    *l = if *l > 0.0 {
                        *l / p.repeat_penalty
                    } else {
                        *l * p.repeat_penalty
                    };
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(logits);
        }
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        let k = if p.top_k == 0 {
            self.candidates.len()
        } else {
            p.top_k.min(self.candidates.len())
        };
        if k < self.candidates.len() {
            self.candidates
                .select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            self.candidates.truncate(k);
        }
        self.candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        let max = self.candidates[0].1;
        let inv_t = 1.0 / p.temperature;
        let mut sum = 0.0;
        for c in &mut self.candidates {
            c.1 = ((c.1 - max) * inv_t).exp();
            sum += c.1;
        }
        let mut cumulative = 0.0;
        let all = self.candidates.len();
        let mut keep = all;
        for (i, c) in self.candidates.iter_mut().enumerate() {
            c.1 /= sum;
            cumulative += c.1;
            if cumulative >= p.top_p && keep == all {
                keep = i + 1;
            }
        }
        self.candidates.truncate(keep);
        let total: f32 = self.candidates.iter().map(|c| c.1).sum();
        let mut r = self.rng.next_f32() * total;
        for c in &self.candidates {
            if r < c.1 {
                return c.0;
            }
            r -= c.1;
        }
        self.candidates.last().map(|c| c.0).unwrap_or(0)
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_maximum() {
        let mut s = Sampler::new(SamplingParams {
            repeat_penalty: 1.0,
            ..SamplingParams::default()
        });
        let mut logits = vec![0.1, 3.0, -2.0, 2.9];
        assert_eq!(s.sample(&mut logits, &[]), 1);
    }

    #[test]
    fn repeat_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplingParams {
            repeat_penalty: 2.0,
            ..SamplingParams::default()
        });
        let mut logits = vec![0.0, 3.0, 2.0];
        assert_eq!(s.sample(&mut logits, &[1]), 2);
    }

    #[test]
    fn same_seed_same_choices_and_top_k_one_is_greedy() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            seed: 7,
            ..SamplingParams::default()
        };
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = |params: SamplingParams| {
            let mut s = Sampler::new(params);
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(params.clone()), run(params.clone()));
        let distinct: std::collections::HashSet<_> = run(params.clone()).into_iter().collect();
        assert!(distinct.len() > 1, "temperature 1 should not be greedy");
        let top1 = run(SamplingParams { top_k: 1, ..params });
        let max = logits.iter().copied().fold(f32::MIN, f32::max);
        assert!(top1.iter().all(|&t| logits[t as usize] == max));
    }
}
