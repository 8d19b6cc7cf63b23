//! Unit tests of the internals: MADE masks, the spline, gradients, the training loop.

use candle_core::{Device, Tensor, Var};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::maf::Maf;
use crate::nn::Params;
use crate::spline::rq_spline;

fn rows(data: Vec<f32>, d: usize) -> Tensor {
    let n = data.len() / d;
    Tensor::from_vec(data, (n, d), &Device::Cpu).unwrap()
}

#[test]
fn made_jacobian_is_strictly_triangular() {
    for d in [1usize, 2, 3, 5] {
        let mut rng = ChaCha8Rng::seed_from_u64(d as u64);
        let mut p = Params::new(&Device::Cpu);
        let maf = Maf::new(&mut p, d, 2, 16, 1, &mut rng).unwrap();
        let made = maf.made(0);
        let x0: Vec<f32> = (0..d).map(|i| 0.3 * i as f32 - 0.4).collect();
        let ctx = rows(vec![0.2, -0.7], 2);
        let out = |x: &[f32]| {
            let (s, t) = made.forward(&rows(x.to_vec(), d), Some(&ctx)).unwrap();
            (
                s.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        };
        let (s0, t0) = out(&x0);
        for j in 0..d {
            let mut x = x0.clone();
            x[j] += 0.5;
            let (s1, t1) = out(&x);
            for i in 0..d {
                let changed = s1[i] != s0[i] || t1[i] != t0[i];
                if j >= i {
                    assert!(!changed, "d={d}: output {i} depends on input {j}");
                } else {
                    assert!(changed, "d={d}: output {i} ignores earlier input {j}");
                }
            }
        }
        // Output 0 depends on the context only.
        let (s, _) = made
            .forward(&rows(x0.clone(), d), Some(&rows(vec![1.0, 1.0], 2)))
            .unwrap();
        assert_ne!(s.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0], s0[0]);
    }
}

fn spline_params(raw: &[f64], k: usize) -> (Tensor, Tensor, Tensor) {
    let t = |v: &[f64]| Tensor::from_vec(v.to_vec(), (1, v.len()), &Device::Cpu).unwrap();
    (t(&raw[..k]), t(&raw[k..2 * k]), t(&raw[2 * k..3 * k - 1]))
}

fn spline1(x: f64, raw: &[f64], k: usize, inverse: bool) -> (f64, f64) {
    let (w, h, d) = spline_params(raw, k);
    let xt = Tensor::from_vec(vec![x], 1, &Device::Cpu).unwrap();
    let (y, ld) = rq_spline(&xt, &w, &h, &d, 3.0, inverse).unwrap();
    (
        y.to_vec1::<f64>().unwrap()[0],
        ld.to_vec1::<f64>().unwrap()[0],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn spline_inverse_and_log_det(x in -4.0f64..4.0, raw in proptest::collection::vec(-3.0f64..3.0, 29)) {
        let k = 10;
        let (y, ld) = spline1(x, &raw, k, false);
        let (xb, ld_inv) = spline1(y, &raw, k, true);
        prop_assert!((xb - x).abs() < 1e-9, "x {x} -> y {y} -> {xb}");
        prop_assert!((ld + ld_inv).abs() < 1e-8);
        let h = 1e-6;
        let fd = (spline1(x + h, &raw, k, false).0 - spline1(x - h, &raw, k, false).0) / (2.0 * h);
        prop_assert!((fd.ln() - ld).abs() < 1e-4, "fd {fd} vs exp(ld) {}", ld.exp());
        if x.abs() > 3.0 {
            prop_assert_eq!(y, x);
            prop_assert_eq!(ld, 0.0);
        } else {
            prop_assert!(y.abs() <= 3.0 + 1e-12);
        }
    }
}

#[test]
fn spline_is_monotone_and_joins_the_tails() {
    let raw: Vec<f64> = (0..29)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) / 2.0)
        .collect();
    let mut prev = f64::NEG_INFINITY;
    for i in 0..=2000 {
        let x = -3.5 + 7.0 * i as f64 / 2000.0;
        let (y, _) = spline1(x, &raw, 10, false);
        assert!(y > prev, "not increasing at {x}");
        prev = y;
    }
    for b in [-3.0, 3.0] {
        let (yin, ldin) = spline1(b * (1.0 - 1e-12), &raw, 10, false);
        let (yout, _) = spline1(b * (1.0 + 1e-12), &raw, 10, false);
        assert!((yin - yout).abs() < 1e-9, "jump at the tail bound {b}");
        // Unit slope at the bounds, as the linear tails.
        assert!(ldin.abs() < 1e-6, "log-slope {ldin} at {b}");
    }
}

/// Central finite differences of `f` at `p` against candle's gradient `g`.
fn check_grad(p: &[f64], g: &[f64], f: &dyn Fn(&[f64]) -> f64, h: f64, tol: f64) {
    for i in 0..p.len() {
        let mut a = p.to_vec();
        let mut b = p.to_vec();
        a[i] += h;
        b[i] -= h;
        let fd = (f(&a) - f(&b)) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() <= tol * (1.0 + fd.abs()),
            "component {i}: autograd {} vs fd {fd}",
            g[i]
        );
    }
}

#[test]
fn spline_gradient_matches_finite_differences() {
    let k = 5;
    let xs = vec![-2.5, -0.3, 0.0, 1.7, 2.9, 3.5];
    let n = xs.len();
    let raw: Vec<f64> = (0..n * (3 * k - 1))
        .map(|i| ((i * 31 % 17) as f64 - 8.0) / 5.0)
        .collect();
    let loss = |raw: &Tensor| -> Tensor {
        let x = Tensor::from_vec(xs.clone(), n, &Device::Cpu).unwrap();
        let r = raw.reshape((n, 3 * k - 1)).unwrap();
        let (y, ld) = rq_spline(
            &x,
            &r.narrow(1, 0, k).unwrap(),
            &r.narrow(1, k, k).unwrap(),
            &r.narrow(1, 2 * k, k - 1).unwrap(),
            3.0,
            false,
        )
        .unwrap();
        (y.sqr().unwrap().sum_all().unwrap() + ld.sum_all().unwrap()).unwrap()
    };
    let v = Var::from_vec(raw.clone(), raw.len(), &Device::Cpu).unwrap();
    let g = loss(v.as_tensor()).backward().unwrap();
    let grad = g.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    let f = |p: &[f64]| {
        loss(&Tensor::from_vec(p.to_vec(), p.len(), &Device::Cpu).unwrap())
            .to_scalar::<f64>()
            .unwrap()
    };
    check_grad(&raw, &grad, &f, 1e-6, 1e-5);
}

#[test]
fn softplus_gradient_matches_finite_differences() {
    let p = vec![-30.0, -2.0, -1e-3, 0.0, 0.5, 4.0, 40.0];
    let v = Var::from_vec(p.clone(), p.len(), &Device::Cpu).unwrap();
    let g = crate::nn::softplus(v.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let grad = g.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    let f = |q: &[f64]| q.iter().map(|&x| (1.0 + x.exp()).ln()).sum::<f64>();
    check_grad(&p, &grad, &f, 1e-6, 1e-6);
}

fn toy(n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut theta = Vec::new();
    let mut x = Vec::new();
    for i in 0..n {
        let c = ((i * 7919) % 1000) as f64 / 500.0 - 1.0;
        let e = ((i * 104_729) % 997) as f64 / 498.5 - 1.0;
        theta.push(c * c + 0.3 * e);
        if d == 2 {
            theta.push(c - e * 0.5);
        }
        x.push(c);
        x.push(e * c);
    }
    (theta, x)
}

/// Candle's gradient of the training loss through each whole network (residual blocks with
/// sigmoid gates, masked layers, splines, LU layers, mixture heads, embeddings) against
/// central finite differences in the parameters.
#[test]
fn network_gradients_match_finite_differences() {
    use crate::{ConditionalEstimator, EmbeddingConfig, EstimatorConfig};
    let (theta, x) = toy(64, 2);
    let fc = Some(EmbeddingConfig::FullyConnected {
        hidden_features: 6,
        num_layers: 1,
        output_dim: 3,
    });
    let sets = Some(EmbeddingConfig::DeepSets {
        trial_dim: 1,
        hidden_features: 6,
        trial_embedding_dim: 3,
        output_dim: 2,
    });
    let small = |mut c: EstimatorConfig, emb: Option<EmbeddingConfig>| {
        c.hidden_features = 8;
        c.num_transforms = 2;
        c.num_bins = 4;
        c.num_components = 3;
        c.embedding = emb;
        c
    };
    for cfg in [
        small(EstimatorConfig::maf(), None),
        small(
            EstimatorConfig::maf(),
            Some(EmbeddingConfig::Convolutional {
                channels: 3,
                num_layers: 1,
                kernel_size: 2,
                output_dim: 2,
            }),
        ),
        small(EstimatorConfig::nsf(), fc.clone()),
        small(EstimatorConfig::mdn(), sets),
    ] {
        for d in [1usize, 2] {
            let th: Vec<f64> = if d == 2 {
                theta.clone()
            } else {
                theta.iter().step_by(2).copied().collect()
            };
            let q = ConditionalEstimator::new(&cfg, &th, &x, d, 2, 3).unwrap();
            let ti = Tensor::from_vec(
                th.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                (64, d),
                &Device::Cpu,
            )
            .unwrap();
            let tc = Tensor::from_vec(
                x.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                (64, 2),
                &Device::Cpu,
            )
            .unwrap();
            let loss = || {
                q.log_prob_tensor(&ti, &tc)
                    .unwrap()
                    .mean_all()
                    .unwrap()
                    .neg()
                    .unwrap()
            };
            let grads = loss().backward().unwrap();
            for (name, var) in &q.params().vars {
                let g = match grads.get(var.as_tensor()) {
                    Some(g) => g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    None => panic!("{:?}: no gradient for {name}", cfg.kind),
                };
                let w0 = var
                    .as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                // A few entries per tensor, in f32 with a step that balances rounding and curvature.
                for i in [0, w0.len() / 2, w0.len() - 1] {
                    let h = 1e-3f32;
                    let eval = |delta: f32| {
                        let mut w = w0.clone();
                        w[i] += delta;
                        var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu).unwrap())
                            .unwrap();
                        loss().to_scalar::<f32>().unwrap() as f64
                    };
                    let fd = (eval(h) - eval(-h)) / (2.0 * h as f64);
                    var.set(&Tensor::from_vec(w0.clone(), var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    let gi = g[i] as f64;
                    assert!(
                        (fd - gi).abs() <= 2e-3 + 2e-2 * gi.abs().max(fd.abs()),
                        "{:?} d={d} {name}[{i}]: autograd {gi} vs fd {fd}",
                        cfg.kind
                    );
                }
            }
        }
    }
}

#[test]
fn early_stopping_restores_the_best_weights() {
    use crate::{ConditionalEstimator, EstimatorConfig, NoObserver, TrainConfig};
    let (theta, x) = toy(600, 2);
    let mut q = ConditionalEstimator::new(&EstimatorConfig::maf(), &theta, &x, 2, 2, 0).unwrap();
    let cfg = TrainConfig {
        learning_rate: 2e-2,
        stop_after_epochs: 2,
        max_epochs: Some(60),
        ..TrainConfig::default()
    };
    let rep = q.train(&theta, &x, &cfg, &mut NoObserver).unwrap();
    let last = *rep.val_losses.last().unwrap();
    assert!(
        last > rep.best_val_loss,
        "the last epoch was the best; nothing to restore"
    );
    let (_, val) = crate::train::split(600, &cfg).unwrap();
    let vt: Vec<f64> = val
        .iter()
        .flat_map(|&i| theta[2 * i as usize..2 * i as usize + 2].to_vec())
        .collect();
    let vx: Vec<f64> = val
        .iter()
        .flat_map(|&i| x[2 * i as usize..2 * i as usize + 2].to_vec())
        .collect();
    let lp = q.log_prob(&vt, &vx).unwrap();
    let loss = -lp.iter().sum::<f64>() / lp.len() as f64;
    assert!(
        (loss - rep.best_val_loss).abs() < 1e-5 * (1.0 + loss.abs()),
        "restored loss {loss}, best {}",
        rep.best_val_loss
    );
}

/// The im2col convolution equals a direct loop implementation of a 2-layer, stride-2,
/// valid 1-D convolution with ReLU and a linear head.
#[test]
fn conv_embedding_matches_a_direct_convolution() {
    use crate::config::EmbeddingConfig;
    use crate::embedding::Embedding;
    let (len, ch, k, out_dim) = (11usize, 3usize, 3usize, 2usize);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut p = Params::new(&Device::Cpu);
    let cfg = EmbeddingConfig::Convolutional {
        channels: ch,
        num_layers: 2,
        kernel_size: k,
        output_dim: out_dim,
    };
    let (emb, d) = Embedding::new(&cfg, &mut p, len, &mut rng).unwrap();
    assert_eq!(d, out_dim);
    let vals: Vec<Vec<f32>> = p
        .vars
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    // Parameters in creation order: conv0 (w, b), conv1 (w, b), head (w, b); weights (in, out).
    let x: Vec<f32> = (0..2 * len)
        .map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0)
        .collect();
    let got = emb
        .forward(&rows(x.clone(), len))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for b in 0..2 {
        // Layer 0: one input channel.
        let xr = &x[b * len..(b + 1) * len];
        let l0 = (len - k) / 2 + 1;
        let mut h0 = vec![vec![0f32; ch]; l0];
        for (pos, row) in h0.iter_mut().enumerate() {
            for (c, out) in row.iter_mut().enumerate() {
                let s: f32 = (0..k)
                    .map(|j| xr[2 * pos + j] * vals[0][j * ch + c])
                    .sum::<f32>()
                    + vals[1][c];
                *out = s.max(0.0);
            }
        }
        let l1 = (l0 - k) / 2 + 1;
        let mut h1 = vec![vec![0f32; ch]; l1];
        for (pos, row) in h1.iter_mut().enumerate() {
            for (co, out) in row.iter_mut().enumerate() {
                let mut s = vals[3][co];
                for j in 0..k {
                    for ci in 0..ch {
                        s += h0[2 * pos + j][ci] * vals[2][(j * ch + ci) * ch + co];
                    }
                }
                *out = s.max(0.0);
            }
        }
        let flat: Vec<f32> = h1.concat();
        for o in 0..out_dim {
            let want: f32 = flat
                .iter()
                .enumerate()
                .map(|(i, v)| v * vals[4][i * out_dim + o])
                .sum::<f32>()
                + vals[5][o];
            assert!(
                (got[b][o] - want).abs() < 1e-5,
                "row {b} output {o}: {} vs {want}",
                got[b][o]
            );
        }
    }
}
