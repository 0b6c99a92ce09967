//! Builds the kernel fast path's XDP program (src/xdp/relay.bpf.c) with
//! clang when it is installed. Without clang (or the libbpf headers) ringturn
//! still builds and runs: the fast path then reports itself not built.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ringturn_xdp)");
    println!("cargo::rerun-if-changed=src/xdp/relay.bpf.c");
    println!("cargo::rerun-if-env-changed=RINGTURN_CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("relay.bpf.o");
    let clang = std::env::var("RINGTURN_CLANG").unwrap_or_else(|_| "clang".into());
    let arch_include = format!(
        "/usr/include/{}-linux-gnu",
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c"])
        .arg("src/xdp/relay.bpf.c")
        .arg("-I")
        .arg(&arch_include)
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo::rustc-cfg=ringturn_xdp"),
        Ok(s) => println!(
            "cargo::warning=the XDP fast path was not built: {clang} failed ({s}); install clang and libbpf-dev"
        ),
        Err(e) => println!(
            "cargo::warning=the XDP fast path was not built: cannot run {clang} ({e}); install clang and libbpf-dev"
        ),
    }
}
