//! Stamps the build with its version: the Cargo version for a release (HEAD tagged
//! `v<version>`, or no git at all, as in a source tarball), and `<version>+g<commit>` for every
//! other build from a git checkout, so a development binary says which commit it is.
//! Everything here falls back to the plain version: a build must never fail for want of git.
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LANMETER_BUILD_VERSION");
    let base = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = Path::new(&dir);
    // A packager may set the version string outright (e.g. a Debian revision).
    let version = if let Ok(v) = std::env::var("LANMETER_BUILD_VERSION") {
        v
    } else if let Some(commit) = git(dir, &["rev-parse", "--short=7", "HEAD"]) {
        // Rebuild the stamp when HEAD moves: HEAD itself (branch switches) and the branch ref.
        for p in [
            Some("HEAD".to_string()),
            git(dir, &["symbolic-ref", "-q", "HEAD"]),
        ]
        .into_iter()
        .flatten()
        .chain(["packed-refs".to_string()])
        {
            if let Some(path) = git(dir, &["rev-parse", "--git-path", &p]) {
                let path = dir.join(path);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
        let tag = format!("v{base}");
        match git(dir, &["describe", "--tags", "--exact-match", "HEAD"]) {
            Some(t) if t == tag => base,
            _ => format!("{base}+g{commit}"),
        }
    } else {
        base
    };
    println!("cargo:rustc-env=LANMETER_VERSION={version}");
}
