//! Developer tasks for the neurosbi workspace, run as `cargo xtask <task>`.
//!
//! - `cargo xtask test`: the project's test command (README). Runs the whole workspace's
//!   tests; tests that need a system component bring it up themselves or print why they skip.
//!   Then, as root, the real SLURM test (scripts/slurm/ci.sh) and the MPI test
//!   (scripts/mpi/ci.sh); each prints why when it is skipped. `cargo xtask slurm-test`
//!   and `cargo xtask mpi-test` run them alone. Then the Python package's tests
//!   (`cargo xtask python-test` alone): a virtual environment under the target dir with
//!   maturin, pytest and numpy, the package built and installed, `pytest python/tests`.
//!   Then the NWB tests (`cargo xtask nwb-test` alone): neurosbi-io's and the fit-file tests
//!   with `--features nwb` against the system HDF5 (installed with apt-get when root), else
//!   with `--features nwb-static`, HDF5 compiled from source with a cmake from PyPI when the
//!   PATH has none new enough (`NEUROSBI_NWB_STATIC=1` forces this way); see [`hdf5_setup`].
//! - `cargo xtask install [options of cargo install]`: `cargo install --path crates/neurosbi`
//!   with NWB support, HDF5 set up as for the NWB tests (the system library, else compiled
//!   from source); without NWB support, saying why, when HDF5 cannot be had.
//! - `cargo xtask bench [sim|features|flows|npe|e2e|sbibm|store|python|pyloric|coba|io|all]`: runs the
//!   criterion and ratio benchmarks and prints the figures the issues name (`python`, not
//!   part of `all`: the Python package against the Rust paths and sbi; `io`, not part of
//!   `all`: reading a ~100 MB ABF and NWB file against pyabf and pynwb, see [`io_bench`]).

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("slurm-test") => slurm_test(),
        Some("mpi-test") => mpi_test(),
        Some("python-test") => python_test(),
        Some("nwb-test") => nwb_test(),
        Some("install") => install(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|install [cargo install options]|slurm-test|mpi-test|python-test|nwb-test|bench [sim|features|flows|npe|e2e|sbibm|store|python|pyloric|coba|io|all]>"
            );
            bail!("unknown or missing task")
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Installs Debian packages when they are missing and we may (root with apt-get); returns
/// whether the given command is then available. Tests that need it skip with a printed
/// reason when it is not.
fn ensure_debian_package(package: &str, binary: &str) -> bool {
    let present = || std::path::Path::new(binary).exists();
    if present() {
        return true;
    }
    if !is_root() || Command::new("apt-get").arg("--version").output().is_err() {
        eprintln!(
            "xtask: {binary} is missing and cannot be installed here (needs root and apt-get)"
        );
        return false;
    }
    eprintln!("xtask: installing Debian package {package} for the tests that need {binary}");
    apt_install(&[package]);
    present()
}

/// `apt-get update` and `apt-get install` of `packages` (root only); whether it succeeded.
fn apt_install(packages: &[&str]) -> bool {
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let _ = quiet(&["update", "-qq"]);
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    let ok = quiet(&args);
    if !ok {
        eprintln!("xtask: installing {} failed", packages.join(", "));
    }
    ok
}

fn test(extra: &[String]) -> Result<()> {
    // The report test opens report.html in headless Chromium.
    let chromium = ensure_debian_package("chromium", "/usr/bin/chromium");
    let mut cmd = cargo();
    // Libraries, binaries and integration tests; benches and examples are compiled by
    // `cargo clippy --all-targets` in CI but not run here (some benches run for minutes).
    cmd.args(["test", "--workspace", "--lib", "--bins", "--tests"])
        .args(extra);
    if chromium {
        cmd.env("NEUROSBI_CHROMIUM", "/usr/bin/chromium");
    }
    run(cmd)?;
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]);
    run(doc)?;
    nwb_test()?;
    python_test()?;
    slurm_test()?;
    mpi_test()
}

/// Where the NWB reader's HDF5 library comes from on this machine.
#[derive(Debug)]
enum Hdf5 {
    /// The system library, found by pkg-config: `--features nwb`.
    System,
    /// HDF5 compiled from source by hdf5-metno-src and linked statically:
    /// `--features nwb-static`, built with this cmake (passed to the build as `CMAKE`).
    Bundled { cmake: PathBuf },
}

impl Hdf5 {
    fn feature(&self) -> &'static str {
        match self {
            Hdf5::System => "nwb",
            Hdf5::Bundled { .. } => "nwb-static",
        }
    }

    /// A cargo command with the environment this HDF5 needs.
    fn cargo(&self) -> Command {
        let mut cmd = cargo();
        if let Hdf5::Bundled { cmake } = self {
            cmd.env("CMAKE", cmake);
        }
        cmd
    }
}

/// The oldest cmake that configures the HDF5 sources of hdf5-metno-src 0.10.4 (HDF5 2.0's
/// `cmake_minimum_required`); Debian 12's cmake (3.25) is older.
const CMAKE_MIN: (u32, u32) = (3, 26);

/// Finds HDF5 for the NWB reader, setting it up when it can (`why`: what it is for, for the
/// messages); `None`, with the reason printed, when it cannot. In order:
/// 1. the system library when pkg-config finds `hdf5` (unless `NEUROSBI_NWB_STATIC` is set);
/// 2. as root with apt-get, Debian's libhdf5-dev and pkg-config, installed (seconds);
/// 3. HDF5 compiled from source (`--features nwb-static`, minutes the first time), with a
///    cmake >= 3.26 from the PATH, else one installed from PyPI (`pip install cmake`) into
///    `<target>/cmake-venv` with python3's venv module (`NEUROSBI_PYTHON` picks another).
///
/// So a machine with only the Rust toolchain (and python3, which most have) gets NWB support
/// without a system HDF5 and without root.
fn hdf5_setup(why: &str) -> Result<Option<Hdf5>> {
    let forced_static = std::env::var_os("NEUROSBI_NWB_STATIC").is_some();
    let system = || {
        Command::new("pkg-config")
            .args(["--exists", "hdf5"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !forced_static {
        if system() {
            return Ok(Some(Hdf5::System));
        }
        let can_apt = is_root() && Command::new("apt-get").arg("--version").output().is_ok();
        if can_apt {
            eprintln!("xtask: installing Debian packages libhdf5-dev, pkg-config for {why}");
            apt_install(&["libhdf5-dev", "pkg-config"]);
            if system() {
                return Ok(Some(Hdf5::System));
            }
            eprintln!("xtask: the system HDF5 is still not found; compiling HDF5 from source");
        } else {
            eprintln!(
                "xtask: no system HDF5 (pkg-config finds no `hdf5`) and no root to install it: \
                 compiling HDF5 from source (--features nwb-static) for {why}"
            );
        }
    }
    match cmake_for_hdf5()? {
        Ok(cmake) => Ok(Some(Hdf5::Bundled { cmake })),
        Err(reason) => {
            eprintln!("xtask: SKIPPED {why}: HDF5 cannot be compiled here: {reason}");
            Ok(None)
        }
    }
}

/// A cmake new enough for hdf5-metno-src: `$CMAKE`'s, the PATH's, else one from PyPI in
/// `<target>/cmake-venv` (created once); Err with the reason when none is possible.
fn cmake_for_hdf5() -> Result<std::result::Result<PathBuf, String>> {
    let version = |cmake: &std::path::Path| -> Option<(u32, u32)> {
        let out = Command::new(cmake).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        cmake_version(&text)
    };
    // The cmake crate's own variable first: the user's choice.
    if let Some(chosen) = std::env::var_os("CMAKE").map(PathBuf::from)
        && version(&chosen).is_some_and(|v| v >= CMAKE_MIN)
    {
        return Ok(Ok(chosen));
    }
    let on_path = PathBuf::from("cmake");
    let found = version(&on_path);
    if found.is_some_and(|v| v >= CMAKE_MIN) {
        return Ok(Ok(on_path));
    }
    let venv = target_dir()?.join("cmake-venv");
    let cmake = venv.join("bin").join("cmake");
    if version(&cmake).is_some_and(|v| v >= CMAKE_MIN) {
        return Ok(Ok(cmake));
    }
    let have = match found {
        Some((a, b)) => format!("the PATH's cmake is {a}.{b}"),
        None => "there is no cmake on the PATH".to_string(),
    };
    let python = std::env::var("NEUROSBI_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "xtask: {have}, HDF5 needs {}.{} or newer: installing cmake from PyPI into {}",
        CMAKE_MIN.0,
        CMAKE_MIN.1,
        venv.display()
    );
    let made = Command::new(&python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    let installed = made
        && Command::new(venv.join("bin").join("python"))
            .args(["-m", "pip", "install", "-q"])
            .arg(format!("cmake>={}.{}", CMAKE_MIN.0, CMAKE_MIN.1))
            .status()
            .is_ok_and(|s| s.success());
    if installed && version(&cmake).is_some_and(|v| v >= CMAKE_MIN) {
        return Ok(Ok(cmake));
    }
    Ok(Err(format!(
        "{have}, it needs cmake {}.{} or newer, and installing one from PyPI with `{python} -m venv` \
         and pip failed (install cmake, or the system HDF5: libhdf5-dev and pkg-config)",
        CMAKE_MIN.0, CMAKE_MIN.1
    )))
}

/// (major, minor) from `cmake --version`'s first line (`cmake version 3.25.1`).
fn cmake_version(text: &str) -> Option<(u32, u32)> {
    let v = text.lines().next()?.strip_prefix("cmake version ")?;
    let mut parts = v.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The NWB tests: neurosbi-io's reader against the pynwb fixtures and the fit-file/`inspect`
/// test, built with `--features nwb` (the system HDF5) or `--features nwb-static` (HDF5
/// compiled from source) as [`hdf5_setup`] finds; says why when it skips.
fn nwb_test() -> Result<()> {
    if std::env::var_os("NEUROSBI_SKIP_NWB").is_some() {
        eprintln!("xtask: SKIPPED the NWB tests: NEUROSBI_SKIP_NWB is set");
        return Ok(());
    }
    let Some(hdf5) = hdf5_setup("the NWB tests")? else {
        return Ok(());
    };
    eprintln!("xtask: NWB tests with {hdf5:?}");
    let feature = hdf5.feature();
    let mut io = hdf5.cargo();
    io.args(["test", "-p", "neurosbi-io", "--features", feature]);
    run(io)?;
    let mut fit = hdf5.cargo();
    fit.args([
        "test",
        "-p",
        "neurosbi",
        "--features",
        feature,
        "--test",
        "recordings",
    ]);
    run(fit)
}

/// `cargo xtask install`: the `neurosbi` program with NWB support (README), HDF5 set up by
/// [`hdf5_setup`]; `extra` goes to `cargo install` (`--root DIR`, `--features mpi`, ...).
fn install(extra: &[String]) -> Result<()> {
    let hdf5 = hdf5_setup("NWB support in the installed program")?;
    if hdf5.is_none() {
        eprintln!("xtask: installing neurosbi WITHOUT NWB support (ABF files only)");
    }
    run(install_command(hdf5.as_ref(), extra))
}

/// `cargo install --path crates/neurosbi` with the NWB feature `hdf5` needs and `extra`.
fn install_command(hdf5: Option<&Hdf5>, extra: &[String]) -> Command {
    let mut cmd = hdf5.map_or_else(cargo, Hdf5::cargo);
    cmd.arg("install")
        .arg("--path")
        .arg(workspace_root().join("crates").join("neurosbi"));
    if let Some(h) = hdf5 {
        cmd.args(["--features", h.feature()]);
    }
    cmd.args(extra);
    cmd
}

/// The Python package's tests: creates (once) a virtual environment in
/// `<target>/python-venv` with maturin, pytest and numpy from PyPI, builds the package
/// (dev profile, reusing the workspace's build), the `train_npe` example its bit-for-bit
/// test compares with and the `neurosbi` program its agreement test runs, installs the
/// wheel and runs `pytest python/tests` (which also executes python/examples, the notebook
/// in a Jupyter kernel). Skipped, with the reason printed, when python3 or its venv module
/// is missing (`NEUROSBI_PYTHON` picks another interpreter).
fn python_test() -> Result<()> {
    let Some(bin) = python_venv(TEST_TOOLS)? else {
        return Ok(());
    };
    let root = workspace_root();
    let target = target_dir()?;
    // The train_npe example (bit-for-bit test) and the program the agreement test runs, in
    // one build: built alone, the program unifies other dependency features and rebuilds
    // most dependencies.
    let mut rust = cargo();
    rust.args(["build", "-p", "neurosbi-python", "-p", "neurosbi"]);
    rust.args(["--example", "train_npe", "--bin", "neurosbi"]);
    run(rust)?;
    install_wheel(&bin, "dev")?;
    let mut pytest = Command::new(bin.join("python"));
    pytest
        .args(["-m", "pytest", "python/tests", "-q", "-rs"])
        .current_dir(&root)
        .env(
            "NEUROSBI_TRAIN_NPE_EXAMPLE",
            target.join("debug").join("examples").join("train_npe"),
        )
        .env("NEUROSBI_CLI", target.join("debug").join("neurosbi"));
    eprintln!("xtask: running {pytest:?}");
    let status = pytest.status().context("starting pytest")?;
    match status.code() {
        Some(0) => Ok(()),
        // pytest's "no tests collected" is a failure here, not a pass.
        Some(5) => bail!("pytest collected no tests in python/tests"),
        _ => bail!("the Python tests failed ({status})"),
    }
}

/// `cargo xtask bench python`: python/bench/bench_python.py on release builds of the
/// package, the `train_npe` example and the `neurosbi` program (sbi's side runs when sbi
/// and torch are importable in the virtual environment).
fn python_bench() -> Result<()> {
    // Only what builds the wheel: an environment with sbi keeps its own packages.
    let Some(bin) = python_venv(&["maturin>=1.9,<2", "numpy"])? else {
        return Ok(());
    };
    let target = target_dir()?;
    let mut rust = cargo();
    rust.args([
        "build",
        "--release",
        "-p",
        "neurosbi-python",
        "-p",
        "neurosbi",
    ]);
    rust.args(["--example", "train_npe", "--bin", "neurosbi"]);
    run(rust)?;
    install_wheel(&bin, "release")?;
    let release = target.join("release");
    let mut bench = Command::new(bin.join("python"));
    bench
        .arg(workspace_root().join("python/bench/bench_python.py"))
        .env(
            "NEUROSBI_TRAIN_NPE_EXAMPLE",
            release.join("examples").join("train_npe"),
        )
        .env("NEUROSBI_CLI", release.join("neurosbi"));
    run(bench)
}

/// The virtual environment `<target>/python-venv` (created once) with `tools` installed
/// (pip requirements); its `bin` folder, or None with the reason printed when python3 or its
/// venv module is missing. `NEUROSBI_PYTHON` picks
/// another interpreter; one that runs inside a virtual environment (`/work/venv-sbi/bin/
/// python`) has `tools` installed into that environment, which is then used as it is.
fn python_venv(tools: &[&str]) -> Result<Option<std::path::PathBuf>> {
    let python = std::env::var("NEUROSBI_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import venv, ensurepip"])
        .output();
    let reason = match probe {
        Err(e) => Some(format!("`{python}` cannot be started ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "`{python}` has no venv/ensurepip module (Debian: apt-get install python3-venv): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    };
    if let Some(reason) = reason {
        eprintln!("xtask: SKIPPED the Python tests: {reason}");
        return Ok(None);
    }
    // An interpreter of a virtual environment (e.g. one with sbi and torch for the bench's
    // peer) is used with its environment: a venv made from it would not see its packages.
    let own_venv = Command::new(&python)
        .args(["-c", "import sys; print(sys.prefix != sys.base_prefix)"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "True");
    let venv = if own_venv {
        let o = Command::new(&python)
            .args(["-c", "import sys; print(sys.prefix)"])
            .output()
            .context("asking the interpreter for its environment")?;
        std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
    } else {
        target_dir()?.join("python-venv")
    };
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "venv"]).arg(&venv);
        run(cmd)?;
    }
    let mut pip = Command::new(bin.join("python"));
    pip.args(["-m", "pip", "install", "-q"]).args(tools);
    run(pip)?;
    Ok(Some(bin))
}

/// What the Python tests need in their environment.
const TEST_TOOLS: &[&str] = &[
    "maturin>=1.9,<2",
    "pytest",
    "numpy",
    // The example notebook runs in a real Jupyter kernel (python/tests/test_examples.py).
    "nbclient",
    "nbformat",
    "ipykernel",
    // Real Brian2 objects and the tqdm progress path are tested (python/tests/).
    "brian2",
    "tqdm",
    // Brian2 2.9, the newest for Python < 3.12, uses np.ndarray.ptp (gone in numpy 2.4).
    "numpy<2.4; python_version < '3.12'",
];

/// Builds the package's wheel with cargo profile `profile` and installs it into the venv.
fn install_wheel(bin: &std::path::Path, profile: &str) -> Result<()> {
    let target = target_dir()?;
    let wheels = target.join("python-wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    let mut build = Command::new(bin.join("maturin"));
    build
        .args(["build", "--profile", profile, "--quiet", "-m"])
        .arg(workspace_root().join("python").join("Cargo.toml"))
        .arg("--out")
        .arg(&wheels)
        .env("VIRTUAL_ENV", bin.parent().unwrap_or(bin))
        .env("CARGO_TARGET_DIR", &target);
    run(build)?;
    let wheel = std::fs::read_dir(&wheels)
        .with_context(|| format!("reading {}", wheels.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .with_context(|| format!("maturin left no wheel in {}", wheels.display()))?;
    let mut install = Command::new(bin.join("python"));
    install
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--force-reinstall",
            "--no-deps",
        ])
        .arg(&wheel);
    run(install)
}

/// Whether Debian package `pkg` is installed.
fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// The MPI test (scripts/mpi/ci.sh): builds `neurosbi` with `--features mpi`, runs
/// `mpirun -np 2 neurosbi simulate` on localhost and compares the store with a one-process
/// run, then checks that a dying rank is named. Needs Debian's libopenmpi-dev, libclang-dev
/// and openmpi-bin (installed when root); otherwise it says why it is skipped.
fn mpi_test() -> Result<()> {
    if std::env::var_os("NEUROSBI_SKIP_MPI").is_some() {
        eprintln!("xtask: SKIPPED the MPI test: NEUROSBI_SKIP_MPI is set");
        return Ok(());
    }
    let packages = ["libopenmpi-dev", "libclang-dev", "openmpi-bin"];
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        if !is_root() {
            eprintln!(
                "xtask: SKIPPED the MPI test: Debian packages {} are missing and installing them needs root",
                missing.join(", ")
            );
            return Ok(());
        }
        eprintln!(
            "xtask: installing Debian packages {} for the MPI test",
            missing.join(", ")
        );
        apt_install(&missing);
        let still: Vec<&str> = packages
            .iter()
            .copied()
            .filter(|p| !dpkg_installed(p))
            .collect();
        if !still.is_empty() {
            eprintln!(
                "xtask: SKIPPED the MPI test: could not install Debian packages {}",
                still.join(", ")
            );
            return Ok(());
        }
    }
    let bin = build_neurosbi(&["mpi"])?;
    let mut cmd = Command::new(workspace_root().join("scripts/mpi/ci.sh"));
    cmd.arg(&bin);
    run(cmd)
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The workspace's target directory (honours CARGO_TARGET_DIR and config).
fn target_dir() -> Result<std::path::PathBuf> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cargo metadata")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let key = "\"target_directory\":\"";
    let start = text
        .find(key)
        .map(|i| i + key.len())
        .context("no target_directory in cargo metadata")?;
    let end = text[start..]
        .find('"')
        .context("unterminated target_directory")?;
    Ok(text[start..start + end].replace("\\\\", "\\").into())
}

/// Builds the `neurosbi` program (dev profile, plus `features`) and returns its path.
fn build_neurosbi(features: &[&str]) -> Result<std::path::PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "-p", "neurosbi", "--bin", "neurosbi"]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    run(cmd)?;
    Ok(target_dir()?.join("debug").join("neurosbi"))
}

/// The real SLURM test (scripts/slurm/ci.sh): a one-node cluster on localhost runs a 4-task
/// array job per round and the dependent merge(-and-train) jobs; the posterior must be
/// byte-identical to a one-process run. Needs root (the daemons, munge) and Debian's slurm-wlm and munge, which
/// are installed when missing; otherwise it says why it is skipped.
fn slurm_test() -> Result<()> {
    if std::env::var_os("NEUROSBI_SKIP_SLURM").is_some() {
        eprintln!("xtask: SKIPPED the SLURM test: NEUROSBI_SKIP_SLURM is set");
        return Ok(());
    }
    if !is_root() {
        eprintln!(
            "xtask: SKIPPED the SLURM test: it starts munged, slurmctld and slurmd, which needs root \
             (run `sudo scripts/slurm/ci.sh target/debug/neurosbi` to run it alone)"
        );
        return Ok(());
    }
    let have = ensure_debian_package("slurm-wlm", "/usr/sbin/slurmctld")
        && ensure_debian_package("slurm-wlm", "/usr/sbin/slurmd")
        && ensure_debian_package("munge", "/usr/sbin/munged");
    if !have {
        eprintln!(
            "xtask: SKIPPED the SLURM test: Debian's slurm-wlm and munge are not installed and could not be installed"
        );
        return Ok(());
    }
    let bin = build_neurosbi(&[])?;
    // One round (a 4-task array job, then merge and train), and two rounds (array, merge and
    // proposal, array, merge and train).
    for example in ["small_hh_noise.toml", "small_hh_two_rounds.toml"] {
        let mut cmd = Command::new(workspace_root().join("scripts/slurm/ci.sh"));
        cmd.arg(&bin)
            .arg(workspace_root().join("examples").join(example));
        run(cmd)?;
    }
    Ok(())
}

/// Rows of the all-methods sbibm table: (label, method name, rounds, estimator).
/// Sequential rows use sbibm's 10 rounds; MNLE needs discrete data and has no row.
const SBIBM_TABLE_ROWS: [(&str, &str, usize, &str); 16] = [
    ("npe", "npe", 1, "nsf"),
    ("snpe_c", "npe", 10, "nsf"),
    ("npe_a", "npe_a", 10, "mdn"),
    ("npe_b", "npe_b", 10, "nsf"),
    ("tsnpe", "tsnpe", 10, "nsf"),
    ("nle", "nle", 1, "maf"),
    ("snle", "nle", 10, "maf"),
    ("nre_a", "nre_a", 1, "nsf"),
    ("nre_b", "nre_b", 1, "nsf"),
    ("snre_b", "nre_b", 10, "nsf"),
    ("nre_c", "nre_c", 1, "nsf"),
    ("bnre", "bnre", 1, "nsf"),
    ("fmpe", "fmpe", 1, "nsf"),
    ("npse", "npse", 1, "nsf"),
    ("rejection_abc", "abc_rejection", 1, "nsf"),
    ("smc_abc", "smc_abc", 1, "nsf"),
];

/// sbibm's C2ST means over its 10 observations per (task, algorithm) at 1 000 and 10 000
/// simulations (Lueckmann et al. 2021; gaussian_mixture from the rerun after sbibm 1.1.0 fixed
/// the task). Generated by `scripts/sbibm/published.py` from github.com/sbi-benchmark/results.
const SBIBM_PUBLISHED_BY_ALGORITHM: [(&str, &str, f64, f64); 40] = [
    ("gaussian_linear", "NPE", 0.694, 0.552),
    ("gaussian_linear", "SNPE", 0.652, 0.544),
    ("gaussian_linear", "NLE", 0.650, 0.555),
    ("gaussian_linear", "SNLE", 0.628, 0.548),
    ("gaussian_linear", "NRE", 0.672, 0.560),
    ("gaussian_linear", "SNRE", 0.670, 0.536),
    ("gaussian_linear", "REJ-ABC", 0.913, 0.858),
    ("gaussian_linear", "SMC-ABC", 0.922, 0.829),
    ("two_moons", "NPE", 0.725, 0.606),
    ("two_moons", "SNPE", 0.643, 0.554),
    ("two_moons", "NLE", 0.773, 0.713),
    ("two_moons", "SNLE", 0.657, 0.571),
    ("two_moons", "NRE", 0.822, 0.761),
    ("two_moons", "SNRE", 0.651, 0.582),
    ("two_moons", "REJ-ABC", 0.960, 0.847),
    ("two_moons", "SMC-ABC", 0.922, 0.707),
    ("slcp", "NPE", 0.975, 0.901),
    ("slcp", "SNPE", 0.965, 0.845),
    ("slcp", "NLE", 0.946, 0.771),
    ("slcp", "SNLE", 0.921, 0.713),
    ("slcp", "NRE", 0.972, 0.947),
    ("slcp", "SNRE", 0.968, 0.917),
    ("slcp", "REJ-ABC", 0.982, 0.973),
    ("slcp", "SMC-ABC", 0.982, 0.969),
    ("gaussian_mixture", "NPE", 0.716, 0.615),
    ("gaussian_mixture", "SNPE", 0.669, 0.551),
    ("gaussian_mixture", "NLE", 0.740, 0.723),
    ("gaussian_mixture", "SNLE", 0.706, 0.685),
    ("gaussian_mixture", "NRE", 0.777, 0.748),
    ("gaussian_mixture", "SNRE", 0.673, 0.578),
    ("gaussian_mixture", "REJ-ABC", 0.860, 0.781),
    ("gaussian_mixture", "SMC-ABC", 0.791, 0.722),
    ("bernoulli_glm", "NPE", 0.863, 0.678),
    ("bernoulli_glm", "SNPE", 0.855, 0.614),
    ("bernoulli_glm", "NLE", 0.740, 0.605),
    ("bernoulli_glm", "SNLE", 0.634, 0.553),
    ("bernoulli_glm", "NRE", 0.899, 0.812),
    ("bernoulli_glm", "SNRE", 0.718, 0.584),
    ("bernoulli_glm", "REJ-ABC", 0.994, 0.976),
    ("bernoulli_glm", "SMC-ABC", 0.991, 0.981),
];

/// The sbibm algorithm a table row reproduces (sbibm's NRE is sbi's SNRE-B), if any.
fn sbibm_algorithm(label: &str) -> Option<&'static str> {
    Some(match label {
        "npe" => "NPE",
        "snpe_c" => "SNPE",
        "nle" => "NLE",
        "snle" => "SNLE",
        "nre_b" => "NRE",
        "snre_b" => "SNRE",
        "rejection_abc" => "REJ-ABC",
        "smc_abc" => "SMC-ABC",
        _ => return None,
    })
}

/// Runs every row of [`SBIBM_TABLE_ROWS`] on the sbibm tasks at 1 000 and 10 000
/// simulations through the `sbibm` bench, one process per cell, appending each finished
/// cell to a CSV (`SBIBM_TABLE`, default target/sbibm-table.csv) and skipping cells already
/// there, so an interrupted run resumes. Prints the markdown table at the end.
/// `SBIBM_TABLE_ROWS` / `SBIBM_TASKS` / `SBIBM_TABLE_BUDGETS` (comma lists) and `SBIBM_OBS` narrow it;
/// `SBIBM_TABLE_JOBS` runs cells in parallel and `SBIBM_BENCH_BIN` uses a prebuilt bench binary.
/// A row name that matches nothing (`SBIBM_TABLE_ROWS=none`) only prints the table of the CSV.
fn sbibm_table() -> Result<()> {
    let csv = std::env::var("SBIBM_TABLE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target/sbibm-table.csv"));
    let list = |var: &str, default: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_else(|_| default.into())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let tasks = list(
        "SBIBM_TASKS",
        "gaussian_linear,two_moons,slcp,gaussian_mixture,bernoulli_glm",
    );
    let wanted = list("SBIBM_TABLE_ROWS", "");
    // SBIBM_TABLE_BUDGETS picks the budgets to run (e.g. all cheap 1 000 cells first).
    let budgets = list("SBIBM_TABLE_BUDGETS", "1000,10000");
    let obs = std::env::var("SBIBM_OBS").unwrap_or_else(|_| "10".into());
    let header = "label,method,rounds,estimator,task,budget,observations,c2st,spread,sbibm_npe,sbibm_best,train_s,total_s";
    let mut done = std::fs::read_to_string(&csv).unwrap_or_default();
    if done.is_empty() {
        if let Some(dir) = csv.parent() {
            std::fs::create_dir_all(dir)?;
        }
        done = format!("{header}\n");
        std::fs::write(&csv, &done)?;
    }
    // Cells still to run, in table order.
    let mut cells = Vec::new();
    for (label, method, rounds, est) in SBIBM_TABLE_ROWS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == label) {
            continue;
        }
        for task in &tasks {
            for budget in &budgets {
                let key = format!("{label},{method},{rounds},{est},{task},{budget},{obs},");
                if !done.lines().any(|l| l.starts_with(&key)) {
                    cells.push((label, method, rounds, est, task.clone(), budget, key));
                }
            }
        }
    }
    // SBIBM_BENCH_BIN runs a prebuilt bench binary (e.g. on another machine without a build);
    // SBIBM_TABLE_JOBS runs that many cells at once, each with RAYON_NUM_THREADS set to its
    // share of the cores (results do not depend on the thread count).
    let bin = std::env::var("SBIBM_BENCH_BIN").ok();
    let jobs: usize = std::env::var("SBIBM_TABLE_JOBS")
        .ok()
        .map(|j| {
            j.parse()
                .context("SBIBM_TABLE_JOBS: a number of parallel cells")
        })
        .transpose()?
        .unwrap_or(1)
        .max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let table = std::sync::Mutex::new((done, std::fs::OpenOptions::new().append(true).open(&csv)?));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((label, method, rounds, est, task, budget, key)) = cells.get(i) else {
                        return;
                    };
                    let mut cmd = match &bin {
                        Some(b) => {
                            let mut c = Command::new(b);
                            c.arg("--bench");
                            c
                        }
                        None => {
                            let mut c = cargo();
                            c.args(["bench", "-q", "-p", "neurosbi-infer", "--bench", "sbibm"]);
                            c
                        }
                    };
                    cmd.env("SBIBM_TASKS", task)
                        .env("SBIBM_BUDGETS", budget)
                        .env("SBIBM_METHOD", method)
                        .env("SBIBM_ROUNDS", rounds.to_string())
                        .env("SBIBM_ESTIMATOR", est)
                        .env("SBIBM_OBS", &obs);
                    if jobs > 1 {
                        cmd.env("RAYON_NUM_THREADS", threads.to_string());
                    }
                    eprintln!("xtask: sbibm table cell {label} {task} {budget}");
                    let out = match cmd.output() {
                        Ok(o) => o,
                        Err(e) => {
                            eprintln!("xtask: cell {label} {task} {budget}: starting {cmd:?}: {e}");
                            continue;
                        }
                    };
                    let text = String::from_utf8_lossy(&out.stdout);
                    // The bench prints one row per (task, budget): task budget c2st spread
                    // sbibm-npe best train-s total-s.
                    let row = text
                        .lines()
                        .map(|l| l.split_whitespace().collect::<Vec<_>>())
                        .find(|f| f.len() == 8 && f[0] == task.as_str() && f[1] == *budget);
                    let Some(f) = row else {
                        eprintln!(
                            "xtask: cell {label} {task} {budget} failed ({}):\n{}",
                            out.status,
                            failure_summary(&String::from_utf8_lossy(&out.stderr))
                        );
                        continue;
                    };
                    let line = format!("{key}{}\n", f[2..].join(","));
                    let mut t = table.lock().expect("a table writer panicked");
                    t.0.push_str(&line);
                    if let Err(e) = t.1.write_all(line.as_bytes()) {
                        eprintln!("xtask: writing {}: {e}", csv.display());
                    }
                }
            });
        }
    });
    let done = table.into_inner().expect("a table writer panicked").0;
    println!(
        "| method | task | budget | obs | C2ST | spread | sbibm, same algorithm | sbibm NPE | \
         sbibm best @10k |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for l in done.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        if f.len() == 13 {
            let same = sbibm_algorithm(f[0])
                .and_then(|a| {
                    SBIBM_PUBLISHED_BY_ALGORITHM
                        .iter()
                        .find(|p| p.0 == f[4] && p.1 == a)
                        .map(|p| format!("{a} {:.3}", if f[5] == "1000" { p.2 } else { p.3 }))
                })
                .unwrap_or_default();
            println!(
                "| {} | {} | {} | {} | {} | {} | {same} | {} | {} |",
                f[0], f[4], f[5], f[6], f[7], f[8], f[9], f[10]
            );
        }
    }
    eprintln!("xtask: table rows in {}", csv.display());
    Ok(())
}

/// `cargo run --release -p KRATE --example EXAMPLE`.
fn release_example(krate: &str, example: &str) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", krate, "--example", example]);
    run(cmd)
}

fn bench(args: &[String]) -> Result<()> {
    let which = args.first().map(String::as_str).unwrap_or("all");
    // `sbibm` is not part of `all`: the full table (10 observations, sbibm's C2ST protocol)
    // takes hours; its environment variables narrow it (see crates/neurosbi-infer/benches).
    let known = [
        "sim",
        "features",
        "flows",
        "npe",
        "e2e",
        "c2st",
        "sbibm",
        "sbibm-table",
        "store",
        "python",
        "pyloric",
        "coba",
        "io",
        "all",
    ];
    if !known.contains(&which) {
        bail!("unknown bench `{which}`; known: {}", known.join(", "));
    }
    if which == "sbibm-table" {
        return sbibm_table();
    }
    if which == "python" {
        return python_bench();
    }
    if which == "io" {
        return io_bench();
    }
    if which == "pyloric" || which == "all" {
        // The pyloric network next to the `pyloric` package (scripts/pyloric/README.md).
        release_example("neurosbi-sim", "pyloric_throughput")?;
    }
    if which == "coba" || which == "all" {
        // Brian's COBA network next to Brian2 C++ standalone (one thread each).
        release_example("neurosbi-sim", "coba_throughput")?;
    }
    if which == "sim" || which == "all" {
        let mut cmd = cargo();
        cmd.args(["bench", "-p", "neurosbi-sim", "--bench", "sim"]);
        run(cmd)?;
        release_example("neurosbi-sim", "sim_throughput")?;
    }
    for (name, krate, bench, in_all) in [
        ("features", "neurosbi-features", "features", true),
        ("flows", "neurosbi-flows", "flows", true),
        ("npe", "neurosbi-infer", "e2e", true),
        ("c2st", "neurosbi-infer", "c2st", true),
        ("sbibm", "neurosbi-infer", "sbibm", false),
    ] {
        if which == name || (which == "all" && in_all) {
            let mut cmd = cargo();
            cmd.args(["bench", "-p", krate, "--bench", bench]);
            run(cmd)?;
        }
    }
    if which == "store" || which == "all" {
        // Disk overhead per simulation beyond the raw payload, write and merge throughput.
        release_example("neurosbi", "store_bench")?;
    }
    if which == "e2e" || which == "all" {
        release_example("neurosbi", "e2e_bench")?;
    }
    Ok(())
}

/// `cargo xtask bench io` (issue 21): reads a ~100 MB ABF2 file and a ~100 MB NWB file with
/// neurosbi-io (`crates/neurosbi-io/examples/io_bench.rs`) and with pyabf and pynwb
/// (`scripts/io_bench/peers.py`), each read in a process of its own, 3 times; prints the best
/// time, MB/s (file size / seconds) and the peak resident memory above the process's
/// resident memory before reading (VmHWM - VmRSS), and each peer's ratio to neurosbi-io.
/// The ABF is made by repeating the 16 sweeps of the real recording
/// `17o05028_ic_steps.abf` (Rust, no Python needed); the NWB file is written by pynwb from the
/// same sweeps. `NEUROSBI_IO_PYTHON` names the interpreter with pyabf and pynwb (default
/// `python3`); a peer that is missing is skipped with the reason printed. The NWB rows need
/// HDF5, found or set up as for the NWB tests ([`hdf5_setup`]: the system library, else
/// compiled from source; `NEUROSBI_NWB_STATIC=1` measures the statically linked one).
fn io_bench() -> Result<()> {
    let root = workspace_root();
    let dir = target_dir()?.join("io-bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let sample = root.join("crates/neurosbi-io/tests/data/abf/17o05028_ic_steps.abf");
    let hdf5 = hdf5_setup("the NWB rows of the io bench")?;
    let nwb_ok = hdf5.is_some();
    let mut build = hdf5.as_ref().map_or_else(cargo, Hdf5::cargo);
    build.args([
        "build",
        "--release",
        "-p",
        "neurosbi-io",
        "--example",
        "io_bench",
    ]);
    if let Some(h) = &hdf5 {
        build.args(["--features", h.feature()]);
    }
    run(build)?;
    let bench = target_dir()?.join("release/examples/io_bench");
    let python = std::env::var("NEUROSBI_IO_PYTHON").unwrap_or_else(|_| "python3".into());
    let peers = root.join("scripts/io_bench/peers.py");
    let has = |module: &str| {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let (pyabf, pynwb) = (has("pyabf"), has("pynwb"));
    for (ok, m) in [(pyabf, "pyabf"), (pynwb, "pynwb")] {
        if !ok {
            eprintln!(
                "xtask: SKIPPED the {m} rows: `{python} -c 'import {m}'` failed (set NEUROSBI_IO_PYTHON to an interpreter with {m})"
            );
        }
    }
    let abf = dir.join("big.abf");
    if !abf.exists() {
        let mut make = Command::new(&bench);
        make.arg("make-abf").arg(&sample).arg(&abf).arg("100");
        run(make)?;
    }
    let nwb = dir.join("big.nwb");
    if !nwb.exists() && pyabf && pynwb {
        let mut make = Command::new(&python);
        make.args(["-W", "ignore"])
            .arg(&peers)
            .arg("make-nwb")
            .arg(&sample)
            .arg(&nwb)
            .arg("100");
        run(make)?;
    }
    // One measurement: a JSON line from a fresh process.
    let measure = |mut cmd: Command| -> Result<serde_like::Row> {
        let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
        if !out.status.success() {
            bail!(
                "{cmd:?} failed:\n{}",
                failure_summary(&String::from_utf8_lossy(&out.stderr))
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_like::Row::parse(text.lines().last().unwrap_or(""))
            .with_context(|| format!("reading the output of {cmd:?}: {text}"))
    };
    let best = |make: &dyn Fn() -> Command| -> Result<serde_like::Row> {
        let mut rows = Vec::new();
        for _ in 0..3 {
            rows.push(measure(make())?);
        }
        let peak = rows.iter().map(|r| r.peak_mb).fold(0.0, f64::max);
        let mut b = rows
            .into_iter()
            .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
            .expect("3 runs");
        b.peak_mb = peak;
        Ok(b)
    };
    let mut table = Vec::new();
    for (file, peer, peer_ok, ours_ok) in
        [(&abf, "pyabf", pyabf, true), (&nwb, "pynwb", pynwb, nwb_ok)]
    {
        if !file.exists() {
            eprintln!(
                "xtask: SKIPPED {}: not made (needs pyabf and pynwb)",
                file.display()
            );
            continue;
        }
        let ours = if ours_ok {
            Some(best(&|| {
                let mut c = Command::new(&bench);
                c.arg("read").arg(file);
                c
            })?)
        } else {
            None
        };
        let theirs = if peer_ok {
            Some(best(&|| {
                let mut c = Command::new(&python);
                c.args(["-W", "ignore"]).arg(&peers).arg(peer).arg(file);
                c
            })?)
        } else {
            None
        };
        table.push((file.clone(), ours, theirs));
    }
    println!(
        "\nreading a ~100 MB recording (best of 3 runs; peak: resident memory above the process's before reading, largest of 3)"
    );
    println!(
        "{:<10} {:<20} {:>8} {:>9} {:>9} {:>10} {:>12}",
        "file", "reader", "MB", "seconds", "MB/s", "peak MB", "peak / file"
    );
    for (file, ours, theirs) in &table {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        // The data read: the file, which is its samples but for a header of a few kB.
        for r in ours.iter().chain(theirs.iter()) {
            let ratio = format!("{:.2}", r.peak_mb / r.file_mb);
            println!(
                "{:<10} {:<20} {:>8.1} {:>9.3} {:>9.1} {:>10.1} {:>12}",
                name, r.reader, r.file_mb, r.seconds, r.mb_per_s, r.peak_mb, ratio
            );
        }
        if let (Some(o), Some(t)) = (ours, theirs) {
            let rel = (o.checksum - t.checksum).abs() / t.checksum.abs().max(1e-300);
            println!(
                "{:<10} neurosbi-io is {:.1}x faster than {}; sums of all samples agree to {rel:.1e} relative",
                name,
                t.seconds / o.seconds,
                t.reader
            );
        }
    }
    Ok(())
}

/// The few fields of the benches' JSON lines (flat objects of numbers and strings).
mod serde_like {
    use anyhow::{Context, Result};

    pub struct Row {
        pub reader: String,
        pub file_mb: f64,
        pub seconds: f64,
        pub mb_per_s: f64,
        pub peak_mb: f64,
        pub checksum: f64,
    }

    fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        let k = format!("\"{key}\":");
        let i = line.find(&k)? + k.len();
        let rest = line[i..].trim_start();
        if let Some(r) = rest.strip_prefix('"') {
            return r.split('"').next();
        }
        rest.split([',', '}']).next().map(str::trim)
    }

    impl Row {
        pub fn parse(line: &str) -> Result<Row> {
            let num = |k: &str| -> Result<f64> {
                field(line, k)
                    .with_context(|| format!("no `{k}`"))?
                    .parse()
                    .with_context(|| format!("`{k}` is not a number"))
            };
            Ok(Row {
                reader: field(line, "reader").context("no `reader`")?.to_string(),
                file_mb: num("file_mb")?,
                seconds: num("seconds")?,
                mb_per_s: num("mb_per_s")?,
                peak_mb: num("peak_extra_mb")?,
                checksum: num("checksum")?,
            })
        }
    }
}

/// What a failed bench run said: its panic message (which a backtrace would push out of a
/// plain tail), else its last 5 lines, in order.
fn failure_summary(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let picked: Vec<&str> = match lines.iter().rposition(|l| l.contains("panicked at")) {
        Some(i) => lines[i..]
            .iter()
            .take_while(|l| !l.starts_with("stack backtrace") && !l.starts_with("note:"))
            .take(5)
            .copied()
            .collect(),
        None => lines[lines.len().saturating_sub(5)..].to_vec(),
    };
    picked.join("\n")
}

#[cfg(test)]
mod tests {
    use super::{CMAKE_MIN, cmake_version, failure_summary};

    #[test]
    fn install_passes_the_nwb_feature_and_cmake_of_the_hdf5_found() {
        use super::{Hdf5, install_command};
        let args = |c: &std::process::Command| -> Vec<String> {
            c.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let extra = vec!["--root".to_string(), "/opt/n".to_string()];
        let bundled = Hdf5::Bundled {
            cmake: "/v/bin/cmake".into(),
        };
        let c = install_command(Some(&bundled), &extra);
        let a = args(&c);
        assert_eq!(a[0], "install");
        assert!(a[2].ends_with("crates/neurosbi"), "{a:?}");
        assert_eq!(a[3..], ["--features", "nwb-static", "--root", "/opt/n"]);
        let cmake = c
            .get_envs()
            .find(|(k, _)| *k == "CMAKE")
            .and_then(|(_, v)| v);
        assert_eq!(cmake, Some(std::ffi::OsStr::new("/v/bin/cmake")));
        let c = install_command(Some(&Hdf5::System), &[]);
        assert_eq!(args(&c)[3..], ["--features", "nwb"]);
        assert!(c.get_envs().all(|(k, _)| k != "CMAKE"));
        assert_eq!(args(&install_command(None, &[])).len(), 3);
    }

    #[test]
    fn cmake_versions_are_read_and_compared_as_numbers() {
        let debian12 = "cmake version 3.25.1\n\nCMake suite maintained and supported by Kitware.\n";
        assert_eq!(cmake_version(debian12), Some((3, 25)));
        assert!(cmake_version(debian12).unwrap() < CMAKE_MIN);
        assert!(cmake_version("cmake version 4.4.5\n").unwrap() >= CMAKE_MIN);
        // 3.100 is newer than 3.26 (numbers, not strings).
        assert!(cmake_version("cmake version 3.100.0").unwrap() >= CMAKE_MIN);
        assert_eq!(cmake_version("cmake3 version 3.31.0"), None);
        assert_eq!(cmake_version(""), None);
    }

    #[test]
    fn failure_summary_keeps_the_panic_message_ahead_of_a_backtrace() {
        let err = "  slcp seed 1: epochs\nthread 'main' panicked at a.rs:1:2:\nsampling: LowAcceptance\nstack backtrace:\n   0: x\n   1: y\n   2: z\n   3: w\n   4: v\n";
        assert_eq!(
            failure_summary(err),
            "thread 'main' panicked at a.rs:1:2:\nsampling: LowAcceptance"
        );
        assert_eq!(failure_summary("a\nb\nc\nd\ne\nf\ng"), "c\nd\ne\nf\ng");
    }
}
