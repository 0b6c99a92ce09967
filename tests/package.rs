//! ringturn as a Debian package and a system service (issue 13): the package
//! built with cargo-deb from the release build installs with `dpkg -i` on this
//! machine (binaries, the man page, the example config as a conffile readable
//! by the `ringturn` system user it creates), `systemd-analyze verify` accepts
//! its unit, the installed binary started with the installed config as that
//! user answers coturn's `turnutils_stunclient` and relays for
//! `turnutils_uclient`, a reinstall keeps a local edit of the config, `dpkg -r`
//! removes the programs and keeps the config, `--purge` removes that too.
//!
//! It changes this machine (a package, a system account): it refuses to run
//! where a `ringturn` package is installed already, and purges its own on every
//! path. The release build it packages takes a few minutes the first time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{require_tool, run_bounded, run_in_netns, uclient_totals};

/// `dpkg --purge ringturn` when dropped, whatever path the test leaves by.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "ringturn"]).output();
    }
}

fn package_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "ringturn"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Builds the release binaries and the package as a user would
/// (`cargo build --release --workspace && cargo deb --no-build`), in a target
/// directory of its own: the one `cargo test` runs from stays locked by it.
fn build_package() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target").join("package-test");
    let out = target.join("debian");
    let _ = std::fs::remove_dir_all(&out);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for args in [
        &["build", "--release", "--workspace", "--locked"][..],
        &["deb", "--no-build", "--locked", "--fast"][..],
    ] {
        let mut cmd = Command::new(&cargo);
        cmd.args(args)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", &target);
        let run = run_bounded(cmd, Duration::from_secs(1500));
        assert!(
            run.status.is_some_and(|s| s.success()),
            "cargo {args:?} failed (cargo-deb: `cargo install cargo-deb`, see .ci/run)\n{}",
            run.transcript()
        );
    }
    let debs: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("cargo deb wrote target/package-test/debian")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package: {debs:?}");
    debs[0].clone()
}

#[test]
fn the_debian_package_installs_runs_as_its_user_and_removes_cleanly() {
    for tool in [
        "dpkg",
        "systemd-analyze",
        "setpriv",
        "turnutils_stunclient",
        "turnutils_uclient",
        "turnutils_peer",
    ] {
        require_tool(tool);
    }
    assert!(
        !package_installed(),
        "a ringturn package is installed on this machine; this test installs and purges its own"
    );
    let deb = build_package();
    let _purge = PurgeOnDrop;
    let run = run_in_netns(
        r##"
CONF=/etc/ringturn/turnserver.conf
LOG=$(mktemp)
echo "=== install"
dpkg -i "$DEB" > /dev/null 2>&1; echo "rc=$?"
echo "=== files"
for f in /usr/bin/ringturn /usr/bin/ringturn-loadgen /usr/lib/systemd/system/ringturn.service /usr/share/man/man8/ringturn.8.gz; do
  test -f "$f" && echo "present $f"
done
stat -c 'conf %U:%G %a' "$CONF"
getent passwd ringturn | cut -d: -f1,7
dpkg-query -W -f='${Conffiles}\n' ringturn | awk 'NF { print "conffile", $1 }'
echo "=== verify"
# Documentation=man: is checked with man(1) where it is installed.
MAN=yes; command -v man > /dev/null || MAN=no
systemd-analyze verify --man=$MAN /usr/lib/systemd/system/ringturn.service 2>&1; echo "rc=$?"
echo "=== serve"
setpriv --reuid=ringturn --regid=ringturn --init-groups /usr/bin/ringturn -c "$CONF" --allow-loopback-peers > "$LOG" 2>&1 &
RT=$!
turnutils_peer -L 127.0.0.1 -p 23480 > /dev/null 2>&1 &
PEER=$!
for i in $(seq 1 100); do grep -q started "$LOG" && break; sleep 0.1; done
ps -o user= -p $RT
echo "=== binding"
timeout 10 turnutils_stunclient -p 3478 127.0.0.1 2>&1 | grep -i 'reflexive'
echo "=== relay"
timeout 30 turnutils_uclient -p 3478 -l 120 -e 127.0.0.1 -r 23480 -u carol \
  -W REPLACE-ME-this-placeholder-is-public -n 20 -m 1 -z 5 127.0.0.1 2>&1 | grep tot_send_msgs | tail -1
kill -TERM $RT $PEER
wait $RT; echo "server rc=$?"
echo "=== server log"
cat "$LOG"
echo "=== reinstall"
echo "# a local edit" >> "$CONF"
dpkg -i "$DEB" > /dev/null 2>&1; echo "rc=$?"
grep -c 'a local edit' "$CONF"
echo "=== remove"
dpkg -r ringturn > /dev/null 2>&1; echo "rc=$?"
for f in /usr/bin/ringturn /usr/bin/ringturn-loadgen /usr/lib/systemd/system/ringturn.service; do
  test -e "$f" && echo "left $f"
done
test -f "$CONF" && echo "kept $CONF"
echo "=== purge"
dpkg --purge ringturn > /dev/null 2>&1; echo "rc=$?"
test -e /etc/ringturn && echo "left /etc/ringturn"
echo "=== end"
rm -f "$LOG"
"##,
        &[("DEB", deb.to_str().expect("utf-8 path"))],
        Duration::from_secs(180),
    );
    let out = run.transcript();
    let section = |name: &str| run.section(name).trim().to_owned();
    assert_eq!(section("install"), "rc=0", "dpkg -i\n{out}");
    let files = section("files");
    for f in [
        "present /usr/bin/ringturn",
        "present /usr/bin/ringturn-loadgen",
        "present /usr/lib/systemd/system/ringturn.service",
        "present /usr/share/man/man8/ringturn.8.gz",
        // The REST secret is in it: root and the service only.
        "conf root:ringturn 640",
        "ringturn:/usr/sbin/nologin",
        "conffile /etc/ringturn/turnserver.conf",
    ] {
        assert!(files.lines().any(|l| l == f), "{f}\n{out}");
    }
    assert!(
        section("verify").ends_with("rc=0"),
        "systemd-analyze verify accepts the unit\n{out}"
    );
    assert_eq!(
        section("serve"),
        "ringturn",
        "the server runs as the ringturn user\n{out}"
    );
    assert!(
        section("binding").contains("127.0.0.1"),
        "a Binding request is answered with the reflexive address\n{out}"
    );
    assert_eq!(
        uclient_totals(&section("relay")),
        (40, 40),
        "uclient relays through the installed server with REST credentials\n{out}"
    );
    assert!(section("relay").contains("server rc=0"), "{out}");
    assert_eq!(
        section("reinstall"),
        "rc=0\n1",
        "a reinstall keeps the local edit of the conffile\n{out}"
    );
    assert_eq!(
        section("remove"),
        "rc=0\nkept /etc/ringturn/turnserver.conf",
        "dpkg -r removes the programs and the unit, keeps the config\n{out}"
    );
    assert_eq!(
        section("purge"),
        "rc=0",
        "--purge removes /etc/ringturn\n{out}"
    );
    assert!(!package_installed(), "{out}");
}
