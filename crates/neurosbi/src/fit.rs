//! The whole job of `neurosbi fit`: observation -> simulations (resumable store) -> training ->
//! posterior samples, summary, figures and the report, written into the output folder.

use crate::config::{FitConfig, InferenceSettings};
use crate::error::{Error, Result};
use crate::outdir::OutDir;
use crate::plot::{self, PairData, TracePanel};
use crate::problem::Problem;
use crate::problem::{NeuronSimulator, Observed};
use crate::report;
use crate::summary::{self, ParameterSummary, csv_text, write_file};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use neurosbi_flows::TrainObserver;
use neurosbi_infer::{
    Fingerprint, InferError, InferenceConfig, InvalidReport, Posterior, Prior, Progress, RunConfig,
    Store, write_npy,
};
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Options of a run (the command line's flags).
#[derive(Clone, Debug, Default)]
pub struct FitOptions {
    /// Overwrite existing outputs.
    pub force: bool,
    /// No progress bars or messages.
    pub quiet: bool,
    /// Overrides the file's seed.
    pub seed: Option<u64>,
    /// Overrides the file's output folder.
    pub out: Option<PathBuf>,
}

/// Files a fit writes (besides the simulation store and the saved posterior).
pub const OUTPUT_FILES: [&str; 17] = [
    "samples.csv",
    "samples.npy",
    "summary.csv",
    "summary.json",
    "observation.csv",
    "training.csv",
    "pairplot.svg",
    "pairplot.png",
    "traces.svg",
    "traces.png",
    "training.svg",
    "training.png",
    "report.html",
    "timings.csv",
    "predictive.csv",
    "fit.toml",
    "posterior",
];

/// What a fit produced.
#[derive(Debug)]
pub struct FitOutcome {
    /// The output folder.
    pub out: PathBuf,
    /// Posterior samples (row-major, display units).
    pub samples: Vec<f64>,
    /// Per-parameter summary.
    pub summary: Vec<ParameterSummary>,
    /// Seconds per phase.
    pub timings: Vec<(String, f64)>,
    /// Valid and invalid simulations per round.
    pub simulations: Vec<(usize, u64)>,
}

/// Progress bars on stderr, hidden when quiet or not a terminal.
pub struct Bars {
    hidden: bool,
}

impl Bars {
    /// Bars shown unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        Self {
            hidden: quiet || !std::io::stderr().is_terminal(),
        }
    }
    /// A progress bar of `len` steps labelled `what`.
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        let b = ProgressBar::with_draw_target(
            Some(len),
            if self.hidden {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        );
        b.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({elapsed}, eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_message(what.to_string());
        b
    }
    fn spinner(&self, what: &str) -> ProgressBar {
        let b = ProgressBar::with_draw_target(
            None,
            if self.hidden {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        );
        b.set_style(
            ProgressStyle::with_template("{msg:>12} {spinner} {wide_msg}").expect("valid template"),
        );
        b.set_message(what.to_string());
        b
    }
}

struct TrainBar {
    bar: ProgressBar,
    curves: Vec<(Vec<f64>, Vec<f64>)>,
    last_epoch: usize,
}

impl TrainObserver for TrainBar {
    fn on_epoch(&mut self, epoch: usize, train_loss: f64, val_loss: f64) {
        if epoch <= self.last_epoch || self.curves.is_empty() {
            self.curves.push((Vec::new(), Vec::new()));
        }
        self.last_epoch = epoch;
        let c = self.curves.last_mut().expect("pushed");
        c.0.push(train_loss);
        c.1.push(val_loss);
        self.bar.set_message(format!(
            "training: round {}, epoch {epoch}, validation loss {val_loss:.4}",
            self.curves.len()
        ));
        self.bar.tick();
    }
}

/// Refuses to replace outputs of another run (unless `force`), before anything is computed.
/// Outputs of the same run (same fingerprint and settings, recorded in `run.json`) are no
/// obstacle: a rerun or a resumed run reproduces them. Nothing is deleted here; the new outputs
/// replace the old ones only when the run completes ([`OutDir::commit`]).
pub fn check_outputs(out: &Path, force: bool, manifest: &RunManifest) -> Result<()> {
    if force {
        return Ok(());
    }
    let Some(existing) = OUTPUT_FILES
        .iter()
        .map(|f| out.join(f))
        .find(|p| p.exists() && !p.ends_with("fit.toml"))
    else {
        return Ok(());
    };
    let previous = RunManifest::read(&out.join(MANIFEST)).ok();
    match previous {
        Some(prev) if prev.run == manifest.run => Ok(()),
        Some(prev) => Err(Error::invalid(
            out.display().to_string(),
            format!(
                "holds the outputs of another run ({} changed); pass --force to replace them once the new run completes, or choose another output folder with --out",
                prev.changes(manifest).join(", ")
            ),
        )),
        None => Err(Error::Exists { path: existing }),
    }
}

/// File in the output folder that says what produced its outputs.
pub const MANIFEST: &str = "run.json";

/// Provenance of a fit's outputs: the program, the fit file and the fingerprint of everything
/// that determined the simulations, plus a digest of all settings (`run`) that decides
/// whether existing outputs belong to the same run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunManifest {
    /// neurosbi version that wrote the outputs.
    pub neurosbi: String,
    /// The fit file, as given.
    pub fit_file: String,
    /// SHA-256 of the fit file's bytes (empty for a problem built in code).
    pub fit_file_sha256: String,
    /// The seed.
    pub seed: u64,
    /// The simulations' fingerprint: (part, SHA-256) pairs.
    pub simulations: Vec<(String, String)>,
    /// SHA-256 of the inference, training and sampling settings.
    pub settings: String,
    /// Digest of all of the above but the program version and file name.
    pub run: String,
    /// SHA-256 of each output file (name, digest); commands that read an output check it,
    /// so an edited or damaged file is named instead of being used.
    #[serde(default)]
    pub files: Vec<(String, String)>,
    /// SHA-256 of this manifest without this field.
    #[serde(default)]
    pub self_sha256: String,
}

impl RunManifest {
    /// The manifest of `cfg` run with `seed`, whose simulations have fingerprint `fp`.
    pub fn new(cfg: &FitConfig, seed: u64, fp: &Fingerprint) -> Self {
        use neurosbi_infer::provenance::sha256_hex;
        let settings = sha256_hex(format!("{:?} truth {:?}", cfg.inference, cfg.truth).as_bytes());
        let fit_file_sha256 = read_bounded(&cfg.file, 1 << 26)
            .map(|b| sha256_hex(&b))
            .unwrap_or_default();
        Self {
            neurosbi: env!("CARGO_PKG_VERSION").into(),
            fit_file: cfg.file.display().to_string(),
            fit_file_sha256,
            seed,
            simulations: fp.parts().to_vec(),
            run: sha256_hex(format!("{} {}", fp.digest(), settings).as_bytes()),
            settings,
            files: Vec::new(),
            self_sha256: String::new(),
        }
    }

    /// Records the checksum of each output file present in `dir` (replacing older ones).
    pub fn record_files(&mut self, dir: &Path) -> Result<()> {
        let sweeps = sweep_figure_files(dir);
        let names = OUTPUT_FILES
            .iter()
            .copied()
            .chain(sweeps.iter().map(String::as_str));
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                let sum = neurosbi_infer::provenance::sha256_hex(&read_bounded(&p, 1 << 32)?);
                self.files.retain(|(n, _)| n != name);
                self.files.push((name.to_string(), sum));
            }
        }
        Ok(())
    }

    /// Writes the manifest as `dir/run.json`, with its checksum.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let sealed = Self {
            self_sha256: self.digest(),
            ..self.clone()
        };
        let text = serde_json::to_string_pretty(&sealed)
            .map_err(|e| Error::invalid(MANIFEST, e.to_string()))?;
        write_file(&dir.join(MANIFEST), text.as_bytes())
    }

    /// Reads a manifest written by a fit, checking its own checksum.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = read_bounded(path, 1 << 20)?;
        let bad = |why: String| Error::invalid(path.display().to_string(), why);
        let m: Self = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if m.self_sha256 != m.digest() {
            return Err(bad(
                "checksum mismatch: the file was edited or damaged after the fit wrote it".into(),
            ));
        }
        Ok(m)
    }

    /// SHA-256 of the manifest without its own checksum.
    fn digest(&self) -> String {
        let bare = Self {
            self_sha256: String::new(),
            ..self.clone()
        };
        let text = serde_json::to_string(&bare).unwrap_or_default();
        neurosbi_infer::provenance::sha256_hex(text.as_bytes())
    }

    /// What differs from `other`: names of fingerprint parts, or the settings.
    pub fn changes(&self, other: &RunManifest) -> Vec<String> {
        let fp = |m: &RunManifest| {
            m.simulations
                .iter()
                .fold(Fingerprint::new(), |f, (n, d)| f.with(n, d))
        };
        let mut c = fp(self).changes(&fp(other));
        if self.settings != other.settings {
            c.push("the inference settings".into());
        }
        c
    }
}

/// The facade's one bounded reader, with the path in its error.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    crate::config::read_bounded(path, limit).map_err(Error::io(path))
}

/// The store a fit uses: `OUT/simulations` when it holds this problem's simulations (a
/// resumed or repeated run) or does not exist yet; with `force`, a store of another problem
/// is left in place and a new one is made in the staging folder, to replace it when the run
/// completes. A forced run that was interrupted left its store there: it is resumed.
fn open_store(dir: &OutDir, p: &Problem, fp: Fingerprint, force: bool) -> Result<Store> {
    let main = dir.root().join("simulations");
    let staged = dir.staging().join("simulations");
    let (dt, dx) = (p.dim_theta(), p.dim_x());
    if staged.exists()
        && let Ok(s) = Store::open(&staged)
        && s.require(dt, dx, &fp).is_ok()
    {
        return Ok(s);
    }
    match Store::open_or_create(&main, dt, dx, fp.clone()) {
        Ok(s) => Ok(s),
        Err(e @ (InferError::StoreMismatch { .. } | InferError::FormatVersion { .. })) => {
            if !force {
                return Err(stale_store(e));
            }
            if staged.exists() {
                std::fs::remove_dir_all(&staged).map_err(Error::io(&staged))?;
            }
            Ok(Store::create(&staged, dt, dx, fp)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// A store of an older format gets the same two ways out as one of another problem.
fn stale_store(e: InferError) -> Error {
    match e {
        InferError::FormatVersion { path, found, .. } => Error::invalid(
            path.display().to_string(),
            format!(
                "holds simulations stored by another version of neurosbi (format {found}); rerun with --force to resimulate, or choose another output folder with --out"
            ),
        ),
        e => e.into(),
    }
}

/// The valid/invalid counts with their reasons, for the end of every run; with a loud warning
/// and the parameter region where simulations fail when more than `warn_above` are invalid.
pub fn invalid_lines(report: &InvalidReport, names: &[String], warn_above: f64) -> String {
    let text = report.describe(names);
    if report.fraction() > warn_above {
        format!(
            "WARNING: {:.0} % of the simulations are invalid (more than {:.0} %): the posterior only reflects the region where the model works.\n{text}",
            100.0 * report.fraction(),
            100.0 * warn_above
        )
    } else {
        text
    }
}

/// Simulations per chunk of the store (unit of resumption and of progress reports).
pub const STORE_CHUNK_SIZE: usize = 500;

/// The inference settings `fit` runs with for the seed `seed`; shards and proposals made on
/// other machines (`neurosbi::scale`) use the same, so they reproduce `fit` exactly.
pub fn inference_config(cfg: &FitConfig, seed: u64) -> InferenceConfig {
    inference_config_for(&cfg.inference, seed)
}

/// [`inference_config`] from the settings alone (the Python package runs a validated
/// description's settings through it, so it trains exactly as `fit` does).
pub fn inference_config_for(s: &InferenceSettings, seed: u64) -> InferenceConfig {
    InferenceConfig {
        method: s.method,
        rounds: s.rounds.clone(),
        estimator: s.estimator.clone(),
        train: s.train.clone(),
        run: RunConfig {
            seed,
            batch_size: s.batch_size,
            chunk_size: STORE_CHUNK_SIZE,
            max_invalid_fraction: s.max_invalid,
        },
        seed,
        posterior: s.posterior,
        ..InferenceConfig::default()
    }
}

/// Runs the whole job of a fit file. The outputs are written beside any previous ones and
/// replace them only when the run is complete; the folder is locked meanwhile.
pub fn fit(cfg: &FitConfig, opts: &FitOptions) -> Result<FitOutcome> {
    let seed = opts.seed.unwrap_or(cfg.seed);
    let out = opts.out.clone().unwrap_or_else(|| cfg.out.clone());
    crate::outdir::check_out(&out)?;
    let t0 = Instant::now();
    let problem = &cfg.problem;
    let observed = cfg.observation()?;
    let x_o = problem.observed_features(&observed)?;
    let names = problem.feature_names();
    if let Some(j) = x_o.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            format!("feature `{}`", names[j]),
            "is undefined for the observation; choose features defined for the observed data",
        ));
    }
    let fp = problem.fingerprint(&observed, seed);
    let manifest = RunManifest::new(cfg, seed, &fp);
    let dir = OutDir::open(&out)?;
    check_outputs(&out, opts.force, &manifest)?;
    let mut store = open_store(&dir, problem, fp, opts.force)?;
    let mut timings = vec![("observation".to_string(), t0.elapsed().as_secs_f64())];
    let bars = Bars::new(opts.quiet);
    let t1 = Instant::now();
    let trained = train(cfg, seed, &observed, &x_o, &mut store, &bars)?;
    timings.push((
        "simulation + training".to_string(),
        t1.elapsed().as_secs_f64(),
    ));
    // Shown at the end of every run, and even with --quiet when many failed.
    let invalid_text = trained
        .report
        .invalid
        .as_ref()
        .filter(|r| !opts.quiet || r.fraction() > cfg.inference.warn_invalid)
        .map(|r| invalid_lines(r, &problem.parameter_names(), cfg.inference.warn_invalid));
    let stage = dir.staging();
    trained.posterior.save(&stage.join("posterior"))?;
    let outcome = write_outputs(
        cfg, opts, seed, &stage, &observed, &x_o, &trained, timings, t0,
    )?;
    if !same_file(&cfg.file, &out.join("fit.toml")) && cfg.file.is_file() {
        std::fs::copy(&cfg.file, stage.join("fit.toml"))
            .map_err(Error::io(stage.join("fit.toml")))?;
    }
    let mut manifest = manifest;
    manifest.record_files(&stage)?;
    manifest.write(&stage)?;
    dir.commit()?;
    if let Some(t) = invalid_text {
        eprintln!("simulations: {t}");
    }
    Ok(FitOutcome { out, ..outcome })
}

/// Whether two paths name the same existing file (the fit file may live in its own output
/// folder; it is an input and is never replaced).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// A trained posterior with its report and training curves.
struct Trained {
    posterior: Posterior,
    report: neurosbi_infer::InferenceReport,
    curves: Vec<(Vec<f64>, Vec<f64>)>,
}

/// Simulations into the store (resumable) and training, with progress bars.
fn train(
    cfg: &FitConfig,
    seed: u64,
    observed: &[Observed],
    x_o: &[f64],
    store: &mut Store,
    bars: &Bars,
) -> Result<Trained> {
    let problem = &cfg.problem;
    let sim = NeuronSimulator::new(problem.clone(), Some(observed.to_vec()))?;
    let prior: Arc<dyn Prior> = Arc::new(problem.prior()?);
    let total: usize = cfg.inference.rounds.iter().sum();
    let sim_bar = bars.bar(total as u64, "simulating");
    let mut done_before = 0u64;
    let mut last_total = 0u64;
    let mut sim_obs = |p: Progress| {
        if p.total != last_total {
            if last_total != 0 {
                done_before += last_total;
            }
            last_total = p.total;
        }
        sim_bar.set_position(done_before + p.done);
        ControlFlow::Continue(())
    };
    let mut train_obs = TrainBar {
        bar: bars.spinner("training"),
        curves: Vec::new(),
        last_epoch: 0,
    };
    let icfg = inference_config(cfg, seed);
    let (posterior, report) = neurosbi_infer::infer(
        &sim,
        prior,
        Some(x_o),
        &icfg,
        Some(store),
        &mut sim_obs,
        &mut train_obs,
    )
    .map_err(|e| name_parameters(e, &problem.parameter_names()))?;
    sim_bar.finish_and_clear();
    train_obs.bar.finish_and_clear();
    Ok(Trained {
        posterior,
        report,
        curves: train_obs.curves,
    })
}

/// Too many invalid simulations: the message names the parameters, not their indices.
fn name_parameters(e: InferError, names: &[String]) -> Error {
    match e {
        InferError::TooManyInvalid {
            max_fraction,
            report,
        } => Error::invalid(
            "simulations",
            format!(
                "{}\nMore than {:.0} % of the simulations are invalid, so the model fails over most of the prior: narrow the prior away from where it fails, fix the model, or choose features defined there.",
                report.describe(names),
                100.0 * max_fraction
            ),
        ),
        e => e.into(),
    }
}

/// Samples, summary, tables, figures and the report, written into `stage`.
#[allow(clippy::too_many_arguments)]
fn write_outputs(
    cfg: &FitConfig,
    opts: &FitOptions,
    seed: u64,
    stage: &Path,
    observed: &[Observed],
    x_o: &[f64],
    trained: &Trained,
    mut timings: Vec<(String, f64)>,
    t0: Instant,
) -> Result<FitOutcome> {
    let problem = &cfg.problem;
    let posterior = &trained.posterior;
    let names = problem.feature_names();
    let t2 = Instant::now();
    let draws = posterior.sample(cfg.inference.samples, x_o, seed ^ 0x5a5a)?;
    // Weighted samples (ABC) have no density, hence no MAP: the summary says so with NaN.
    let map = if posterior.has_density() {
        posterior.map(x_o, seed ^ 0xa5a5)?
    } else {
        if !opts.quiet {
            eprintln!("note: no MAP estimate: an ABC posterior of weighted samples has no density");
        }
        vec![f64::NAN; problem.dim_theta()]
    };
    if let Some(w) = &draws.warning
        && !opts.quiet
    {
        eprintln!("warning: {w}");
    }
    timings.push(("sampling".to_string(), t2.elapsed().as_secs_f64()));
    let pnames = problem.parameter_names();
    let units: Vec<String> = problem.free.iter().map(|p| p.unit.name.clone()).collect();
    let sum = summary::summarise(&draws.theta, &pnames, &units, &map, cfg.truth.as_deref());
    let t3 = Instant::now();
    let d = pnames.len();
    let header: Vec<String> = problem
        .free
        .iter()
        .map(|p| match p.unit.name.as_str() {
            "" => p.name.clone(),
            u => format!("{} [{u}]", p.name),
        })
        .collect();
    write_file(
        &stage.join("observation.csv"),
        csv_text(&names, x_o).as_bytes(),
    )?;
    write_file(
        &stage.join("samples.csv"),
        csv_text(&header, &draws.theta).as_bytes(),
    )?;
    write_npy(
        &stage.join("samples.npy"),
        &draws.theta,
        draws.theta.len() / d,
        d,
    )?;
    write_file(
        &stage.join("summary.csv"),
        summary::summary_csv(&sum).as_bytes(),
    )?;
    write_file(
        &stage.join("summary.json"),
        serde_json::to_string_pretty(&sum)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let mut tcsv = String::from("round,epoch,train_loss,val_loss\n");
    for (r, (tr, va)) in trained.curves.iter().enumerate() {
        for (e, (a, b)) in tr.iter().zip(va).enumerate() {
            tcsv.push_str(&format!("{},{},{a},{b}\n", r + 1, e + 1));
        }
    }
    write_file(&stage.join("training.csv"), tcsv.as_bytes())?;
    let labels: Vec<String> = pnames
        .iter()
        .zip(&units)
        .map(|(n, u)| {
            if u.is_empty() {
                n.clone()
            } else {
                format!("{n} ({u})")
            }
        })
        .collect();
    let pair_svg = plot::pairplot(
        stage,
        "pairplot",
        &PairData {
            samples: &draws.theta,
            labels: &labels,
            truth: cfg.truth.as_deref(),
        },
    )?;
    let n_pred = cfg.inference.predictive.min(draws.theta.len() / d);
    let panels = predictive_panels(cfg, observed, &draws.theta[..n_pred * d], seed)?;
    let traces_svg = plot::traces(stage, &panels.0)?;
    write_file(&stage.join("predictive.csv"), panels.1.as_bytes())?;
    let curves_svg = plot::training_curves(stage, &trained.curves)?;
    timings.push(("outputs".to_string(), t3.elapsed().as_secs_f64()));
    timings.push(("total".to_string(), t0.elapsed().as_secs_f64()));
    let mut tim = String::from("phase,seconds\n");
    for (p, s) in &timings {
        tim.push_str(&format!("{p},{s:.3}\n"));
    }
    write_file(&stage.join("timings.csv"), tim.as_bytes())?;
    let r = &trained.report;
    let sims: Vec<(usize, u64)> = r
        .valid_per_round
        .iter()
        .zip(&r.invalid_per_round)
        .map(|(a, b)| (*a, *b))
        .collect();
    let invalid = match &r.invalid {
        Some(rep) => rep.describe(&pnames),
        None => {
            let (v, i) = sims.iter().fold((0, 0), |(a, b), (v, i)| (a + v, b + i));
            format!("{v} simulations valid, {i} invalid (reasons not kept by this method)")
        }
    };
    let sweep_svgs = plot_sweeps(stage, cfg, &panels.0)?;
    write_report(
        stage,
        cfg,
        seed,
        &sum,
        &sims,
        &invalid,
        x_o,
        &panels.1,
        &timings,
        Figures {
            pair: &pair_svg,
            traces: &traces_svg,
            training: &curves_svg,
            sweeps: &sweep_svgs,
        },
    )?;
    Ok(FitOutcome {
        out: stage.to_path_buf(),
        samples: draws.theta,
        summary: sum,
        timings,
        simulations: sims,
    })
}

/// Simulates posterior-predictive traces; returns the plot panels and a CSV of their features.
pub fn predictive_panels(
    cfg: &FitConfig,
    observed: &[Observed],
    theta: &[f64],
    seed: u64,
) -> Result<(Vec<TracePanel>, String)> {
    let p = &cfg.problem;
    let mut panels = Vec::new();
    let res = if theta.is_empty() {
        None
    } else {
        Some(p.simulate(theta, seed ^ 0x77)?)
    };
    let n_sets = theta.len() / p.dim_theta().max(1);
    for (oi, o) in p.outputs.iter().enumerate() {
        for k in 0..p.n_traces {
            let (obs, spikes) = match &observed[oi] {
                Observed::Traces(r) => (r[k].clone(), false),
                Observed::Spikes(r) => (r[k].clone(), true),
                // Only statistics were observed: the panel shows the predictions alone.
                Observed::Features(_) => (Vec::new(), false),
            };
            let predicted = match &res {
                None => Vec::new(),
                Some(res) => (0..n_sets)
                    .map(|s| match &p.observed_from(res, s)[oi] {
                        Observed::Traces(r) | Observed::Spikes(r) => r[k].clone(),
                        Observed::Features(_) => unreachable!("simulations give traces"),
                    })
                    .collect(),
            };
            let title = match recorded_sweeps(cfg, &o.variable) {
                Some((file, sweeps)) => format!("{}, sweep {} of {file}", o.variable, sweeps[k]),
                None => format!("{}, trace {k}", o.variable),
            };
            panels.push(TracePanel {
                title,
                dt_ms: p.dt * 1e3,
                observed: obs,
                predicted,
                unit: if o.unit.name.is_empty() {
                    o.variable.clone()
                } else {
                    format!("{} ({})", o.variable, o.unit.name)
                },
                spikes,
            });
        }
    }
    let csv = match &res {
        None => String::new(),
        Some(res) => csv_text(&p.feature_names(), &p.features_of(res, Some(observed))),
    };
    Ok((panels, csv))
}

/// Loads a posterior saved by `fit`.
pub fn load_posterior(out: &Path) -> Result<Posterior> {
    Ok(Posterior::load(&out.join("posterior"))?)
}

/// Runs the first round's simulations into the output folder's store without training
/// (`neurosbi simulate`); a later `fit` of the same file uses them. Returns valid and
/// invalid counts.
pub fn simulate_only(cfg: &FitConfig, opts: &FitOptions) -> Result<(usize, u64)> {
    let seed = opts.seed.unwrap_or(cfg.seed);
    let out = opts.out.clone().unwrap_or_else(|| cfg.out.clone());
    let problem = &cfg.problem;
    let observed = cfg.observation()?;
    let fp = problem.fingerprint(&observed, seed);
    let sim = NeuronSimulator::new(problem.clone(), Some(observed))?;
    let prior = problem.prior()?;
    let dir = OutDir::open(&out)?;
    let mut store = open_store(&dir, problem, fp, opts.force)?;
    let n = cfg.inference.rounds[0];
    // The same round seed as `infer` derives for round 0, so `fit` finds this round.
    let round_seed = neurosbi_infer::rng::derive_seed(seed, 1000);
    let r = match store
        .rounds()
        .iter()
        .position(|p| p.n == n as u64 && p.seed == round_seed)
    {
        Some(r) => r,
        None => store.add_round(n as u64, round_seed, STORE_CHUNK_SIZE as u64, "prior")?,
    };
    let bars = Bars::new(opts.quiet);
    let bar = bars.bar(n as u64, "simulating");
    let mut obs = |p: Progress| {
        bar.set_position(p.done);
        ControlFlow::Continue(())
    };
    store.run_round(
        r,
        &sim,
        &neurosbi_infer::FromPrior(&prior),
        cfg.inference.batch_size,
        &mut obs,
    )?;
    bar.finish_and_clear();
    let s = store.load_round(r)?;
    if store.is_round_complete(r)? {
        dir.commit()?;
    }
    Ok((s.len(), s.n_invalid))
}

/// Writes the stored simulations as `theta.npy` and `x.npy` (`neurosbi export`).
pub fn export(out: &Path) -> Result<(PathBuf, PathBuf)> {
    let store = Store::open(out.join("simulations"))?;
    let (t, x) = (out.join("theta.npy"), out.join("x.npy"));
    store.export_npy(&t, &x)?;
    Ok((t, x))
}

/// Results of `neurosbi check`.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// SBC: Kolmogorov-Smirnov p-value of each parameter's ranks against uniform.
    pub sbc_ks: Vec<(String, f64)>,
    /// (nominal level, empirical coverage) of central credible intervals, 5 % to 95 %.
    pub coverage: Vec<(f64, f64)>,
    /// Posterior-predictive check at the observation, one row per feature.
    pub predictive: Vec<plot::PredictiveFeature>,
    /// Posterior-predictive simulations that failed (excluded from the intervals).
    pub predictive_invalid: u64,
}

impl CheckReport {
    /// Features whose observed value lies outside the 95 % posterior-predictive interval.
    pub fn predictive_outliers(&self) -> Vec<&str> {
        self.predictive
            .iter()
            .filter(|r| !(r.quantiles[0]..=r.quantiles[2]).contains(&r.observed))
            .map(|r| r.name.as_str())
            .collect()
    }
}

/// Calibration and fit of a fitted posterior (`neurosbi check`): simulation-based
/// calibration over `n_sbc` prior draws with `n_posterior` samples each (rank histograms and
/// expected coverage), and a posterior-predictive check that simulates `n_posterior`
/// posterior draws at the observation and places each observed feature in its predictive
/// distribution. Writes `check.csv` and the figures `check_sbc`, `check_coverage` and
/// `check_ppc` (SVG and PNG).
pub fn check(
    cfg: &FitConfig,
    opts: &FitOptions,
    n_sbc: usize,
    n_posterior: usize,
) -> Result<CheckReport> {
    let seed = opts.seed.unwrap_or(cfg.seed);
    let out = opts.out.clone().unwrap_or_else(|| cfg.out.clone());
    let path = out.join("check.csv");
    if path.exists() && !opts.force {
        return Err(Error::Exists { path });
    }
    let posterior = load_posterior(&out)?;
    let sim = NeuronSimulator::new(cfg.problem.clone(), None)?;
    let prior = cfg.problem.prior()?;
    let sampler = |x: &[f64], n: usize, s: u64| posterior.sample(n, x, s).map(|d| d.theta);
    let res = neurosbi_infer::diagnostics::sbc(
        &prior,
        &sim,
        &sampler,
        n_sbc,
        n_posterior,
        seed ^ 0xc4ec,
    )?;
    let levels: Vec<f64> = (1..=19).map(|k| k as f64 * 0.05).collect();
    let cov = neurosbi_infer::diagnostics::expected_coverage_from_ranks(&res, &levels);
    let names = cfg.problem.parameter_names();
    let sbc_ks: Vec<(String, f64)> = names
        .iter()
        .cloned()
        .zip(res.ks_pvalues.iter().copied())
        .collect();
    let (predictive, predictive_invalid) =
        predictive_features(cfg, &posterior, n_posterior, seed ^ 0x99c)?;
    plot::sbc_ranks(&out, &names, &res.ranks, res.n_posterior)?;
    plot::coverage(&out, &levels, &cov)?;
    plot::predictive_features(&out, &predictive)?;
    let mut csv = String::from("what,name,value\n");
    for (n, p) in &sbc_ks {
        csv.push_str(&format!("sbc_ks_pvalue,{n},{p}\n"));
    }
    for (l, c) in levels.iter().zip(&cov) {
        csv.push_str(&format!("expected_coverage,{l:.2},{c}\n"));
    }
    for r in &predictive {
        let [lo, mid, hi] = r.quantiles;
        csv.push_str(&format!(
            "ppc_observed,{0},{1}\nppc_q2.5,{0},{lo}\nppc_median,{0},{mid}\nppc_q97.5,{0},{hi}\n",
            r.name, r.observed
        ));
    }
    csv.push_str(&format!("ppc_invalid_simulations,,{predictive_invalid}\n"));
    write_file(&path, csv.as_bytes())?;
    Ok(CheckReport {
        sbc_ks,
        coverage: levels.into_iter().zip(cov).collect(),
        predictive,
        predictive_invalid,
    })
}

/// Simulates `n` posterior draws at the observation and returns, per feature, the observed
/// value and the 2.5 / 50 / 97.5 % predictive quantiles, plus the count of failed simulations.
fn predictive_features(
    cfg: &FitConfig,
    posterior: &Posterior,
    n: usize,
    seed: u64,
) -> Result<(Vec<plot::PredictiveFeature>, u64)> {
    let problem = &cfg.problem;
    let observed = cfg.observation()?;
    let x_o = problem.observed_features(&observed)?;
    let draws = posterior.sample(n, &x_o, seed)?;
    let sim = NeuronSimulator::new(problem.clone(), Some(observed))?;
    let rows = neurosbi_infer::FromRows::new(&draws.theta, problem.dim_theta())?;
    let run = RunConfig {
        seed: seed ^ 0x51,
        ..RunConfig::default()
    };
    let set = neurosbi_infer::simulate(&sim, &rows, n, &run, &mut neurosbi_infer::Quiet)?;
    let dim_x = problem.dim_x();
    let valid = set.x.len() / dim_x.max(1);
    let invalid = (n - valid) as u64;
    if valid == 0 {
        return Err(Error::Invalid {
            what: "posterior-predictive check".into(),
            message: format!("all {n} simulations at posterior draws failed"),
        });
    }
    let rows = problem
        .feature_names()
        .into_iter()
        .enumerate()
        .map(|(j, name)| {
            let mut col: Vec<f64> = set.x.iter().skip(j).step_by(dim_x).copied().collect();
            col.sort_by(f64::total_cmp);
            plot::PredictiveFeature {
                name,
                observed: x_o[j],
                quantiles: [0.025, 0.5, 0.975].map(|q| summary::quantile(&col, q)),
            }
        })
        .collect();
    Ok((rows, invalid))
}

/// The figures of a fit's report, as SVG texts.
struct Figures<'a> {
    pair: &'a str,
    traces: &'a str,
    training: &'a str,
    /// Per recorded sweep: figure stem (file name without extension), caption, SVG.
    sweeps: &'a [(String, String, String)],
}

/// The file name and sweeps of the recording that output `var`'s observation came from.
pub fn recorded_sweeps<'a>(cfg: &'a FitConfig, var: &str) -> Option<(String, &'a [usize])> {
    cfg.inputs.iter().find_map(|f| match &f.recording {
        Some((v, sweeps)) if v == var => Some((
            f.path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            sweeps.as_slice(),
        )),
        _ => None,
    })
}

/// The stems of the per-sweep figures of `cfg` with their panel index and caption:
/// `{var}_sweep_{sweep}` for each output observed from a recording.
fn sweep_figures(cfg: &FitConfig) -> Vec<(String, usize, String)> {
    let p = &cfg.problem;
    let mut v = Vec::new();
    for (oi, o) in p.outputs.iter().enumerate() {
        let Some((file, sweeps)) = recorded_sweeps(cfg, &o.variable) else {
            continue;
        };
        for (k, s) in sweeps.iter().enumerate().take(p.n_traces) {
            v.push((
                format!("{}_sweep_{s}", o.variable),
                oi * p.n_traces + k,
                format!(
                    "Sweep {s} of {file}: recorded {} (black) with {} posterior-predictive simulations (blue)",
                    o.variable, cfg.inference.predictive
                ),
            ));
        }
    }
    v
}

/// Draws one figure per recorded sweep (`{var}_sweep_{sweep}.svg/.png`); returns stem,
/// caption and SVG text of each.
fn plot_sweeps(
    dir: &Path,
    cfg: &FitConfig,
    panels: &[TracePanel],
) -> Result<Vec<(String, String, String)>> {
    sweep_figures(cfg)
        .into_iter()
        .map(|(stem, i, cap)| {
            let svg = plot::trace_figure(dir, &stem, &panels[i])?;
            Ok((stem, cap, svg))
        })
        .collect()
}

/// The per-sweep figure files present in `dir` (`*_sweep_*.svg` and `.png`).
fn sweep_figure_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.contains("_sweep_") && (n.ends_with(".svg") || n.ends_with(".png")))
        .collect();
    v.sort();
    v
}

/// Observed features beside the median and 90 % interval of the posterior-predictive
/// simulations' features (`predictive_csv`, as written to `predictive.csv`).
pub fn feature_rows(
    cfg: &FitConfig,
    x_o: &[f64],
    predictive_csv: &str,
) -> Result<Vec<report::FeatureRow>> {
    let names = cfg.problem.feature_names();
    let table = if predictive_csv.trim().is_empty() {
        Vec::new()
    } else {
        crate::config::parse_csv(predictive_csv, false)
            .map_err(|e| Error::invalid("predictive.csv", e))?
            .rows
    };
    if let Some(r) = table.iter().find(|r| r.len() != names.len()) {
        return Err(Error::invalid(
            "predictive.csv",
            format!(
                "a row has {} columns, the fit has {} features",
                r.len(),
                names.len()
            ),
        ));
    }
    Ok(names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let mut col: Vec<f64> = table
                .iter()
                .map(|r| r[j])
                .filter(|v| v.is_finite())
                .collect();
            col.sort_by(f64::total_cmp);
            let predictive = if col.is_empty() {
                [f64::NAN; 3]
            } else {
                [0.05, 0.5, 0.95].map(|q| summary::quantile(&col, q))
            };
            let mut parts = name.splitn(3, '/');
            let what = match (
                parts.next(),
                parts.next().and_then(|k| k.parse::<usize>().ok()),
            ) {
                (Some(var), Some(k)) => match recorded_sweeps(cfg, var) {
                    Some((_, sweeps)) => format!("sweep {}", sweeps.get(k).copied().unwrap_or(k)),
                    None => format!("trace {k}"),
                },
                _ => String::new(),
            };
            report::FeatureRow {
                name: name.clone(),
                what,
                observed: x_o.get(j).copied().unwrap_or(f64::NAN),
                predictive,
                n: col.len(),
            }
        })
        .collect())
}

/// Hex SHA-256 and size of a file, read in blocks.
pub fn file_sha256(path: &Path) -> Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(Error::io(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let hex = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((hex, n))
}

/// The fit file and every input file with its SHA-256.
fn input_checksums(cfg: &FitConfig) -> Vec<report::InputChecksum> {
    let fit = ("fit file".to_string(), cfg.file.clone());
    std::iter::once(fit)
        .chain(cfg.inputs.iter().map(|f| (f.key.clone(), f.path.clone())))
        .map(|(key, path)| {
            let (sha256, bytes) = if path.is_file() {
                file_sha256(&path).unwrap_or_else(|e| (format!("unreadable: {e}"), 0))
            } else {
                ("not a file (the problem was built in code)".to_string(), 0)
            };
            report::InputChecksum {
                key,
                path: path.display().to_string(),
                sha256,
                bytes,
            }
        })
        .collect()
}

/// The model's equations (with threshold and reset) from its description's text.
fn equations_of(model_text: &str) -> String {
    let Ok(t) = model_text.parse::<toml::Table>() else {
        return model_text.to_string();
    };
    let get = |k: &str| t.get(k).and_then(toml::Value::as_str).map(str::trim);
    let mut s = String::new();
    if let Some(e) = get("equations") {
        s.push_str(e);
    }
    if let Some(th) = get("threshold") {
        s.push_str(&format!("\n\nthreshold: {th}"));
    }
    if let Some(r) = get("reset") {
        s.push_str(&format!("\nreset: {}", r.replace('\n', "; ")));
    }
    if s.is_empty() {
        model_text.to_string()
    } else {
        s
    }
}

/// Writes report.html with the fit's fixed layout: the method line, the summary, the
/// pairplot, the posterior-predictive traces (one figure per sweep for a recording), the
/// training curves, the features table, the simulations, the model, the fit file and the
/// provenance.
#[allow(clippy::too_many_arguments)]
fn write_report(
    out: &Path,
    cfg: &FitConfig,
    seed: u64,
    sum: &[ParameterSummary],
    sims: &[(usize, u64)],
    invalid: &str,
    x_o: &[f64],
    predictive_csv: &str,
    timings: &[(String, f64)],
    figs: Figures<'_>,
) -> Result<()> {
    let mut figures = vec![report::Figure {
        id: "pairplot".into(),
        caption: "Posterior pairplot".into(),
        svg: figs.pair,
    }];
    if figs.sweeps.is_empty() {
        figures.push(report::Figure {
            id: "traces".into(),
            caption: "Posterior-predictive traces (blue) over the observation (black)".into(),
            svg: figs.traces,
        });
    }
    for (stem, cap, svg) in figs.sweeps {
        figures.push(report::Figure {
            id: stem.replace('_', "-"),
            caption: cap.clone(),
            svg,
        });
    }
    figures.push(report::Figure {
        id: "training".into(),
        caption: "Training curves".into(),
        svg: figs.training,
    });
    let features = feature_rows(cfg, x_o, predictive_csv)?;
    let runs = predictive_csv.lines().count().saturating_sub(1);
    let fit_text = if cfg.file.is_file() {
        crate::config::read_text_bounded(&cfg.file, crate::config::TOML_LIMIT).ok()
    } else {
        None
    };
    let fit_name = cfg.file.display().to_string();
    let model_file = cfg
        .inputs
        .iter()
        .find(|f| f.key == "model")
        .map(|f| f.path.display().to_string());
    report::write(
        out,
        &report::ReportInput {
            title: &cfg.name,
            summary: sum,
            method: &format!(
                "{} with {}",
                cfg.inference.method_name.to_uppercase(),
                cfg.inference.estimator_name.to_uppercase()
            ),
            simulations: sims,
            invalid,
            features: &features,
            predictive_runs: runs,
            timings,
            figures: &figures,
            equations: &equations_of(&cfg.model_text),
            model_file: model_file.as_deref().map(|n| (n, cfg.model_text.as_str())),
            fit_file: fit_text.as_deref().map(|t| (fit_name.as_str(), t)),
            version: env!("CARGO_PKG_VERSION"),
            seed,
            inputs: &input_checksums(cfg),
        },
    )
}

/// Reads an output file of a fit, checked against the checksum `run.json` recorded for it.
fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bounded(path, 1 << 30)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let manifest = RunManifest::read(&dir.join(MANIFEST)).map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("cannot be checked against {MANIFEST} ({e}); rerun the fit"),
        )
    })?;
    let recorded = manifest.files.iter().find(|(n, _)| n == name);
    match recorded {
        Some((_, sum)) if *sum == neurosbi_infer::provenance::sha256_hex(&bytes) => {}
        Some(_) => {
            return Err(Error::invalid(
                path.display().to_string(),
                format!(
                    "differs from the file the fit wrote (checksum in {MANIFEST}): it was edited or damaged; rerun the fit with --force"
                ),
            ));
        }
        None => {
            return Err(Error::invalid(
                path.display().to_string(),
                format!("is not listed in {MANIFEST}, so it was not written by this fit"),
            ));
        }
    }
    String::from_utf8(bytes).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))
}

/// Records the new checksums of the outputs a command rewrote in `out`.
fn update_manifest(out: &Path) -> Result<()> {
    let mut m = RunManifest::read(&out.join(MANIFEST))?;
    m.record_files(out)?;
    m.write(out)
}

/// Parses a CSV written by [`csv_text`] (header, then numbers) into its rows, flattened.
fn read_numbers(path: &Path) -> Result<Vec<f64>> {
    let table = crate::config::parse_csv(&read_text(path)?, false)
        .map_err(|e| Error::invalid(path.display().to_string(), e))?;
    Ok(table.rows.concat())
}

/// Redraws the figures of a finished fit from its output folder (`neurosbi plot`):
/// pairplot from `samples.csv`, posterior-predictive traces (simulated again from the first
/// samples), training curves from `training.csv`. Existing figures need `force`.
pub fn redraw(cfg: &FitConfig, opts: &FitOptions) -> Result<()> {
    let out = opts.out.clone().unwrap_or_else(|| cfg.out.clone());
    let seed = opts.seed.unwrap_or(cfg.seed);
    for f in [
        "pairplot.svg",
        "pairplot.png",
        "traces.svg",
        "traces.png",
        "training.svg",
        "training.png",
        "predictive.csv",
    ] {
        if out.join(f).exists() && !opts.force {
            return Err(Error::Exists { path: out.join(f) });
        }
    }
    let p = &cfg.problem;
    let d = p.dim_theta();
    let samples = read_numbers(&out.join("samples.csv"))?;
    let labels: Vec<String> = p
        .free
        .iter()
        .map(|f| format!("{}{}", f.name, f.unit.suffix()))
        .collect();
    plot::pairplot(
        &out,
        "pairplot",
        &PairData {
            samples: &samples,
            labels: &labels,
            truth: cfg.truth.as_deref(),
        },
    )?;
    let observed = cfg.observation()?;
    let n_pred = cfg.inference.predictive.min(samples.len() / d.max(1));
    let (panels, csv) = predictive_panels(cfg, &observed, &samples[..n_pred * d], seed)?;
    plot::traces(&out, &panels)?;
    plot_sweeps(&out, cfg, &panels)?;
    write_file(&out.join("predictive.csv"), csv.as_bytes())?;
    let tr = read_numbers(&out.join("training.csv"))?;
    let mut curves: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for row in tr.chunks(4) {
        let r = row[0] as usize;
        while curves.len() < r {
            curves.push((Vec::new(), Vec::new()));
        }
        curves[r - 1].0.push(row[2]);
        curves[r - 1].1.push(row[3]);
    }
    plot::training_curves(&out, &curves)?;
    update_manifest(&out)
}

/// Rebuilds `report.html` of a finished fit from the files in its output folder
/// (`neurosbi report`); an existing report needs `force`.
pub fn rebuild_report(cfg: &FitConfig, opts: &FitOptions) -> Result<PathBuf> {
    let out = opts.out.clone().unwrap_or_else(|| cfg.out.clone());
    let path = out.join("report.html");
    if path.exists() && !opts.force {
        return Err(Error::Exists { path });
    }
    let sum: Vec<ParameterSummary> = serde_json::from_str(&read_text(&out.join("summary.json"))?)
        .map_err(|e| {
        Error::invalid(
            out.join("summary.json").display().to_string(),
            e.to_string(),
        )
    })?;
    let x_o = read_numbers(&out.join("observation.csv"))?;
    let seed = opts.seed.unwrap_or(cfg.seed);
    let mut timings = Vec::new();
    for line in read_text(&out.join("timings.csv"))?.lines().skip(1) {
        if let Some((p, s)) = line.split_once(',') {
            timings.push((p.to_string(), s.parse().unwrap_or(f64::NAN)));
        }
    }
    let store = Store::open(out.join("simulations"))?;
    let mut sims = Vec::new();
    for r in 0..store.rounds().len() {
        let s = store.load_round(r)?;
        sims.push((s.len(), s.n_invalid));
    }
    let invalid = InvalidReport::new(&store.load()?).describe(&cfg.problem.parameter_names());
    let pair = read_text(&out.join("pairplot.svg"))?;
    let traces = read_text(&out.join("traces.svg"))?;
    let training = read_text(&out.join("training.svg"))?;
    let predictive = read_text(&out.join("predictive.csv"))?;
    // A fit written before per-sweep figures existed has none: its report shows the traces.
    let stems = sweep_figures(cfg);
    let have_sweeps = stems
        .iter()
        .all(|(stem, _, _)| out.join(format!("{stem}.svg")).is_file());
    let sweeps = stems
        .into_iter()
        .filter(|_| have_sweeps)
        .map(|(stem, _, cap)| Ok((read_text(&out.join(format!("{stem}.svg")))?, stem, cap)))
        .map(|r: Result<_>| r.map(|(svg, stem, cap)| (stem, cap, svg)))
        .collect::<Result<Vec<_>>>()?;
    write_report(
        &out,
        cfg,
        seed,
        &sum,
        &sims,
        &invalid,
        &x_o,
        &predictive,
        &timings,
        Figures {
            pair: &pair,
            traces: &traces,
            training: &training,
            sweeps: &sweeps,
        },
    )?;
    update_manifest(&out)?;
    Ok(path)
}
