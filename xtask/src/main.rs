//! Project tasks. `cargo xtask openapi generate|check` keeps `openapi/` in step with the API
//! trait; `cargo xtask compat check` guards released clients against breaking changes;
//! `cargo xtask test` is the one command that runs every check; `cargo xtask bench` prints load
//! figures. This file owns the command line, the dispatch to the modules, `repo_root()` and the
//! OpenAPI manager's setup.
//!
//! Modules, each importing only from the ones above it (and `repo_root()` from here):
//!
//! 1. `process`: running steps and processes (`step`, `cargo`, `npm`, ports, `DevServer`);
//! 2. `tools`: installing and locating tools (pinned versions, the venv, apt, rustup, the
//!    Lambda Web Adapter);
//! 3. `lambda`: the arm64 Lambda artifact and how the Lambda-mode test runs it;
//! 4. the tasks, which import nothing from each other: `test` (`cargo xtask test`, also uses
//!    `lambda`), `bench` (`cargo xtask bench`), `compat` (the breaking-change gate, on its own).
//! 5. `infra`: tests only, of the SAM template's rules that cfn-lint and `sam validate` cannot
//!    know; imports only `repo_root()`.

use anyhow::Context;
use camino::Utf8PathBuf;
use clap::{Parser, Subcommand};
use dropshot_api_manager::{Environment, ManagedApi, ManagedApiConfig, ManagedApis};
use dropshot_api_manager_types::{ManagedApiMetadata, Versions};
use std::process::ExitCode;

mod bench;
mod compat;
mod infra;
mod lambda;
mod process;
mod test;
mod tools;

#[derive(Parser)]
#[command(about = "Project tasks for the member dashboard API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate or check the OpenAPI documents in `openapi/`.
    Openapi(dropshot_api_manager::App),
    /// Breaking-change gate: compare `openapi/dashboard.json` with the released document in
    /// `openapi-released/`, or record a release.
    Compat {
        #[command(subcommand)]
        command: compat::CompatCommand,
    },
    /// Run every check: fmt, clippy, OpenAPI drift, unit, integration and contract tests.
    Test(test::TestArgs),
    /// Build release binaries and print load figures for the server against a bare endpoint.
    Bench {
        /// wrk duration per target (for example 10s).
        #[arg(long, default_value = "10s")]
        duration: String,
        /// wrk connections.
        #[arg(long, default_value_t = 16)]
        connections: u32,
        /// An earlier run's `target/bench/latest.json`: print each figure beside it.
        #[arg(long, value_name = "OLD.json")]
        compare: Option<Utf8PathBuf>,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi(app) => Ok(app.exec(&environment()?, &managed_apis()?)),
        Command::Compat { command } => compat::run(command),
        Command::Test(args) => test::run(args),
        Command::Bench { duration, connections, compare } => {
            bench::run(&duration, connections, compare.as_deref())
        }
    }
}

/// The repository root (the workspace that holds this crate).
pub fn repo_root() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_owned()
}

pub fn environment() -> anyhow::Result<Environment> {
    // The API is lockstep, so "blessed" versions do not matter; HEAD exists in every clone,
    // whatever its remotes are called.
    Ok(Environment::new("cargo xtask openapi", repo_root(), "openapi")
        .context("setting up the OpenAPI manager environment")?
        .with_default_git_branch("HEAD"))
}

pub fn managed_apis() -> anyhow::Result<ManagedApis> {
    let version = semver::Version::parse(dashboard_api::API_VERSION)?;
    ManagedApis::new(vec![ManagedApi::from(ManagedApiConfig {
        ident: "dashboard",
        versions: Versions::new_lockstep(version),
        title: dashboard_api::API_TITLE,
        metadata: ManagedApiMetadata {
            description: Some(
                "Profile and order history for signed-in Babes Club members. Every `/dashboard/*` \
                 call needs `Authorization: Bearer <JWT>`. Every error has the body `ApiError`: a \
                 stable `error_code` (its description lists them all) and, when one input is at \
                 fault, its JSON path in the body's `field`.",
            ),
            ..Default::default()
        },
        api_description: dashboard_api::dashboard_api_mod::stub_api_description,
    })])
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropshot_api_manager::test_util::{check_apis_up_to_date, CheckResult};

    #[test]
    fn openapi_documents_are_up_to_date() {
        let result = check_apis_up_to_date(&environment().unwrap(), &managed_apis().unwrap())
            .expect("running the check");
        assert_eq!(result, CheckResult::Success, "run `cargo xtask openapi generate`");
    }

    /// The check must notice when a doc comment (and so the spec text) changes: run it against a
    /// copy of the repository whose document has one description edited.
    #[test]
    fn openapi_check_fails_when_a_doc_comment_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        std::fs::create_dir_all(root.join("openapi")).unwrap();
        let original = std::fs::read_to_string(repo_root().join("openapi/dashboard.json")).unwrap();
        let needle = "Liveness check.";
        assert!(original.contains(needle), "the spec should carry the healthz summary");
        let edited = original.replacen(needle, "Liveness probe.", 1);
        std::fs::write(root.join("openapi/dashboard.json"), edited).unwrap();
        for args in [
            &["init", "-q"][..],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "x",
            ],
        ] {
            let status =
                std::process::Command::new("git").args(args).current_dir(&root).status().unwrap();
            assert!(status.success());
        }
        let env = Environment::new("cargo xtask openapi", root.clone(), "openapi")
            .unwrap()
            .with_default_git_branch("HEAD");
        let result = check_apis_up_to_date(&env, &managed_apis().unwrap()).unwrap();
        assert_ne!(result, CheckResult::Success, "a changed doc comment must fail the check");
    }
}
