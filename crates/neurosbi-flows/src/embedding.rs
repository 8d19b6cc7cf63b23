//! Embedding networks for the context, trained jointly with the estimator.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::config::EmbeddingConfig;
use crate::nn::{Linear, Mlp, Params};

#[derive(Clone)]
pub(crate) enum Embedding {
    Fc(Mlp),
    DeepSets {
        trial_dim: usize,
        phi: Mlp,
        rho: Mlp,
    },
    Conv {
        /// Per layer: column indices that gather each output position's receptive field
        /// (channels-last), the layer, and the number of output positions.
        layers: Vec<(Tensor, Linear, usize)>,
        head: Linear,
    },
}

/// Im2col indices for a valid, stride-2 convolution over a channels-last row of
/// `len * ch` values: output position p, tap j, channel c reads column (2p + j) * ch + c.
fn conv_indices(
    len: usize,
    ch: usize,
    k: usize,
    dev: &candle_core::Device,
) -> Result<(Tensor, usize)> {
    let out = (len - k) / 2 + 1;
    let mut idx = Vec::with_capacity(out * k * ch);
    for p in 0..out {
        for j in 0..k {
            for c in 0..ch {
                idx.push(((2 * p + j) * ch + c) as u32);
            }
        }
    }
    Ok((Tensor::from_vec(idx, out * k * ch, dev)?, out))
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
            EmbeddingConfig::Convolutional {
                channels,
                num_layers,
                kernel_size,
                output_dim,
            } => {
                let (mut len, mut ch) = (d_ctx, 1usize);
                let mut layers = Vec::new();
                for l in 0..num_layers {
                    if len < kernel_size {
                        return Err(crate::FlowError::Invalid {
                            what: "embedding",
                            why: format!(
                                "trace of {d_ctx} samples is too short for {num_layers} layers of kernel {kernel_size}"
                            ),
                        });
                    }
                    let (idx, out) = conv_indices(len, ch, kernel_size, &p.device)?;
                    let lin =
                        p.linear(&format!("embed.conv{l}"), kernel_size * ch, channels, rng)?;
                    layers.push((idx, lin, out));
                    len = out;
                    ch = channels;
                }
                let head = p.linear("embed.head", len * ch, output_dim, rng)?;
                (Embedding::Conv { layers, head }, output_dim)
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
            Embedding::Conv { layers, head } => {
                let b = x.dim(0)?;
                let mut h = x.clone();
                for (idx, lin, out) in layers {
                    // Gather receptive fields, apply the kernel as one product, stay channels-last.
                    let k = idx.dim(0)? / out;
                    let cols = h.index_select(idx, 1)?.reshape((b * out, k))?;
                    h = lin.forward(&cols)?.relu()?.reshape((b, ()))?;
                }
                head.forward(&h)
            }
        }
    }
}
