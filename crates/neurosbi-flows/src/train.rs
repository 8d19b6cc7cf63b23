//! The training loop shared by estimators and classifiers: train/validation split, shuffled
//! mini-batches, Adam with gradient clipping, early stopping with the best weights restored.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::FlowError;
use crate::config::TrainConfig;
use crate::nn::{Adam, Params};

/// Receives one call per finished epoch (e.g. to draw a progress bar).
pub trait TrainObserver {
    /// `epoch` is 1-based and counts across resumed calls; losses are per-pair means.
    fn on_epoch(&mut self, epoch: usize, train_loss: f64, val_loss: f64);
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl TrainObserver for NoObserver {
    fn on_epoch(&mut self, _epoch: usize, _train_loss: f64, _val_loss: f64) {}
}

/// What a call to `train` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Epochs run so far (across resumed calls).
    pub epochs: usize,
    /// Best validation loss; the model holds the weights that achieved it.
    pub best_val_loss: f64,
    /// Mean training loss per epoch (across resumed calls).
    pub train_losses: Vec<f64>,
    /// Validation loss per epoch (across resumed calls).
    pub val_losses: Vec<f64>,
}

pub(crate) struct TrainState {
    adam: Adam,
    epoch: usize,
    best_val: f64,
    best: Option<Vec<Tensor>>,
    train_losses: Vec<f64>,
    val_losses: Vec<f64>,
    /// Exponential moving average of the weights and the steps it has seen, when enabled.
    ema: Option<(u64, Vec<Tensor>)>,
}

/// Largest decay of the weights' moving average (see [`fit_phased`]); the decay of step `t`
/// is `min(EMA_DECAY, (1 + t) / (10 + t))`, so early steps are not held back by the
/// initial weights.
pub(crate) const EMA_DECAY: f64 = 0.999;

/// Splits `0..n` into (train, validation) indices, deterministically for `seed`.
pub(crate) fn split(n: usize, cfg: &TrainConfig) -> Result<(Vec<u32>, Vec<u32>), FlowError> {
    let n_val = (cfg.validation_fraction * n as f64) as usize;
    if n_val == 0 || n_val >= n {
        return Err(FlowError::Invalid {
            what: "training data",
            why: format!(
                "{n} pairs with validation fraction {} leave an empty training or validation set",
                cfg.validation_fraction
            ),
        });
    }
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    idx.shuffle(&mut rng);
    let val = idx[..n_val].to_vec();
    Ok((idx[n_val..].to_vec(), val))
}

fn scalar(t: &Tensor) -> Result<f64, FlowError> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

/// A loss over the rows of a batch (a u32 index tensor).
pub(crate) type BatchLoss<'a> = &'a dyn Fn(&Tensor) -> candle_core::Result<Tensor>;

/// Which pass a batch loss is computed for: stochastic losses (flow matching, score
/// matching) draw fresh noise for training batches and fixed noise for validation batch
/// `k`, so validation losses of different epochs are comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Train,
    Validation(usize),
}

impl TrainState {
    /// Epochs run so far.
    pub(crate) fn epochs(&self) -> usize {
        self.epoch
    }
}

/// Runs epochs until early stopping or `max_epochs`. `batch_loss` maps row indices (a u32
/// tensor) to a scalar loss to minimise.
pub(crate) fn fit(
    params: &Params,
    state: &mut Option<TrainState>,
    n: usize,
    cfg: &TrainConfig,
    obs: &mut dyn TrainObserver,
    batch_loss: BatchLoss<'_>,
) -> Result<TrainReport, FlowError> {
    fit_phased(params, state, n, cfg, obs, &|idx, _| batch_loss(idx), false)
}

/// A batch loss computed without a candle graph: given the current weights (host vectors,
/// one per variable of the model's `Params`), the batch's row indices and whether gradients
/// are wanted, the mean loss over the rows and the gradient of that mean per variable
/// (`None` where a variable gets none).
pub(crate) type NativeLoss<'a> =
    &'a dyn Fn(
        &[Vec<f32>],
        &[u32],
        bool,
    ) -> candle_core::Result<(f64, Option<crate::fused_maf::Grads>)>;

/// What the training loop minimises.
pub(crate) enum Objective<'a> {
    /// A differentiable candle loss (told which pass it serves).
    Graph(&'a dyn Fn(&Tensor, Phase) -> candle_core::Result<Tensor>),
    /// A native loss with its own gradients.
    Native(NativeLoss<'a>),
}

/// Weight of the newest validation loss in the smoothed series that
/// [`noisy_epoch_fruitless`] takes its spread from (sbi's `ema_loss_decay`).
const VAL_SMOOTHING: f64 = 0.1;

/// sbi 0.27's convergence test for flow- and score-matching losses: an epoch without a new
/// best counts as fruitless only if its validation loss is more than two standard
/// deviations above the best, the deviation taken over the last `2 stop_after_epochs`
/// values of the exponentially smoothed validation losses; an epoch within that band
/// resets the count. `None` (nothing counted) until `stop_after_epochs` epochs have run.
/// Why: these losses are regressions onto noisy targets, and a plain patience count stops
/// them while they still improve (NPSE on two moons with 1 000 simulations stopped after
/// 26 epochs at C2ST 0.98).
fn noisy_epoch_fruitless(val_losses: &[f64], best: f64, cfg: &TrainConfig) -> Option<bool> {
    let window = cfg.stop_after_epochs;
    if val_losses.len() < window {
        return None;
    }
    let mut smoothed = Vec::with_capacity(val_losses.len());
    for &v in val_losses {
        let prev = smoothed.last().copied().unwrap_or(v);
        smoothed.push((1.0 - VAL_SMOOTHING) * prev + VAL_SMOOTHING * v);
    }
    let recent = &smoothed[smoothed.len().saturating_sub(2 * window)..];
    let mean = recent.iter().sum::<f64>() / recent.len() as f64;
    let var =
        recent.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (recent.len().max(2) - 1) as f64;
    let last = *val_losses.last()?;
    Some((last - best) / var.sqrt() > 2.0)
}

/// [`fit`] with a loss that is told which pass it serves. With `ema`, validation, early
/// stopping and the returned weights use an exponential moving average of the weights
/// (decay up to [`EMA_DECAY`]) instead of the last step's: stochastic regression losses
/// (flow and score matching) leave the raw weights jittering around the optimum, and their
/// average is the better estimator (as in score-based diffusion models). Early stopping
/// then counts epochs as [`noisy_epoch_fruitless`] does.
pub(crate) fn fit_phased(
    params: &Params,
    state: &mut Option<TrainState>,
    n: usize,
    cfg: &TrainConfig,
    obs: &mut dyn TrainObserver,
    batch_loss: &dyn Fn(&Tensor, Phase) -> candle_core::Result<Tensor>,
    ema: bool,
) -> Result<TrainReport, FlowError> {
    fit_objective(
        params,
        state,
        n,
        cfg,
        obs,
        Objective::Graph(batch_loss),
        ema,
    )
}

/// The training loop for either kind of [`Objective`]; `ema` as in [`fit_phased`].
pub(crate) fn fit_objective(
    params: &Params,
    state: &mut Option<TrainState>,
    n: usize,
    cfg: &TrainConfig,
    obs: &mut dyn TrainObserver,
    objective: Objective<'_>,
    ema: bool,
) -> Result<TrainReport, FlowError> {
    cfg.validate()?;
    // Native losses keep host weights that the average would have to follow too.
    debug_assert!(
        !(ema && matches!(objective, Objective::Native(_))),
        "weight averaging is only implemented for graph losses"
    );
    let (train_idx, val_idx) = split(n, cfg)?;
    if !(cfg.resume && state.is_some()) {
        *state = Some(TrainState {
            adam: Adam::new(params, cfg.learning_rate),
            epoch: 0,
            best_val: f64::INFINITY,
            best: None,
            train_losses: Vec::new(),
            val_losses: Vec::new(),
            ema: None,
        });
    }
    let st = state.as_mut().expect("state was just set");
    st.adam.set_lr(cfg.learning_rate);
    if ema && st.ema.is_none() {
        st.ema = Some((0, params.snapshot()?));
    }
    let dev: Device = params.device.clone();
    let to_tensor = |v: &[u32]| Tensor::from_vec(v.to_vec(), v.len(), &dev);
    let mut since_best = 0usize;
    let mut order = train_idx;
    // Native losses train host copies of the weights (no tensor round trip per step); they
    // go back to the tensors at the end of every epoch, before the best-weights bookkeeping.
    let mut host = match &objective {
        Objective::Native(_) => Some(params.to_host()?),
        Objective::Graph(_) => None,
    };
    let native = matches!(objective, Objective::Native(_));
    // Weight averaging marks the noisy regression losses (see noisy_epoch_fruitless).
    let noisy = ema;
    let mut run = || loop {
        if cfg.max_epochs.is_some_and(|m| st.epoch >= m) {
            break Ok(());
        }
        st.epoch += 1;
        let epoch = st.epoch;
        // One stream per epoch: the batch order depends only on (seed, epoch).
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(epoch as u64);
        order.sort_unstable();
        order.shuffle(&mut rng);
        let adam = &mut st.adam;
        let ema = &mut st.ema;
        let (order_ref, val_ref, to_tensor, objective) = (&order, &val_idx, &to_tensor, &objective);
        let host = &mut host;
        let epoch_losses = (move || -> Result<(f64, f64, Option<Vec<Tensor>>), FlowError> {
            let mut sum = 0.0;
            let non_finite = |l: f64| FlowError::NonFiniteLoss {
                epoch,
                phase: "training",
                loss: l,
            };
            for chunk in order_ref.chunks(cfg.batch_size) {
                let l = match &objective {
                    Objective::Graph(batch_loss) => {
                        let loss = batch_loss(&to_tensor(chunk)?, Phase::Train)?;
                        let l = scalar(&loss)?;
                        if !l.is_finite() {
                            return Err(non_finite(l));
                        }
                        adam.step(params, &loss.backward()?, cfg.clip_max_norm)?;
                        if let Some((t, avg)) = ema.as_mut() {
                            *t += 1;
                            let decay = EMA_DECAY.min((1.0 + *t as f64) / (10.0 + *t as f64));
                            // Detached: a sum of a Var keeps a backprop graph that links each
                            // step's average to the previous one and so every step's weights
                            // (FMPE on two moons, 16 000 steps, grew to 14 GB).
                            for (a, (_, w)) in avg.iter_mut().zip(&params.vars) {
                                *a = (a.affine(decay, 0.0)?
                                    + w.as_tensor().affine(1.0 - decay, 0.0)?)?
                                .detach();
                            }
                        }
                        l
                    }
                    Objective::Native(f) => {
                        let w = host.as_mut().expect("native training keeps host weights");
                        let (l, grads) = f(w, chunk, true)?;
                        if !l.is_finite() {
                            return Err(non_finite(l));
                        }
                        let grads = grads.ok_or_else(|| {
                            candle_core::Error::Msg("native loss returned no gradients".into())
                        })?;
                        adam.step_in_place(w, &grads, cfg.clip_max_norm);
                        l
                    }
                };
                sum += l * chunk.len() as f64;
            }
            // Validate (and keep as best) the averaged weights; the raw ones train on.
            let raw = match ema.as_ref() {
                Some((_, avg)) => {
                    let raw = params.snapshot()?;
                    params.restore(avg)?;
                    Some(raw)
                }
                None => None,
            };
            let mut vsum = 0.0;
            for (k, rows) in val_ref.chunks(cfg.batch_size).enumerate() {
                let l = match &objective {
                    Objective::Graph(batch_loss) => {
                        scalar(&batch_loss(&to_tensor(rows)?, Phase::Validation(k))?.detach())?
                    }
                    Objective::Native(f) => f(host.as_ref().expect("host weights"), rows, false)?.0,
                };
                vsum += l * rows.len() as f64;
            }
            if let Some(w) = host.as_ref() {
                params.set_host(w)?;
            }
            Ok((sum, vsum, raw))
        })();
        let (sum, vsum, raw) = match epoch_losses {
            Ok(v) => v,
            Err(e) => break Err(e),
        };
        let train_loss = sum / order.len() as f64;
        let val_loss = vsum / val_idx.len() as f64;
        if !val_loss.is_finite() {
            break Err(FlowError::NonFiniteLoss {
                epoch,
                phase: "validation",
                loss: val_loss,
            });
        }
        st.train_losses.push(train_loss);
        st.val_losses.push(val_loss);
        obs.on_epoch(epoch, train_loss, val_loss);
        if val_loss < st.best_val {
            st.best_val = val_loss;
            st.best = Some(params.snapshot()?);
            since_best = 0;
        } else if !noisy {
            since_best += 1;
        } else if let Some(fruitless) = noisy_epoch_fruitless(&st.val_losses, st.best_val, cfg) {
            since_best = if fruitless { since_best + 1 } else { 0 };
        }
        if let Some(raw) = raw {
            params.restore(&raw)?;
        }
        if since_best >= cfg.stop_after_epochs {
            break Ok(());
        }
    };
    // Native steps are short parallel sections: a spinning team serves them (see team.rs),
    // as many threads as a batch has row chunks (two for sbi's batch of 200), at least two.
    let result = if native {
        let useful = cfg.batch_size.div_ceil(crate::fused_maf::MAX_CHUNK).max(2);
        crate::team::with_team(useful, &mut run)
    } else {
        run()
    };
    if let Some(best) = &st.best {
        params.restore(best)?;
    }
    result?;
    Ok(TrainReport {
        epochs: st.epoch,
        best_val_loss: st.best_val,
        train_losses: st.train_losses.clone(),
        val_losses: st.val_losses.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// The vector-field stopping rule: nothing counted before the window fills, an epoch
    /// within two standard deviations of the best resets the count, a clear rise counts.
    #[test]
    fn noisy_losses_stop_only_on_a_clear_rise() {
        let cfg = TrainConfig {
            stop_after_epochs: 5,
            ..Default::default()
        };
        // A slow decline with jitter: the best so far is 1.0 at epoch 6.
        let mut v: Vec<f64> = (0..12)
            .map(|i| 2.0 - 0.1 * i as f64 + if i % 2 == 0 { 0.05 } else { -0.05 })
            .collect();
        let best = v.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(noisy_epoch_fruitless(&v[..4], best, &cfg), None);
        // Within the spread of the smoothed losses: not fruitless.
        v.push(best + 0.05);
        assert_eq!(noisy_epoch_fruitless(&v, best, &cfg), Some(false));
        // Far above it: fruitless.
        v.push(best + 5.0);
        assert_eq!(noisy_epoch_fruitless(&v, best, &cfg), Some(true));
    }

    /// Fits one weight to noisy targets (loss = mean (w - y)^2) with a large learning rate, so
    /// the raw weight jitters around the optimum; returns |w - mean of the training targets|.
    fn fit_mean(seed: u64, ema: bool) -> f64 {
        let dev = Device::Cpu;
        let mut params = Params::new(&dev);
        let w = params.with_values("w".into(), &[1], vec![0.0]).unwrap();
        let n = 1000;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let y: Vec<f32> = (0..n)
            .map(|_| 1.0 + 2.0 * rng.random::<f32>() - 1.0)
            .collect();
        let targets = Tensor::from_vec(y.clone(), n, &dev).unwrap();
        let cfg = TrainConfig {
            learning_rate: 0.2,
            batch_size: 1,
            max_epochs: Some(2),
            seed,
            ..TrainConfig::default()
        };
        let (train, _) = split(n, &cfg).unwrap();
        let mean =
            train.iter().map(|&i| f64::from(y[i as usize])).sum::<f64>() / train.len() as f64;
        let loss = |idx: &Tensor, _: Phase| {
            let t = targets.index_select(idx, 0)?;
            w.as_tensor().broadcast_sub(&t)?.sqr()?.mean_all()
        };
        let mut state = None;
        fit_phased(&params, &mut state, n, &cfg, &mut NoObserver, &loss, ema).unwrap();
        let got = f64::from(w.as_tensor().to_vec1::<f32>().unwrap()[0]);
        (got - mean).abs()
    }

    #[test]
    fn weight_averaging_smooths_a_jittering_fit() {
        let with: Vec<f64> = (1..=5).map(|s| fit_mean(s, true)).collect();
        let without: Vec<f64> = (1..=5).map(|s| fit_mean(s, false)).collect();
        // Raw Adam steps of this size jitter by about 0.3; the average of ~1000 steps with a
        // correlation time of a few steps is within a few hundredths.
        assert!(with.iter().all(|e| *e < 0.06), "averaged errors {with:?}");
        let (a, b) = (with.iter().sum::<f64>(), without.iter().sum::<f64>());
        assert!(b > 3.0 * a, "raw errors {without:?} vs averaged {with:?}");
    }
}
