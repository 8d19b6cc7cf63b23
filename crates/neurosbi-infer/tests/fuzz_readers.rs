//! Fuzzing the readers of stored artefacts (stable Rust, proptest): arbitrary bytes and
//! arbitrary edits of valid store files and saved posteriors must end in an error naming the
//! file, never in a panic, a hang, or a silently different result.

use neurosbi_infer::{
    Estimator, Fingerprint, FromPrior, IndependentPrior, Posterior, Prior, Quiet, SimRng,
    SimulationError, Simulator, Store,
};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// x = theta + index-seeded noise.
struct Shift;

impl Simulator for Shift {
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        use rand::RngExt;
        for (i, rng) in rngs.iter_mut().enumerate() {
            x[2 * i] = theta[2 * i] + rng.random::<f64>();
            x[2 * i + 1] = if theta[2 * i + 1] > 0.95 {
                f64::NAN
            } else {
                theta[2 * i + 1]
            };
        }
        Ok(())
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurosbi-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A valid store (two rounds, several chunks) and a valid saved posterior, made once.
fn originals() -> &'static (PathBuf, PathBuf) {
    static MADE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MADE.get_or_init(|| {
        let prior = IndependentPrior::uniform(&[0.0, 0.0], &[1.0, 1.0]).unwrap();
        let store_dir = dir("store");
        let fp = Fingerprint::new().with("model", "shift").with("seed", "1");
        let mut s = Store::create(&store_dir, 2, 2, fp).unwrap();
        for seed in [1, 2] {
            let r = s.add_round(250, seed, 100, "prior").unwrap();
            s.run_round(r, &Shift, &FromPrior(&prior), 50, &mut Quiet)
                .unwrap();
        }
        let theta: Vec<f64> = (0..100).map(|i| (i as f64 + 0.5) / 100.0).collect();
        let e = neurosbi_flows::ConditionalEstimator::new(
            &neurosbi_flows::EstimatorConfig::mdn(),
            &theta,
            &theta,
            2,
            2,
            0,
        )
        .unwrap();
        let prior: Arc<dyn Prior> = Arc::new(prior);
        let post = Posterior::new(prior, Estimator::Npe(e)).unwrap();
        let post_dir = dir("posterior");
        post.save(&post_dir).unwrap();
        (store_dir, post_dir)
    })
}

fn copy(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn files_of(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// An edit of a file's bytes.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Replace(Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Edit::Flip(i, m)),
        any::<usize>().prop_map(Edit::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Edit::Replace),
    ]
}

fn apply(bytes: &[u8], e: &Edit) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match e {
        Edit::Flip(i, m) if !b.is_empty() => {
            let k = at(*i, b.len());
            b[k] ^= m;
        }
        Edit::Flip(..) => b.push(1),
        Edit::Truncate(i) => b.truncate(at(*i, b.len())),
        Edit::Insert(i, ins) => {
            let k = at(*i, b.len() + 1);
            b.splice(k..k, ins.iter().copied());
        }
        Edit::Replace(r) => b = r.clone(),
    }
    b
}

/// Loads every round of the store in `d`.
fn load_store(d: &Path) -> Result<Vec<f64>, String> {
    let s = Store::open(d).map_err(|e| e.to_string())?;
    s.load().map(|set| set.theta).map_err(|e| e.to_string())
}

/// A copy of `orig` in which one file (picked by `which`) is edited by `e`: the copy, the
/// file's name, and whether its bytes changed.
fn edited_copy(orig: &Path, tag: &str, which: usize, e: &Edit) -> (PathBuf, String, bool) {
    let work = dir(&format!("{tag}-{}", which % 1000));
    copy(orig, &work);
    let files = files_of(&work);
    let f = &files[which % files.len()];
    let before = std::fs::read(f).unwrap();
    let after = apply(&before, e);
    std::fs::write(f, &after).unwrap();
    let name = f.file_name().unwrap().to_str().unwrap().to_string();
    (work, name, after != before)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn an_edited_store_file_is_an_error_naming_it(which in any::<usize>(), e in edit()) {
        let (orig, _) = originals();
        let reference = load_store(orig).unwrap();
        let (work, name, changed) = edited_copy(orig, "store", which, &e);
        match load_store(&work) {
            Ok(theta) => prop_assert!(!changed && theta == reference, "{name} {e:?}: loaded"),
            Err(msg) => prop_assert!(msg.contains(&name), "{e:?}: {msg}"),
        }
        let _ = std::fs::remove_dir_all(&work);
    }

    #[test]
    fn an_edited_posterior_file_is_an_error_naming_it(which in any::<usize>(), e in edit()) {
        let (_, orig) = originals();
        let (work, name, changed) = edited_copy(orig, "post", which, &e);
        match Posterior::load(&work) {
            Ok(_) => prop_assert!(!changed, "{name} {e:?}: loaded"),
            Err(msg) => prop_assert!(msg.to_string().contains(&name), "{e:?}: {msg}"),
        }
        let _ = std::fs::remove_dir_all(&work);
    }
}

#[test]
fn swapped_or_foreign_chunks_are_named() {
    let (orig, _) = originals();
    let work = dir("swap");
    copy(orig, &work);
    let (a, b) = (
        work.join("r0000_c00000000.chunk"),
        work.join("r0000_c00000001.chunk"),
    );
    let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, &bb).unwrap();
    std::fs::write(&b, &ba).unwrap();
    let e = load_store(&work).unwrap_err();
    assert!(
        e.contains("r0000_c00000000.chunk") && e.contains("not chunk 0"),
        "{e}"
    );
    // A chunk of round 1 copied over the same chunk of round 0.
    copy(orig, &work);
    std::fs::copy(
        work.join("r0001_c00000001.chunk"),
        work.join("r0000_c00000001.chunk"),
    )
    .unwrap();
    let e = load_store(&work).unwrap_err();
    assert!(e.contains("r0000_c00000001.chunk"), "{e}");
    // A chunk from a store of another problem, in the same place.
    let other = dir("other");
    let prior = IndependentPrior::uniform(&[0.0, 0.0], &[1.0, 1.0]).unwrap();
    let fp = Fingerprint::new()
        .with("model", "another")
        .with("seed", "1");
    let mut s = Store::create(&other, 2, 2, fp).unwrap();
    let r = s.add_round(250, 1, 100, "prior").unwrap();
    s.run_round(r, &Shift, &FromPrior(&prior), 50, &mut Quiet)
        .unwrap();
    copy(orig, &work);
    std::fs::copy(
        other.join("r0000_c00000000.chunk"),
        work.join("r0000_c00000000.chunk"),
    )
    .unwrap();
    let e = load_store(&work).unwrap_err();
    assert!(
        e.contains("r0000_c00000000.chunk") && e.contains("another problem"),
        "{e}"
    );
    // Invalid simulations are kept with their reason and parameters.
    let set = Store::open(orig).unwrap().load().unwrap();
    assert!(set.n_invalid > 0);
    assert_eq!(set.invalid_theta.len() as u64, set.n_invalid * 2);
    assert!(set.invalid_theta.chunks(2).all(|t| t[1] > 0.95));
    assert_eq!(
        set.reasons.0,
        vec![("non-finite output x[1]".to_string(), set.n_invalid)]
    );
}

#[test]
fn unreadable_file_kinds_are_errors_not_hangs() {
    let (orig, _) = originals();
    let work = dir("fifo");
    copy(orig, &work);
    let meta = work.join("store.meta");
    std::fs::remove_file(&meta).unwrap();
    let status = std::process::Command::new("mkfifo").arg(&meta).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED the FIFO case: mkfifo is unavailable");
        return;
    }
    let e = Store::open(&work).unwrap_err().to_string();
    assert!(
        e.contains("store.meta") && e.contains("not a regular file"),
        "{e}"
    );
}
