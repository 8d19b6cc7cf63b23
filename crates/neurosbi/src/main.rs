//! The `neurosbi` program: fit neuron models to recordings by simulation-based inference.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use neurosbi::config::FitConfig;
use neurosbi::fit::{FitOptions, fit};
use std::io::Write;
use std::path::PathBuf;

/// Prints a line to stdout, ignoring a closed pipe (`neurosbi ... | head`) instead of
/// panicking as `println!` does.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "neurosbi",
    version,
    about = "Posterior distributions over neuron-model parameters from recordings"
)]
struct Cli {
    /// Seed (overrides the file's `seed`).
    #[arg(long, global = true)]
    seed: Option<u64>,
    /// Worker threads for simulation (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Output folder (overrides the file's `output`).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// No progress bars or messages.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Overwrite existing outputs.
    #[arg(long, global = true)]
    force: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the whole job of a fit file: simulate, train, sample, write figures and report.
    Fit {
        /// The fit file (TOML, see docs/model-file.md).
        file: PathBuf,
    },
    /// Trains on the stored simulations (running any that are missing) and writes every
    /// output, like `fit`.
    Train {
        /// The fit file.
        file: PathBuf,
    },
    /// Runs the first round's simulations into the output folder's store, without training
    /// (e.g. on another machine; `fit` then resumes from them).
    Simulate {
        /// The fit file.
        file: PathBuf,
    },
    /// Calibration of the fitted posterior: simulation-based calibration and expected
    /// coverage (writes check.csv).
    Check {
        /// The fit file.
        file: PathBuf,
        /// Prior draws to calibrate over.
        #[arg(long, default_value_t = 100)]
        n_sbc: usize,
        /// Posterior samples per draw.
        #[arg(long, default_value_t = 100)]
        n_posterior: usize,
    },
    /// Redraws the figures of a finished fit (pairplot, predictive traces, training curves).
    Plot {
        /// The fit file.
        file: PathBuf,
    },
    /// Rebuilds report.html of a finished fit from the files in its output folder.
    Report {
        /// The fit file.
        file: PathBuf,
    },
    /// Writes the stored simulations as theta.npy and x.npy for numpy.
    Export {
        /// The fit file.
        file: PathBuf,
    },
    /// Checks a fit file without simulating anything.
    Validate {
        /// The fit file.
        file: PathBuf,
    },
    /// Draws samples from a fitted posterior for the fit file's observation (or another
    /// fit file's observation), without retraining.
    Sample {
        /// The fit file whose output folder holds the posterior.
        file: PathBuf,
        /// Fit file describing the new observation (same model, outputs and features).
        #[arg(long)]
        observation: Option<PathBuf>,
        /// Number of samples.
        #[arg(long, default_value_t = 10_000)]
        n: usize,
    },
    /// Lists the model library (examples/models).
    Models {
        /// Folder of model files.
        #[arg(long, default_value = "examples/models")]
        dir: PathBuf,
    },
    /// Lists the feature catalogue.
    Features,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(t) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("setting the thread count")?;
    }
    let opts = FitOptions {
        force: cli.force,
        quiet: cli.quiet,
        seed: cli.seed,
        out: cli.out.clone(),
    };
    match &cli.command {
        Command::Fit { file } | Command::Train { file } => {
            let cfg = FitConfig::from_file(file)?;
            let outcome = fit(&cfg, &opts)?;
            if !cli.quiet {
                say!("{}", neurosbi::summary::summary_table(&outcome.summary));
                for (p, s) in &outcome.timings {
                    say!("{p:<24} {s:>8.2} s");
                }
                say!("outputs in {}", outcome.out.display());
            }
        }
        Command::Simulate { file } => {
            let cfg = FitConfig::from_file(file)?;
            let (valid, invalid) = neurosbi::fit::simulate_only(&cfg, &opts)?;
            if !cli.quiet {
                say!("{valid} valid and {invalid} invalid simulations stored");
            }
        }
        Command::Check {
            file,
            n_sbc,
            n_posterior,
        } => {
            let cfg = FitConfig::from_file(file)?;
            let (ks, cov) = neurosbi::fit::check(&cfg, &opts, *n_sbc, *n_posterior)?;
            for (n, p) in ks {
                say!("SBC rank uniformity (KS p-value) {n:<10} {p:.3}");
            }
            for (l, c) in cov {
                say!(
                    "expected coverage at {:>3.0} %: {:.1} %",
                    l * 100.0,
                    c * 100.0
                );
            }
        }
        Command::Plot { file } => {
            let cfg = FitConfig::from_file(file)?;
            neurosbi::fit::redraw(&cfg, &opts)?;
        }
        Command::Report { file } => {
            let cfg = FitConfig::from_file(file)?;
            let p = neurosbi::fit::rebuild_report(&cfg, &opts)?;
            if !cli.quiet {
                say!("wrote {}", p.display());
            }
        }
        Command::Export { file } => {
            let cfg = FitConfig::from_file(file)?;
            let out = cli.out.clone().unwrap_or(cfg.out.clone());
            let (t, x) = neurosbi::fit::export(&out)?;
            say!("wrote {} and {}", t.display(), x.display());
        }
        Command::Validate { file } => {
            let cfg = FitConfig::from_file(file)?;
            say!(
                "{}: ok ({} free parameters, {} features, {} traces of {} steps)",
                file.display(),
                cfg.problem.dim_theta(),
                cfg.problem.dim_x(),
                cfg.problem.n_traces,
                cfg.problem.n_steps
            );
        }
        Command::Sample {
            file,
            observation,
            n,
        } => {
            let cfg = FitConfig::from_file(file)?;
            let out = cli.out.clone().unwrap_or(cfg.out.clone());
            let posterior = neurosbi::fit::load_posterior(&out)
                .with_context(|| format!("loading the posterior from {}", out.display()))?;
            let obs_cfg = match observation {
                Some(f) => FitConfig::from_file(f)?,
                None => cfg.clone(),
            };
            let x_o = obs_cfg.problem.observed_features(&obs_cfg.observation()?)?;
            if x_o.len() != posterior.dim_x() {
                bail!(
                    "the observation has {} features, the posterior was trained on {}",
                    x_o.len(),
                    posterior.dim_x()
                );
            }
            let seed = cli.seed.unwrap_or(cfg.seed);
            let draws = posterior.sample(*n, &x_o, seed)?;
            let d = cfg.problem.dim_theta();
            let path = out.join("resampled.csv");
            if path.exists() && !cli.force {
                bail!(
                    "{} already exists; pass --force to overwrite it",
                    path.display()
                );
            }
            let header: Vec<String> = cfg.problem.parameter_names();
            neurosbi::summary::write_file(
                &path,
                neurosbi::summary::csv_text(&header, &draws.theta).as_bytes(),
            )?;
            let units: Vec<String> = cfg
                .problem
                .free
                .iter()
                .map(|p| p.unit.name.clone())
                .collect();
            let map = posterior.map(&x_o, seed)?;
            let s = neurosbi::summary::summarise(
                &draws.theta,
                &header,
                &units,
                &map,
                obs_cfg.truth.as_deref(),
            );
            if !cli.quiet {
                say!("{}", neurosbi::summary::summary_table(&s));
                say!("{} samples of {d} parameters in {}", n, path.display());
            }
        }
        Command::Models { dir } => {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            entries.sort();
            let mut o = std::io::stdout().lock();
            for p in entries {
                let line = match neurosbi::sim::ModelSpec::from_file(&p) {
                    Ok(s) => {
                        let params: Vec<String> =
                            s.priors.iter().map(|(n, _, _)| n.clone()).collect();
                        format!(
                            "{:<12} {}\n{:<12} free: {}",
                            s.name,
                            s.description,
                            "",
                            params.join(", ")
                        )
                    }
                    Err(e) => format!("{}: {e}", p.display()),
                };
                // Stop quietly when the reader has gone (`neurosbi models | head`).
                if writeln!(o, "{line}").is_err() {
                    break;
                }
            }
        }
        Command::Features => {
            let cat = neurosbi::features::Catalogue::standard();
            let mut o = std::io::stdout().lock();
            for e in cat.entries() {
                let line = format!(
                    "{:<32} {:<10} {:<8} {}  [{}]",
                    e.name, e.group, e.unit, e.summary, e.params
                );
                if writeln!(o, "{line}").is_err() {
                    break;
                }
            }
        }
    }
    Ok(())
}
