//! Embedding networks for the context, trained jointly with the estimator.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::config::EmbeddingConfig;
use crate::nn::{Mlp, Params};

#[derive(Clone)]
pub(crate) enum Embedding {
    Fc(Mlp),
    DeepSets {
        trial_dim: usize,
        phi: Mlp,
        rho: Mlp,
    },
}

impl Embedding {
    pub(crate) fn new(
        cfg: &EmbeddingConfig,
        p: &mut Params,
        d_ctx: usize,
        rng: &mut ChaCha8Rng,
    ) -> std::result::Result<(Self, usize), crate::FlowError> {
        Ok(match *cfg {
            EmbeddingConfig::FullyConnected {
                hidden_features,
                num_layers,
                output_dim,
            } => (
                Embedding::Fc(Mlp::new(
                    p,
                    "embed",
                    d_ctx,
                    hidden_features,
                    num_layers,
                    output_dim,
                    rng,
                )?),
                output_dim,
            ),
            EmbeddingConfig::DeepSets {
                trial_dim,
                hidden_features,
                trial_embedding_dim,
                output_dim,
            } => {
                if !d_ctx.is_multiple_of(trial_dim) {
                    return Err(crate::FlowError::Invalid {
                        what: "embedding",
                        why: format!(
                            "context dimension {d_ctx} is not a multiple of trial_dim {trial_dim}"
                        ),
                    });
                }
                let phi = Mlp::new(
                    p,
                    "embed.phi",
                    trial_dim,
                    hidden_features,
                    2,
                    trial_embedding_dim,
                    rng,
                )?;
                let rho = Mlp::new(
                    p,
                    "embed.rho",
                    trial_embedding_dim,
                    hidden_features,
                    1,
                    output_dim,
                    rng,
                )?;
                (
                    Embedding::DeepSets {
                        trial_dim,
                        phi,
                        rho,
                    },
                    output_dim,
                )
            }
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Embedding::Fc(m) => m.forward(x),
            Embedding::DeepSets {
                trial_dim,
                phi,
                rho,
            } => {
                let (b, c) = x.dims2()?;
                let t = c / trial_dim;
                let e = phi.forward(&x.reshape((b * t, *trial_dim))?)?;
                let e = e.reshape((b, t, e.dim(1)?))?.mean(1)?;
                rho.forward(&e)
            }
        }
    }
}
