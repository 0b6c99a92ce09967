//! Every ready config in `tuning/` passes `ringturn --check-config` with no
//! error and no warning, and says what the tuning README promises.

use std::process::Command;

const CONFIGS: [&str; 3] = ["small-vm.conf", "16-core.conf", "64-core.conf"];

#[test]
fn tuning_configs_pass_check_config_without_warnings() {
    let root = env!("CARGO_MANIFEST_DIR");
    for name in CONFIGS {
        let path = format!("{root}/tuning/{name}");
        let out = Command::new(env!("CARGO_BIN_EXE_ringturn"))
            .args(["--check-config", "-c", &path])
            .output()
            .expect("ringturn runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{name}: exit {:?}\n{stderr}",
            out.status
        );
        assert!(
            stderr.trim().is_empty(),
            "{name}: warnings or errors:\n{stderr}"
        );
        assert!(stdout.contains("io backend auto"), "{name}:\n{stdout}");
        assert!(stdout.contains("REST API"), "{name}:\n{stdout}");
    }
}

#[test]
fn tuning_configs_mark_placeholders_and_use_documentation_addresses() {
    let root = env!("CARGO_MANIFEST_DIR");
    for name in CONFIGS {
        let text = std::fs::read_to_string(format!("{root}/tuning/{name}")).expect("readable");
        let settings: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        for line in &settings {
            if line.starts_with("static-auth-secret") {
                assert!(line.contains("CHANGE-ME"), "{name}: {line}");
            }
            if let Some(ip) = ["external-ip=", "listening-ip=", "relay-ip="]
                .iter()
                .find_map(|k| line.strip_prefix(k))
            {
                assert!(
                    ip.starts_with("203.0.113.") || ip.starts_with("198.51.100."),
                    "{name}: {line} is not a documentation address"
                );
            }
        }
        // The 64-core profile shares relay sockets (no port cap); the others keep the default.
        let shared = settings.contains(&"relay-socket-mode=shared");
        assert_eq!(shared, name == "64-core.conf", "{name}: relay-socket-mode");
        // Pinned configs keep core 0 out.
        if let Some(aff) = settings
            .iter()
            .find_map(|l| l.strip_prefix("cpu-affinity="))
        {
            assert!(!aff.starts_with('0'), "{name}: core 0 pinned: {aff}");
        }
    }
}
