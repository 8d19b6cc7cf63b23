//! Architecture and training configuration (defaults follow sbi 0.27).

use serde::{Deserialize, Serialize};

/// Which conditional density estimator to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EstimatorKind {
    /// Mixture density network: mixture of full-covariance Gaussians.
    Mdn,
    /// Masked autoregressive flow (MADE conditioners, affine transforms).
    Maf,
    /// Neural spline flow (rational-quadratic spline coupling transforms).
    Nsf,
}

/// An embedding network applied to the (z-scored) context before the estimator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EmbeddingConfig {
    /// Multi-layer perceptron with ReLU activations.
    FullyConnected {
        /// Width of each hidden layer.
        hidden_features: usize,
        /// Number of hidden layers.
        num_layers: usize,
        /// Output dimension (what the estimator is conditioned on).
        output_dim: usize,
    },
    /// Permutation-invariant net for sets of i.i.d. trials (Zaheer et al. 2017, DeepSets):
    /// the context row holds `num_trials * trial_dim` values; each trial goes through a
    /// ReLU MLP, the trial embeddings are averaged, and a second ReLU MLP maps the mean.
    DeepSets {
        /// Dimension of one trial.
        trial_dim: usize,
        /// Width of the hidden layers of both MLPs.
        hidden_features: usize,
        /// Dimension of the per-trial embedding that is averaged.
        trial_embedding_dim: usize,
        /// Output dimension.
        output_dim: usize,
    },
    /// 1-D convolutional net for raw traces (the whole context row is one trace):
    /// `num_layers` valid convolutions (kernel `kernel_size`, stride 2, ReLU) with
    /// `channels` channels, then a linear map of the flattened features to `output_dim`.
    /// The context is standardised with one mean and deviation over all samples.
    Convolutional {
        /// Channels of every convolution.
        channels: usize,
        /// Number of convolution layers.
        num_layers: usize,
        /// Kernel width.
        kernel_size: usize,
        /// Output dimension.
        output_dim: usize,
    },
}

/// Architecture of a [`crate::ConditionalEstimator`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatorConfig {
    /// Estimator family.
    pub kind: EstimatorKind,
    /// Width of hidden layers (sbi: 50).
    pub hidden_features: usize,
    /// Number of flow transforms (MAF, NSF; sbi: 5).
    pub num_transforms: usize,
    /// Number of spline bins (NSF; sbi: 10).
    pub num_bins: usize,
    /// Spline interval is `[-tail_bound, tail_bound]`, identity outside (NSF; sbi: 3).
    pub tail_bound: f64,
    /// Number of mixture components (MDN; sbi: 10).
    pub num_components: usize,
    /// Optional embedding net for the context.
    pub embedding: Option<EmbeddingConfig>,
}

impl EstimatorConfig {
    fn base(kind: EstimatorKind) -> Self {
        Self {
            kind,
            hidden_features: 50,
            num_transforms: 5,
            num_bins: 10,
            tail_bound: 3.0,
            num_components: 10,
            embedding: None,
        }
    }
    /// sbi 0.27's default MAF: 5 MADE transforms, 2 hidden layers of 50, tanh.
    pub fn maf() -> Self {
        Self::base(EstimatorKind::Maf)
    }
    /// sbi 0.27's default NSF: 5 spline couplings, 10 bins, tail bound 3, residual conditioner.
    pub fn nsf() -> Self {
        Self::base(EstimatorKind::Nsf)
    }
    /// sbi 0.27's default MDN: 10 full-covariance components, hidden width 50.
    pub fn mdn() -> Self {
        Self::base(EstimatorKind::Mdn)
    }

    pub(crate) fn validate(&self) -> Result<(), crate::FlowError> {
        let bad = |what, why: &str| {
            Err(crate::FlowError::Invalid {
                what,
                why: why.into(),
            })
        };
        if self.hidden_features == 0 {
            return bad("hidden_features", "must be positive");
        }
        match self.kind {
            EstimatorKind::Maf | EstimatorKind::Nsf if self.num_transforms == 0 => {
                return bad("num_transforms", "must be positive");
            }
            EstimatorKind::Nsf if self.num_bins < 2 => {
                return bad("num_bins", "must be at least 2");
            }
            EstimatorKind::Nsf if !(self.tail_bound.is_finite() && self.tail_bound > 0.0) => {
                return bad("tail_bound", "must be finite and positive");
            }
            EstimatorKind::Mdn if self.num_components == 0 => {
                return bad("num_components", "must be positive");
            }
            _ => {}
        }
        match &self.embedding {
            Some(EmbeddingConfig::FullyConnected {
                hidden_features,
                output_dim,
                ..
            }) if *hidden_features == 0 || *output_dim == 0 => {
                bad("embedding", "widths must be positive")
            }
            Some(EmbeddingConfig::DeepSets {
                trial_dim,
                hidden_features,
                trial_embedding_dim,
                output_dim,
            }) if *trial_dim == 0
                || *hidden_features == 0
                || *trial_embedding_dim == 0
                || *output_dim == 0 =>
            {
                bad("embedding", "widths must be positive")
            }
            Some(EmbeddingConfig::Convolutional {
                channels,
                num_layers,
                kernel_size,
                output_dim,
            }) if *channels == 0 || *num_layers == 0 || *kernel_size == 0 || *output_dim == 0 => {
                bad(
                    "embedding",
                    "channels, layers, kernel size and output must be positive",
                )
            }
            _ => Ok(()),
        }
    }
}

/// Training settings (defaults follow sbi 0.27).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Adam learning rate (5e-4).
    pub learning_rate: f64,
    /// Mini-batch size (200).
    pub batch_size: usize,
    /// Fraction of the pairs held out for validation (0.1).
    pub validation_fraction: f64,
    /// Stop after this many epochs without a better validation loss (20).
    pub stop_after_epochs: usize,
    /// Clip the global gradient norm to this value (Some(5.0)).
    pub clip_max_norm: Option<f64>,
    /// Hard cap on the number of epochs, counted across resumed calls (None: no cap).
    pub max_epochs: Option<usize>,
    /// Seed for the train/validation split and the batch order.
    pub seed: u64,
    /// Keep the optimiser state, epoch counter and best weights of the previous call to
    /// `train` (resume an interrupted run) instead of starting a fresh optimiser from the
    /// current weights (what sbi does for a new round).
    pub resume: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            learning_rate: 5e-4,
            batch_size: 200,
            validation_fraction: 0.1,
            stop_after_epochs: 20,
            clip_max_norm: Some(5.0),
            max_epochs: None,
            seed: 0,
            resume: false,
        }
    }
}

impl TrainConfig {
    pub(crate) fn validate(&self) -> Result<(), crate::FlowError> {
        let bad = |what, why: String| Err(crate::FlowError::Invalid { what, why });
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                format!("{} is not positive", self.learning_rate),
            );
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be positive".into());
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return bad(
                "validation_fraction",
                format!("{} is not in (0, 1)", self.validation_fraction),
            );
        }
        if self.stop_after_epochs == 0 {
            return bad("stop_after_epochs", "must be positive".into());
        }
        if let Some(c) = self.clip_max_norm
            && !(c.is_finite() && c > 0.0)
        {
            return bad("clip_max_norm", format!("{c} is not positive"));
        }
        Ok(())
    }
}
