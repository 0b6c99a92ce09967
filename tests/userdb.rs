//! coturn's SQLite user database, written by coturn's own `turnadmin`
//! (Debian `coturn`), served by ringturn (issue 13): uclient allocates with a
//! user turnadmin added, REST credentials signed with a secret set by
//! `turnadmin -s` work, a user added while ringturn runs can allocate at the
//! next refresh, and a deleted user's next Allocate is refused while the live
//! call goes on. In a network namespace of its own (TESTING.md).

mod common;

use std::time::Duration;

use common::process::{require_tool, run_in_netns, uclient_totals};

#[test]
fn a_database_written_by_turnadmin_is_served() {
    require_tool("turnadmin");
    require_tool("turnutils_uclient");
    require_tool("turnutils_peer");
    let run = run_in_netns(
        r#"
DIR=$(mktemp -d)
DB=$DIR/turndb
cd "$DIR"   # turnadmin writes its own log file where it can
turnadmin -a -b "$DB" -u alice -r example.org -p secret > /dev/null 2>&1
turnadmin -s north-wind -b "$DB" -r example.org > /dev/null 2>&1
echo "=== turnadmin list"
turnadmin -l -b "$DB" 2>/dev/null | grep -v ': ' 
printf 'listening-ip=127.0.0.1\nrealm=example.org\nuse-auth-secret\nlt-cred-mech\nallow-loopback-peers\nuserdb=%s\nuserdb-refresh=1\n' "$DB" > "$DIR/turnserver.conf"
"$RINGTURN" -c "$DIR/turnserver.conf" > "$DIR/log" 2>&1 &
RT=$!
turnutils_peer -L 127.0.0.1 -p 23480 > /dev/null 2>&1 &
PEER=$!
for i in $(seq 1 50); do grep -q started "$DIR/log" && break; sleep 0.1; done
UC="turnutils_uclient -p 3478 -l 120 -e 127.0.0.1 -r 23480"
echo "=== alice"
timeout 30 $UC -u alice -w secret -n 20 -m 1 -z 5 127.0.0.1 2>&1 | grep tot_send_msgs | tail -1
echo "=== rest"
timeout 30 $UC -u carol -W north-wind -n 20 -m 1 -z 5 127.0.0.1 2>&1 | grep tot_send_msgs | tail -1
echo "=== bob before"
timeout 30 $UC -u bob -w hunter2 -n 20 -m 1 -z 5 127.0.0.1 2>&1 | tail -1
# A call of alice's that lasts through her deletion.
timeout 60 $UC -u alice -w secret -n 200 -m 1 -z 20 127.0.0.1 > "$DIR/long.out" 2>&1 &
LONG=$!
turnadmin -a -b "$DB" -u bob -r example.org -p hunter2 > /dev/null 2>&1
sleep 1
turnadmin -d -b "$DB" -u alice -r example.org > /dev/null 2>&1
for i in $(seq 1 40); do [ "$(grep -c 'userdb changed' "$DIR/log")" -ge 2 ] && break; sleep 0.1; done
echo "=== bob after"
timeout 30 $UC -u bob -w hunter2 -n 20 -m 1 -z 5 127.0.0.1 2>&1 | grep tot_send_msgs | tail -1
echo "=== alice deleted"
timeout 30 $UC -u alice -w secret -n 20 -m 1 -z 5 127.0.0.1 2>&1 | tail -1
wait $LONG
echo "=== long"
grep tot_send_msgs "$DIR/long.out" | tail -1
kill -TERM $RT $PEER
wait $RT
echo "=== exit $?"
cat "$DIR/log"
cd /
rm -rf "$DIR"
"#,
        &[("RINGTURN", env!("CARGO_BIN_EXE_ringturn"))],
        Duration::from_secs(150),
    );
    let out = run.transcript();
    let section = |name: &str| run.section(name);
    assert!(section("turnadmin list").contains("alice"), "{out}");
    // uclient -m 1 with a peer runs two allocations.
    assert_eq!(
        uclient_totals(&section("alice")),
        (40, 40),
        "turnadmin's user relays\n{out}"
    );
    assert_eq!(
        uclient_totals(&section("rest")),
        (40, 40),
        "REST credentials from turnadmin's secret relay\n{out}"
    );
    assert_eq!(
        uclient_totals(&section("bob before")).1,
        0,
        "bob is not there yet\n{out}"
    );
    assert_eq!(
        uclient_totals(&section("bob after")),
        (40, 40),
        "bob, added while running, relays after the refresh\n{out}"
    );
    assert_eq!(
        uclient_totals(&section("alice deleted")).1,
        0,
        "alice, deleted, is refused\n{out}"
    );
    assert_eq!(
        uclient_totals(&section("long")),
        (400, 400),
        "alice's live call went on through her deletion\n{out}"
    );
    assert!(out.contains("=== exit 0"), "{out}");
}

/// The other way round: a database written by `ringturn admin` is served by
/// coturn's own `turnserver` (uclient relays with its user and with REST
/// credentials from its secret), and `turnadmin` lists what `ringturn admin`
/// lists. Plus the admin command's clear errors.
#[test]
fn a_database_written_by_ringturn_admin_is_served_by_coturn() {
    require_tool("turnadmin");
    require_tool("turnserver");
    require_tool("turnutils_uclient");
    let run = run_in_netns(
        r#"
DIR=$(mktemp -d)
DB=$DIR/turndb
cd "$DIR"
echo "=== missing"
"$RINGTURN" admin -b "$DB" list-users; echo "rc=$?"
"$RINGTURN" admin -b "$DB" add-user -r example.org -u alice -p secret
"$RINGTURN" admin -b "$DB" add-user -r example.org -u bob -p hunter2
"$RINGTURN" admin -b "$DB" add-secret -r example.org -s north-wind
echo "=== duplicate"
"$RINGTURN" admin -b "$DB" add-secret -r example.org -s north-wind; echo "rc=$?"
echo "=== ringturn list"
"$RINGTURN" admin -b "$DB" list-users
echo "=== turnadmin list"
turnadmin -l -b "$DB" 2>/dev/null | grep '\['
turnserver -n --userdb="$DB" --realm=example.org --lt-cred-mech --use-auth-secret \
  --listening-ip=127.0.0.1 --listening-port=3478 --relay-ip=127.0.0.1 --allow-loopback-peers \
  --no-tls --no-dtls --no-cli --log-file=stdout > "$DIR/coturn.log" 2>&1 &
CT=$!
turnutils_peer -L 127.0.0.1 -p 23480 > /dev/null 2>&1 &
PEER=$!
sleep 1.5
UC="turnutils_uclient -p 3478 -l 120 -e 127.0.0.1 -r 23480"
echo "=== coturn alice"
timeout 30 $UC -u alice -w secret -n 20 -m 1 -z 5 127.0.0.1 2>&1 | grep tot_send_msgs | tail -1
echo "=== coturn rest"
timeout 30 $UC -u carol -W north-wind -n 20 -m 1 -z 5 127.0.0.1 2>&1 | grep tot_send_msgs | tail -1
kill -TERM $CT $PEER
wait $CT
echo "=== end"
cd /
rm -rf "$DIR"
"#,
        &[("RINGTURN", env!("CARGO_BIN_EXE_ringturn"))],
        Duration::from_secs(90),
    );
    let out = run.transcript();
    let section = |name: &str| run.section(name);
    assert!(section("missing").contains("rc=2"), "{out}");
    assert!(
        out.contains("no such database"),
        "a missing database is named\n{out}"
    );
    assert!(section("duplicate").contains("rc=2"), "{out}");
    assert!(out.contains("already has that secret"), "{out}");
    let lines = |name: &str| -> Vec<String> {
        section(name).lines().map(|l| l.trim().to_owned()).collect()
    };
    let ours = lines("ringturn list");
    let theirs = lines("turnadmin list");
    assert_eq!(
        ours,
        vec!["alice[example.org]", "bob[example.org]"],
        "{out}"
    );
    assert_eq!(theirs, ours, "turnadmin lists the same users\n{out}");
    assert_eq!(
        uclient_totals(&section("coturn alice")),
        (40, 40),
        "coturn serves ringturn admin's user\n{out}"
    );
    assert_eq!(
        uclient_totals(&section("coturn rest")),
        (40, 40),
        "coturn serves ringturn admin's REST secret\n{out}"
    );
}
