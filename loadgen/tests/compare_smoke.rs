//! A short `compare` run against coturn (Debian's `turnserver`): both servers
//! start, take the same loads, are measured, and are gone afterwards. CI runs
//! it; without coturn it is skipped with a message — except under CI, where it
//! fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// target/<profile>/ of this test binary (target/<profile>/deps/compare_smoke-…).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// The ringturn binary: built by `cargo test --workspace` already; else built now.
fn ringturn_binary() -> PathBuf {
    let dir = profile_dir();
    for candidate in [dir.join("ringturn"), dir.join("../release/ringturn")] {
        if candidate.is_file() {
            return candidate;
        }
    }
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let status = Command::new(cargo)
        .args(["build", "-p", "ringturn", "--bin", "ringturn"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cannot build the ringturn binary");
    let built = dir.join("ringturn");
    assert!(built.is_file(), "no ringturn binary at {}", built.display());
    built
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Kills the compare process (by PID) if the test ends before it does.
struct Guard(Option<std::process::Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `ringturn-loadgen ARGS` to the end (90 s at most): stdout, stderr, success.
fn run_compare(args: &[String]) -> (String, String, bool) {
    let child = Command::new(env!("CARGO_BIN_EXE_ringturn-loadgen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ringturn-loadgen compare");
    let mut guard = Guard(Some(child));
    let started = Instant::now();
    let limit = Duration::from_secs(90);
    loop {
        let done = guard
            .0
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .is_some();
        if done {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "compare did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = guard
        .0
        .take()
        .expect("child")
        .wait_with_output()
        .expect("output");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn compare_smoke_run_against_coturn() {
    if !on_path("turnserver") {
        assert!(
            std::env::var_os("CI").is_none(),
            "turnserver (coturn) is not installed, and CI must run the compare smoke test: apt-get install coturn"
        );
        eprintln!("SKIPPED compare_smoke_run_against_coturn: turnserver (coturn) is not installed; apt-get install coturn to run it");
        return;
    }
    let ringturn = ringturn_binary();
    let dir = std::env::temp_dir().join(format!("loadgen-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("compare.json");
    let md = dir.join("compare.md");
    let html = dir.join("compare.html");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let client_cpu = if cores > 1 { "1" } else { "0" };
    let mut args: Vec<String> = [
        "compare",
        "--rounds",
        "1",
        "--duration",
        "0.8",
        "--warmup",
        "0.2",
        "--scenarios",
        "audio-max,audio-load,pair-max,allocate",
        "--clients",
        "8",
        "--window",
        "4",
        "--offered-pps",
        "1000",
        "--alloc-clients",
        "8",
        "--server-cpu",
        "0",
        "--client-cpu",
        client_cpu,
        "-q",
    ]
    .map(String::from)
    .to_vec();
    args.extend([
        "--ringturn".into(),
        ringturn.display().to_string(),
        "--json".into(),
        json.display().to_string(),
        "--markdown".into(),
        md.display().to_string(),
        "--report".into(),
        html.display().to_string(),
    ]);
    // In a private network namespace when we may (root, as in CI); else free ports.
    if is_root() && on_path("unshare") && on_path("ip") {
        args.push("--netns".into());
    }
    let (stdout, stderr, ok) = run_compare(&args);
    assert!(ok, "compare failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("ringturn vs coturn"), "{stdout}");

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid JSON");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 8, "4 scenarios × 2 servers");
    for run in runs {
        let who = format!("{} {}", run["server"], run["scenario"]);
        assert!(
            run["errors"].as_array().is_some_and(|e| e.is_empty()),
            "{who}: {}",
            run["errors"]
        );
        let reports = run["reports"].as_array().expect("reports");
        assert_eq!(reports.len(), 1, "{who}");
        let r = &reports[0];
        assert!(
            r["server"]["cpu_seconds"].as_f64().is_some(),
            "{who}: server CPU sampled"
        );
        if run["scenario"] == "allocate" {
            assert!(
                r["allocations"]["completed"].as_u64().unwrap_or(0) > 0,
                "{who}"
            );
        } else {
            let c = &r["counts"];
            let n = |k: &str| c[k].as_u64().unwrap_or(u64::MAX);
            assert!(n("sent") > 0, "{who}");
            assert_eq!(n("sent"), n("received") + n("lost"), "{who}");
            assert_eq!(n("duplicated"), 0, "{who}");
        }
    }
    let rows = v["rows"].as_array().expect("rows");
    let per_cpu = rows
        .iter()
        .find(|r| {
            r["scenario"] == "audio-max" && r["metric"] == "relayed packets per server CPU-second"
        })
        .expect("the headline row");
    assert!(
        per_cpu["ratio_median"].as_f64().is_some_and(|x| x > 0.0),
        "{per_cpu}"
    );
    let allocs = rows
        .iter()
        .find(|r| r["scenario"] == "allocate" && r["metric"] == "allocations per second")
        .expect("allocation row");
    assert!(
        allocs["ratio_median"].as_f64().is_some_and(|x| x > 0.0),
        "{allocs}"
    );
    let table = std::fs::read_to_string(&md).expect("markdown");
    assert!(
        table.contains("| audio-load | loss at the same offered load"),
        "{table}"
    );
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("<svg") && !page.contains("NaN"));

    // Every server it started is gone (killed by PID when its runs ended).
    for run in runs {
        for r in run["reports"].as_array().into_iter().flatten() {
            let pid = r["server"]["pid"].as_u64().expect("pid");
            let cmdline =
                std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(
                !cmdline.contains("ringturn") && !cmdline.contains("turnserver"),
                "server {pid} still running: {cmdline}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 11: `compare --topology veth` puts the servers behind a veth pair in
/// a namespace of their own and runs ringturn with its XDP fast path as a
/// third server; its kernel program's time is counted as its CPU.
#[test]
fn compare_over_a_veth_pair_with_the_fast_path() {
    let ci = std::env::var_os("CI").is_some();
    let missing = ["turnserver", "ethtool", "unshare", "ip"]
        .into_iter()
        .find(|t| !on_path(t));
    if let Some(tool) = missing.filter(|_| !ci) {
        eprintln!("SKIPPED compare_over_a_veth_pair_with_the_fast_path: {tool} is not installed");
        return;
    }
    if !is_root() || ringturn::xdp::PROGRAM.is_none() {
        assert!(!ci, "CI runs as root with the XDP program built");
        eprintln!(
            "SKIPPED compare_over_a_veth_pair_with_the_fast_path: needs root and the XDP program"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("loadgen-compare-veth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("compare.json");
    let args: Vec<String> = [
        "compare",
        "--topology",
        "veth",
        "--rounds",
        "1",
        "--duration",
        "0.8",
        "--warmup",
        "0.3",
        "--scenarios",
        "audio-load",
        "--offered-pps",
        "1000",
        "-q",
    ]
    .map(String::from)
    .into_iter()
    .chain([
        "--ringturn".to_string(),
        ringturn_binary().display().to_string(),
        "--json".to_string(),
        json.display().to_string(),
    ])
    .collect();
    let (stdout, stderr, ok) = run_compare(&args);
    assert!(ok, "compare failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("(fast path)"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid JSON");
    let runs = v["runs"].as_array().expect("runs");
    let servers: Vec<&str> = runs.iter().filter_map(|r| r["server"].as_str()).collect();
    assert_eq!(servers, ["ringturn-xdp", "ringturn", "coturn"], "{stdout}");
    for run in runs {
        let who = run["server"].to_string();
        assert!(
            run["errors"].as_array().is_some_and(|e| e.is_empty()),
            "{who}: {}",
            run["errors"]
        );
        let r = &run["reports"][0];
        let c = &r["counts"];
        let n = |k: &str| c[k].as_u64().unwrap_or(u64::MAX);
        assert!(n("received") > 0, "{who}: {c}");
        assert_eq!(n("sent"), n("received") + n("lost"), "{who}: {c}");
        let kernel = r["server"]["kernel_program_seconds"].as_f64();
        if who == "\"ringturn-xdp\"" {
            assert!(
                kernel.is_some_and(|s| s > 0.0),
                "{who}: the program relayed nothing"
            );
        } else {
            assert!(kernel.is_none(), "{who}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
