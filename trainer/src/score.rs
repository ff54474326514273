//! Reading rows in batches (dense rows from a device tensor, sparse rows gathered from
//! host CSR into embedding bags) and scoring a model on a split: probabilities and the
//! mean loss, in fixed chunks, so a saved model scores a file exactly as the trainer
//! scored its test split.

use tch::{Device, Kind, Tensor};

use crate::data::{Bag, Csr, Features, Split};
use crate::loss::Loss;
use crate::model::{Batch, Mlp};

/// A split's feature rows where batches come from.
pub enum Rows<'a> {
    /// The whole split on the device, `[rows, in]`.
    Dense(Tensor),
    /// Host CSR rows, gathered per batch.
    Sparse(&'a Csr),
}

impl<'a> Rows<'a> {
    pub fn of(split: &'a Split, features: usize, device: Device) -> Rows<'a> {
        match &split.x {
            Features::Dense(x) => {
                Rows::Dense(Tensor::from_slice(x).view([split.n as i64, features as i64]).to_device(device))
            }
            Features::Sparse(c) => Rows::Sparse(c),
        }
    }

    /// Rows `start..start + len`.
    pub fn chunk(&self, start: usize, len: usize, device: Device) -> Batch {
        match self {
            Rows::Dense(x) => Batch::Dense(x.narrow(0, start as i64, len as i64)),
            Rows::Sparse(c) => {
                let mut bag = Bag::default();
                c.gather(start..start + len, 0, &mut bag);
                Batch::sparse(bag, device)
            }
        }
    }

    /// A stack's batch: model k's rows are `order.host[k][start..start + len]` (each
    /// model its own order), dense as `[K, len, in]`, sparse as K*len bags with model k's
    /// column ids shifted by k*in.
    pub fn stacked(&self, order: &Order, start: usize, len: usize, device: Device) -> Batch {
        let k = order.host.len();
        match self {
            Rows::Dense(x) => {
                let idx = order.device.narrow(1, start as i64, len as i64).reshape([-1]);
                Batch::Dense(x.index_select(0, &idx).view([k as i64, len as i64, -1]))
            }
            Rows::Sparse(c) => {
                let mut bag = Bag::default();
                for (m, rows) in order.host.iter().enumerate() {
                    let shift = (m * c.cols) as i64;
                    c.gather(rows[start..start + len].iter().map(|&r| r as usize), shift, &mut bag);
                }
                Batch::sparse(bag, device)
            }
        }
    }
}

/// Each model's row order for an epoch, on the host and as a `[K, rows]` device tensor.
pub struct Order {
    pub host: Vec<Vec<i64>>,
    pub device: Tensor,
}

impl Order {
    pub fn new(host: Vec<Vec<i64>>, device: Device) -> Order {
        let (k, n) = (host.len() as i64, host.first().map_or(0, Vec::len) as i64);
        let flat: Vec<i64> = host.iter().flatten().copied().collect();
        Order { device: Tensor::from_slice(&flat).view([k, n]).to_device(device), host }
    }
}

/// The 0/1 label matrix as floats on the device.
pub fn labels_tensor(y: &[u8], rows: usize, cols: usize, device: Device) -> Tensor {
    Tensor::from_slice(y).view([rows as i64, cols as i64]).to_device(device).to_kind(Kind::Float)
}

/// Rows scored at once.
const EVAL_CHUNK: usize = 8192;

/// Probabilities (row-major) of the model on `rows` and, given labels and the loss, the
/// mean loss.
pub fn score(model: &Mlp, rows: &Rows, n: usize, loss: Option<(&Tensor, &Loss)>) -> (Vec<f32>, f64) {
    if n == 0 {
        return (Vec::new(), f64::NAN);
    }
    tch::no_grad(|| {
        let device = model.device();
        let mut probs = Vec::new();
        let mut loss_sum = Tensor::zeros([], (Kind::Float, device));
        let mut start = 0;
        while start < n {
            let len = EVAL_CHUNK.min(n - start);
            let logits = model.forward(&rows.chunk(start, len, device));
            if let Some((y, loss)) = loss {
                loss_sum += loss.elementwise(&logits, &y.narrow(0, start as i64, len as i64)).sum(Kind::Float);
            }
            probs.push(logits.sigmoid());
            start += len;
        }
        let probs = Tensor::cat(&probs, 0).to_device(Device::Cpu).contiguous().view([-1]);
        let v: Vec<f32> = Vec::<f32>::try_from(&probs).expect("probabilities to host");
        let labels = loss.map_or(1, |(y, _)| y.size()[1]);
        let mean_loss = f64::try_from(loss_sum).unwrap_or(f64::NAN) / (n as i64 * labels).max(1) as f64;
        (v, mean_loss)
    })
}

/// Probabilities (row-major) of the model on a split, as the trainer scores one.
pub fn probabilities(model: &Mlp, split: &Split, features: usize) -> Vec<f32> {
    let rows = Rows::of(split, features, model.device());
    score(model, &rows, split.n, None).0
}
