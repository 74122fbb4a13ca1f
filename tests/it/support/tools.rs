//! The test bed's command-line tools (helm, kubectl, argocd-lua), run against its API server.
#![allow(clippy::unwrap_used)]

use std::{
    io::Write,
    process::{Command, Stdio},
};

use super::var;

/// What a command printed, and whether it succeeded.
#[derive(Debug)]
pub struct Output {
    /// Exit status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs test bed tool `tool` (from `$TESTBED_DIR/bin`) with `args`, `stdin` on its standard input, the
/// test bed's kubeconfig and helm folders under the test bed.
pub fn run(tool: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let dir = var("TESTBED_DIR");
    let bin = format!("{dir}/bin/{tool}");
    let mut child = Command::new(&bin)
        .args(args)
        .env("KUBECONFIG", var("KUBECONFIG"))
        .env("HELM_CACHE_HOME", format!("{dir}/helm/cache"))
        .env("HELM_CONFIG_HOME", format!("{dir}/helm/config"))
        .env("HELM_DATA_HOME", format!("{dir}/helm/data"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e} (make testbed-install builds it)"));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `tool` and returns its standard output; panics with everything it printed if it fails.
pub fn ok(tool: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(tool, args, stdin);
    assert!(
        out.success,
        "{tool} {args:?} failed:\n{}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// `helm ARGS`, which must succeed.
pub fn helm(args: &[&str]) -> String {
    ok("helm", args, None)
}

/// `kubectl ARGS`, which must succeed.
pub fn kubectl(args: &[&str]) -> String {
    ok("kubectl", args, None)
}

/// Asserts that namespace `ns` enforces the `restricted` Pod Security Standard: the API server refuses a
/// plain pod there (a server-side dry run, so nothing is created).
pub fn assert_enforces_restricted(ns: &str) {
    let refused = run(
        "kubectl",
        &["run", "plain", "--image=busybox", "-n", ns, "--dry-run=server"],
        None,
    );
    assert!(
        !refused.success && refused.stderr.contains("violates PodSecurity"),
        "{refused:?}"
    );
}
