//! The `neurosbi` program: fit neuron models to recordings by simulation-based inference.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use neurosbi::config::FitConfig;
use neurosbi::fit::{FitOptions, fit};
use neurosbi::scale::{MergeProblem, ScaleError, ShardJob, ShardSpec};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Train on this device (`cpu`, `cuda`, `cuda:N`; overrides `[inference] device`; CUDA
    /// needs a build with `--features cuda`). Used by `fit` and `train`.
    #[arg(long, global = true)]
    device: Option<String>,
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
    /// (e.g. on another machine; `fit` then resumes from them). With `--shard I
    /// --num-shards N` (or inside a SLURM array task) it runs only its slice of a round's
    /// simulations and writes a shard file; `neurosbi merge` joins the shards.
    Simulate {
        /// The fit file.
        file: PathBuf,
        /// This shard (0-based); defaults to the SLURM array task.
        #[arg(long, requires = "num_shards")]
        shard: Option<u32>,
        /// Number of shards of the round; defaults to the SLURM array's task count.
        #[arg(long, requires = "shard")]
        num_shards: Option<u32>,
        /// Round to simulate (0-based); rounds after the first need the proposal that
        /// `neurosbi merge` trains after the round before.
        #[arg(long, default_value_t = 0)]
        round: usize,
    },
    /// Merges shard files into the store that `train` reads, after checking that they come
    /// from the same run and cover every simulation exactly once; with a fit file whose
    /// next round still needs them, also trains the proposal of that round.
    Merge {
        /// The fit file, or an output folder (or its `simulations/` or shards folder).
        path: PathBuf,
        /// Do not train the next round's proposal.
        #[arg(long)]
        no_proposal: bool,
    },
    /// Writes sbatch scripts that run the fit file on a SLURM cluster: an array job per
    /// round, then dependent merge(-and-train) jobs; `submit.sh` submits the chain.
    Slurm {
        /// The fit file.
        file: PathBuf,
        /// Array tasks (shards) per round.
        #[arg(long, default_value_t = 4)]
        array_size: u32,
        /// Most array tasks running at once (sbatch's `%N`).
        #[arg(long)]
        max_running: Option<u32>,
        /// Partition of the simulation tasks.
        #[arg(long)]
        partition: Option<String>,
        /// Time limit of each simulation task.
        #[arg(long, default_value = "01:00:00")]
        time: String,
        /// Cores per simulation task.
        #[arg(long, default_value_t = 1)]
        cpus: u32,
        /// Memory per job (e.g. 4G).
        #[arg(long)]
        mem: Option<String>,
        /// Partition of the merge and training jobs (default: --partition).
        #[arg(long)]
        train_partition: Option<String>,
        /// Generic resources of the training job, e.g. gpu:1 (with a `cuda` build).
        #[arg(long)]
        train_gres: Option<String>,
        /// Time limit of the merge and training jobs.
        #[arg(long, default_value = "01:00:00")]
        train_time: String,
        /// Cores of the merge and training jobs.
        #[arg(long, default_value_t = 2)]
        train_cpus: u32,
        /// Folder for the scripts (default: OUT/slurm).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The neurosbi program the jobs run (default: this one).
        #[arg(long)]
        program: Option<PathBuf>,
    },
    /// Calibration and fit of the fitted posterior: simulation-based calibration, expected
    /// coverage and a posterior-predictive check (writes check.csv and check_*.svg/png).
    Check {
        /// The fit file.
        file: PathBuf,
        /// Prior draws to calibrate over.
        #[arg(long, default_value_t = 100)]
        n_sbc: usize,
        /// Posterior samples per SBC draw, and posterior-predictive simulations.
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
        #[arg(long, conflicts_with = "data")]
        observation: Option<PathBuf>,
        /// New recorded data for an output, as OUTPUT=FILE (CSV or .npy, as the fit file's
        /// `data`); repeat for several outputs.
        #[arg(long, value_name = "OUTPUT=FILE")]
        data: Vec<String>,
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
    /// Describes a recording (.abf): channels and units, sweeps, the stimulus protocol's
    /// epochs and the duration, to help write a fit file's `data`, `channel` and `sweeps`.
    Inspect {
        /// The recording.
        file: PathBuf,
    },
}

/// Runs one shard of a round (`neurosbi simulate --shard I --num-shards N`).
fn simulate_shard(cfg: &FitConfig, opts: &FitOptions, round: usize, spec: ShardSpec) -> Result<()> {
    let job = ShardJob::new(cfg, opts)?;
    let bars = neurosbi::fit::Bars::new(opts.quiet);
    let bar = bars.bar(0, "simulating");
    let s = job.run(round, spec, opts.force, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    })?;
    bar.finish_and_clear();
    if !opts.quiet {
        let h = &s.header;
        say!(
            "round {} shard {} of {}: simulations {}..{} ({} valid, {} invalid){} in {}",
            h.round,
            h.shard,
            h.num_shards,
            h.start,
            h.end,
            s.counts.valid,
            s.counts.invalid,
            if s.reused { ", already done" } else { "" },
            s.path.display()
        );
    }
    Ok(())
}

/// `neurosbi merge FILE|DIR`.
fn merge(path: &Path, opts: &FitOptions, no_proposal: bool) -> Result<()> {
    if path.is_dir() {
        let merged = neurosbi::scale::merge(path, None)?;
        report_merge(&merged, opts.quiet);
        return Ok(());
    }
    let cfg = FitConfig::from_file(path)?;
    let job = ShardJob::new(&cfg, opts)?;
    // Rounds simulated straight into the store (MPI, or `simulate` without shards) leave no
    // shards; the next round's proposal is still needed.
    match neurosbi::scale::merge(&job.out, Some(&job.run)) {
        Ok(merged) => report_merge(&merged, opts.quiet),
        Err(ScaleError::Merge(p)) if matches!(p.0.as_slice(), [MergeProblem::NoShards(_)]) => {
            if !opts.quiet {
                say!("no shards to merge in {}", job.out.display());
            }
        }
        Err(e) => return Err(e.into()),
    }
    let rounds = cfg.inference.rounds.len();
    let done = neurosbi::scale::complete_rounds(&job)?;
    if done >= 1 && done < rounds && !no_proposal {
        let dir = neurosbi::scale::proposal_dir(&job.out, done);
        if dir.exists() && !opts.force {
            if !opts.quiet {
                say!("proposal of round {done} exists: {}", dir.display());
            }
        } else {
            let dir = neurosbi::scale::train_proposal(&job, done - 1)?;
            if !opts.quiet {
                say!("trained the proposal of round {done}: {}", dir.display());
            }
        }
    }
    Ok(())
}

fn report_merge(merged: &[neurosbi::scale::MergedRound], quiet: bool) {
    if quiet {
        return;
    }
    for m in merged {
        say!(
            "round {}: {} shards, {} valid and {} invalid simulations{}",
            m.round,
            m.shards,
            m.valid,
            m.invalid,
            if m.already {
                " (already in the store)"
            } else {
                " merged into the store"
            }
        );
    }
}

/// Ordinary errors (bad input, missing files) print their message only, even with
/// RUST_BACKTRACE set; a panic is a bug and says where to report it.
fn main() -> std::process::ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!(
            "neurosbi: internal error (a bug, not a problem with your input). Please report it \
             to the neurosbi issue tracker with the command line and the files it read."
        );
        default_hook(info);
    }));
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    // Ranks sharing a machine share its cores unless --threads says otherwise.
    #[cfg(feature = "mpi")]
    let threads = cli.threads.or_else(|| {
        let local = neurosbi::mpi_gather::local_ranks()
            .filter(|_| neurosbi::mpi_gather::launched_by_mpi())?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Some((cores / local.max(1)).max(1))
    });
    #[cfg(not(feature = "mpi"))]
    let threads = cli.threads;
    if let Some(t) = threads {
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
        Command::Fit { .. } | Command::Train { .. } => cmd_fit(&cli, &opts)?,
        Command::Simulate { .. } => cmd_simulate(&cli, &opts)?,
        Command::Merge { path, no_proposal } => merge(path, &opts, *no_proposal)?,
        Command::Slurm { .. } => cmd_slurm(&cli)?,
        Command::Check { .. } => cmd_check(&cli, &opts)?,
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
        Command::Sample { .. } => cmd_sample(&cli)?,
        Command::Models { .. } => cmd_models(&cli)?,
        Command::Features => cmd_features(&cli)?,
        Command::Inspect { file } => print!("{}", neurosbi::io::open(file)?.describe()),
    }
    Ok(())
}

/// `neurosbi fit` and `neurosbi train`: the whole job, then the summary table.
fn cmd_fit(cli: &Cli, opts: &FitOptions) -> Result<()> {
    let (Command::Fit { file } | Command::Train { file }) = &cli.command else {
        unreachable!("dispatched on fit or train")
    };
    let mut cfg = FitConfig::from_file(file)?;
    if let Some(d) = &cli.device {
        neurosbi::flows::device_from_name(d).context("--device")?;
        cfg.inference.train.device = Some(d.clone());
    }
    let outcome = fit(&cfg, opts)?;
    if !cli.quiet {
        say!("{}", neurosbi::summary::summary_table(&outcome.summary));
        for (p, s) in &outcome.timings {
            say!("{p:<24} {s:>8.2} s");
        }
        say!("outputs in {}", outcome.out.display());
    }
    Ok(())
}

/// `neurosbi simulate`: the first round into the store, a shard, or (MPI) ranks gathered by rank 0.
fn cmd_simulate(cli: &Cli, opts: &FitOptions) -> Result<()> {
    let Command::Simulate {
        file,
        shard,
        num_shards,
        round,
    } = &cli.command
    else {
        unreachable!("dispatched on simulate")
    };
    let spec = ShardSpec::resolve(*shard, *num_shards, |v| std::env::var(v).ok())?;
    let cfg = FitConfig::from_file(file)?;
    #[cfg(feature = "mpi")]
    if spec.is_none() && neurosbi::mpi_gather::launched_by_mpi() {
        let job = ShardJob::new(&cfg, opts)?;
        if let Some(o) = neurosbi::mpi_gather::simulate(&job, *round)?
            && !cli.quiet
        {
            say!(
                "round {round}: {} valid and {} invalid simulations stored by {} MPI ranks (chunks per rank {:?}, {} already stored)",
                o.valid,
                o.invalid,
                o.ranks,
                o.chunks_per_rank,
                o.chunks_resumed
            );
        }
        return Ok(());
    }
    if spec.is_none() && *round == 0 {
        let (valid, invalid) = neurosbi::fit::simulate_only(&cfg, opts)?;
        if !cli.quiet {
            say!("{valid} valid and {invalid} invalid simulations stored");
        }
    } else {
        let spec = match spec {
            Some(s) => s,
            None => ShardSpec::new(0, 1)?,
        };
        simulate_shard(&cfg, opts, *round, spec)?;
    }
    Ok(())
}

/// `neurosbi slurm`: writes the sbatch scripts of a fit file.
fn cmd_slurm(cli: &Cli) -> Result<()> {
    let Command::Slurm {
        file,
        array_size,
        max_running,
        partition,
        time,
        cpus,
        mem,
        train_partition,
        train_gres,
        train_time,
        train_cpus,
        dir,
        program,
    } = &cli.command
    else {
        unreachable!("dispatched on slurm")
    };
    let cfg = FitConfig::from_file(file)?;
    let cwd = std::env::current_dir().context("the working directory")?;
    let out = cwd.join(cli.out.clone().unwrap_or(cfg.out.clone()));
    let program = match program {
        Some(p) => cwd.join(p),
        None => std::env::current_exe().context("locating this program")?,
    };
    let so = neurosbi::slurm::SlurmOptions {
        program,
        file: cwd.join(file),
        out: out.clone(),
        workdir: cwd,
        rounds: cfg.inference.rounds.clone(),
        array_size: *array_size,
        max_running: *max_running,
        partition: partition.clone(),
        time: time.clone(),
        cpus: *cpus,
        mem: mem.clone(),
        train_partition: train_partition.clone(),
        train_gres: train_gres.clone(),
        train_time: train_time.clone(),
        train_cpus: *train_cpus,
        seed: cli.seed,
        force: cli.force,
    };
    let dir = dir.clone().unwrap_or_else(|| out.join("slurm"));
    let paths = so.write(&dir, cli.force)?;
    if !cli.quiet {
        for p in &paths {
            say!("wrote {}", p.display());
        }
        say!("submit with: {}", dir.join("submit.sh").display());
    }
    Ok(())
}

/// `neurosbi check`: calibration, coverage and the posterior-predictive check.
fn cmd_check(cli: &Cli, opts: &FitOptions) -> Result<()> {
    let Command::Check {
        file,
        n_sbc,
        n_posterior,
    } = &cli.command
    else {
        unreachable!("dispatched on check")
    };
    if *n_sbc == 0 || *n_posterior == 0 {
        bail!("--n-sbc and --n-posterior must be at least 1 (got {n_sbc} and {n_posterior})");
    }
    let cfg = FitConfig::from_file(file)?;
    // SBC keeps every draw's posterior samples; the check simulates n_posterior traces.
    let draws = *n_sbc as f64 * *n_posterior as f64 * cfg.problem.dim_theta() as f64;
    let traces = *n_posterior as f64 * (cfg.problem.n_steps * cfg.problem.n_traces) as f64;
    neurosbi::config::fits_in_memory("the check's samples and traces", 8.0 * (draws + traces))
        .map_err(anyhow::Error::msg)?;
    let rep = neurosbi::fit::check(&cfg, opts, *n_sbc, *n_posterior)?;
    for (n, p) in &rep.sbc_ks {
        say!("SBC rank uniformity (KS p-value) {n:<10} {p:.3}");
    }
    for (l, c) in rep
        .coverage
        .iter()
        .filter(|(l, _)| [0.5, 0.8, 0.95].iter().any(|k| (k - l).abs() < 1e-9))
    {
        say!(
            "expected coverage at {:>3.0} %: {:.1} %",
            l * 100.0,
            c * 100.0
        );
    }
    let outside = rep.predictive_outliers();
    say!(
        "posterior predictive: {} of {} observed features inside their 95 % predictive interval{}{}",
        rep.predictive.len() - outside.len(),
        rep.predictive.len(),
        if outside.is_empty() {
            String::new()
        } else {
            format!(" (outside: {})", outside.join(", "))
        },
        if rep.predictive_invalid > 0 {
            format!("; {} predictive simulations failed", rep.predictive_invalid)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `neurosbi sample`: draws from the saved posterior for the fit file's or another observation.
fn cmd_sample(cli: &Cli) -> Result<()> {
    let Command::Sample {
        file,
        observation,
        data,
        n,
    } = &cli.command
    else {
        unreachable!("dispatched on sample")
    };
    if *n == 0 {
        bail!("--n 0: give the number of samples to draw (at least 1)");
    }
    let cfg = FitConfig::from_file(file)?;
    // The draws, their CSV text and the sampler's work arrays, about 8x the samples.
    let bytes = *n as f64 * cfg.problem.dim_theta() as f64 * 8.0 * 8.0;
    neurosbi::config::fits_in_memory(&format!("--n {n} samples"), bytes)
        .map_err(anyhow::Error::msg)?;
    let out = cli.out.clone().unwrap_or(cfg.out.clone());
    let posterior = neurosbi::fit::load_posterior(&out)
        .with_context(|| format!("loading the posterior from {}", out.display()))?;
    let obs_cfg = match observation {
        Some(f) => FitConfig::from_file(f)?,
        None if !data.is_empty() => {
            let pairs = data
                .iter()
                .map(|a| neurosbi::observe::parse_data_arg(a).map_err(anyhow::Error::from))
                .collect::<Result<Vec<_>>>()?;
            neurosbi::observe::with_data_file(&cfg, &pairs)?
        }
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
    let map = if posterior.has_density() {
        posterior.map(&x_o, seed)?
    } else {
        vec![f64::NAN; d]
    };
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
    Ok(())
}

/// `neurosbi models`: the model library.
fn cmd_models(cli: &Cli) -> Result<()> {
    let Command::Models { dir } = &cli.command else {
        unreachable!("dispatched on models")
    };
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
                let params: Vec<String> = s.priors.iter().map(|(n, _, _)| n.clone()).collect();
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
    Ok(())
}

/// `neurosbi features`: the feature catalogue.
fn cmd_features(cli: &Cli) -> Result<()> {
    let Command::Features = &cli.command else {
        unreachable!("dispatched on features")
    };
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
    Ok(())
}
