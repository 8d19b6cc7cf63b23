//! Per-dimension standardisation, as sbi's `standardizing_transform` / `standardizing_net`
//! (mean and unbiased standard deviation of the training data, floored at 1e-14).

use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// Mean and standard deviation per dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ZScore {
    pub(crate) mean: Vec<f64>,
    pub(crate) std: Vec<f64>,
}

impl ZScore {
    /// Statistics of row-major `data` with rows of `dim`. Columns `j, j + group, ...` share
    /// one statistic (`group == dim` for independent dimensions; the trial dimension for
    /// sets of i.i.d. trials, so the standardisation keeps permutation invariance).
    pub(crate) fn fit(data: &[f64], dim: usize, group: usize) -> Self {
        let n = data.len() / dim;
        let mut mean = vec![0.0; group];
        let mut count = vec![0usize; group];
        for row in data.chunks_exact(dim) {
            for (j, v) in row.iter().enumerate() {
                mean[j % group] += v;
                count[j % group] += 1;
            }
        }
        for (m, c) in mean.iter_mut().zip(&count) {
            *m /= *c as f64;
        }
        let mut var = vec![0.0; group];
        for row in data.chunks_exact(dim) {
            for (j, v) in row.iter().enumerate() {
                var[j % group] += (v - mean[j % group]).powi(2);
            }
        }
        let std: Vec<f64> = var
            .iter()
            .zip(&count)
            .map(|(v, &c)| {
                if n > 1 {
                    (v / (c as f64 - 1.0)).sqrt().max(1e-14)
                } else {
                    1.0
                }
            })
            .collect();
        Self {
            mean: (0..dim).map(|j| mean[j % group]).collect(),
            std: (0..dim).map(|j| std[j % group]).collect(),
        }
    }

    pub(crate) fn tensors(&self, dev: &Device, dtype: DType) -> Result<(Tensor, Tensor)> {
        let f = |v: &[f64]| Tensor::from_vec(v.to_vec(), (1, v.len()), dev)?.to_dtype(dtype);
        Ok((f(&self.mean)?, f(&self.std)?))
    }

    pub(crate) fn log_std_sum(&self) -> f64 {
        self.std.iter().map(|s| s.ln()).sum()
    }
}
