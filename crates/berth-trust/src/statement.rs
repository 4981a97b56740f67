//! in-toto statements and the predicates berth reads: SLSA provenance (v0.2, v1) and test results.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Refusal;
use crate::json::{self, get, string};

/// DSSE `payloadType` of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of an in-toto v0.1 statement.
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// `_type` of an in-toto v1 statement.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// SLSA provenance v0.2.
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
/// SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// in-toto test result v0.1.
pub const TEST_RESULT_V01: &str = "https://in-toto.io/attestation/test-result/v0.1";

/// An in-toto statement: what it is about (subjects) and what it says (the predicate).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `_type`: [`STATEMENT_V01`] or [`STATEMENT_V1`].
    pub statement_type: String,
    /// `subject[]`, at least one.
    pub subjects: Vec<Subject>,
    /// `predicateType`.
    pub predicate_type: String,
    /// The predicate read into a plain struct, when berth knows its type.
    pub predicate: Predicate,
    /// The predicate as signed (null when absent), for anything the structs leave out.
    pub predicate_json: Value,
}

/// One subject of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `name`, when given.
    pub name: Option<String>,
    /// `digest`: algorithm → lowercase hex (`sha256` for images).
    pub digest: BTreeMap<String, String>,
}

/// A statement's predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// SLSA provenance, v0.2 or v1.
    Provenance(Provenance),
    /// An in-toto test result.
    TestResult(TestResult),
    /// A predicate berth does not read, by its type.
    Other(String),
}

/// Where and how an artifact was built, from SLSA provenance v0.2 or v1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// v0.2 `builder.id`; v1 `runDetails.builder.id`.
    pub builder: Option<String>,
    /// v0.2 `invocation.configSource.uri`; v1 from `buildDefinition.externalParameters`
    /// (`workflow.repository`, `configSource.uri`, `source`, `repository`), else the first
    /// resolved dependency with a git commit.
    pub source_repository: Option<String>,
    /// v0.2 `invocation.configSource.digest.sha1`; v1 `externalParameters.configSource.digest`,
    /// else the first resolved dependency's `digest.gitCommit` (or `sha1`).
    pub source_commit: Option<String>,
    /// v1 `externalParameters` `workflow.ref` or `ref`, when present.
    pub source_ref: Option<String>,
    /// v0.2 `invocation.configSource.entryPoint`; v1 `externalParameters` `workflow.path`,
    /// `configSource.path` or `entryPoint`.
    pub entry_point: Option<String>,
    /// v0.2 `metadata.buildInvocationId`; v1 `runDetails.metadata.invocationId`.
    pub invocation: Option<String>,
    /// v0.2 `buildType`; v1 `buildDefinition.buildType`.
    pub build_type: Option<String>,
    /// v0.2 `materials[]`; v1 `buildDefinition.resolvedDependencies[]`.
    pub dependencies: Vec<ResourceRef>,
}

/// A material or resolved dependency: a URI and its digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRef {
    /// `uri`.
    pub uri: Option<String>,
    /// `digest`: algorithm → value (`sha1`, `gitCommit`, `sha256`, …).
    pub digest: BTreeMap<String, String>,
}

/// The result of a test run (in-toto test-result v0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// Whether `result` is `PASSED` (`WARNED` is not passed: read `result` to allow it).
    pub passed: bool,
    /// `result`: `PASSED`, `WARNED` or `FAILED`.
    pub result: String,
    /// `url` of the test run, when given.
    pub url: Option<String>,
    /// `passedTests`, `warnedTests`, `failedTests` (empty when absent).
    pub passed_tests: Vec<String>,
    pub warned_tests: Vec<String>,
    pub failed_tests: Vec<String>,
}

impl Statement {
    /// Parses an in-toto statement (bounded like every payload). Known predicates that are
    /// malformed are refused; unknown ones are kept as [`Predicate::Other`].
    pub fn parse(payload: &[u8]) -> Result<Statement, Refusal> {
        let document = json::parse(payload, "statement")?;
        let not_statement = |problem: String| Refusal::NotStatement(problem);
        let statement_type = match document.get("_type") {
            Some(Value::String(kind)) if kind == STATEMENT_V01 || kind == STATEMENT_V1 => {
                kind.clone()
            }
            Some(Value::String(kind)) => {
                return Err(not_statement(format!(
                    "_type is {kind:?}, not {STATEMENT_V01:?} or {STATEMENT_V1:?}"
                )));
            }
            Some(_) => return Err(not_statement("_type is not a string".to_owned())),
            None => return Err(not_statement("_type is missing".to_owned())),
        };
        let subjects = match document.get("subject") {
            Some(Value::Array(subjects)) if !subjects.is_empty() => subjects
                .iter()
                .enumerate()
                .map(|(index, subject)| {
                    let digest = subject.get("digest").and_then(digest_map).ok_or_else(|| {
                        not_statement(format!(
                            "subject[{index}].digest is missing or not an object of strings"
                        ))
                    })?;
                    Ok(Subject {
                        name: string(subject, &["name"]),
                        digest,
                    })
                })
                .collect::<Result<Vec<_>, Refusal>>()?,
            Some(Value::Array(_)) => return Err(not_statement("subject is empty".to_owned())),
            Some(_) => return Err(not_statement("subject is not an array".to_owned())),
            None => return Err(not_statement("subject is missing".to_owned())),
        };
        let predicate_type = string(&document, &["predicateType"])
            .ok_or_else(|| not_statement("predicateType is missing or not a string".to_owned()))?;
        let predicate_json = document.get("predicate").cloned().unwrap_or(Value::Null);
        let bad = |problem: &str| Refusal::BadPredicate {
            predicate_type: predicate_type.clone(),
            problem: problem.to_owned(),
        };
        let predicate = match predicate_type.as_str() {
            SLSA_PROVENANCE_V02 | SLSA_PROVENANCE_V1 | TEST_RESULT_V01
                if !predicate_json.is_object() =>
            {
                return Err(bad("the predicate is missing or not an object"));
            }
            SLSA_PROVENANCE_V02 => Predicate::Provenance(provenance_v02(&predicate_json)),
            SLSA_PROVENANCE_V1 => Predicate::Provenance(provenance_v1(&predicate_json)),
            TEST_RESULT_V01 => Predicate::TestResult(test_result(&predicate_json).map_err(bad)?),
            other => Predicate::Other(other.to_owned()),
        };
        Ok(Statement {
            statement_type,
            subjects,
            predicate_type,
            predicate,
            predicate_json,
        })
    }

    /// Whether a subject has the image's digest (`sha256:<hex>`, compared ignoring hex case).
    pub fn covers(&self, image_digest: &str) -> bool {
        let Some((algorithm, hex)) = image_digest.split_once(':') else {
            return false;
        };
        !hex.is_empty()
            && self.subjects.iter().any(|subject| {
                subject
                    .digest
                    .get(algorithm)
                    .is_some_and(|value| value.eq_ignore_ascii_case(hex))
            })
    }

    /// The provenance predicate, if that is what this is.
    pub fn provenance(&self) -> Option<&Provenance> {
        match &self.predicate {
            Predicate::Provenance(provenance) => Some(provenance),
            _ => None,
        }
    }

    /// The test-result predicate, if that is what this is.
    pub fn test_result(&self) -> Option<&TestResult> {
        match &self.predicate {
            Predicate::TestResult(result) => Some(result),
            _ => None,
        }
    }
}

/// A `digest` object: every value a string.
fn digest_map(value: &Value) -> Option<BTreeMap<String, String>> {
    value
        .as_object()?
        .iter()
        .map(|(algorithm, digest)| Some((algorithm.clone(), digest.as_str()?.to_owned())))
        .collect()
}

/// `uri` and `digest` of each entry of an array of resource descriptors (malformed entries
/// kept with what could be read).
fn resources(value: Option<&Value>) -> Vec<ResourceRef> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| ResourceRef {
                    uri: string(item, &["uri"]),
                    digest: item.get("digest").and_then(digest_map).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn commit_of(digest: &BTreeMap<String, String>) -> Option<String> {
    digest
        .get("gitCommit")
        .or_else(|| digest.get("sha1"))
        .cloned()
}

fn provenance_v02(predicate: &Value) -> Provenance {
    let config_source = get(predicate, &["invocation", "configSource"]);
    Provenance {
        builder: string(predicate, &["builder", "id"]),
        source_repository: config_source.and_then(|source| string(source, &["uri"])),
        source_commit: config_source
            .and_then(|source| source.get("digest"))
            .and_then(digest_map)
            .and_then(|digest| commit_of(&digest)),
        source_ref: None,
        entry_point: config_source.and_then(|source| string(source, &["entryPoint"])),
        invocation: string(predicate, &["metadata", "buildInvocationId"]),
        build_type: string(predicate, &["buildType"]),
        dependencies: resources(predicate.get("materials")),
    }
}

fn provenance_v1(predicate: &Value) -> Provenance {
    let definition = predicate.get("buildDefinition").unwrap_or(&Value::Null);
    let parameters = definition.get("externalParameters").unwrap_or(&Value::Null);
    let dependencies = resources(definition.get("resolvedDependencies"));
    let first = |paths: &[&[&str]]| paths.iter().find_map(|path| string(parameters, path));
    let declared_repository = first(&[
        &["workflow", "repository"],
        &["configSource", "uri"],
        &["source"],
        &["source", "uri"],
        &["source", "repository"],
        &["repository"],
    ]);
    let declared_commit = get(parameters, &["configSource", "digest"])
        .and_then(digest_map)
        .and_then(|digest| commit_of(&digest));
    let git_dependency = dependencies
        .iter()
        .find(|dependency| dependency.digest.contains_key("gitCommit"))
        .or_else(|| {
            dependencies
                .iter()
                .find(|dependency| dependency.digest.contains_key("sha1"))
        });
    Provenance {
        builder: string(predicate, &["runDetails", "builder", "id"]),
        source_repository: declared_repository
            .or_else(|| git_dependency.and_then(|dependency| dependency.uri.clone())),
        source_commit: declared_commit
            .or_else(|| git_dependency.and_then(|dependency| commit_of(&dependency.digest))),
        source_ref: first(&[&["workflow", "ref"], &["source", "ref"], &["ref"]]),
        entry_point: first(&[
            &["workflow", "path"],
            &["configSource", "path"],
            &["entryPoint"],
        ]),
        invocation: string(predicate, &["runDetails", "metadata", "invocationId"]),
        build_type: string(definition, &["buildType"]),
        dependencies,
    }
}

fn test_result(predicate: &Value) -> Result<TestResult, &'static str> {
    let result = match predicate.get("result") {
        Some(Value::String(result))
            if ["PASSED", "WARNED", "FAILED"].contains(&result.as_str()) =>
        {
            result.clone()
        }
        Some(_) => return Err("result is not PASSED, WARNED or FAILED"),
        None => return Err("result is missing"),
    };
    let names = |key: &str| -> Result<Vec<String>, &'static str> {
        match predicate.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or("a test name is not a string")
                })
                .collect(),
            Some(_) => Err("a list of tests is not an array"),
        }
    };
    Ok(TestResult {
        passed: result == "PASSED",
        url: string(predicate, &["url"]),
        passed_tests: names("passedTests")?,
        warned_tests: names("warnedTests")?,
        failed_tests: names("failedTests")?,
        result,
    })
}
