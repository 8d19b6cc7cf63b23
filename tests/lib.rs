//! Cross-crate end-to-end tests live in `tests/tests/`; this library holds what several of
//! them share.

use std::path::Path;
use std::process::{Command, Output};

/// Renders `page` in headless Chromium (`chromium`, a fresh profile in `profile`) and
/// returns its output: the DOM after scripts ran on stdout.
pub fn render_in_chromium(chromium: &str, page: &Path, profile: &Path) -> Output {
    Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .expect("chromium runs")
}
