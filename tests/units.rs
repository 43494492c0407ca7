//! The systemd units in `packaging/systemd` are ones systemd accepts, and their commands are
//! ones the binaries accept: each unit, with `/usr/local/bin/NAME` pointed at the binary this
//! build made, passes `systemd-analyze verify`, and every `Exec*=` command line parses (it is
//! run with `--help` appended, which clap answers only once every argument before it is
//! known). What the units do at boot (the panel's start and `hostctl node apply` bringing the
//! node back after a power loss) is proven by the power-loss tests of both binaries.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hosting_tests::{TempDir, env_or_skip, helper_binary};

const UNITS: [(&str, &[&str]); 2] = [
    ("hosting-panel.service", &["hosting-panel"]),
    ("hostctl-node.service", &["hostctl"]),
];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd")
}

/// The unit's text with each `/usr/local/bin/NAME` of `binaries` replaced by this build's.
fn pointed_at_this_build(text: &str, binaries: &[&str]) -> String {
    binaries.iter().fold(text.to_owned(), |text, name| {
        text.replace(
            &format!("/usr/local/bin/{name}"),
            &helper_binary(name).display().to_string(),
        )
    })
}

#[test]
fn the_shipped_units_pass_systemd_analyze_and_their_commands_parse() {
    let Some(analyze) = env_or_skip("HOSTING_TEST_SYSTEMD_ANALYZE") else {
        return;
    };
    let dir = TempDir::new();
    for (unit, binaries) in UNITS {
        let text = std::fs::read_to_string(units_dir().join(unit)).expect("read the unit");
        let local = pointed_at_this_build(&text, binaries);
        let path = dir.path().join(unit);
        std::fs::write(&path, &local).expect("write the unit");
        let out = Command::new(&analyze)
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .expect("run systemd-analyze");
        let said = String::from_utf8_lossy(&out.stderr);
        // Only lines about the unit: systemd-analyze also reports on the machine's other units.
        let about_it: Vec<&str> = said.lines().filter(|l| l.contains(unit)).collect();
        assert!(
            out.status.success() && about_it.is_empty(),
            "{unit}: systemd-analyze verify:\n{said}"
        );

        let commands: Vec<&str> = local
            .lines()
            .filter_map(|line| line.split_once('='))
            .filter(|(key, _)| key.starts_with("Exec"))
            .map(|(_, command)| command)
            .collect();
        assert!(!commands.is_empty(), "{unit} runs something");
        for command in commands {
            let mut words = command.split_whitespace();
            let program = words.next().expect("a program");
            let out = Command::new(program)
                .args(words)
                .arg("--help")
                .output()
                .expect("run the unit's command");
            assert!(
                out.status.success(),
                "{unit}: `{command}` is not a command line the binary accepts:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
