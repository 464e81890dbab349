//! Novelty of the recent shape: the last few values (standardised) compared with the shapes
//! the series has shown before; far from every remembered shape is a new pattern (a missing
//! daily jump, a flat stretch, spikes more frequent than usual).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Remembered shapes whose distances are summed side by side: a block of them stays in
/// registers and the first level of cache while each point of the current shape is applied.
const BLOCK: usize = 64;

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
#[serde(from = "SavedPattern", into = "SavedPattern")]
pub struct PatternNovelty {
    length: usize,
    memory: usize,
    stride: usize,
    recent: VecDeque<f32>,
    /// Remembered shapes by point: point `j` of the shape in slot `k` is at
    /// `j * memory + k`, so one point of every shape is contiguous and the distances of many
    /// shapes are summed at once (in each shape's own order, so they are the same to the bit
    /// as summing shape by shape). Empty until the first shape is remembered.
    columns: Vec<f32>,
    /// Slots filled (at most `memory`).
    stored: usize,
    /// The slot written next once full: slots fill in order, then wrap here.
    next: usize,
    seen: u64,
}

impl PatternNovelty {
    /// Shapes of `length` points; every `stride`-th one is remembered, `memory` at most.
    pub fn new(length: usize, memory: usize, stride: usize) -> Self {
        Self {
            length: length.max(1),
            memory: memory.max(1),
            stride: stride.max(1),
            recent: VecDeque::new(),
            columns: Vec::new(),
            stored: 0,
            next: 0,
            seen: 0,
        }
    }

    /// Adds a standardised value; returns the root-mean-square distance of the current shape
    /// to the nearest remembered one that does not overlap it (0 while there is none).
    pub fn update(&mut self, standardised: f64) -> f64 {
        self.seen += 1;
        if !push_recent(&mut self.recent, self.length, standardised) {
            return 0.0;
        }
        // In place: this runs for every point of every series.
        let current: &[f32] = self.recent.make_contiguous();
        let (memory, stored) = (self.memory, self.stored);
        // The newest shapes overlap the current one: they are not "before" it. They are the
        // slots `newest`, `newest − 1`, … (circularly).
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
        let mut nearest = f32::INFINITY;
        let mut distances = [0.0f32; BLOCK];
        for start in (0..stored).step_by(BLOCK) {
            let d = &mut distances[..BLOCK.min(stored - start)];
            d.fill(0.0);
            for (j, &c) in current.iter().enumerate() {
                let column = &self.columns[j * memory + start..][..d.len()];
                for (sum, &x) in d.iter_mut().zip(column) {
                    *sum += (x - c) * (x - c);
                }
            }
            for (k, &distance) in (start..).zip(d.iter()) {
                if distance < nearest && eligible(k) {
                    nearest = distance;
                }
            }
        }
        if self.seen.is_multiple_of(self.stride as u64) {
            if self.columns.is_empty() {
                self.columns = vec![0.0; self.length * memory];
            }
            let slot = if stored < memory {
                self.stored += 1;
                stored
            } else {
                let slot = self.next;
                self.next = (self.next + 1) % memory;
                slot
            };
            for (j, &c) in current.iter().enumerate() {
                self.columns[j * memory + slot] = c;
            }
        }
        if nearest.is_finite() {
            f64::from(nearest / self.length as f32).sqrt()
        } else {
            0.0
        }
    }
}

/// Adds a standardised value (clamped; a missing one as 0) to the last `length`; whether they
/// now make a whole shape.
fn push_recent(recent: &mut VecDeque<f32>, length: usize, standardised: f64) -> bool {
    let v = if standardised.is_finite() {
        standardised.clamp(-50.0, 50.0) as f32
    } else {
        0.0
    };
    recent.push_back(v);
    if recent.len() > length {
        recent.pop_front();
    }
    recent.len() == length
}

/// The saved form (that of the versions which kept shapes one after another): the remembered
/// shapes slot by slot, `length` values each.
#[derive(Serialize, Deserialize)]
struct SavedPattern {
    length: usize,
    memory: usize,
    stride: usize,
    recent: VecDeque<f32>,
    shapes: Vec<f32>,
    next: usize,
    seen: u64,
    // Older versions also wrote `hint` (where the search started); it is ignored.
}

impl From<PatternNovelty> for SavedPattern {
    fn from(p: PatternNovelty) -> Self {
        let mut shapes = Vec::with_capacity(p.stored * p.length);
        for k in 0..p.stored {
            shapes.extend((0..p.length).map(|j| p.columns[j * p.memory + k]));
        }
        Self {
            length: p.length,
            memory: p.memory,
            stride: p.stride,
            recent: p.recent,
            shapes,
            next: p.next,
            seen: p.seen,
        }
    }
}

impl From<SavedPattern> for PatternNovelty {
    fn from(s: SavedPattern) -> Self {
        let (length, memory) = (s.length.max(1), s.memory.max(1));
        let stored = (s.shapes.len() / length).min(memory);
        let mut columns = Vec::new();
        if stored > 0 {
            columns = vec![0.0; length * memory];
            for (k, shape) in s.shapes.chunks_exact(length).take(stored).enumerate() {
                for (j, &v) in shape.iter().enumerate() {
                    columns[j * memory + k] = v;
                }
            }
        }
        Self {
            length,
            memory,
            stride: s.stride.max(1),
            recent: s.recent,
            columns,
            stored,
            next: if stored < memory { 0 } else { s.next % memory },
            seen: s.seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The search as first written: shapes one after another, each distance summed in full.
    struct Reference {
        length: usize,
        memory: usize,
        stride: usize,
        recent: VecDeque<f32>,
        shapes: Vec<Vec<f32>>,
        next: usize,
        seen: u64,
    }

    impl Reference {
        fn update(&mut self, standardised: f64) -> f64 {
            self.seen += 1;
            if !push_recent(&mut self.recent, self.length, standardised) {
                return 0.0;
            }
            let current: Vec<f32> = self.recent.iter().copied().collect();
            let stored = self.shapes.len();
            // Ages: slot `next − 1` is the newest once full, slot `stored − 1` before.
            let newest = if stored < self.memory {
                stored.saturating_sub(1)
            } else {
                (self.next + stored - 1) % stored
            };
            let mut nearest = f32::INFINITY;
            for (k, shape) in self.shapes.iter().enumerate() {
                let age = (newest + stored - k) % stored;
                if age < self.length.div_ceil(self.stride) {
                    continue;
                }
                let mut d = 0.0f32;
                for (x, y) in shape.iter().zip(&current) {
                    d += (x - y) * (x - y);
                }
                nearest = nearest.min(d);
            }
            if self.seen % self.stride as u64 == 0 {
                if stored < self.memory {
                    self.shapes.push(current);
                } else {
                    self.shapes[self.next] = current;
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Scenario: random standardised streams (with repeats, so shapes tie) through
        /// memories smaller and larger than a block, several lengths and strides; the state
        /// saved and restored halfway.
        /// Guarantees: every distance is the one summing each remembered shape in full gives,
        /// to the bit, and the saved form restores the same search.
        #[test]
        fn nearest_shape_is_the_full_search(
            values in prop::collection::vec(-4i8..4, 300..900),
            length in 1usize..14,
            memory in 1usize..150,
            stride in 1usize..20,
        ) {
            let mut ours = PatternNovelty::new(length, memory, stride);
            let mut reference = Reference {
                length, memory, stride,
                recent: VecDeque::new(), shapes: Vec::new(), next: 0, seen: 0,
            };
            for (i, v) in values.iter().enumerate() {
                if i == values.len() / 2 {
                    let saved = serde_json::to_string(&ours).unwrap();
                    ours = serde_json::from_str(&saved).unwrap();
                }
                let v = f64::from(*v) * 0.5;
                prop_assert_eq!(ours.update(v).to_bits(), reference.update(v).to_bits(), "point {}", i);
            }
        }
    }

    /// Scenario: a state in the saved form of earlier versions (with their `hint` field).
    /// Guarantees: it loads, and saves back in the same form without the hint.
    #[test]
    fn reads_the_earlier_saved_form() {
        let old = r#"{"length":2,"memory":2,"stride":1,"recent":[1.0,2.0],
            "shapes":[1.0,2.0,3.0,4.0],"next":1,"seen":5,"hint":1}"#;
        let p: PatternNovelty = serde_json::from_str(old).unwrap();
        assert_eq!(p.columns, vec![1.0, 3.0, 2.0, 4.0]);
        let saved = serde_json::to_value(&p).unwrap();
        assert_eq!(saved["shapes"], serde_json::json!([1.0, 2.0, 3.0, 4.0]));
        assert!(saved.get("hint").is_none());
    }
}
