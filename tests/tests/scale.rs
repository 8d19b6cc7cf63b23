//! Sharded simulation and merging (`neurosbi::scale`): any split of a round gives the same
//! store, bit for bit, and the same posterior samples as one process; every fault (missing,
//! duplicate, overlapping, truncated, damaged, unfinished or foreign shards) is refused with
//! an error naming it, and nothing is written.

use neurosbi::config::FitConfig;
use neurosbi::fit::{FitOptions, fit, simulate_only};
use neurosbi::infer::Store;
use neurosbi::scale::{
    MergeProblem, ScaleError, ShardJob, ShardSpec, merge, shards_dir, train_proposal,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/small_hh_noise.toml")
}

fn text() -> String {
    std::fs::read_to_string(example()).expect("example file")
}

fn config() -> FitConfig {
    FitConfig::parse(&example(), &text()).expect("valid example")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurosbi-scale-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn opts(out: &Path) -> FitOptions {
    FitOptions {
        quiet: true,
        out: Some(out.to_path_buf()),
        ..FitOptions::default()
    }
}

/// Runs every shard of a `k`-way split of `round` into `out`.
fn run_shards(cfg: &FitConfig, o: &FitOptions, round: usize, k: u32) {
    let job = ShardJob::new(cfg, o).expect("job");
    for i in 0..k {
        let s = job
            .run(round, ShardSpec::new(i, k).unwrap(), false, &mut |_| {})
            .expect("shard runs");
        assert!(!s.reused);
    }
}

/// One-process fit of the example: (output folder, samples).
fn reference() -> &'static (PathBuf, Vec<f64>) {
    static R: OnceLock<(PathBuf, Vec<f64>)> = OnceLock::new();
    R.get_or_init(|| {
        let out = out_dir("reference");
        let f = fit(&config(), &opts(&out)).expect("fit runs");
        (out, f.samples)
    })
}

fn load(out: &Path) -> neurosbi::infer::SimulationSet {
    Store::open(out.join("simulations"))
        .expect("store")
        .load()
        .expect("loads")
}

#[test]
fn any_split_gives_the_same_store_and_posterior() {
    let cfg = config();
    let (ref_out, ref_samples) = reference();
    let want = load(ref_out);
    assert_eq!(want.len() as u64 + want.n_invalid, 2000);
    for k in [1u32, 3, 4] {
        let out = out_dir(&format!("split{k}"));
        let o = opts(&out);
        run_shards(&cfg, &o, 0, k);
        let merged = merge(&out, None).expect("merges");
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].shards, k as usize);
        // Merged rounds use larger chunk files (fewer syncs); the data must not care.
        let plan = Store::open(out.join("simulations")).unwrap().rounds()[0].clone();
        assert_eq!(plan.chunk_size, neurosbi::scale::merged_chunk_size(2 + 7));
        assert!(plan.chunk_size > 500 && plan.chunk_size.is_multiple_of(500));
        assert_eq!(neurosbi::scale::merged_chunk_size(1000), 1000);
        let got = load(&out);
        assert_eq!(got.theta.len(), want.theta.len(), "{k} shards");
        // Bit-identical, not merely close.
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got.theta), bits(&want.theta), "theta, {k} shards");
        assert_eq!(bits(&got.x), bits(&want.x), "x, {k} shards");
        assert_eq!(got.n_invalid, want.n_invalid);
        if k != 3 {
            // Training on the merged store gives the one-process posterior samples exactly.
            let f = fit(&cfg, &o).expect("fit on merged store");
            assert_eq!(
                bits(&f.samples),
                bits(ref_samples),
                "posterior samples, {k} shards"
            );
        }
        // Merging again changes nothing and says so.
        assert!(merge(&out, None).expect("re-merge")[0].already);
    }
}

#[test]
fn rounds_after_the_first_shard_through_the_merged_proposal() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/small_hh_two_rounds.toml");
    let text = std::fs::read_to_string(&file).expect("example file");
    // Each method draws its later rounds from its own proposal: the posterior (SNPE), the
    // prior truncated to the posterior's support (TSNPE), a Gaussian fitted to it (SNPE-A).
    for method in ["snpe", "tsnpe", "snpe_a"] {
        let text = text.replace("method = \"snpe\"", &format!("method = \"{method}\""));
        let cfg = FitConfig::parse(&file, &text).expect("two-round file");
        let one = out_dir(&format!("rounds-one-{method}"));
        let want = fit(&cfg, &opts(&one)).expect("one-process fit");

        let out = out_dir(&format!("rounds-sharded-{method}"));
        let o = opts(&out);
        let job = ShardJob::new(&cfg, &o).unwrap();
        // Round 1 cannot run before round 0's proposal exists.
        let err = job
            .run(1, ShardSpec::new(0, 2).unwrap(), false, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, ScaleError::Round { round: 1, .. }), "{err}");
        run_shards(&cfg, &o, 0, 3);
        merge(&out, Some(&job.run)).unwrap();
        train_proposal(&job, 0).expect("proposal");
        run_shards(&cfg, &o, 1, 2);
        let merged = merge(&out, Some(&job.run)).unwrap();
        assert!(merged[0].already && !merged[1].already);
        let got = fit(&cfg, &o).expect("fit on merged rounds");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got.samples), bits(&want.samples), "{method}");
        assert_eq!(got.simulations, want.simulations, "{method}");
    }
}

/// Shards whose chunks hold invalid simulations (no spike: no latency) merge into store
/// chunks that keep every invalid simulation's parameters and reason, read back, and train
/// the same posterior as a one-process fit.
#[test]
fn invalid_simulations_survive_the_merge() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/small_hh_two_rounds.toml");
    let text = std::fs::read_to_string(&file)
        .expect("example file")
        .replace(
            "features = [\"sbi_hh_tutorial\"]",
            "features = [\"time_to_first_spike\"]",
        )
        .replace("gNa = [\"0.5*mS/cm**2\"", "gNa = [\"0.01*mS/cm**2\"")
        .replace(
            "simulations = [600, 300]\nrounds = 2",
            "simulations = 1300\nrounds = 1",
        );
    let cfg = FitConfig::parse(&file, &text).expect("one-round file");
    let want = fit(&cfg, &opts(&out_dir("invalid-one"))).expect("one-process fit");
    assert!(
        want.simulations[0].1 > 0,
        "some draws must not spike: {:?}",
        want.simulations
    );
    let out = out_dir("invalid-sharded");
    let o = opts(&out);
    let job = ShardJob::new(&cfg, &o).unwrap();
    run_shards(&cfg, &o, 0, 2);
    merge(&out, Some(&job.run)).unwrap();
    let store = neurosbi::infer::Store::open(out.join("simulations")).unwrap();
    let set = store.load_round(0).expect("the merged round reads back");
    assert_eq!(set.n_invalid, want.simulations[0].1);
    assert_eq!(
        set.invalid_theta.len(),
        set.n_invalid as usize * cfg.problem.dim_theta()
    );
    let got = fit(&cfg, &o).expect("fit on the merged round");
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got.samples), bits(&want.samples));
}

/// Shards of the 4-way split (file name, bytes), a 3-way split's shard 1, and shard 0 of a
/// run with another seed.
struct Fixture {
    four: Vec<(String, Vec<u8>)>,
    three_1: (String, Vec<u8>),
    other_seed: (String, Vec<u8>),
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let cfg = config();
        let read = |out: &Path| {
            let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(shards_dir(out))
                .unwrap()
                .map(|e| {
                    let p = e.unwrap().path();
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        std::fs::read(&p).unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let out = out_dir("fixture4");
        run_shards(&cfg, &opts(&out), 0, 4);
        let four = read(&out);
        let out3 = out_dir("fixture3");
        let job = ShardJob::new(&cfg, &opts(&out3)).unwrap();
        job.run(0, ShardSpec::new(1, 3).unwrap(), false, &mut |_| {})
            .unwrap();
        let three_1 = read(&out3).remove(0);
        let outs = out_dir("fixture-seed");
        let mut o = opts(&outs);
        o.seed = Some(99);
        let job = ShardJob::new(&cfg, &o).unwrap();
        job.run(0, ShardSpec::new(0, 4).unwrap(), false, &mut |_| {})
            .unwrap();
        let other_seed = read(&outs).remove(0);
        Fixture {
            four,
            three_1,
            other_seed,
        }
    })
}

/// An output folder holding the given shard files; returns it.
fn folder(name: &str, files: &[(String, Vec<u8>)]) -> PathBuf {
    let out = out_dir(name);
    let d = shards_dir(&out);
    std::fs::create_dir_all(&d).unwrap();
    for (n, b) in files {
        std::fs::write(d.join(n), b).unwrap();
    }
    out
}

/// Merges and returns the problems; checks nothing was written.
fn problems(out: &Path) -> Vec<MergeProblem> {
    let job_cfg = config();
    let job = ShardJob::new(&job_cfg, &opts(out)).unwrap();
    let err = merge(out, Some(&job.run)).expect_err("merge must fail");
    assert!(
        !out.join("simulations/store.meta").exists(),
        "a failed merge wrote a store"
    );
    // The message lists every problem.
    let msg = err.to_string();
    match err {
        ScaleError::Merge(p) => {
            for q in &p.0 {
                assert!(msg.contains(&q.to_string()));
            }
            p.0
        }
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn a_missing_shard_is_named_by_index() {
    let f = fixture();
    let files: Vec<_> = f
        .four
        .iter()
        .filter(|(n, _)| !n.contains("s00002"))
        .cloned()
        .collect();
    let p = problems(&folder("missing", &files));
    assert_eq!(
        p,
        vec![MergeProblem::Missing {
            round: 0,
            start: 1000,
            end: 1500,
            shard: Some((2, 4))
        }]
    );
    assert!(p[0].to_string().contains("--shard 2 --num-shards 4"));
}

#[test]
fn duplicated_and_overlapping_shards_are_refused() {
    let f = fixture();
    let mut files = f.four.clone();
    files.push(("copy_of_1.shard".into(), f.four[1].1.clone()));
    let p = problems(&folder("duplicate", &files));
    assert!(
        matches!(&p[..], [MergeProblem::Duplicate { start: 500, end: 1000, a, b, .. }]
            if a.ends_with("copy_of_1.shard") || b.ends_with("copy_of_1.shard")),
        "{p:?}"
    );

    // Shard 1 of a 3-way split holds 666..1333, across shards 1 and 2 of the 4-way split.
    let mut files = f.four.clone();
    files.push(f.three_1.clone());
    let p = problems(&folder("overlap", &files));
    assert!(
        p.iter().any(|q| matches!(
            q,
            MergeProblem::Overlap {
                start: 666,
                end: 1000,
                ..
            }
        )),
        "{p:?}"
    );
    assert!(
        p.iter().all(|q| matches!(q, MergeProblem::Overlap { .. })),
        "{p:?}"
    );
}

#[test]
fn truncated_damaged_and_unfinished_shards_are_named() {
    let f = fixture();
    let mut files = f.four.clone();
    let cut = files[3].1.len() / 2;
    files[3].1.truncate(cut);
    let mid = files[1].1.len() / 2;
    files[1].1[mid] ^= 0x40;
    files.push(("r0000_s00009_of_00010.shard.part".into(), vec![1, 2, 3]));
    let p = problems(&folder("damaged", &files));
    let find = |name: &str| {
        p.iter()
            .find(|q| q.to_string().contains(name))
            .unwrap_or_else(|| panic!("no problem names {name}: {p:?}"))
            .clone()
    };
    assert!(
        matches!(find("s00003"), MergeProblem::Corrupt { reason, .. } if reason.contains("truncated"))
    );
    assert!(
        matches!(find("s00001"), MergeProblem::Corrupt { reason, .. } if reason.contains("checksum"))
    );
    assert!(matches!(find("s00009"), MergeProblem::Incomplete(_)));
    // A file cut at a frame boundary (no footer) is truncated too.
    let mut files = f.four.clone();
    let (h, _) = neurosbi::scale::inspect_shard(
        &folder("ok", &files[..1])
            .join("simulations/shards")
            .join(&files[0].0),
    )
    .unwrap();
    assert_eq!((h.start, h.end), (0, 500));
    let keep = files[0].1.len() - 10;
    files[0].1.truncate(keep);
    let p = problems(&folder("cut", &files));
    // The unreadable shard's range is reported missing too, with the command to redo it.
    assert!(
        matches!(&p[..], [MergeProblem::Corrupt { reason, .. }, MergeProblem::Missing { shard: Some((0, 4)), .. }]
            if reason.contains("truncated")),
        "{p:?}"
    );
}

#[test]
fn shards_of_another_run_are_refused() {
    let f = fixture();
    // Another seed.
    let mut files = f.four.clone();
    files[0] = f.other_seed.clone();
    files[0].0 = "other.shard".into();
    let p = problems(&folder("seed", &files));
    assert!(
        p.iter()
            .any(|q| matches!(q, MergeProblem::ForeignRun { path, what, .. }
            if path.ends_with("other.shard") && what.contains("seed 99 vs 7"))),
        "{p:?}"
    );
    // Another fit file: the same shards checked against a changed prior are refused, naming
    // what changed; a changed sample count does not change the simulations, so they merge.
    let out = folder("file", &f.four);
    let changed = text().replace("\"80*mS/cm**2\"", "\"81*mS/cm**2\"");
    let cfg = FitConfig::parse(&example(), &changed).unwrap();
    let job = ShardJob::new(&cfg, &opts(&out)).unwrap();
    let err = merge(&out, Some(&job.run)).unwrap_err();
    assert!(err.to_string().contains("priors differ"), "{err}");
    assert!(!out.join("simulations/store.meta").exists());
    let same_sims = text().replace("samples = 2000", "samples = 2001");
    let cfg = FitConfig::parse(&example(), &same_sims).unwrap();
    let job = ShardJob::new(&cfg, &opts(&out)).unwrap();
    assert_eq!(merge(&out, Some(&job.run)).unwrap()[0].valid, 2000);
    let out = folder("file-2", &f.four);
    // Without a fit file to compare with, the same shards merge.
    assert_eq!(merge(&out, None).unwrap()[0].valid, 2000);
}

#[test]
fn shard_assignment_from_flags_and_slurm_arrays() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let none = env(&[]);
    assert_eq!(ShardSpec::resolve(None, None, none).unwrap(), None);
    assert_eq!(
        ShardSpec::resolve(Some(2), Some(4), none).unwrap(),
        Some(ShardSpec::new(2, 4).unwrap())
    );
    assert!(ShardSpec::resolve(Some(4), Some(4), none).is_err());
    assert!(ShardSpec::resolve(Some(1), None, none).is_err());
    // --array=1-4: task 3 is shard 2 of 4.
    let e = env(&[
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
    ]);
    assert_eq!(
        ShardSpec::resolve(None, None, e).unwrap(),
        Some(ShardSpec::new(2, 4).unwrap())
    );
    // --array=0-6:2: task 6 is shard 3 of 4.
    let e = env(&[
        ("SLURM_ARRAY_TASK_ID", "6"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_STEP", "2"),
    ]);
    assert_eq!(
        ShardSpec::resolve(None, None, e).unwrap(),
        Some(ShardSpec::new(3, 4).unwrap())
    );
    // Flags win over the environment.
    assert_eq!(
        ShardSpec::resolve(Some(0), Some(2), e).unwrap(),
        Some(ShardSpec::new(0, 2).unwrap())
    );
    // An array that does not map onto 0..count, and garbage.
    let e = env(&[
        ("SLURM_ARRAY_TASK_ID", "7"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ]);
    let err = ShardSpec::resolve(None, None, e).unwrap_err().to_string();
    assert!(err.contains("array task 7"), "{err}");
    let e = env(&[
        ("SLURM_ARRAY_TASK_ID", "x"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ]);
    assert!(ShardSpec::resolve(None, None, e).is_err());
    let e = env(&[("SLURM_ARRAY_TASK_ID", "1")]);
    assert!(ShardSpec::resolve(None, None, e).is_err());
    // Ranges are balanced and cover 0..n.
    for (n, k) in [(2000u64, 3u32), (7, 4), (3, 5)] {
        let mut at = 0;
        for i in 0..k {
            let (a, b) = ShardSpec::new(i, k).unwrap().range(n);
            assert_eq!(a, at);
            assert!(b - a <= n.div_ceil(k as u64));
            at = b;
        }
        assert_eq!(at, n);
    }
}

#[test]
fn a_finished_shard_is_reused_and_another_needs_force() {
    let cfg = config();
    let out = out_dir("reuse");
    let o = opts(&out);
    let job = ShardJob::new(&cfg, &o).unwrap();
    let spec = ShardSpec::new(3, 4).unwrap();
    let first = job.run(0, spec, false, &mut |_| {}).unwrap();
    let again = job.run(0, spec, false, &mut |_| {}).unwrap();
    assert!(again.reused && !first.reused);
    assert_eq!(again.counts, first.counts);
    // A different run's shard in the same place is not silently replaced.
    let mut o2 = o.clone();
    o2.seed = Some(5);
    let job2 = ShardJob::new(&cfg, &o2).unwrap();
    let err = job2.run(0, spec, false, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert!(!job2.run(0, spec, true, &mut |_| {}).unwrap().reused);
    // `simulate` without shards still fills the store directly.
    let out1 = out_dir("direct");
    let (valid, invalid) = simulate_only(&cfg, &opts(&out1)).unwrap();
    assert_eq!(valid as u64 + invalid, 2000);
}

#[test]
fn slurm_scripts_chain_array_jobs_and_merges() {
    use neurosbi::slurm::SlurmOptions;
    let so = SlurmOptions {
        program: "/opt/neurosbi/bin/neurosbi".into(),
        file: "/home/me/my fits/hh.toml".into(),
        out: "/scratch/me/out".into(),
        workdir: "/home/me".into(),
        rounds: vec![10_000, 2_000, 3],
        array_size: 64,
        max_running: Some(8),
        partition: Some("cpu".into()),
        time: "02:00:00".into(),
        cpus: 4,
        mem: Some("4G".into()),
        train_partition: Some("gpu".into()),
        train_gres: Some("gpu:1".into()),
        train_time: "00:30:00".into(),
        train_cpus: 8,
        seed: Some(42),
        force: false,
    };
    let scripts = so.scripts().expect("valid options");
    let names: Vec<&str> = scripts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "round0.sbatch",
            "merge0.sbatch",
            "round1.sbatch",
            "merge1.sbatch",
            "round2.sbatch",
            "train.sbatch",
            "submit.sh"
        ]
    );
    let get = |n: &str| &scripts.iter().find(|(m, _)| m == n).unwrap().1;
    let r0 = get("round0.sbatch");
    assert!(r0.contains("#SBATCH --array=0-63%8\n"), "{r0}");
    assert!(r0.contains("#SBATCH --partition=cpu\n") && r0.contains("--cpus-per-task=4\n"));
    // Paths with spaces are quoted; the shard comes from the array variables, not flags.
    assert!(
        r0.contains("exec /opt/neurosbi/bin/neurosbi simulate '/home/me/my fits/hh.toml' --out /scratch/me/out --threads 4 --quiet --seed 42 --round 0\n"),
        "{r0}"
    );
    assert!(!r0.contains("--shard"));
    // A round smaller than the array gets one task per simulation.
    assert!(get("round2.sbatch").contains("--array=0-2%8\n"));
    let m0 = get("merge0.sbatch");
    assert!(m0.contains(" merge ") && !m0.contains(" train ") && m0.contains("--partition=gpu"));
    assert!(
        !m0.contains("--gres"),
        "only the final training asks for a GPU"
    );
    let t = get("train.sbatch");
    assert!(t.contains("#SBATCH --gres=gpu:1\n") && t.contains(" merge ") && t.contains(" train "));
    // Each job waits for the one before.
    let submit = get("submit.sh");
    let order: Vec<&str> = submit
        .lines()
        .filter(|l| l.contains("sbatch --parsable"))
        .collect();
    assert_eq!(order.len(), 6);
    assert!(order[0].contains("\"${dep[@]}\" round0.sbatch"));
    assert!(order[1].contains("--dependency=afterok:$j merge0.sbatch"));
    assert!(order[2].contains("\"${dep[@]}\" round1.sbatch"));
    assert!(order[5].contains("--dependency=afterok:$j train.sbatch"));
    assert!(submit.contains("dep=(--dependency=afterok:$m)"));

    // Bad options name the option; existing scripts are not overwritten.
    for (bad, what) in [
        (
            SlurmOptions {
                array_size: 0,
                ..so.clone()
            },
            "--array-size",
        ),
        (
            SlurmOptions {
                time: "2 h".into(),
                ..so.clone()
            },
            "--time",
        ),
        (
            SlurmOptions {
                cpus: 0,
                ..so.clone()
            },
            "--cpus",
        ),
    ] {
        let e = bad.scripts().unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
    }
    let dir = out_dir("slurm-scripts");
    so.write(&dir, false).unwrap();
    let e = so.write(&dir, false).unwrap_err().to_string();
    assert!(e.contains("--force"), "{e}");
    so.write(&dir, true).unwrap();
}
