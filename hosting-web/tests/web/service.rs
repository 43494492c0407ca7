//! A distro service whose whole configuration refuses a generation that passed its own test:
//! the apply swaps back before any reload, the live tree and the include file as they were.
//! Driven through a recording runner, so no service is touched (the real services are in
//! bins/hostctl/tests/system_mode.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hosting_core::tree::ManagedTree;
use hosting_core::types::WebServerKind;
use hosting_core::{Command, CommandOutput, CommandRunner, Error, Result, WebServer};
use hosting_web::{Management, Nginx, NginxConfig, NginxService};

use crate::support::{SiteBuilder, TempDir, node_for};

/// Succeeds at everything but the whole-configuration test (`-t -c MAIN`), and records every
/// command.
#[derive(Debug, Default)]
struct DistroRefuses {
    main: PathBuf,
    ran: Mutex<Vec<Command>>,
}

#[async_trait]
impl CommandRunner for DistroRefuses {
    async fn run(&self, command: &Command) -> Result<CommandOutput> {
        self.ran.lock().expect("lock").push(command.clone());
        let refused = command
            .args
            .iter()
            .any(|a| a.as_os_str() == self.main.as_os_str());
        Ok(CommandOutput {
            code: Some(if refused { 1 } else { 0 }),
            stdout: String::new(),
            stderr: if refused {
                "nginx: [emerg] a duplicate default server for 0.0.0.0:80".to_owned()
            } else {
                String::new()
            },
        })
    }
}

fn live_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.join("live").exists() {
        walk(&root.join("live"), &mut out);
    }
    out
}

#[tokio::test]
async fn a_refused_whole_configuration_swaps_back_before_any_reload() {
    let dir = TempDir::new("service-refused");
    let site = SiteBuilder::new(1, "one.example.com", WebServerKind::Nginx).build();
    let layout = node_for(dir.path(), std::slice::from_ref(&site));
    let managed_root = dir.path().join("managed");
    let include_file = dir.path().join("conf.d/hosting-sdk.conf");
    std::fs::create_dir_all(include_file.parent().expect("parent")).expect("mkdir");
    let runner = Arc::new(DistroRefuses {
        main: dir.path().join("nginx.conf"),
        ..DistroRefuses::default()
    });
    let mut service = NginxService::default();
    service.main_config = runner.main.clone();
    service.include_file = include_file.clone();
    service.pid_file = dir.path().join("nginx.pid");
    service.managed_root = managed_root.clone();
    let mut config = NginxConfig::new(layout);
    config.runner = runner.clone();
    config.management = Management::Service(service);
    let nginx = Nginx::new(config).expect("nginx");

    // First apply: nothing was live and no include existed; neither is left behind.
    let err = nginx
        .apply(std::slice::from_ref(&site))
        .await
        .expect_err("refused");
    match err {
        Error::Validation { tool, output } => {
            assert_eq!(tool, "nginx -t");
            assert!(output.contains("duplicate default server"), "{output}");
        }
        other => panic!("expected the validator's output, got {other:?}"),
    }
    assert!(!managed_root.join("live").exists());
    assert!(!include_file.exists());

    // With a live generation and an include file the operator edited: both stay as they were.
    let tree = ManagedTree::new(&managed_root, runner.clone());
    let previous = tree
        .stage(&[hosting_core::RenderedFile {
            path: "hosting.conf".parse().expect("path"),
            contents: "# generation of an earlier apply\n".to_owned(),
        }])
        .await
        .expect("stage");
    tree.activate(&previous).expect("activate");
    std::fs::write(&include_file, "# edited by hand\n").expect("include");
    let before = live_files(&managed_root);
    runner.ran.lock().expect("lock").clear();
    nginx
        .apply(std::slice::from_ref(&site))
        .await
        .expect_err("refused");
    assert_eq!(
        live_files(&managed_root),
        before,
        "the live tree is byte-identical"
    );
    assert_eq!(
        std::fs::read_to_string(&include_file).expect("include"),
        "# edited by hand\n"
    );
    let ran = runner.ran.lock().expect("lock");
    let programs: Vec<String> = ran
        .iter()
        .map(|c| {
            std::iter::once(c.program.as_os_str())
                .chain(c.args.iter().map(|a| a.as_os_str()))
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert!(
        programs.iter().all(|c| !c.starts_with("service")),
        "the running server is not touched: {programs:#?}"
    );
    assert!(
        programs
            .iter()
            .any(|c| c.starts_with("nginx -t -c ") && c.ends_with("/test.conf -e stderr")),
        "the staged generation was tested first: {programs:#?}"
    );
}
