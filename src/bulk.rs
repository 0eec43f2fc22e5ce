//! Bulk work on a tenant's records: `import` of existing suppression lists, `export`,
//! and `filter` (the "all contacts except DND" smart list).
//!
//! SKELETON: to be implemented.

use std::process::ExitCode;

/// `dndgate import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {}

/// `dndgate export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {}

/// `dndgate filter`.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {}

/// Run `dndgate import`.
pub async fn import_cmd(args: ImportArgs) -> ExitCode {
    let _ = args;
    ExitCode::from(2)
}

/// Run `dndgate export`.
pub async fn export_cmd(args: ExportArgs) -> ExitCode {
    let _ = args;
    ExitCode::from(2)
}

/// Run `dndgate filter`.
pub async fn filter_cmd(args: FilterArgs) -> ExitCode {
    let _ = args;
    ExitCode::from(2)
}
