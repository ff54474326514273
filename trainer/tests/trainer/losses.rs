//! Every loss against reference values: the mean loss and its gradient with respect to
//! the logits, computed in float64 by PyTorch from the authors' definitions
//! (`bench/losses.py`, run by `trainer/tests/reference/make_losses.py`, output committed
//! as `reference/losses.json`). The batch has a row with no positive label, a label with
//! no positive, saturated logits, and training counts of 0 and n.

use sweep_file::LossConfig;
use sweep_trainer::loss::Loss;
use tch::{Device, Kind, Tensor};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    loss_config: LossConfig,
    counts: Vec<u32>,
    n: usize,
    logits: Vec<Vec<f64>>,
    targets: Vec<Vec<f64>>,
    loss: f64,
    grad: Vec<Vec<f64>>,
}

#[derive(serde::Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

fn matrix(rows: &[Vec<f64>]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().map(|v| *v as f32).collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 2e-5 * want.abs() + 1e-7;
    assert!((got - want).abs() <= tol, "{what}: {got} vs reference {want}");
}

#[test]
fn every_loss_and_its_gradient_match_the_pytorch_reference() {
    let text = include_str!("../reference/losses.json");
    let reference: Reference = serde_json::from_str(text).unwrap();
    assert_eq!(reference.cases.len(), 6);
    for c in &reference.cases {
        let loss = Loss::new(&c.loss_config, &c.counts, c.n, Device::Cpu);
        let logits = matrix(&c.logits).set_requires_grad(true);
        let value = loss.mean(&logits, &matrix(&c.targets));
        value.backward();
        close(f64::try_from(&value).unwrap(), c.loss, &format!("{}: loss", c.name));
        let grad = Vec::<f32>::try_from(logits.grad().to_kind(Kind::Float).view([-1])).unwrap();
        for (i, (g, want)) in grad.iter().zip(c.grad.iter().flatten()).enumerate() {
            close(*g as f64, *want, &format!("{}: d loss / d logit {i}", c.name));
        }
    }
}
