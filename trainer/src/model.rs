//! The MLP, initialised like PyTorch's `nn.Linear` (weight and bias uniform in
//! ±1/sqrt(fan_in)). tch's `nn::linear` default (Kaiming, ±sqrt(6/fan_in)) would
//! give a PyTorch user different results for the same config.

use tch::nn::{self, Init};
use tch::Tensor;

pub struct Mlp {
    layers: Vec<(Tensor, Tensor)>,
    dropout: f64,
}

impl Mlp {
    pub fn new(vs: &nn::Path, inputs: i64, hidden: &[u32], outputs: i64, dropout: f64) -> Mlp {
        let mut sizes: Vec<i64> = vec![inputs];
        sizes.extend(hidden.iter().map(|&h| h as i64));
        sizes.push(outputs);
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let bound = 1.0 / (w[0] as f64).sqrt();
                let init = Init::Uniform { lo: -bound, up: bound };
                let p = vs / format!("fc{i}");
                (p.var("weight", &[w[1], w[0]], init), p.var("bias", &[w[1]], init))
            })
            .collect();
        Mlp { layers, dropout }
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.linear(w, Some(b));
            if i < last {
                h = h.relu();
                if self.dropout > 0.0 {
                    h = h.dropout(self.dropout, train);
                }
            }
        }
        h
    }
}
