//! Sparse rows (compressed sparse row form): how text and XC features stay from reader
//! to the first layer without a dense `[rows, features]` matrix anywhere.

/// Rows of a sparse matrix: row r's entries are `indices[offsets[r]..offsets[r+1]]`
/// (column ids, ascending) with their `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    pub cols: usize,
    pub offsets: Vec<i64>,
    pub indices: Vec<i64>,
    pub values: Vec<f32>,
}

impl Csr {
    /// No rows yet, `cols` columns.
    pub fn empty(cols: usize) -> Csr {
        Csr { cols, offsets: vec![0], indices: Vec::new(), values: Vec::new() }
    }

    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Appends a row of (column, value) entries sorted by column.
    pub fn push_row(&mut self, entries: Vec<(usize, f64)>) {
        for (c, v) in entries {
            debug_assert!(c < self.cols);
            self.indices.push(c as i64);
            self.values.push(v as f32);
        }
        self.offsets.push(self.indices.len() as i64);
    }

    /// Row r's column ids and values.
    pub fn row(&self, r: usize) -> (&[i64], &[f32]) {
        let (a, b) = (self.offsets[r] as usize, self.offsets[r + 1] as usize);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// The given rows, in that order.
    pub fn take(&self, rows: &[usize]) -> Csr {
        let mut out = Csr::empty(self.cols);
        for &r in rows {
            let (i, v) = self.row(r);
            out.indices.extend_from_slice(i);
            out.values.extend_from_slice(v);
            out.offsets.push(out.indices.len() as i64);
        }
        out
    }

    /// The given rows as one embedding-bag batch: flattened column ids (each shifted by
    /// `shift`), per-entry values and the offset where each row starts.
    pub fn gather(&self, rows: impl Iterator<Item = usize>, shift: i64, bag: &mut Bag) {
        for r in rows {
            bag.offsets.push(bag.indices.len() as i64);
            let (i, v) = self.row(r);
            bag.indices.extend(i.iter().map(|c| c + shift));
            bag.values.extend_from_slice(v);
        }
    }
}

/// A batch of sparse rows as `embedding_bag` takes it.
#[derive(Debug, Default)]
pub struct Bag {
    pub indices: Vec<i64>,
    pub values: Vec<f32>,
    pub offsets: Vec<i64>,
}
