//! Checks that `twofa_core::routes::ROUTES`, the HTTP API events of `template.yaml`, the paths of
//! `docs/openapi.yaml` and the sample events in `events/` name the same routes.
//!
//! The YAML files are read with yaml-rust2, which keeps the value of a CloudFormation tag such as
//! `!Ref HttpApi` as a plain string, so the template parses without knowing those tags.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use twofa_core::routes::ROUTES;
use yaml_rust2::{Yaml, YamlLoader};

/// A route as (upper-case method, path).
type RouteKey = (String, String);

const OPENAPI_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("shared/ has a parent directory")
        .to_path_buf()
}

fn read_text(relative: &str) -> String {
    let path = workspace_root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {} failed: {error}", path.display()))
}

fn load_yaml(relative: &str) -> Yaml {
    let mut documents = YamlLoader::load_from_str(&read_text(relative))
        .unwrap_or_else(|error| panic!("parsing {relative} failed: {error}"));
    assert_eq!(documents.len(), 1, "{relative} must contain exactly one YAML document");
    documents.remove(0)
}

fn yaml_key(key: &Yaml) -> String {
    key.as_str().map(str::to_owned).unwrap_or_else(|| format!("{key:?}"))
}

/// Formats what `actual` lacks and what it has in excess of `expected`.
fn difference<T: Ord + Debug>(expected: &BTreeSet<T>, actual: &BTreeSet<T>) -> String {
    let missing: Vec<&T> = expected.difference(actual).collect();
    let extra: Vec<&T> = actual.difference(expected).collect();
    format!("missing: {missing:?}; not in the route table: {extra:?}")
}

/// Returns each route of the route table with the binary of the function that serves it.
fn route_table() -> BTreeMap<RouteKey, &'static str> {
    ROUTES
        .iter()
        .map(|spec| ((spec.method.to_owned(), spec.path.to_owned()), spec.function.name()))
        .collect()
}

/// Returns each `HttpApi` event route of the template with the binary of the function it invokes.
fn template_routes() -> BTreeMap<RouteKey, String> {
    let template = load_yaml("template.yaml");
    let resources = template["Resources"]
        .as_hash()
        .expect("template.yaml has a Resources mapping");
    let mut routes = BTreeMap::new();

    for (name, resource) in resources {
        let name = yaml_key(name);
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("function {name} has no Metadata.BuildProperties.Binary"));
        let Some(events) = resource["Properties"]["Events"].as_hash() else {
            continue;
        };

        for (event_name, event) in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let event_name = yaml_key(event_name);
            let properties = &event["Properties"];
            let method = properties["Method"]
                .as_str()
                .unwrap_or_else(|| panic!("HttpApi event {name}.{event_name} has no Method"))
                .to_ascii_uppercase();
            let path = properties["Path"]
                .as_str()
                .unwrap_or_else(|| panic!("HttpApi event {name}.{event_name} has no Path"))
                .to_owned();
            let previous = routes.insert((method.clone(), path.clone()), binary.to_owned());
            assert!(previous.is_none(), "template.yaml declares {method} {path} twice");
        }
    }
    routes
}

fn openapi_routes() -> BTreeSet<RouteKey> {
    let spec = load_yaml("docs/openapi.yaml");
    let paths = spec["paths"].as_hash().expect("docs/openapi.yaml has a paths mapping");
    let mut routes = BTreeSet::new();

    for (path, operations) in paths {
        let path = yaml_key(path);
        let operations = operations
            .as_hash()
            .unwrap_or_else(|| panic!("path {path} of docs/openapi.yaml is not a mapping"));
        for method in operations.keys().filter_map(Yaml::as_str) {
            if OPENAPI_METHODS.contains(&method) {
                routes.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    routes
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|error| panic!("reading {} failed: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("parsing {} failed: {error}", path.display()))
}

/// Returns the paths of the JSON files under `events/`, relative to it, except the manifest.
fn event_files() -> BTreeSet<String> {
    let events_dir = workspace_root().join("events");
    let mut files = BTreeSet::new();
    let mut pending = vec![events_dir.clone()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|error| panic!("listing {} failed: {error}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry is readable").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "json") {
                let relative = path.strip_prefix(&events_dir).expect("file is under events/");
                files.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files.remove("manifest.json");
    files
}

#[test]
fn route_table_has_no_duplicates() {
    assert_eq!(
        route_table().len(),
        ROUTES.len(),
        "ROUTES lists a (method, path) pair twice"
    );
}

#[test]
fn template_matches_route_table() {
    let table = route_table();
    let template = template_routes();

    let expected: BTreeSet<RouteKey> = table.keys().cloned().collect();
    let actual: BTreeSet<RouteKey> = template.keys().cloned().collect();
    assert_eq!(
        expected,
        actual,
        "template.yaml HttpApi events differ from ROUTES; {}",
        difference(&expected, &actual)
    );

    for (route, binary) in &template {
        if let Some(function) = table.get(route) {
            assert_eq!(
                binary, function,
                "template.yaml sends {} {} to the wrong function",
                route.0, route.1
            );
        }
    }
}

#[test]
fn openapi_matches_route_table() {
    let expected: BTreeSet<RouteKey> = route_table().keys().cloned().collect();
    let actual = openapi_routes();
    assert_eq!(
        expected,
        actual,
        "docs/openapi.yaml paths differ from ROUTES; {}",
        difference(&expected, &actual)
    );
}

#[test]
fn http_events_cover_route_table() {
    let table = route_table();
    let events_dir = workspace_root().join("events/http");
    let mut covered = BTreeSet::new();

    for file in event_files().iter().filter(|file| file.starts_with("http/")) {
        let event = read_json(&workspace_root().join("events").join(file));
        let route_key = event["routeKey"]
            .as_str()
            .unwrap_or_else(|| panic!("events/{file} has no routeKey"));
        let (method, path) = route_key
            .split_once(' ')
            .unwrap_or_else(|| panic!("events/{file}: routeKey {route_key:?} is not 'METHOD /path'"));
        assert_eq!(
            event["requestContext"]["http"]["method"], method,
            "events/{file}: requestContext.http.method differs from routeKey"
        );
        assert_eq!(event["rawPath"], path, "events/{file}: rawPath differs from routeKey");
        assert!(
            event["requestContext"]["http"]["sourceIp"]
                .as_str()
                .is_some_and(|ip| !ip.is_empty()),
            "events/{file} has no requestContext.http.sourceIp"
        );

        let route = (method.to_owned(), path.to_owned());
        assert!(
            table.contains_key(&route),
            "events/{file} is for {route_key}, which is not in ROUTES"
        );
        covered.insert(route);
    }

    let expected: BTreeSet<RouteKey> = table.keys().cloned().collect();
    assert_eq!(
        expected,
        covered,
        "{} lacks an event for some routes; {}",
        events_dir.display(),
        difference(&expected, &covered)
    );
}

#[test]
fn manifest_lists_every_event_file() {
    let manifest = read_json(&workspace_root().join("events/manifest.json"));
    let entries = manifest["events"]
        .as_array()
        .expect("events/manifest.json has an events array");
    let table = route_table();

    let mut listed = BTreeSet::new();
    for entry in entries {
        let file = entry["file"].as_str().expect("every manifest entry has a file");
        assert!(
            listed.insert(file.to_owned()),
            "events/manifest.json lists {file} twice"
        );

        let function = entry["function"]
            .as_str()
            .unwrap_or_else(|| panic!("manifest entry {file} has no function"));
        if let Some(route_key) = entry["route"].as_str() {
            let (method, path) = route_key
                .split_once(' ')
                .unwrap_or_else(|| panic!("manifest entry {file}: bad route {route_key:?}"));
            let expected_function = table.get(&(method.to_owned(), path.to_owned()));
            assert_eq!(
                expected_function,
                Some(&function),
                "manifest entry {file}: {route_key} is not served by {function}"
            );
            assert!(
                entry["expected_status"].is_u64(),
                "manifest entry {file} has no expected_status"
            );
        }
    }

    let files = event_files();
    assert_eq!(files, listed, "events/manifest.json and the files in events/ differ");
}
