//! Losses for neural ratio estimation, to pass to [`crate::RatioClassifier::train_with_loss`].
//!
//! Both pair each x of a batch with thetas of other rows of the same batch. Rows are
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
/// all 2B pairs.
pub fn nre_a_loss(clf: &RatioClassifier, theta: &Tensor, x: &Tensor) -> Result<Tensor> {
    let joint = clf.logits_tensor(theta, x)?;
    let marginal = clf.logits_tensor(&shifted(theta, 1)?, x)?;
    // -log sigmoid(l) = softplus(-l); -log(1 - sigmoid(l)) = softplus(l).
    (softplus(&joint.neg()?)?.mean_all()? + softplus(&marginal)?.mean_all()?)? * 0.5
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
