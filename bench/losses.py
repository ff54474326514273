"""The losses in plain PyTorch, written from the authors' definitions, for the parity runs
(bench/torch_train.py) and the reference values the trainer's tests check against
(trainer/tests/reference/make_losses.py). Every function returns the unreduced loss, one
value per (row, label); callers take the mean.

- BCE with per-label positive weights, and focal modulation as torchvision's
  sigmoid_focal_loss.
- ASL, Ridnik et al. ICCV 2021, as Alibaba-MIIL/ASL `AsymmetricLoss`: margin `clip` on the
  negatives' probability, `eps` floor in the logs, focusing weight without gradient (their
  training script's disable_torch_grad_focal_loss=True). They return the sum; we the mean.
- DB, Wu et al. ECCV 2020, as `ResampleLoss(reweight_func='rebalance', focal, logit_reg)` in
  its text port (Roche/BalancedLossNLP): prior bias -log(n/n_j - 1) * kappa, negative logits
  scaled by lambda and their weights divided by it, focal term with alpha_t. Label counts are
  clamped to [1, n-1], where the authors' formulas would be infinite.
"""
import numpy as np
import torch
import torch.nn.functional as F


def pos_weights(cw, pos, n, dtype=torch.float32):
    """Per-label positive weights from a class-weight scheme, capped (the trainer's rule)."""
    scheme, cap = cw["scheme"], cw["cap"]
    pos = np.asarray(pos, dtype=np.float64)
    with np.errstate(divide="ignore"):
        if scheme == "none":
            return None
        if scheme == "neg_pos":
            w = np.where(pos > 0, (n - pos) / pos, np.inf)
        elif scheme == "neg_pos_sqrt":
            w = np.sqrt(np.where(pos > 0, (n - pos) / pos, np.inf))
        else:
            b = cw["beta"]
            w = np.where(pos > 0, (1 - b) / (1 - b ** pos), np.inf)
            fin = w[np.isfinite(w)]
            w = w / (fin.mean() if len(fin) else 1.0)
    return torch.tensor(np.clip(np.minimum(w, cap), 1e-6, None), dtype=dtype)


def bce(logits, y, pw, gamma, alpha):
    ce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none")
    if gamma > 0:
        p = torch.sigmoid(logits)
        p_t = p * y + (1 - p) * (1 - y)
        ce = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        ce = ce * (alpha * y + (1 - alpha) * (1 - y))
    return ce


def asl(logits, y, pw, gamma_pos, gamma_neg, clip, eps):
    p = torch.sigmoid(logits)
    p_neg = 1 - p
    if clip > 0:
        p_neg = (p_neg + clip).clamp(max=1)
    log_pos = y * torch.log(p.clamp(min=eps))
    if pw is not None:
        log_pos = log_pos * pw
    log_lik = log_pos + (1 - y) * torch.log(p_neg.clamp(min=eps))
    if gamma_pos > 0 or gamma_neg > 0:
        with torch.no_grad():
            p_t = p * y + p_neg * (1 - y)
            w = torch.pow(1 - p_t, gamma_pos * y + gamma_neg * (1 - y))
        log_lik = log_lik * w
    return -log_lik


def db_tables(counts, n, kappa, dtype=torch.float32):
    """1/n_j and the class-prior bias, with counts clamped to [1, n-1]."""
    c = np.clip(np.asarray(counts, dtype=np.float64), 1.0, max(n - 1.0, 1.0))
    freq_inv = torch.tensor(1.0 / c, dtype=dtype)
    prior = torch.tensor(-np.log(n / c - 1.0) * kappa, dtype=dtype)
    return freq_inv, prior


def db(logits, y, freq_inv, prior, alpha, beta, mu, lam, gamma, focal_alpha):
    repeat_rate = (y * freq_inv).sum(dim=1, keepdim=True)
    r = freq_inv / repeat_rate
    weight = torch.sigmoid(beta * (r - mu)) + alpha
    z = logits + prior
    pos = y >= 0.5
    z = torch.where(pos, z, z * lam)
    weight = torch.where(pos, weight, weight / lam)
    p_t = torch.exp(-F.binary_cross_entropy_with_logits(z, y, reduction="none"))
    weighted = F.binary_cross_entropy_with_logits(z, y, weight=weight, reduction="none")
    alpha_t = torch.where(pos, torch.full_like(y, focal_alpha), torch.full_like(y, 1 - focal_alpha))
    return alpha_t * (1 - p_t) ** gamma * weighted


def build(loss_cfg, counts, n, device="cpu", dtype=torch.float32):
    """The unreduced loss function a trial config names, for training on `n` rows whose
    label j has counts[j] positives."""
    kind = loss_cfg.get("kind", "bce")
    pw = pos_weights(loss_cfg["class_weight"], counts, n, dtype)
    pw = pw.to(device) if pw is not None else None
    if kind == "bce":
        g, a = loss_cfg["focal_gamma"], loss_cfg["focal_alpha"]
        return lambda z, y: bce(z, y, pw, g, a)
    if kind == "asl":
        c = loss_cfg["asl"]
        return lambda z, y: asl(z, y, pw, c["gamma_pos"], c["gamma_neg"], c["clip"], c["eps"])
    if kind == "db":
        c = loss_cfg["db"]
        freq_inv, prior = (t.to(device) for t in db_tables(counts, n, c["kappa"], dtype))
        return lambda z, y: db(z, y, freq_inv, prior, c["alpha"], c["beta"], c["mu"], c["lambda"], c["gamma"],
                               c["focal_alpha"])
    raise SystemExit(f"unknown loss kind {kind}")
