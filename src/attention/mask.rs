//! A boolean attention mask: `true` where a query may attend to a key.

/// Which keys each query may see, row-major `[query][key]`, `n x n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    n: usize,
    visible: Vec<bool>,
}

impl Mask {
    /// Builds the mask by asking `visible(query, key)` for every pair.
    pub fn from_fn(n: usize, mut visible: impl FnMut(usize, usize) -> bool) -> Self {
        let mut bits = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                bits.push(visible(i, j));
            }
        }
        Self { n, visible: bits }
    }

    /// Sequence length: the mask is `n x n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Whether query `i` may attend to key `j`.
    pub fn get(&self, i: usize, j: usize) -> bool {
        self.visible[i * self.n + j]
    }

    /// The visible keys of query `i`.
    pub fn row(&self, i: usize) -> &[bool] {
        &self.visible[i * self.n..(i + 1) * self.n]
    }

    /// All entries, row-major.
    pub fn as_slice(&self) -> &[bool] {
        &self.visible
    }

    /// Number of attended (query, key) pairs: the cost of computing this pattern exactly.
    pub fn attended_pairs(&self) -> usize {
        self.visible.iter().filter(|&&v| v).count()
    }

    /// Fraction of the `n * n` pairs that are attended.
    pub fn density(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        self.attended_pairs() as f64 / (self.n * self.n) as f64
    }

    /// Restricts the mask to `key <= query` (autoregressive attention).
    pub fn causal(mut self) -> Self {
        let n = self.n;
        for i in 0..n {
            for j in (i + 1)..n {
                self.visible[i * n + j] = false;
            }
        }
        self
    }
}
