//! Builds `init/init.c`, the `--init` PID 1, as a static program that
//! barge embeds: it must run inside any image, which may have no libc.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=init/init.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("barge-init");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-Wall", "-o"])
        .arg(&out)
        .arg("init/init.c")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building init/init.c with {cc} failed ({s}); a C compiler and a static libc are needed (Debian: gcc libc6-dev)"),
        Err(e) => panic!("running {cc} to build init/init.c: {e}; install a C compiler (Debian: gcc libc6-dev)"),
    }
}
