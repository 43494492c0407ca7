//! A hostile site account, for the race tests: swaps directories root creates in a site's home
//! for symlinks to what root owns, as fast as the kernel allows.
//!
//! `symlink-swapper DIR NAME TARGET [DIR NAME TARGET]...` loops over its targets forever. For
//! each, it keeps a decoy `DIR/.swap-NAME -> TARGET` and exchanges it with `DIR/NAME` in one
//! `renameat2(RENAME_EXCHANGE)`: whenever root has just made `DIR/NAME`, it becomes a symlink
//! to `TARGET` under root's feet. The symlink stays a millisecond (time for root to follow it),
//! then the real directory is moved aside to `DIR/.junk-N` and the symlink removed, so that
//! `NAME` is missing again and the next apply makes it anew. Each exchange prints
//! `swapped DIR/NAME` on stdout. A `DIR` that does not exist yet (a home being created) is
//! simply tried again.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rustix::fs::{AtFlags, CWD, RenameFlags};

/// One directory to swap.
struct Target {
    real: PathBuf,
    decoy: PathBuf,
    dir: PathBuf,
    link_to: PathBuf,
}

fn targets() -> Option<Vec<Target>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || !args.len().is_multiple_of(3) {
        return None;
    }
    Some(
        args.chunks(3)
            .map(|chunk| {
                let dir = PathBuf::from(&chunk[0]);
                Target {
                    real: dir.join(&chunk[1]),
                    decoy: dir.join(format!(".swap-{}", chunk[1])),
                    link_to: PathBuf::from(&chunk[2]),
                    dir,
                }
            })
            .collect(),
    )
}

fn main() -> ExitCode {
    let Some(targets) = targets() else {
        eprintln!("usage: symlink-swapper DIR NAME TARGET [DIR NAME TARGET]...");
        return ExitCode::from(2);
    };
    let mut stdout = std::io::stdout().lock();
    let mut junk = 0u64;
    loop {
        for target in &targets {
            // Missing directory or decoy already there: both are fine, the exchange tells.
            let _ = rustix::fs::symlinkat(&target.link_to, CWD, &target.decoy);
            let swapped = rustix::fs::renameat_with(
                CWD,
                &target.real,
                CWD,
                &target.decoy,
                RenameFlags::EXCHANGE,
            );
            if swapped.is_err() {
                continue;
            }
            if writeln!(stdout, "swapped {}", target.real.display())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            std::thread::sleep(Duration::from_millis(1));
            junk += 1;
            let aside = target.dir.join(format!(".junk-{junk}"));
            let _ = rustix::fs::renameat(CWD, &target.decoy, CWD, &aside);
            let _ = rustix::fs::unlinkat(CWD, &target.real, AtFlags::empty());
        }
    }
}
