//! Priors and the `[inference]` table (method by name with its options, estimator,
//! training settings, rounds).

use super::*;

/// Reads a prior: `[low, high]` (uniform) or a table `{ kind, ... }`; returns the marginal in
/// the unit the bounds are written in, and that unit.
pub(super) fn prior(
    ctx: &Ctx,
    key: &str,
    v: &toml::Value,
    dim: &neurosbi_sim::Dimension,
) -> Result<(Marginal, Unit)> {
    let (kind, a, b, ka, kb, unit_override) = match v {
        toml::Value::Array(arr) if arr.len() == 2 => ("uniform".to_string(), arr[0].clone(), arr[1].clone(), "low", "high", None),
        toml::Value::Table(t) => {
            let kind = t.get("kind").and_then(|k| k.as_str()).unwrap_or("uniform").to_string();
            let (ka, kb) = match kind.as_str() {
                "uniform" | "loguniform" | "log-uniform" => ("low", "high"),
                "normal" => ("mean", "std"),
                "lognormal" | "log-normal" => ("median", "sigma"),
                o => return Err(ctx.err(&format!("{key}.kind"), format!("unknown prior `{o}` (expected uniform, loguniform, normal, lognormal)"))),
            };
            ctx.check_keys(key, t, &["kind", ka, kb, "unit"])?;
            let get = |k: &str| t.get(k).cloned().ok_or_else(|| ctx.err(&format!("{key}.{k}"), "missing"));
            (kind, get(ka)?, get(kb)?, ka, kb, t.get("unit").and_then(|u| u.as_str()).map(String::from))
        }
        _ => return Err(ctx.err(key, "expected [low, high] (uniform) or a table such as { kind = \"loguniform\", low = \"1*nS\", high = \"100*nS\" }")),
    };
    let ta = ctx.quantity_text(&format!("{key}.{ka}"), &a)?;
    let tb = ctx.quantity_text(&format!("{key}.{kb}"), &b)?;
    let qa = parse_quantity(ctx.file, &format!("{key}.{ka}"), &ta)?;
    let qb = parse_quantity(ctx.file, &format!("{key}.{kb}"), &tb)?;
    let unit = match unit_override {
        Some(u) => Unit::named(&u)
            .ok_or_else(|| ctx.err(&format!("{key}.unit"), format!("unknown unit `{u}`")))?,
        None => Unit::of_text(&ta),
    };
    let check = |q: &neurosbi_sim::Quantity, k: &str, text: &str| -> Result<()> {
        if q.dim != *dim {
            return Err(ctx.err(
                &format!("{key}.{k}"),
                format!("\"{text}\" has dimension {}, the parameter is {dim}", q.dim),
            ));
        }
        Ok(())
    };
    let (a, b) = (qa.value / unit.scale, qb.value / unit.scale);
    let m = match kind.as_str() {
        "uniform" => {
            check(&qa, ka, &ta)?;
            check(&qb, kb, &tb)?;
            Marginal::Uniform { low: a, high: b }
        }
        "loguniform" | "log-uniform" => {
            check(&qa, ka, &ta)?;
            check(&qb, kb, &tb)?;
            Marginal::LogUniform { low: a, high: b }
        }
        "normal" => {
            check(&qa, ka, &ta)?;
            check(&qb, kb, &tb)?;
            Marginal::Normal { mean: a, std: b }
        }
        _ => {
            check(&qa, ka, &ta)?;
            if !qb.dim.is_dimensionless() {
                return Err(ctx.err(
                    &format!("{key}.sigma"),
                    "sigma of a log-normal is dimensionless",
                ));
            }
            Marginal::LogNormal {
                mu: a.ln(),
                sigma: qb.value,
            }
        }
    };
    m.validate(0).map_err(|e| ctx.err(key, e.to_string()))?;
    Ok((m, unit))
}

/// `[inference]` keys that are method options (sbi's names), handed to `Method::from_name`.
const METHOD_OPTION_KEYS: &[&str] = &[
    "posterior",
    "num_atoms",
    "num_classes",
    "gamma",
    "regularization_strength",
    "epsilon",
    "num_discrete",
    "sde",
    "quantile",
    "eps",
    "population_size",
    "epsilon_quantile",
    "kernel_scale",
    "regression_adjustment",
    "kde",
    "train_on",
    "use_last_pop_samples",
];

pub(super) fn inference(ctx: &Ctx, t: Option<&toml::Table>) -> Result<InferenceSettings> {
    let empty = toml::Table::new();
    let t = t.unwrap_or(&empty);
    ctx.check_keys(
        "inference",
        t,
        &[
            "method",
            "estimator",
            "simulations",
            "rounds",
            "samples",
            "hidden_features",
            "num_transforms",
            "num_components",
            "num_bins",
            "max_epochs",
            "device",
            "training_batch_size",
            "learning_rate",
            "stop_after_epochs",
            "validation_fraction",
            "batch_size",
            "predictive",
            "embedding",
            "warn_invalid",
            "max_invalid",
        ]
        .iter()
        .chain(METHOD_OPTION_KEYS)
        .copied()
        .collect::<Vec<_>>(),
    )?;
    let s = |k: &str, d: &str| -> Result<String> {
        t.get(k).map_or(Ok(d.to_string()), |v| {
            v.as_str()
                .map(str::to_lowercase)
                .ok_or_else(|| ctx.err(&format!("inference.{k}"), "expected a string"))
        })
    };
    let n = |k: &str, d: usize| -> Result<usize> {
        t.get(k)
            .map_or(Ok(d), |v| usize_of(ctx, &format!("inference.{k}"), v))
    };
    let f = |k: &str, d: f64| -> Result<f64> {
        t.get(k).map_or(Ok(d), |v| {
            v.as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .filter(|x| *x > 0.0)
                .ok_or_else(|| ctx.err(&format!("inference.{k}"), "expected a positive number"))
        })
    };
    let method_name = s("method", "npe")?;
    // Method options (sbi's names); Method::from_name rejects those that do not apply.
    let mut options = MethodOptions::new();
    let mut option_keys = METHOD_OPTION_KEYS.to_vec();
    if matches!(method_name.as_str(), "npe_a" | "snpe_a") {
        // For NPE-A `num_components` sizes its mixture density network.
        option_keys.push("num_components");
    }
    for k in option_keys {
        if let Some(v) = t.get(k) {
            let v = match v {
                toml::Value::Integer(i) => OptionValue::Number(*i as f64),
                toml::Value::Float(f) => OptionValue::Number(*f),
                toml::Value::String(s) => OptionValue::Text(s.clone()),
                toml::Value::Boolean(b) => OptionValue::Bool(*b),
                _ => {
                    return Err(ctx.err(
                        &format!("inference.{k}"),
                        "expected a number, string or boolean",
                    ));
                }
            };
            options.insert(k, v);
        }
    }
    let method = Method::from_name(&method_name, &options)
        .map_err(|e| ctx.err("inference.method", e.to_string()))?;
    let posterior = match options.get("posterior") {
        Some(_) => Some(
            PosteriorKind::from_options(&method, &options)
                .map_err(|e| ctx.err("inference.posterior", e.to_string()))?,
        ),
        None => None,
    };
    let estimator_name = s("estimator", "maf")?;
    let mut estimator = match estimator_name.as_str() {
        "maf" => EstimatorConfig::maf(),
        "nsf" => EstimatorConfig::nsf(),
        "mdn" => EstimatorConfig::mdn(),
        o => {
            return Err(ctx.err(
                "inference.estimator",
                format!("unknown estimator `{o}` (expected maf, nsf, mdn)"),
            ));
        }
    };
    estimator.hidden_features = n("hidden_features", estimator.hidden_features)?;
    estimator.num_transforms = n("num_transforms", estimator.num_transforms)?;
    estimator.num_components = n("num_components", estimator.num_components)?;
    estimator.num_bins = n("num_bins", estimator.num_bins)?;
    match s("embedding", "none")?.as_str() {
        "none" => {}
        "cnn" => {
            estimator.embedding = Some(neurosbi_flows::EmbeddingConfig::Convolutional {
                channels: 8,
                num_layers: 3,
                kernel_size: 5,
                output_dim: 8,
            })
        }
        "mlp" | "fc" => {
            estimator.embedding = Some(neurosbi_flows::EmbeddingConfig::FullyConnected {
                hidden_features: 50,
                num_layers: 2,
                output_dim: 20,
            })
        }
        o => {
            return Err(ctx.err(
                "inference.embedding",
                format!("unknown embedding `{o}` (expected none, cnn, mlp)"),
            ));
        }
    }
    let n_rounds = n("rounds", 1)?;
    let rounds = match t.get("simulations") {
        None => vec![1000; n_rounds],
        Some(toml::Value::Array(a)) => {
            let r: Vec<usize> = a
                .iter()
                .map(|v| usize_of(ctx, "inference.simulations", v))
                .collect::<Result<_>>()?;
            if t.contains_key("rounds") && r.len() != n_rounds {
                return Err(ctx.err(
                    "inference.simulations",
                    format!("{} entries but rounds = {n_rounds}", r.len()),
                ));
            }
            r
        }
        Some(v) => vec![usize_of(ctx, "inference.simulations", v)?; n_rounds],
    };
    let mut train = TrainConfig::default();
    if let Some(v) = t.get("max_epochs") {
        train.max_epochs = Some(usize_of(ctx, "inference.max_epochs", v)?);
    }
    train.batch_size = n("training_batch_size", train.batch_size)?;
    train.learning_rate = f("learning_rate", train.learning_rate)?;
    train.stop_after_epochs = n("stop_after_epochs", train.stop_after_epochs)?;
    train.validation_fraction = f("validation_fraction", train.validation_fraction)?;
    if let Some(v) = t.get("device") {
        let name = v.as_str().ok_or_else(|| {
            ctx.err(
                "inference.device",
                "expected \"cpu\", \"cuda\" or \"cuda:N\"",
            )
        })?;
        // Checked now, so a GPU request on a CPU-only build fails before any simulation.
        neurosbi_flows::device_from_name(name)
            .map_err(|e| ctx.err("inference.device", e.to_string()))?;
        train.device = Some(name.to_string());
    }
    let fraction = |k: &str, d: f64| -> Result<f64> {
        let v = f(k, d)?;
        if v > 1.0 {
            return Err(ctx.err(
                &format!("inference.{k}"),
                format!("{v} is not a fraction of the simulations (0 < {k} <= 1)"),
            ));
        }
        Ok(v)
    };
    Ok(InferenceSettings {
        warn_invalid: fraction("warn_invalid", 0.2)?,
        max_invalid: fraction("max_invalid", 0.99)?,
        method,
        method_name,
        posterior,
        estimator,
        estimator_name,
        rounds,
        train,
        samples: n("samples", 10_000)?,
        batch_size: n("batch_size", 100)?,
        predictive: n("predictive", 20)?,
    })
}

#[cfg(test)]
mod method_tests {
    use crate::config::FitConfig;
    use neurosbi_infer::{Method, PosteriorKind};
    use std::path::Path;

    const BASE: &str = r#"
model = "models/hh_c.toml"
dt = "0.05*ms"
duration = "100*ms"
[stimuli.I]
kind = "step"
amplitude = "1*nA"
start = "20*ms"
[outputs.v]
unit = "mV"
features = ["spike_count", "mean(window=stim)"]
[priors]
gNa = ["0.5*uS", "80*uS"]
gK = ["1e-4*uS", "15*uS"]
[synthetic]
gNa = "32*uS"
gK = "1*uS"
[inference]
"#;

    fn parse(extra: &str) -> Result<FitConfig, String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/m.toml");
        FitConfig::parse(&path, &format!("{BASE}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn method_options_and_posterior_kind_are_read() {
        let c =
            parse("method = \"nre_c\"\ngamma = 2\nnum_classes = 3\nposterior = \"sir\"\n").unwrap();
        assert_eq!(
            c.inference.method,
            Method::NreC {
                num_classes: 3,
                gamma: 2.0
            }
        );
        assert_eq!(c.inference.posterior, Some(PosteriorKind::Sir));
        let c = parse("method = \"snpe_a\"\nnum_components = 2\n").unwrap();
        assert_eq!(
            c.inference.method,
            Method::NpeA {
                num_components: 2,
                last_round_only: false
            }
        );
        let c = parse("method = \"snpe_a\"\nnum_components = 1\n").unwrap();
        assert_eq!(
            c.inference.method,
            Method::NpeA {
                num_components: 1,
                last_round_only: true
            }
        );
        let e = parse("method = \"snpe_a\"\ntrain_on = \"first\"\n").unwrap_err();
        assert!(e.to_string().contains("train_on"), "{e}");
        assert_eq!(c.inference.posterior, None);
    }

    #[test]
    fn inapplicable_options_name_the_option_and_the_method() {
        let e = parse("method = \"nle\"\nnum_atoms = 5\n").unwrap_err();
        assert!(e.contains("num_atoms") && e.contains("nle"), "{e}");
        let e = parse("method = \"nle\"\nposterior = \"direct\"\n").unwrap_err();
        assert!(e.contains("posterior") && e.contains("nle"), "{e}");
        let e = parse("method = \"bnre\"\nregularization_strength = [1]\n").unwrap_err();
        assert!(e.contains("regularization_strength"), "{e}");
    }
}
