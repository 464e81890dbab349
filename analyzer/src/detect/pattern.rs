//! Novelty of the recent shape: the last few values (standardised) compared with the shapes
//! the series has shown before; far from every remembered shape is a new pattern (a missing
//! daily jump, a flat stretch, spikes more frequent than usual).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Distance from the current shape to the nearest remembered one.
///
/// ```
/// # use meridian_analyzer::detect::pattern::PatternNovelty;
/// let mut p = PatternNovelty::new(4, 100, 1);
/// let mut last = 0.0;
/// for i in 0..200 {
///     last = p.update(if i % 2 == 0 { 1.0 } else { -1.0 }); // a steady alternation
/// }
/// assert_eq!(last, 0.0); // seen before
/// assert!(p.update(5.0) > 1.0); // a new shape
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatternNovelty {
    length: usize,
    memory: usize,
    stride: usize,
    recent: VecDeque<f32>,
    /// Remembered shapes, `length` values each, oldest first, in one ring (`next` is the slot
    /// written next once full).
    shapes: Vec<f32>,
    next: usize,
    seen: u64,
    /// Slot of the last nearest shape: tried first, as consecutive shapes tend to match
    /// neighbours, so the search can stop early on most others.
    #[serde(default)]
    hint: usize,
}

impl PatternNovelty {
    /// Shapes of `length` points; every `stride`-th one is remembered, `memory` at most.
    pub fn new(length: usize, memory: usize, stride: usize) -> Self {
        Self {
            length: length.max(1),
            memory: memory.max(1),
            stride: stride.max(1),
            recent: VecDeque::new(),
            shapes: Vec::new(),
            next: 0,
            seen: 0,
            hint: 0,
        }
    }

    /// Adds a standardised value; returns the root-mean-square distance of the current shape
    /// to the nearest remembered one that does not overlap it (0 while there is none).
    pub fn update(&mut self, standardised: f64) -> f64 {
        let v = if standardised.is_finite() {
            standardised.clamp(-50.0, 50.0) as f32
        } else {
            0.0
        };
        self.recent.push_back(v);
        if self.recent.len() > self.length {
            self.recent.pop_front();
        }
        self.seen += 1;
        if self.recent.len() < self.length {
            return 0.0;
        }
        // In place: this runs for every point of every series.
        let current: &[f32] = self.recent.make_contiguous();
        let stored = self.shapes.len() / self.length;
        // The newest shapes overlap the current one: they are not "before" it. They are the
        // slots `newest`, `newest − 1`, … (circularly): one range test per shape, no division
        // (the modulo this replaced was a third of the search's time).
        let overlapping = self.length.div_ceil(self.stride);
        let newest = (self.next + stored).saturating_sub(1) % stored.max(1);
        let eligible = |k: usize| {
            let age = if k <= newest {
                newest - k
            } else {
                newest + stored - k
            };
            age >= overlapping
        };
        let length = self.length;
        let distance = |k: usize, bound: f32| {
            let shape = &self.shapes[k * length..(k + 1) * length];
            // Summed in order as before (the same distances to the bit), tested against the
            // bound once per four points rather than after each.
            let mut d = 0.0;
            for (xs, ys) in shape.chunks(4).zip(current.chunks(4)) {
                for (x, y) in xs.iter().zip(ys) {
                    d += (x - y) * (x - y);
                }
                if d >= bound {
                    break;
                }
            }
            d
        };
        let mut nearest = f32::INFINITY;
        let mut nearest_slot = self.hint;
        // Slot `next − 1` is the newest (slots fill in order, then wrap at `next`); the newest
        // `overlapping` shapes share points with the current one and are skipped.
        if self.hint < stored && eligible(self.hint) {
            nearest = distance(self.hint, f32::INFINITY);
        }
        for k in (0..stored).filter(|&k| k != self.hint && eligible(k)) {
            let d = distance(k, nearest);
            if d < nearest {
                nearest = d;
                nearest_slot = k;
            }
        }
        self.hint = nearest_slot;
        if self.seen.is_multiple_of(self.stride as u64) {
            if stored < self.memory {
                self.shapes.extend_from_slice(current);
            } else {
                let at = self.next * self.length;
                self.shapes[at..at + self.length].copy_from_slice(current);
                self.next = (self.next + 1) % self.memory;
            }
        }
        if nearest.is_finite() {
            f64::from(nearest / self.length as f32).sqrt()
        } else {
            0.0
        }
    }
}
