//! `cargo xtask compat check|release`: the breaking-change gate for the API document.
//!
//! `cargo xtask openapi check` proves that code and `openapi/dashboard.json` agree; this proves
//! that the document still serves clients built against the last *released* document
//! (`openapi-released/dashboard-<version>.json`), unless `info.version` (= `API_VERSION`) moved
//! to a new breaking version: a new major, or for 0.x a new minor (0.0.x: a new patch), which
//! is how Cargo's caret requirements read semver.
//!
//! Direction matters. A request schema must still accept everything it accepted (new ⊇ old);
//! a response schema must only produce what old clients can read (new ⊆ old). The Rust client
//! (Progenitor/typify) is strict about responses: an unknown enum value, an unknown field of an
//! `additionalProperties: false` object (`deny_unknown_fields`) and a value outside a string or
//! number constraint (validated newtypes) all fail to deserialize. Whatever the diff cannot
//! compare exactly (composite schemas that changed shape) is reported as breaking.

use crate::repo_root;
use anyhow::{bail, Context};
use camino::{Utf8Path, Utf8PathBuf};
use semver::Version;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Display;
use std::process::ExitCode;

/// The checked-in document (kept equal to the code by `cargo xtask openapi check`).
const CURRENT: &str = "openapi/dashboard.json";
/// Released documents live outside `openapi/`: dropshot-api-manager fails its check on any
/// directory there that is not a versioned API ("skipping directory for unknown API").
const RELEASED_DIR: &str = "openapi-released";
const FILE_PREFIX: &str = "dashboard-";
/// Deeper than any real schema; stops runaway recursion that the `$ref` guard cannot see.
const MAX_DEPTH: usize = 64;
const ADDED_TO_CLOSED: &str =
    "added to an object with additionalProperties: false (generated clients deny unknown fields)";
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

#[derive(clap::Subcommand)]
pub enum CompatCommand {
    /// Fail if `openapi/dashboard.json` breaks clients of the last released document, unless
    /// its version is a breaking bump over the released one.
    Check,
    /// Record `openapi/dashboard.json` as the released document (replacing the previous one).
    /// Run it when shipping a release.
    Release,
}

pub fn run(command: CompatCommand) -> anyhow::Result<ExitCode> {
    let root = repo_root();
    match command {
        CompatCommand::Check => check(&root),
        CompatCommand::Release => release(&root).map(|()| ExitCode::SUCCESS),
    }
}

fn check(root: &Utf8Path) -> anyhow::Result<ExitCode> {
    let (released_path, released) = latest_released(root)?;
    let outcome = evaluate(&released, &read_json(&root.join(CURRENT))?)?;
    println!(
        "Comparing {CURRENT} ({}) with {} ({})",
        outcome.current,
        released_path.strip_prefix(root).unwrap_or(&released_path),
        outcome.released
    );
    print_findings(&outcome.findings);
    match outcome.verdict() {
        Ok(summary) => {
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("error: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn release(root: &Utf8Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(root.join(CURRENT)).context(CURRENT)?;
    let current: Value = serde_json::from_str(&text).context(CURRENT)?;
    let version = doc_version(&current)?;
    let dir = root.join(RELEASED_DIR);
    if let Ok((path, released)) = latest_released(root) {
        // Releasing must not bless a break that the gate would refuse.
        let outcome = evaluate(&released, &current)?;
        if let Err(reason) = outcome.verdict() {
            print_findings(&outcome.findings);
            bail!("not releasing: {reason}");
        }
        if outcome.released == version {
            if released == current {
                println!("{path} is already the release of {version}");
                return Ok(());
            }
            // One version, one document: shipped clients are identified by the version.
            bail!(
                "{CURRENT} differs from released {version}: bump API_VERSION in api/src/lib.rs \
                 (patch for fixes and text, minor for additions) and regenerate first"
            );
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
    for (_, old) in released_files(&dir)? {
        std::fs::remove_file(&old).with_context(|| format!("removing {old}"))?;
    }
    let target = dir.join(format!("{FILE_PREFIX}{version}.json"));
    std::fs::write(&target, text).with_context(|| format!("writing {target}"))?;
    println!("Released {version} as {target}");
    Ok(())
}

fn print_findings(findings: &[Finding]) {
    for finding in findings {
        let tag = if finding.breaking { "BREAKING" } else { "info    " };
        println!("  {tag} {}", finding.message);
    }
}

fn read_json(path: &Utf8Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {path}"))
}

fn doc_version(doc: &Value) -> anyhow::Result<Version> {
    let text = doc["info"]["version"].as_str().context("document has no info.version")?;
    Version::parse(text).with_context(|| format!("info.version {text:?} is not semver"))
}

/// `dashboard-<version>.json` files in `dir`, lowest version first.
fn released_files(dir: &Utf8Path) -> anyhow::Result<Vec<(Version, Utf8PathBuf)>> {
    let mut files = Vec::new();
    for entry in dir.read_dir_utf8().with_context(|| format!("reading {dir}"))? {
        let path = entry?.into_path();
        let name = path.file_name().unwrap_or_default();
        if let Some(version) = name.strip_prefix(FILE_PREFIX).and_then(|n| n.strip_suffix(".json"))
        {
            let version = Version::parse(version).with_context(|| format!("version of {path}"))?;
            files.push((version, path));
        }
    }
    files.sort();
    Ok(files)
}

/// The released document with the highest version (normally the only one).
fn latest_released(root: &Utf8Path) -> anyhow::Result<(Utf8PathBuf, Value)> {
    let dir = root.join(RELEASED_DIR);
    let Some((version, path)) = released_files(&dir)?.pop() else {
        bail!("no {FILE_PREFIX}<version>.json in {dir}: run `cargo xtask compat release` once");
    };
    let doc = read_json(&path)?;
    let inner = doc_version(&doc)?;
    if inner != version {
        bail!("{path} holds info.version {inner}, not {version}");
    }
    Ok((path, doc))
}

/// Whether `current` may break clients of `released`: it starts a new caret-compatible line.
pub fn breaking_bump(released: &Version, current: &Version) -> bool {
    line(current) > line(released)
}

fn line(v: &Version) -> (u64, u64, u64) {
    match (v.major, v.minor) {
        (0, 0) => (0, 0, v.patch),
        (0, minor) => (0, minor, 0),
        (major, _) => (major, 0, 0),
    }
}

fn next_breaking(v: &Version) -> Version {
    match (v.major, v.minor) {
        (0, 0) => Version::new(0, 0, v.patch + 1),
        (0, minor) => Version::new(0, minor + 1, 0),
        (major, _) => Version::new(major + 1, 0, 0),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub breaking: bool,
    pub message: String,
}

#[derive(Debug)]
pub struct Outcome {
    pub released: Version,
    pub current: Version,
    pub findings: Vec<Finding>,
}

impl Outcome {
    /// `Ok(summary)` when the gate passes, `Err(reason)` when it fails.
    pub fn verdict(&self) -> Result<String, String> {
        let (released, current) = (&self.released, &self.current);
        if current < released {
            return Err(format!("info.version {current} is lower than the released {released}"));
        }
        let breaking = self.findings.iter().filter(|f| f.breaking).count();
        if breaking == 0 {
            Ok(format!("OK: no breaking change since release {released}"))
        } else if breaking_bump(released, current) {
            Ok(format!(
                "OK: {breaking} breaking change(s), allowed by the version bump {released} -> \
                 {current}; run `cargo xtask compat release` when it ships"
            ))
        } else {
            Err(format!(
                "{breaking} breaking change(s) since release {released}: keep the old \
                 behaviour, or bump API_VERSION in api/src/lib.rs to {} and run \
                 `cargo xtask openapi generate`",
                next_breaking(released)
            ))
        }
    }
}

/// Compares two documents: every change, breaking or not, with the versions.
pub fn evaluate(released: &Value, current: &Value) -> anyhow::Result<Outcome> {
    Ok(Outcome {
        released: doc_version(released)?,
        current: doc_version(current)?,
        findings: diff(released, current),
    })
}

pub fn diff(old: &Value, new: &Value) -> Vec<Finding> {
    let mut d = Diff { old, new, findings: Vec::new(), in_progress: HashSet::new() };
    d.documents();
    d.findings
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Dir {
    /// What clients send: the new schema must accept at least what the old one did.
    Request,
    /// What clients read: the new schema must produce at most what the old one did.
    Response,
}

/// How a constraint moved.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Move {
    Narrower,
    Wider,
    /// Changed in a way that is neither (a different pattern or format).
    Different,
}

impl Move {
    fn breaks(self, dir: Dir) -> bool {
        !matches!((self, dir), (Move::Narrower, Dir::Response) | (Move::Wider, Dir::Request))
    }
}

/// A schema after `$ref`s and Dropshot's one-element `allOf` wrappers are followed.
struct Resolved<'a> {
    schema: &'a Value,
    nullable: bool,
    /// The last component name followed, for the cycle guard.
    name: Option<&'a str>,
}

enum Kind<'a> {
    Enum(Vec<&'a Value>),
    Composite(&'static str, &'a [Value]),
    Type(&'a str),
    Any,
}

struct Diff<'a> {
    old: &'a Value,
    new: &'a Value,
    findings: Vec<Finding>,
    /// (old component, new component, direction) pairs being compared further up the stack.
    in_progress: HashSet<(&'a str, &'a str, Dir)>,
}

impl<'a> Diff<'a> {
    fn report(&mut self, breaking: bool, loc: &str, path: &str, what: impl Display) {
        let message = if path.is_empty() {
            format!("{loc}: {what}")
        } else {
            format!("{loc}: field {path} {what}")
        };
        self.findings.push(Finding { breaking, message });
    }

    fn documents(&mut self) {
        let (old_ops, new_ops) = (operations(self.old), operations(self.new));
        for (key, &(old_path, old_op, old_item)) in &old_ops {
            let method = key.1.to_uppercase();
            match new_ops.get(key) {
                None => self.report(true, &format!("{method} {old_path}"), "", "operation removed"),
                Some(&(new_path, new_op, new_item)) => {
                    let loc = format!("{method} {new_path}");
                    if old_path != new_path {
                        self.report(
                            false,
                            &loc,
                            "",
                            format!("path parameters renamed (was {old_path})"),
                        );
                    }
                    self.operation(
                        &loc,
                        (old_path, old_op, old_item),
                        (new_path, new_op, new_item),
                    );
                }
            }
        }
        for (key, &(new_path, _, _)) in &new_ops {
            if !old_ops.contains_key(key) {
                self.report(
                    false,
                    &format!("{} {new_path}", key.1.to_uppercase()),
                    "",
                    "operation added",
                );
            }
        }
        // Component descriptions are not seen at the places that use them.
        let (old_schemas, new_schemas) =
            (&self.old["components"]["schemas"], &self.new["components"]["schemas"]);
        if let (Some(old_schemas), Some(new_schemas)) =
            (old_schemas.as_object(), new_schemas.as_object())
        {
            for (name, old_schema) in old_schemas {
                if let Some(new_schema) = new_schemas.get(name) {
                    if old_schema.get("description") != new_schema.get("description") {
                        self.report(false, &format!("schema {name}"), "", "description changed");
                    }
                }
            }
        }
    }

    fn operation(
        &mut self,
        loc: &str,
        old: (&str, &'a Value, &'a Value),
        new: (&str, &'a Value, &'a Value),
    ) {
        let ((old_path, old_op, old_item), (new_path, new_op, new_item)) = (old, new);
        for key in ["summary", "description", "operationId", "deprecated", "tags"] {
            if old_op.get(key) != new_op.get(key) {
                self.report(false, loc, "", format!("{key} changed"));
            }
        }
        self.parameters(
            loc,
            parameters(self.old, old_path, old_item, old_op),
            parameters(self.new, new_path, new_item, new_op),
        );
        self.request_body(loc, old_op.get("requestBody"), new_op.get("requestBody"));
        self.responses(loc, &old_op["responses"], &new_op["responses"]);
    }

    fn parameters(
        &mut self,
        loc: &str,
        old: Result<Params<'a>, String>,
        new: Result<Params<'a>, String>,
    ) {
        let (old, new) = match (old, new) {
            (Ok(old), Ok(new)) => (old, new),
            (Err(e), _) | (_, Err(e)) => return self.report(true, loc, "", e),
        };
        for (key, (old_name, old_param)) in &old {
            let required = |p: &Value| p["required"] == Value::Bool(true);
            match new.get(key) {
                // Dropshot ignores query parameters and headers it does not know.
                None => self.report(
                    false,
                    loc,
                    "",
                    format!("{} parameter {old_name} removed (ignored if sent)", key.0),
                ),
                Some((new_name, new_param)) => {
                    let ploc = format!("{loc} {} parameter {new_name}", key.0);
                    if !required(old_param) && required(new_param) {
                        self.report(true, &ploc, "", "is now required");
                    } else if required(old_param) && !required(new_param) {
                        self.report(false, &ploc, "", "is now optional");
                    }
                    if old_param.get("description") != new_param.get("description") {
                        self.report(false, &ploc, "", "description changed");
                    }
                    self.schema(
                        &ploc,
                        "",
                        Dir::Request,
                        &old_param["schema"],
                        &new_param["schema"],
                        0,
                    );
                }
            }
        }
        for (key, (name, param)) in &new {
            if !old.contains_key(key) {
                let required = param["required"] == Value::Bool(true);
                let what = if required { "added, required" } else { "added, optional" };
                self.report(required, loc, "", format!("{} parameter {name} {what}", key.0));
            }
        }
    }

    fn request_body(&mut self, loc: &str, old: Option<&'a Value>, new: Option<&'a Value>) {
        let loc = format!("{loc} request body");
        let old = old.map(|b| deref(self.old, b)).transpose();
        let new = new.map(|b| deref(self.new, b)).transpose();
        let (old, new) = match (old, new) {
            (Ok(old), Ok(new)) => (old, new),
            (Err(e), _) | (_, Err(e)) => return self.report(true, &loc, "", e),
        };
        let required = |b: &Value| b["required"] == Value::Bool(true);
        match (old, new) {
            (None, None) => {}
            (None, Some(new)) => self.report(
                required(new),
                &loc,
                "",
                if required(new) { "added, required" } else { "added, optional" },
            ),
            (Some(_), None) => self.report(false, &loc, "", "removed (ignored if sent)"),
            (Some(old), Some(new)) => {
                if !required(old) && required(new) {
                    self.report(true, &loc, "", "is now required");
                }
                self.content(&loc, Dir::Request, &old["content"], &new["content"]);
            }
        }
    }

    fn responses(&mut self, loc: &str, old: &'a Value, new: &'a Value) {
        let (old_map, new_map) = (map_of(old), map_of(new));
        for (status, old_response) in &old_map {
            let rloc = format!("{loc} {status} response");
            let Some(new_response) = new_map.get(status) else {
                self.report(true, &rloc, "", "removed");
                continue;
            };
            let (old_response, new_response) =
                match (deref(self.old, old_response), deref(self.new, new_response)) {
                    (Ok(o), Ok(n)) => (o, n),
                    (Err(e), _) | (_, Err(e)) => {
                        self.report(true, &rloc, "", e);
                        continue;
                    }
                };
            self.content(&rloc, Dir::Response, &old_response["content"], &new_response["content"]);
            self.headers(&rloc, &old_response["headers"], &new_response["headers"]);
        }
        for status in new_map.keys().filter(|s| !old_map.contains_key(*s)) {
            // Old clients take an unknown success status for an error; error ranges are already
            // covered by 4XX/5XX.
            let breaking = status.starts_with('2');
            self.report(breaking, &format!("{loc} {status} response"), "", "added");
        }
    }

    fn headers(&mut self, loc: &str, old: &'a Value, new: &'a Value) {
        let (old_map, new_map) = (map_of(old), map_of(new));
        for (name, old_header) in &old_map {
            let hloc = format!("{loc} header {name}");
            let (old_header, new_header) = match (
                deref(self.old, old_header),
                new_map.get(name).map(|h| deref(self.new, h)).transpose(),
            ) {
                (Ok(o), Ok(n)) => (o, n),
                (Err(e), _) | (_, Err(e)) => {
                    self.report(true, &hloc, "", e);
                    continue;
                }
            };
            let required = |h: &Value| h["required"] == Value::Bool(true);
            match new_header {
                None => self.report(true, &hloc, "", "removed"),
                Some(new_header) => {
                    if required(old_header) && !required(new_header) {
                        self.report(true, &hloc, "", "is no longer always sent");
                    }
                    self.schema(
                        &hloc,
                        "",
                        Dir::Response,
                        &old_header["schema"],
                        &new_header["schema"],
                        0,
                    );
                }
            }
        }
        for name in new_map.keys().filter(|n| !old_map.contains_key(*n)) {
            self.report(false, &format!("{loc} header {name}"), "", "added");
        }
    }

    fn content(&mut self, loc: &str, dir: Dir, old: &'a Value, new: &'a Value) {
        let (old_map, new_map) = (map_of(old), map_of(new));
        for (media, old_media) in &old_map {
            match new_map.get(media) {
                None => self.report(true, loc, "", format!("content type {media} removed")),
                Some(new_media) => {
                    self.schema(loc, "", dir, &old_media["schema"], &new_media["schema"], 0)
                }
            }
        }
        for media in new_map.keys().filter(|m| !old_map.contains_key(*m)) {
            // A new request type is one more accepted; a new response type old clients may not
            // have asked for (Dropshot sends one per response).
            self.report(dir == Dir::Response, loc, "", format!("content type {media} added"));
        }
    }

    fn schema(
        &mut self,
        loc: &str,
        path: &str,
        dir: Dir,
        old_raw: &'a Value,
        new_raw: &'a Value,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return self.report(true, loc, path, "nests too deeply to compare");
        }
        if old_raw.get("description") != new_raw.get("description") {
            self.report(false, loc, path, "description changed");
        }
        let (old, new) = match (resolve(self.old, old_raw), resolve(self.new, new_raw)) {
            (Ok(old), Ok(new)) => (old, new),
            (Err(e), _) | (_, Err(e)) => return self.report(true, loc, path, e),
        };
        // A pair of components already being compared up the stack: a `$ref` cycle.
        let guard = old.name.zip(new.name).map(|(o, n)| (o, n, dir));
        if let Some(key) = guard {
            if !self.in_progress.insert(key) {
                return;
            }
        }
        self.resolved(loc, path, dir, (old_raw, &old), (new_raw, &new), depth);
        if let Some(key) = guard {
            self.in_progress.remove(&key);
        }
    }

    fn resolved(
        &mut self,
        loc: &str,
        path: &str,
        dir: Dir,
        old: (&'a Value, &Resolved<'a>),
        new: (&'a Value, &Resolved<'a>),
        depth: usize,
    ) {
        let ((old_raw, old), (new_raw, new)) = (old, new);
        let (old_kind, new_kind) = (kind(self.old, old.schema), kind(self.new, new.schema));
        let (old_null, new_null) =
            (old.nullable || enum_has_null(&old_kind), new.nullable || enum_has_null(&new_kind));
        match (old_null, new_null, dir) {
            (false, true, Dir::Response) => self.report(true, loc, path, "may now be null"),
            (true, false, Dir::Request) => self.report(true, loc, path, "no longer accepts null"),
            (false, true, Dir::Request) => self.report(false, loc, path, "now accepts null"),
            (true, false, Dir::Response) => self.report(false, loc, path, "is no longer null"),
            _ => {}
        }
        let old_default = old_raw.get("default").or(old.schema.get("default"));
        let new_default = new_raw.get("default").or(new.schema.get("default"));
        if old_default != new_default {
            let show = |v: Option<&Value>| v.map_or("none".to_string(), Value::to_string);
            self.report(
                false,
                loc,
                path,
                format!("default changed from {} to {}", show(old_default), show(new_default)),
            );
        }
        match (&old_kind, &new_kind) {
            (Kind::Enum(old_values), Kind::Enum(new_values)) => {
                for value in old_values.iter().filter(|v| !v.is_null() && !new_values.contains(v)) {
                    let breaking = dir == Dir::Request;
                    let why = if breaking { " (old clients may still send it)" } else { "" };
                    self.report(breaking, loc, path, format!("enum value {value} removed{why}"));
                }
                for value in new_values.iter().filter(|v| !v.is_null() && !old_values.contains(v)) {
                    let breaking = dir == Dir::Response;
                    let why =
                        if breaking { " (generated Rust enums reject unknown values)" } else { "" };
                    self.report(breaking, loc, path, format!("enum value {value} added{why}"));
                }
            }
            (Kind::Enum(values), Kind::Type(t)) if enum_type(values) == Some(*t) => {
                self.report(dir == Dir::Response, loc, path, format!("was an enum, now any {t}"));
            }
            (Kind::Type(t), Kind::Enum(values)) if enum_type(values) == Some(*t) => {
                self.report(dir == Dir::Request, loc, path, format!("was any {t}, now an enum"));
            }
            (Kind::Type(old_type), Kind::Type(new_type)) if old_type == new_type => {
                self.constraints(loc, path, dir, old.schema, new.schema);
                match *new_type {
                    "array" => {
                        let items =
                            if path.is_empty() { "[]".to_string() } else { format!("{path}[]") };
                        self.schema(
                            loc,
                            &items,
                            dir,
                            &old.schema["items"],
                            &new.schema["items"],
                            depth + 1,
                        );
                    }
                    "object" => self.object(loc, path, dir, old.schema, new.schema, depth),
                    _ => {}
                }
            }
            (Kind::Type("integer"), Kind::Type("number")) => {
                self.report(dir == Dir::Response, loc, path, "type changed from integer to number");
            }
            (Kind::Type("number"), Kind::Type("integer")) => {
                self.report(dir == Dir::Request, loc, path, "type changed from number to integer");
            }
            (Kind::Any, Kind::Any) => {}
            (Kind::Any, _) => {
                self.report(dir == Dir::Request, loc, path, "was unconstrained, now has a schema")
            }
            (_, Kind::Any) => {
                self.report(dir == Dir::Response, loc, path, "had a schema, now unconstrained")
            }
            (Kind::Composite(old_kw, old_branches), Kind::Composite(new_kw, new_branches))
                if old_kw == new_kw && old_branches.len() == new_branches.len() =>
            {
                for (o, n) in old_branches.iter().zip(new_branches.iter()) {
                    self.schema(loc, path, dir, o, n, depth + 1);
                }
            }
            (Kind::Composite(..), _) | (_, Kind::Composite(..)) => {
                self.report(
                    true,
                    loc,
                    path,
                    format!(
                        "changed from {} to {}; cannot compare exactly",
                        describe(&old_kind),
                        describe(&new_kind)
                    ),
                );
            }
            _ => self.report(
                true,
                loc,
                path,
                format!("type changed from {} to {}", describe(&old_kind), describe(&new_kind)),
            ),
        }
    }

    fn constraints(&mut self, loc: &str, path: &str, dir: Dir, old: &Value, new: &Value) {
        let num = |s: &Value, key: &str| s.get(key).and_then(Value::as_f64);
        // (keyword, is an upper bound, value when absent)
        let bounds: [(&str, bool, Option<f64>); 8] = [
            ("maximum", true, None),
            ("maxLength", true, None),
            ("maxItems", true, None),
            ("maxProperties", true, None),
            ("minimum", false, None),
            ("minLength", false, Some(0.0)),
            ("minItems", false, Some(0.0)),
            ("minProperties", false, Some(0.0)),
        ];
        for (key, upper, absent) in bounds {
            let (o, n) = (num(old, key).or(absent), num(new, key).or(absent));
            let moved = match (o, n) {
                (Some(o), Some(n)) if o == n => None,
                (None, None) => None,
                (Some(o), Some(n)) => {
                    Some(if (n < o) == upper { Move::Narrower } else { Move::Wider })
                }
                (None, Some(_)) => Some(Move::Narrower),
                (Some(_), None) => Some(Move::Wider),
            };
            if let Some(moved) = moved {
                self.constraint(loc, path, dir, key, moved, old.get(key), new.get(key));
            }
        }
        // Flags that only narrow when switched on.
        for key in ["exclusiveMaximum", "exclusiveMinimum", "uniqueItems"] {
            let on = |s: &Value| s.get(key) == Some(&Value::Bool(true));
            if on(old) != on(new) {
                let moved = if on(new) { Move::Narrower } else { Move::Wider };
                self.constraint(loc, path, dir, key, moved, old.get(key), new.get(key));
            }
        }
        for key in ["pattern", "multipleOf", "format"] {
            let (o, n) = (old.get(key), new.get(key));
            if o == n {
                continue;
            }
            let moved = match (o, n) {
                (None, _) => Move::Narrower,
                (_, None) => Move::Wider,
                _ if key == "format" => format_move(o, n),
                _ => Move::Different,
            };
            self.constraint(loc, path, dir, key, moved, o, n);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn constraint(
        &mut self,
        loc: &str,
        path: &str,
        dir: Dir,
        key: &str,
        moved: Move,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        let show = |v: Option<&Value>| v.map_or("none".to_string(), Value::to_string);
        let breaking = moved.breaks(dir);
        let why = match (breaking, dir) {
            (false, _) => "",
            (true, Dir::Request) => " (old clients' requests may be rejected)",
            (true, Dir::Response) => " (old clients may reject responses)",
        };
        self.report(
            breaking,
            loc,
            path,
            format!("{key} changed from {} to {}{why}", show(old), show(new)),
        );
    }

    fn object(
        &mut self,
        loc: &str,
        path: &str,
        dir: Dir,
        old: &'a Value,
        new: &'a Value,
        depth: usize,
    ) {
        let (old_props, new_props) = (map_of(&old["properties"]), map_of(&new["properties"]));
        let old_required = required_set(old);
        let new_required = required_set(new);
        // `additionalProperties: false` is Dropshot's deny_unknown_fields on requests and
        // typify's on generated response types.
        let old_closed = old.get("additionalProperties") == Some(&Value::Bool(false));
        let new_closed = new.get("additionalProperties") == Some(&Value::Bool(false));
        let field =
            |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
        for (name, old_prop) in &old_props {
            let was_required = old_required.contains(name);
            let is_required = new_required.contains(name);
            let Some(new_prop) = new_props.get(name) else {
                match dir {
                    Dir::Response => {
                        let was = if was_required { "" } else { " (was optional)" };
                        self.report(true, loc, &field(name), format!("removed{was}"));
                    }
                    Dir::Request if new_closed => self.report(
                        true,
                        loc,
                        &field(name),
                        "removed (old clients sending it get 400 unknown_field)",
                    ),
                    Dir::Request => {
                        self.report(false, loc, &field(name), "removed (ignored if sent)")
                    }
                }
                continue;
            };
            match (was_required, is_required, dir) {
                (true, false, Dir::Response) => {
                    self.report(true, loc, &field(name), "is no longer required")
                }
                (false, true, Dir::Request) => {
                    self.report(true, loc, &field(name), "is now required")
                }
                (true, false, Dir::Request) => {
                    self.report(false, loc, &field(name), "is now optional")
                }
                (false, true, Dir::Response) => {
                    self.report(false, loc, &field(name), "is now always present")
                }
                _ => {}
            }
            self.schema(loc, &field(name), dir, old_prop, new_prop, depth + 1);
        }
        for name in new_props.keys().filter(|n| !old_props.contains_key(*n)) {
            let required = new_required.contains(name);
            match dir {
                Dir::Request if required => self.report(true, loc, &field(name), "added, required"),
                Dir::Request => self.report(false, loc, &field(name), "added, optional"),
                Dir::Response if old_closed => {
                    self.report(true, loc, &field(name), ADDED_TO_CLOSED)
                }
                Dir::Response => self.report(false, loc, &field(name), "added"),
            }
        }
        // What else the object allows: closed (false), open (true/absent) or a map schema.
        let old_extra = old.get("additionalProperties").filter(|v| v.is_object());
        let new_extra = new.get("additionalProperties").filter(|v| v.is_object());
        match (old_extra, new_extra) {
            (Some(o), Some(n)) => {
                let entries = if path.is_empty() { "*".to_string() } else { format!("{path}.*") };
                self.schema(loc, &entries, dir, o, n, depth + 1);
            }
            _ => {
                let rank = |closed: bool, extra: Option<&Value>| {
                    if closed {
                        0
                    } else if extra.is_some() {
                        1
                    } else {
                        2
                    }
                };
                let (o, n) = (rank(old_closed, old_extra), rank(new_closed, new_extra));
                if o != n {
                    let moved = if n < o { Move::Narrower } else { Move::Wider };
                    let (ov, nv) =
                        (old.get("additionalProperties"), new.get("additionalProperties"));
                    self.constraint(loc, path, dir, "additionalProperties", moved, ov, nv);
                }
            }
        }
    }
}

/// Operations keyed by (path with parameter names blanked, method): renaming a path parameter
/// does not change the URL.
type Operations<'a> = BTreeMap<(String, &'static str), (&'a str, &'a Value, &'a Value)>;

fn operations(doc: &Value) -> Operations<'_> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.insert((blank_params(path), method), (path.as_str(), op, item));
            }
        }
    }
    ops
}

fn blank_params(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') && seg.ends_with('}') { "{}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Parameters keyed by (location, name); path parameters by their position instead.
type Params<'a> = BTreeMap<(String, String), (String, &'a Value)>;

fn parameters<'a>(
    doc: &'a Value,
    path: &str,
    item: &'a Value,
    op: &'a Value,
) -> Result<Params<'a>, String> {
    let mut params = BTreeMap::new();
    let listed = item["parameters"].as_array().into_iter().flatten();
    for param in listed.chain(op["parameters"].as_array().into_iter().flatten()) {
        let param = deref(doc, param)?;
        let location = param["in"].as_str().unwrap_or("?").to_string();
        let name = param["name"].as_str().unwrap_or("?").to_string();
        let key = if location == "path" {
            let position = path.split('/').position(|seg| seg == format!("{{{name}}}"));
            position.map_or(name.clone(), |p| format!("#{p}"))
        } else {
            name.clone()
        };
        // Header names are case-insensitive on the wire.
        let key = if location == "header" { key.to_ascii_lowercase() } else { key };
        params.insert((location, key), (name, param));
    }
    Ok(params)
}

/// Follows a `$ref` to any object inside the same document (responses, parameters, ...).
fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..16 {
        let Some(target) = value.get("$ref").and_then(Value::as_str) else {
            return Ok(value);
        };
        let pointer = target
            .strip_prefix('#')
            .ok_or_else(|| format!("cannot follow external $ref {target}"))?;
        value = doc.pointer(pointer).ok_or_else(|| format!("$ref {target} does not resolve"))?;
    }
    Err("$ref chain too long (a cycle?)".to_string())
}

/// Keys a one-element `allOf` wrapper may carry and still be only a wrapper.
const WRAPPER_KEYS: [&str; 9] = [
    "allOf",
    "nullable",
    "description",
    "default",
    "title",
    "example",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Follows `$ref`s and Dropshot's `{allOf: [{$ref}], nullable, description, default}` wrappers.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> Result<Resolved<'a>, String> {
    let mut nullable = false;
    let mut name = None;
    for _ in 0..32 {
        nullable |= schema.get("nullable") == Some(&Value::Bool(true));
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            let component = target
                .strip_prefix("#/components/schemas/")
                .ok_or_else(|| format!("cannot follow $ref {target}"))?;
            schema = doc["components"]["schemas"]
                .get(component)
                .ok_or_else(|| format!("$ref {target} does not resolve"))?;
            name = Some(component);
            continue;
        }
        if let Some([only]) = schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            let wrapper_only = schema.as_object().is_some_and(|o| {
                o.keys().all(|k| WRAPPER_KEYS.contains(&k.as_str()) || k.starts_with("x-"))
            });
            if wrapper_only {
                schema = only;
                continue;
            }
        }
        return Ok(Resolved { schema, nullable, name });
    }
    Err("$ref chain too long (a cycle?)".to_string())
}

fn kind<'a>(doc: &'a Value, schema: &'a Value) -> Kind<'a> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Kind::Enum(values.iter().collect());
    }
    for keyword in ["oneOf", "anyOf", "allOf"] {
        if let Some(branches) = schema.get(keyword).and_then(Value::as_array) {
            // schemars emits an enum with documented variants as a oneOf of one-value enums.
            if keyword != "allOf" {
                let mut values = Vec::new();
                let all_enums = branches.iter().all(|branch| {
                    let Ok(branch) = resolve(doc, branch) else { return false };
                    let plain = branch.schema.get("properties").is_none();
                    match branch.schema.get("enum").and_then(Value::as_array) {
                        Some(vs) if plain => {
                            values.extend(vs.iter());
                            true
                        }
                        _ => false,
                    }
                });
                if all_enums && !branches.is_empty() {
                    return Kind::Enum(values);
                }
            }
            return Kind::Composite(keyword, branches);
        }
    }
    if let Some(not) = schema.get("not") {
        return Kind::Composite("not", std::slice::from_ref(not));
    }
    match schema.get("type") {
        Some(Value::String(t)) => Kind::Type(t.as_str()),
        Some(other) => Kind::Composite("type list", std::slice::from_ref(other)),
        None if schema.get("properties").is_some()
            || schema.get("additionalProperties").is_some() =>
        {
            Kind::Type("object")
        }
        None if schema.get("items").is_some() => Kind::Type("array"),
        None => Kind::Any,
    }
}

fn enum_has_null(kind: &Kind) -> bool {
    matches!(kind, Kind::Enum(values) if values.iter().any(|v| v.is_null()))
}

/// The JSON type of an enum's values, when they share one.
fn enum_type(values: &[&Value]) -> Option<&'static str> {
    let mut types = values.iter().filter(|v| !v.is_null()).map(|v| match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        _ => "other",
    });
    let first = types.next()?;
    types.all(|t| t == first).then_some(first)
}

fn describe(kind: &Kind) -> String {
    match kind {
        Kind::Enum(values) => format!("an enum of {}", values.len()),
        Kind::Composite(keyword, branches) => format!("{keyword} of {}", branches.len()),
        Kind::Type(t) => t.to_string(),
        Kind::Any => "anything".to_string(),
    }
}

fn map_of(value: &Value) -> BTreeMap<&str, &Value> {
    value.as_object().into_iter().flatten().map(|(k, v)| (k.as_str(), v)).collect()
}

fn required_set(schema: &Value) -> BTreeSet<&str> {
    schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

/// Integer formats are ranges (Progenitor maps them to Rust integer types); other formats are
/// opaque, so any change is reported both ways.
fn format_move(old: Option<&Value>, new: Option<&Value>) -> Move {
    let range = |v: Option<&Value>| -> Option<(i128, i128)> {
        Some(match v?.as_str()? {
            "int8" => (i8::MIN.into(), i8::MAX.into()),
            "uint8" => (0, u8::MAX.into()),
            "int16" => (i16::MIN.into(), i16::MAX.into()),
            "uint16" => (0, u16::MAX.into()),
            "int32" => (i32::MIN.into(), i32::MAX.into()),
            "uint32" => (0, u32::MAX.into()),
            "int64" => (i64::MIN.into(), i64::MAX.into()),
            "uint64" => (0, u64::MAX.into()),
            _ => return None,
        })
    };
    match (range(old), range(new)) {
        (Some((old_lo, old_hi)), Some((new_lo, new_hi))) => {
            if new_lo <= old_lo && new_hi >= old_hi {
                Move::Wider
            } else if new_lo >= old_lo && new_hi <= old_hi {
                Move::Narrower
            } else {
                Move::Different
            }
        }
        _ => Move::Different,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The released document, which the edits below start from.
    /// The real released document, labelled 0.1.0 so the version rules below do not move
    /// with each release.
    fn released() -> Value {
        let mut doc = latest_released(&repo_root()).expect("a released document").1;
        doc["info"]["version"] = json!("0.1.0");
        doc
    }

    fn schema_mut<'v>(doc: &'v mut Value, name: &str) -> &'v mut Value {
        doc.pointer_mut(&format!("/components/schemas/{name}"))
            .unwrap_or_else(|| panic!("schema {name}"))
    }

    fn remove_required(schema: &mut Value, field: &str) {
        schema["required"].as_array_mut().unwrap().retain(|v| v != field);
    }

    fn breaking(findings: &[Finding]) -> Vec<&str> {
        findings.iter().filter(|f| f.breaking).map(|f| f.message.as_str()).collect()
    }

    /// Runs the gate; `Ok` when it passes.
    fn gate(old: &Value, new: &Value) -> Result<String, String> {
        evaluate(old, new).unwrap().verdict()
    }

    #[test]
    fn released_document_is_compatible_with_itself() {
        let doc = released();
        assert_eq!(diff(&doc, &doc), vec![]);
        assert!(gate(&doc, &doc).is_ok());
    }

    #[test]
    fn removing_a_response_field_is_breaking() {
        let old = released();
        let mut new = old.clone();
        let summary = schema_mut(&mut new, "OrderSummary");
        summary["properties"].as_object_mut().unwrap().remove("orderNumber");
        remove_required(summary, "orderNumber");
        let findings = diff(&old, &new);
        assert!(
            breaking(&findings)
                .contains(&"GET /dashboard/orders 200 response: field items[].orderNumber removed"),
            "{findings:#?}"
        );
        let reason = gate(&old, &new).unwrap_err();
        assert!(reason.contains("bump API_VERSION") && reason.contains("0.2.0"), "{reason}");
    }

    #[test]
    fn adding_an_optional_response_field_passes() {
        let old = released();
        let mut new = old.clone();
        schema_mut(&mut new, "OrderSummary")["properties"]["giftMessage"] =
            json!({"nullable": true, "description": "A note.", "type": "string"});
        let findings = diff(&old, &new);
        assert_eq!(breaking(&findings), Vec::<&str>::new());
        assert!(
            findings.iter().any(|f| f.message.contains("items[].giftMessage added")),
            "{findings:#?}"
        );
        assert!(gate(&old, &new).is_ok());
    }

    #[test]
    fn adding_a_field_to_a_closed_response_object_is_breaking() {
        // DashboardSettings is `additionalProperties: false` and is also read in Profile.
        let old = released();
        let mut new = old.clone();
        schema_mut(&mut new, "DashboardSettings")["properties"]["fontSize"] =
            json!({"default": 12, "type": "integer", "format": "uint32", "minimum": 0});
        let findings = diff(&old, &new);
        let breaking = breaking(&findings);
        assert!(
            breaking.iter().any(|m| m.starts_with(
                "GET /dashboard/profile 200 response: field dashboardSettings.fontSize added"
            )),
            "{findings:#?}"
        );
        // The request side alone would be fine.
        assert!(!breaking.iter().any(|m| m.contains("request body")), "{findings:#?}");
    }

    #[test]
    fn adding_a_required_request_field_is_breaking() {
        let old = released();
        let mut new = old.clone();
        let update = schema_mut(&mut new, "ProfileUpdate");
        update["properties"]["nickname"] = json!({"type": "string"});
        update["required"] = json!(["nickname"]);
        let findings = diff(&old, &new);
        assert_eq!(
            breaking(&findings),
            vec!["PUT /dashboard/profile request body: field nickname added, required"]
        );
        assert!(gate(&old, &new).is_err());
    }

    #[test]
    fn adding_an_optional_request_field_passes() {
        let old = released();
        let mut new = old.clone();
        schema_mut(&mut new, "ProfileUpdate")["properties"]["nickname"] =
            json!({"nullable": true, "default": null, "type": "string"});
        assert!(gate(&old, &new).is_ok());
    }

    #[test]
    fn removing_an_enum_value_is_breaking() {
        // OrderStatus is also a query filter: clients may send the removed value.
        let old = released();
        let mut new = old.clone();
        schema_mut(&mut new, "OrderStatus")["oneOf"]
            .as_array_mut()
            .unwrap()
            .retain(|b| b["enum"][0] != "disputed");
        let findings = diff(&old, &new);
        assert!(
            breaking(&findings).iter().any(|m| m.starts_with(
                "GET /dashboard/orders query parameter status: enum value \"disputed\" removed"
            )),
            "{findings:#?}"
        );
        assert!(gate(&old, &new).is_err());
    }

    #[test]
    fn adding_a_response_enum_value_is_breaking() {
        let old = released();
        let mut new = old.clone();
        schema_mut(&mut new, "OrderStatus")["oneOf"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "string", "enum": ["on_hold"]}));
        let findings = diff(&old, &new);
        assert!(
            breaking(&findings).iter().any(|m| {
                m.starts_with(
                "GET /dashboard/orders/{orderId} 200 response: field status enum value \"on_hold\" \
                 added"
            )
            }),
            "{findings:#?}"
        );
    }

    #[test]
    fn removing_an_operation_is_breaking() {
        let old = released();
        let mut new = old.clone();
        new["paths"].as_object_mut().unwrap().remove("/dashboard/sync-status");
        assert_eq!(
            breaking(&diff(&old, &new)),
            vec!["GET /dashboard/sync-status: operation removed"]
        );
        assert!(gate(&old, &new).is_err());
    }

    #[test]
    fn a_breaking_change_passes_with_a_breaking_version_bump() {
        let old = released();
        let mut new = old.clone();
        new["paths"].as_object_mut().unwrap().remove("/dashboard/sync-status");
        for (version, passes) in [("0.1.1", false), ("0.2.0", true), ("1.0.0", true)] {
            new["info"]["version"] = json!(version);
            assert_eq!(gate(&old, &new).is_ok(), passes, "{version}");
        }
        // A version lower than the release never passes.
        let mut lower = old.clone();
        lower["info"]["version"] = json!("0.0.9");
        assert!(gate(&old, &lower).is_err());
    }

    #[test]
    fn semver_lines() {
        let v = |s| Version::parse(s).unwrap();
        assert!(breaking_bump(&v("1.4.2"), &v("2.0.0")));
        assert!(!breaking_bump(&v("1.4.2"), &v("1.5.0")));
        assert!(breaking_bump(&v("0.0.3"), &v("0.0.4")));
        assert!(!breaking_bump(&v("0.1.0"), &v("0.1.9")));
        assert_eq!(next_breaking(&v("0.1.3")), v("0.2.0"));
    }

    #[test]
    fn request_constraints_may_loosen_but_not_narrow() {
        // ProfileUpdate.displayName is only sent, never read.
        let old = released();
        let mut looser = old.clone();
        schema_mut(&mut looser, "ProfileUpdate")["properties"]["displayName"]["maxLength"] =
            json!(128);
        assert!(gate(&old, &looser).is_ok());
        let mut narrower = old.clone();
        schema_mut(&mut narrower, "ProfileUpdate")["properties"]["displayName"]["maxLength"] =
            json!(32);
        assert_eq!(
            breaking(&diff(&old, &narrower)),
            vec![
                "PUT /dashboard/profile request body: field displayName maxLength changed from 64 \
                 to 32 (old clients' requests may be rejected)"
            ]
        );
    }

    #[test]
    fn a_response_field_made_nullable_or_optional_is_breaking() {
        let old = released();
        let mut new = old.clone();
        let summary = schema_mut(&mut new, "OrderSummary");
        summary["properties"]["currency"]["nullable"] = json!(true);
        remove_required(summary, "amount");
        let breaking = breaking(&diff(&old, &new)).join("\n");
        assert!(breaking.contains("field items[].currency may now be null"), "{breaking}");
        assert!(breaking.contains("field items[].amount is no longer required"), "{breaking}");
    }

    #[test]
    fn a_new_required_query_parameter_is_breaking() {
        let old = released();
        let mut new = old.clone();
        new["paths"]["/dashboard/orders"]["get"]["parameters"][0]["required"] = json!(true);
        assert_eq!(
            breaking(&diff(&old, &new)),
            vec!["GET /dashboard/orders query parameter createdAfter: is now required"]
        );
    }

    #[test]
    fn a_changed_composite_schema_is_reported_conservatively() {
        let old = released();
        let mut new = old.clone();
        schema_mut(&mut new, "Order")["properties"]["shipping"] = json!({
            "oneOf": [
                {"$ref": "#/components/schemas/OrderShipping"},
                {"$ref": "#/components/schemas/ShippingAddress"}
            ]
        });
        let breaking = breaking(&diff(&old, &new)).join("\n");
        assert!(
            breaking.contains(
                "field shipping changed from object to oneOf of 2; cannot compare exactly"
            ),
            "{breaking}"
        );
    }

    #[test]
    fn ref_cycles_terminate_and_changes_inside_them_are_found() {
        let mut old = released();
        schema_mut(&mut old, "OrderItem")["properties"]["bundle"] =
            json!({"type": "array", "items": {"$ref": "#/components/schemas/OrderItem"}});
        assert_eq!(diff(&old, &old), vec![]);
        let mut new = old.clone();
        schema_mut(&mut new, "OrderItem")["properties"]["quantity"]["type"] = json!("string");
        let breaking = breaking(&diff(&old, &new)).join("\n");
        assert!(
            breaking.contains("field items[].quantity type changed from integer to string"),
            "{breaking}"
        );
    }

    #[test]
    fn release_replaces_the_previous_file_and_check_reads_the_highest() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        std::fs::create_dir_all(root.join("openapi")).unwrap();
        std::fs::create_dir_all(root.join(RELEASED_DIR)).unwrap();
        let old = released();
        let write = |path: &str, doc: &Value| {
            std::fs::write(root.join(path), serde_json::to_string_pretty(doc).unwrap()).unwrap()
        };
        let mut older = old.clone();
        older["info"]["version"] = json!("0.0.1");
        write(&format!("{RELEASED_DIR}/dashboard-0.0.1.json"), &older);
        write(&format!("{RELEASED_DIR}/dashboard-0.1.0.json"), &old);
        assert_eq!(latest_released(&root).unwrap().1, old);

        // A compatible addition under a new version is released; the old files go.
        let mut new = old.clone();
        new["info"]["version"] = json!("0.1.1");
        new["paths"]["/dashboard/new"] = old["paths"]["/healthz"].clone();
        write(CURRENT, &new);
        release(&root).unwrap();
        let files: Vec<_> = released_files(&root.join(RELEASED_DIR))
            .unwrap()
            .into_iter()
            .map(|(v, _)| v.to_string())
            .collect();
        assert_eq!(files, vec!["0.1.1"]);
        assert_eq!(latest_released(&root).unwrap().1, new);

        // The same version with a different document, or a break without a bump, is refused.
        new["paths"]["/dashboard/other"] = old["paths"]["/healthz"].clone();
        write(CURRENT, &new);
        assert!(release(&root).unwrap_err().to_string().contains("bump API_VERSION"));
        new["paths"].as_object_mut().unwrap().remove("/healthz");
        new["info"]["version"] = json!("0.1.2");
        write(CURRENT, &new);
        assert!(release(&root).unwrap_err().to_string().contains("breaking change"));
    }
}
