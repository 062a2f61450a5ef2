//! `GET /healthz`: the liveness report.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Liveness report.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
    /// Server version.
    pub version: String,
}
