//! The commands, as runc has them. `create` leaves the container's first
//! process set up and waiting on the exec fifo (`barge-runner`'s start
//! gate) with its PID in `--pid-file`; `start` opens the fifo, which lets
//! it `execve`; the status is read from the process (alive, and the fifo
//! still there: created).

use crate::args::{Command, Global};
use crate::state::Container;
use crate::{io_err, OcirtError};
use std::path::{Path, PathBuf};

/// Runs one command; the exit status on success.
pub fn run(g: &Global, c: &Command) -> Result<i32, OcirtError> {
    let root = || crate::state::root_dir(g.root.as_deref());
    match c.name.as_str() {
        "state" => {
            let ct = Container::load(&root()?, c.id()?)?;
            print_json(&ct.state_json())
        }
        "list" => list(&root()?),
        "spec" => write_spec(c),
        "features" => print_json(&crate::defaults::features()),
        "--version" | "version" => {
            println!(
                "{} version {}\nspec: {}",
                crate::PROGRAM_NAME,
                env!("CARGO_PKG_VERSION"),
                barge_runner::spec::OCI_VERSION
            );
            Ok(0)
        }
        other => Err(OcirtError::Usage(format!("unknown command {other:?}"))),
    }
}

fn print_json(v: &serde_json::Value) -> Result<i32, OcirtError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| OcirtError::Usage(e.to_string()))?;
    println!("{text}");
    Ok(0)
}

fn list(root: &Path) -> Result<i32, OcirtError> {
    println!("ID\tPID\tSTATUS\tBUNDLE\tCREATED");
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(0);
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if let Ok(ct) = Container::load(root, &id) {
            let r = &ct.record;
            println!(
                "{}\t{}\t{}\t{}\t{}",
                r.id,
                r.pid,
                ct.status().as_str(),
                r.bundle.display(),
                r.created
            );
        }
    }
    Ok(0)
}

fn write_spec(c: &Command) -> Result<i32, OcirtError> {
    let dir = PathBuf::from(c.value("bundle").unwrap_or("."));
    let path = dir.join("config.json");
    if path.exists() {
        return Err(OcirtError::State(format!(
            "File {} exists. Remove it first",
            path.display()
        )));
    }
    let v = crate::defaults::spec().map_err(|e| OcirtError::Bundle(e.to_string()))?;
    let text = serde_json::to_string_pretty(&v).map_err(|e| OcirtError::Bundle(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(io_err(format!("writing {}", path.display())))?;
    Ok(0)
}
