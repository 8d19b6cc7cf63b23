//! Reading a fit file into a [`ProblemSpec`]: the TOML's shape only (known keys, strings
//! where strings belong, tables where tables belong), each mistake named by file and key.
//! What the values mean (units, the model's names, data) is checked by
//! [`ProblemSpec::validate`], the same for every door.

use super::*;
use crate::spec::{DataSpec, Entries, FeaturesSpec, ModelSource, OutputSpec, PriorSpec};
use crate::spec::{ProblemSpec, QuantitySpec, StimulusSpec};

impl ProblemSpec {
    /// Reads fit-file text into a description; `path` names it in errors. Nothing is read
    /// from disk and no model is built: [`ProblemSpec::validate`] does that.
    pub fn from_toml(path: &Path, text: &str) -> Result<ProblemSpec> {
        let file = path.display().to_string();
        let ctx = Ctx {
            file: &file,
            dir: path.parent().unwrap_or(Path::new(".")),
            memory: f64::INFINITY,
        };
        let top: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ctx.err(&format!("line {line}"), e.message().to_string())
        })?;
        ctx.check_keys("", &top, &TOP_KEYS)?;
        let quantity = |key: &str| -> Result<Option<QuantitySpec>> {
            top.get(key)
                .map(|v| ctx.quantity_text(key, v).map(QuantitySpec::Text))
                .transpose()
        };
        Ok(ProblemSpec {
            model: read_model(&ctx, &top)?,
            method: top
                .get("method")
                .map(|m| {
                    m.as_str()
                        .map(String::from)
                        .ok_or_else(|| ctx.err("method", "expected an integration method name"))
                })
                .transpose()?,
            dt: quantity("dt")?,
            duration: quantity("duration")?,
            seed: match top.get("seed") {
                None => 0,
                Some(v) => v
                    .as_integer()
                    .filter(|i| *i >= 0)
                    .ok_or_else(|| ctx.err("seed", "expected a non-negative integer"))?
                    as u64,
            },
            output: top
                .get("output")
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .ok_or_else(|| ctx.err("output", EMPTY_OUTPUT))
                })
                .transpose()?,
            stimuli: read_stimuli(&ctx, &top)?,
            features: read_features(&ctx, &top)?,
            outputs: table(&ctx, &top, "outputs")?
                .map(|t| read_outputs(&ctx, t))
                .transpose()?,
            priors: table(&ctx, &top, "priors")?.map(|t| {
                Entries(
                    t.iter()
                        .map(|(k, v)| (k.clone(), PriorSpec::Written(v.clone())))
                        .collect(),
                )
            }),
            fixed: match table(&ctx, &top, "fixed")? {
                None => Entries::default(),
                Some(t) => quantities(&ctx, "fixed", t)?,
            },
            synthetic: table(&ctx, &top, "synthetic")?
                .map(|t| quantities(&ctx, "synthetic", t))
                .transpose()?,
            inference: table(&ctx, &top, "inference")?.cloned(),
        })
    }
}

/// Why an `output` is refused (not a string, or empty).
pub(super) const EMPTY_OUTPUT: &str =
    "expected a folder path (an empty one would write into the working directory)";

/// `model`: a model-file path or an inline `[model]` table.
fn read_model(ctx: &Ctx, top: &toml::Table) -> Result<Option<ModelSource>> {
    match top.get("model") {
        None => Ok(None),
        Some(toml::Value::String(p)) => Ok(Some(ModelSource::File(p.clone()))),
        Some(toml::Value::Table(t)) => Ok(Some(ModelSource::Inline(t.clone()))),
        Some(o) => Err(ctx.err(
            "model",
            format!(
                "expected a path to a model file or a table, found {}",
                o.type_str()
            ),
        )),
    }
}

/// A table of quantities (`[fixed]`, `[synthetic]`).
fn quantities(ctx: &Ctx, prefix: &str, t: &toml::Table) -> Result<Entries<QuantitySpec>> {
    t.iter()
        .map(|(k, v)| {
            let text = ctx.quantity_text(&format!("{prefix}.{k}"), v)?;
            Ok((k.clone(), QuantitySpec::Text(text)))
        })
        .collect::<Result<_>>()
        .map(Entries)
}

/// `[stimuli]`: one table per input, kept as written (the kinds are checked with the
/// model's inputs).
fn read_stimuli(ctx: &Ctx, top: &toml::Table) -> Result<Entries<StimulusSpec>> {
    let Some(t) = table(ctx, top, "stimuli")? else {
        return Ok(Entries::default());
    };
    t.iter()
        .map(|(k, v)| {
            let st = v
                .as_table()
                .ok_or_else(|| ctx.err(&format!("stimuli.{k}"), "expected a table"))?;
            Ok((k.clone(), StimulusSpec::Written(st.clone())))
        })
        .collect::<Result<_>>()
        .map(Entries)
}

/// `[features]`: the stimulus window.
fn read_features(ctx: &Ctx, top: &toml::Table) -> Result<FeaturesSpec> {
    let Some(f) = table(ctx, top, "features")? else {
        return Ok(FeaturesSpec::default());
    };
    ctx.check_keys("features", f, &["window"])?;
    let window = match f.get("window") {
        None => None,
        Some(w) => {
            let a = w
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| ctx.err("features.window", "expected [start, stop]"))?;
            let q = |v| {
                ctx.quantity_text("features.window", v)
                    .map(QuantitySpec::Text)
            };
            Some([q(&a[0])?, q(&a[1])?])
        }
    };
    Ok(FeaturesSpec { window })
}

/// `[outputs.VAR]` tables.
fn read_outputs(ctx: &Ctx, outs: &toml::Table) -> Result<Entries<OutputSpec>> {
    let mut entries = Entries::default();
    for (var, v) in outs {
        let key = format!("outputs.{var}");
        let t = v
            .as_table()
            .ok_or_else(|| ctx.err(&key, "expected a table"))?;
        let mut allowed = vec![
            "unit",
            "features",
            "data",
            "time_unit",
            "with",
            "statistics",
        ];
        allowed.extend(recording::SELECTORS);
        ctx.check_keys(&key, t, &allowed)?;
        let string = |k: &str, expected: &str| -> Result<Option<String>> {
            t.get(k)
                .map(|u| {
                    u.as_str()
                        .map(String::from)
                        .ok_or_else(|| ctx.err(&format!("{key}.{k}"), expected))
                })
                .transpose()
        };
        let features = t
            .get("features")
            .and_then(|f| f.as_array())
            .ok_or_else(|| {
                ctx.err(
                    &format!("{key}.features"),
                    "missing: a list of feature names from `neurosbi features`",
                )
            })?
            .iter()
            .map(|f| {
                f.as_str()
                    .map(String::from)
                    .ok_or_else(|| ctx.err(&format!("{key}.features"), "expected strings"))
            })
            .collect::<Result<_>>()?;
        let data = match t.get("data") {
            None => None,
            Some(toml::Value::String(p)) => Some(DataSpec::File(p.clone())),
            Some(_) => return Err(ctx.err(&format!("{key}.data"), "expected a file path (string)")),
        };
        let (sweeps, channel, interpolate) = recording::selectors(ctx, &key, t)?;
        let list = |k: &str| {
            t.get(k).map(|v| {
                v.as_array()
                    .ok_or_else(|| ctx.err(&format!("{key}.{k}"), "expected a list"))
            })
        };
        let with = match list("with").transpose()? {
            None => Vec::new(),
            Some(a) => a
                .iter()
                .map(|v| {
                    v.as_str().map(String::from).ok_or_else(|| {
                        ctx.err(&format!("{key}.with"), "expected variable names (strings)")
                    })
                })
                .collect::<Result<_>>()?,
        };
        let statistics = match list("statistics").transpose()? {
            None => None,
            Some(a) => Some(
                a.iter()
                    .map(|v| match v {
                        toml::Value::Float(x) => Ok(*x),
                        toml::Value::Integer(i) => Ok(*i as f64),
                        _ => Err(ctx.err(
                            &format!("{key}.statistics"),
                            "expected numbers (`nan` where a statistic is undefined)",
                        )),
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        entries.push(
            var.clone(),
            OutputSpec {
                unit: string("unit", "expected a unit name such as \"mV\"")?,
                features,
                data,
                time_unit: string("time_unit", TIME_UNIT)?,
                sweeps,
                channel,
                interpolate,
                with,
                statistics,
                external_features: Vec::new(),
            },
        );
    }
    Ok(entries)
}

/// Why a `time_unit` is refused.
pub(super) const TIME_UNIT: &str = "expected a time unit such as \"ms\" or \"second\"";
