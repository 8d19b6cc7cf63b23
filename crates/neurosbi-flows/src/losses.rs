//! Losses for neural ratio estimation, to pass to [`crate::RatioClassifier::train_with_loss`].
//!
//! All pair each x of a batch with thetas of other rows of the same batch. Rows are
//! shuffled every epoch, so cyclic shifts within a batch draw contrastive thetas from the
//! marginal without replacement, deterministically and without the row's own theta.

use candle_core::{D, Result, Tensor};

use crate::RatioClassifier;
use crate::nn::softplus;

fn shifted(theta: &Tensor, shift: usize) -> Result<Tensor> {
    let b = theta.dim(0)?;
    let idx: Vec<u32> = (0..b).map(|i| ((i + shift) % b) as u32).collect();
    theta.index_select(&Tensor::from_vec(idx, b, theta.device())?, 0)
}

/// NRE-A (Hermans et al. 2020, sbi `SNRE_A`): binary cross-entropy between joint pairs
/// (theta_i, x_i), label 1, and marginal pairs (theta_{i+1}, x_i), label 0, averaged over
/// all 2B pairs. [`nre_a_loss_averaged`] with one contrastive theta.
pub fn nre_a_loss(clf: &RatioClassifier, theta: &Tensor, x: &Tensor) -> Result<Tensor> {
    nre_a_loss_averaged(clf, theta, x, 1)
}

/// The NRE-A cross-entropy with its label-0 term averaged over `num_contrastive` marginal
/// pairs (theta_{i+j}, x_i), j = 1..=num_contrastive (capped at B - 1); each class keeps
/// weight one half, so the loss estimates the same balanced cross-entropy as sbi's single
/// pair (same optimum: the logit is the log likelihood-to-evidence ratio) with less
/// variance. `neurosbi-infer` trains NRE-A with 9 (docs/methods.md).
pub fn nre_a_loss_averaged(
    clf: &RatioClassifier,
    theta: &Tensor,
    x: &Tensor,
    num_contrastive: usize,
) -> Result<Tensor> {
    let k = num_contrastive.min(theta.dim(0)?.saturating_sub(1)).max(1);
    let joint = clf.logits_tensor(theta, x)?;
    let mut marginal = softplus(&clf.logits_tensor(&shifted(theta, 1)?, x)?)?.mean_all()?;
    for j in 2..=k {
        marginal =
            (marginal + softplus(&clf.logits_tensor(&shifted(theta, j)?, x)?)?.mean_all()?)?;
    }
    // -log sigmoid(l) = softplus(-l); -log(1 - sigmoid(l)) = softplus(l).
    (softplus(&joint.neg()?)?.mean_all()? + (marginal / k as f64)?)? * 0.5
}

/// NRE-B (Durkan et al. 2020, sbi `SNRE_B`): for each x_i a classification among
/// `num_atoms` thetas (its own and `num_atoms - 1` others of the batch), loss =
/// -mean log softmax(logits)[true]. `num_atoms` is capped at the batch size.
pub fn nre_b_loss(
    clf: &RatioClassifier,
    theta: &Tensor,
    x: &Tensor,
    num_atoms: usize,
) -> Result<Tensor> {
    let b = theta.dim(0)?;
    let k = num_atoms.clamp(1, b);
    let cols = (0..k)
        .map(|j| clf.logits_tensor(&shifted(theta, j)?, x)?.unsqueeze(1))
        .collect::<Result<Vec<_>>>()?;
    let logits = Tensor::cat(&cols, 1)?;
    let ls = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    ls.narrow(1, 0, 1)?.mean_all()?.neg()
}

/// NRE-C (Miller et al. 2022, "Contrastive Neural Ratio Estimation"; sbi `NRE_C`, defaults
/// `num_classes = 5`, `gamma = 1`): a (K+1)-way classification per x_i with K = `num_classes`.
/// The joint term puts the row's own theta among K - 1 contrastive thetas, the marginal term
/// shows K contrastive thetas only; class 0 ("all thetas drawn independently") has the fixed
/// logit log K, and the K dependent classes are up-weighted by log `gamma`. The two terms are
/// weighted `1 / (1 + gamma)` (marginal) and `gamma / (1 + gamma)` (joint). At the optimum
/// the logit is the log likelihood-to-evidence ratio. `num_classes` is capped at batch - 1.
pub fn nre_c_loss(
    clf: &RatioClassifier,
    theta: &Tensor,
    x: &Tensor,
    num_classes: usize,
    gamma: f64,
) -> Result<Tensor> {
    let b = theta.dim(0)?;
    let k = num_classes.clamp(1, b.saturating_sub(1).max(1));
    // Shift 0 is the joint pair; shifts 1..=k are contrastive. The joint term uses shifts
    // 0..k, the marginal term shifts 1..=k (both K thetas).
    let cols = (0..=k)
        .map(|j| clf.logits_tensor(&shifted(theta, j)?, x)?.unsqueeze(1))
        .collect::<Result<Vec<_>>>()?;
    let all = Tensor::cat(&cols, 1)?;
    let log_gamma = gamma.ln();
    let log_k = (k as f64).ln();
    let dev = theta.device();
    let k_col = Tensor::full(log_k as f32, (b, 1), dev)?;
    let lse = |t: &Tensor| -> Result<Tensor> {
        let m = t.max_keepdim(D::Minus1)?.detach();
        t.broadcast_sub(&m)?
            .exp()?
            .sum_keepdim(D::Minus1)?
            .log()?
            .broadcast_add(&m)?
            .squeeze(1)
    };
    let joint = all.narrow(1, 0, k)?;
    let marginal = all.narrow(1, 1, k)?;
    let den_joint = Tensor::cat(&[&(joint.clone() + log_gamma)?, &k_col], 1)?;
    let den_marginal = Tensor::cat(&[&(marginal + log_gamma)?, &k_col], 1)?;
    let lp_marginal = (lse(&den_marginal)?.neg()? + log_k)?;
    let lp_joint = ((joint.narrow(1, 0, 1)?.squeeze(1)? + log_gamma)? - lse(&den_joint)?)?;
    let (p_marginal, p_joint) = (1.0 / (1.0 + gamma), gamma / (1.0 + gamma));
    ((lp_marginal * p_marginal)? + (lp_joint * p_joint)?)?
        .mean_all()?
        .neg()
}

/// BNRE (Delaunoy et al. 2022, "Towards Reliable Simulation-Based Inference with Balanced
/// Neural Ratio Estimation"; sbi `BNRE`, default `regularization_strength = 100`): the NRE-A
/// binary cross-entropy plus `lambda * (mean_i [sigmoid(l_joint,i) + sigmoid(l_marginal,i)] - 1)^2`,
/// which pushes the classifier towards conservative (not overconfident) ratios.
pub fn bnre_loss(
    clf: &RatioClassifier,
    theta: &Tensor,
    x: &Tensor,
    regularization_strength: f64,
) -> Result<Tensor> {
    let joint = clf.logits_tensor(theta, x)?;
    let marginal = clf.logits_tensor(&shifted(theta, 1)?, x)?;
    let bce = ((softplus(&joint.neg()?)?.mean_all()? + softplus(&marginal)?.mean_all()?)? * 0.5)?;
    let sig = candle_nn::ops::sigmoid;
    let balance = ((sig(&joint)? + sig(&marginal)?)?.mean_all()? - 1.0)?.sqr()?;
    bce + (balance * regularization_strength)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClassifierConfig;
    use candle_core::Device;

    fn lse(v: &[f64]) -> f64 {
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    }

    /// An untrained classifier on a small batch and the logit of every (shift, row) pair,
    /// computed one pair at a time through the f64 API.
    fn setup(b: usize, shifts: usize) -> (RatioClassifier, Tensor, Tensor, Vec<Vec<f64>>) {
        let theta: Vec<f64> = (0..2 * b)
            .map(|i| ((i * 37 % 11) as f64) / 5.0 - 1.0)
            .collect();
        let x: Vec<f64> = (0..b).map(|i| ((i * 13 % 7) as f64) / 3.0 - 1.0).collect();
        let c = RatioClassifier::new(&ClassifierConfig::mlp(), &theta, &x, 2, 1, 3).unwrap();
        let l: Vec<Vec<f64>> = (0..shifts)
            .map(|j| {
                (0..b)
                    .map(|i| {
                        let r = (i + j) % b;
                        c.logits(&theta[2 * r..2 * r + 2], &x[i..i + 1]).unwrap()[0]
                    })
                    .collect()
            })
            .collect();
        let t = Tensor::from_vec(
            theta.iter().map(|&v| v as f32).collect(),
            (b, 2),
            &Device::Cpu,
        )
        .unwrap();
        let xt =
            Tensor::from_vec(x.iter().map(|&v| v as f32).collect(), (b, 1), &Device::Cpu).unwrap();
        (c, t, xt, l)
    }

    #[test]
    fn nre_c_matches_its_definition() {
        let (b, k, gamma) = (8, 3, 2.0f64);
        let (c, t, x, l) = setup(b, k + 1);
        let got = f64::from(
            nre_c_loss(&c, &t, &x, k, gamma)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        );
        let (lg, lk) = (gamma.ln(), (k as f64).ln());
        let mut want = 0.0;
        // l is indexed [shift][row]; the loop runs over rows of every shift.
        #[allow(clippy::needless_range_loop)]
        for i in 0..b {
            let mut dj: Vec<f64> = (0..k).map(|j| lg + l[j][i]).collect();
            dj.push(lk);
            let mut dm: Vec<f64> = (1..=k).map(|j| lg + l[j][i]).collect();
            dm.push(lk);
            let lpj = lg + l[0][i] - lse(&dj);
            let lpm = lk - lse(&dm);
            want -= (lpm / (1.0 + gamma) + lpj * gamma / (1.0 + gamma)) / b as f64;
        }
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    #[test]
    fn averaged_nre_a_matches_its_definition() {
        let (b, k) = (8, 3);
        let (c, t, x, l) = setup(b, k + 1);
        let got = f64::from(
            nre_a_loss_averaged(&c, &t, &x, k)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        );
        let sp = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
        let joint: f64 = (0..b).map(|i| sp(-l[0][i])).sum::<f64>() / b as f64;
        let marginal: f64 = (1..=k)
            .flat_map(|j| (0..b).map(move |i| (j, i)))
            .map(|(j, i)| sp(l[j][i]))
            .sum::<f64>()
            / (k * b) as f64;
        let want = 0.5 * (joint + marginal);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // More shifts than the batch has other rows: capped at B - 1.
        let (_, _, _, l) = setup(b, b);
        let capped = f64::from(
            nre_a_loss_averaged(&c, &t, &x, 50)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        );
        let marginal: f64 = (1..b)
            .flat_map(|j| (0..b).map(move |i| (j, i)))
            .map(|(j, i)| sp(l[j][i]))
            .sum::<f64>()
            / ((b - 1) * b) as f64;
        let want = 0.5 * (joint + marginal);
        assert!((capped - want).abs() < 1e-5, "{capped} vs {want}");
    }

    #[test]
    fn bnre_is_bce_plus_balance_penalty() {
        let b = 8;
        let (c, t, x, l) = setup(b, 2);
        let lambda = 100.0;
        let got = f64::from(
            bnre_loss(&c, &t, &x, lambda)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        );
        let sp = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let bce: f64 = (0..b).map(|i| sp(-l[0][i]) + sp(l[1][i])).sum::<f64>() / (2 * b) as f64;
        let bal: f64 = (0..b).map(|i| sig(l[0][i]) + sig(l[1][i])).sum::<f64>() / b as f64 - 1.0;
        let want = bce + lambda * bal * bal;
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        // Without the penalty BNRE is NRE-A.
        let a = f64::from(nre_a_loss(&c, &t, &x).unwrap().to_scalar::<f32>().unwrap());
        let z = f64::from(
            bnre_loss(&c, &t, &x, 0.0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        );
        assert!((a - z).abs() < 1e-6);
    }
}
