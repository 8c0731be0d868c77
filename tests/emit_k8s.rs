//! `copperc compile` Istio and Kubernetes output: every emitted object
//! validates against the official schemas in ../shared/schemas
//! (`validate.py --strict`; the Deployment patches against the Deployment
//! schema with every nested `required` dropped, as a patch sets only some
//! fields); the free-form Envoy configuration inside EnvoyFilters (HTTP
//! filters, routes, connection-manager merges), and every
//! regex of the VirtualServices, pass the real Envoy's `--mode validate`
//! under Istio's RE2 program-size limit; the kustomizations list every
//! file; the Bookinfo istio/ and k8s/ trees are snapshot-tested; the
//! VirtualService context regex is the Envoy emitter's; intersected context
//! guards agree with the guards they intersect; the eBPF object hook gives
//! valid objects; and (with `kubectl`, which the machine image ships) the k8s/ Component
//! builds over an application with kustomize.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{
    SCHEMAS, VALIDATE, compile, envoy, envoy_check, files_under, patch_schemas, python, tree_text, validate, yaml,
};

use serde_json::{Value, json};

const ISTIO_ONLY: &str = "interfaces/istio-proxy.act";

const APPS: [(&str, &str); 4] = [
    ("bookinfo", "bookinfo"),
    ("online-boutique", "online-boutique"),
    ("deathstarbench-socialnetwork", "socialnetwork"),
    ("deathstarbench-hotelreservation", "hotelreservation"),
];

fn compile_ok(graph: &Path, policies: &[&Path], out: &Path, extra: &[&str]) {
    let r = compile(graph, policies, out, extra);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}: {}",
        graph.display(),
        String::from_utf8_lossy(&r.stderr)
    );
}

/// Validates every object under istio/ and k8s/ and checks the
/// kustomizations, the injection patches and the Sidecars against the
/// placement. Returns the number of objects validated.
fn check_output(out: &Path, tmp: &Path) -> usize {
    let istio: Vec<PathBuf> = files_under(&out.join("istio"))
        .into_iter()
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    let k8s_dir = out.join("k8s");
    let k8s: Vec<PathBuf> = files_under(&k8s_dir)
        .into_iter()
        .filter(|p| !p.ends_with("kustomization.yaml") && !p.starts_with(k8s_dir.join("patches")))
        .collect();
    let patches = files_under(&k8s_dir.join("patches"));
    let mut n = validate(&Path::new(SCHEMAS).join("istio"), &istio);
    n += validate(&Path::new(SCHEMAS).join("k8s"), &k8s);
    n += validate(&patch_schemas(tmp), &patches);
    assert_eq!(n, istio.len() + k8s.len() + patches.len(), "one object per file");

    // Every object carries the ownership label and the policies annotation.
    for f in istio.iter().chain(&k8s) {
        let doc = yaml(f);
        assert_eq!(
            doc["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "copperc",
            "{}",
            f.display()
        );
        assert!(
            doc["metadata"]["annotations"]["copperc.dev/policies"].is_string(),
            "{}",
            f.display()
        );
        let expected = format!(
            "{}-{}.yaml",
            doc["kind"].as_str().unwrap().to_ascii_lowercase(),
            doc["metadata"]["name"].as_str().unwrap()
        );
        assert!(f.ends_with(&expected), "{} is not named {expected}", f.display());
    }

    // The kustomizations list exactly the generated files.
    if !istio.is_empty() {
        let k = yaml(&out.join("istio/kustomization.yaml"));
        let listed: BTreeSet<String> = k["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        let present: BTreeSet<String> = istio
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(listed, present, "istio/kustomization.yaml");
    }
    let k = yaml(&k8s_dir.join("kustomization.yaml"));
    assert_eq!(k["kind"], "Component");
    let mut listed: BTreeSet<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        listed.remove("../istio"),
        !istio.is_empty(),
        "k8s/kustomization.yaml includes ../istio"
    );
    let present: BTreeSet<String> = k8s
        .iter()
        .map(|p| p.strip_prefix(&k8s_dir).unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, present, "k8s/kustomization.yaml resources");
    let listed: BTreeSet<String> = k["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = patches
        .iter()
        .map(|p| p.strip_prefix(&k8s_dir).unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, present, "k8s/kustomization.yaml patches");

    // Injection follows the placement: one patch per Deployment
    // `<service>-<version>`, and a Sidecar per injected workload.
    let placement: Value = serde_json::from_str(&std::fs::read_to_string(out.join("placement.json")).unwrap()).unwrap();
    let mut injected = BTreeSet::new();
    for (svc, p) in placement["services"].as_object().unwrap() {
        if p["sidecar"].as_str().is_some_and(|d| d.starts_with("istio")) {
            injected.insert(svc.clone());
        }
    }
    let mut patched = BTreeSet::new();
    for p in &patches {
        let doc = yaml(p);
        let name = doc["metadata"]["name"].as_str().unwrap();
        let svc = placement["services"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|s| name.starts_with(&format!("{s}-")))
            .max_by_key(|s| s.len())
            .unwrap_or_else(|| panic!("{name} is no service's Deployment"));
        let label = &doc["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"];
        let want = if injected.contains(svc) { "true" } else { "false" };
        assert_eq!(label, want, "{name}");
        patched.insert(svc.clone());
    }
    assert_eq!(patched.len(), placement["services"].as_object().unwrap().len());
    let sidecars: BTreeSet<String> = istio
        .iter()
        .map(|p| yaml(p))
        .filter(|d| d["kind"] == "Sidecar")
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    if !istio.is_empty() {
        assert_eq!(sidecars, injected, "a Sidecar per injected workload");
    }
    envoy_check(&istio, tmp);
    n
}

#[test]
fn bookinfo_istio_and_k8s_trees_validate_and_match_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let graph = Path::new("examples/bookinfo/graph.json");
    let policies = [Path::new("examples/bookinfo/policies.copper")];
    compile_ok(graph, &policies, &out, &["--interfaces", ISTIO_ONLY]);
    assert!(check_output(&out, tmp.path()) >= 10);
    let first = tree_text(&out, &["istio", "k8s"]);
    compile_ok(graph, &policies, &out, &["--interfaces", ISTIO_ONLY]);
    assert_eq!(first, tree_text(&out, &["istio", "k8s"]), "output is not deterministic");
    insta::assert_snapshot!(first);
}

#[test]
fn every_app_validates() {
    let tmp = tempfile::tempdir().unwrap();
    // The bundled example with the bundled interfaces: Istio and Cilium
    // sidecars side by side.
    let out = tmp.path().join("example");
    compile_ok(
        Path::new("examples/bookinfo/graph.json"),
        &[Path::new("examples/bookinfo/policies.copper")],
        &out,
        &[],
    );
    check_output(&out, tmp.path());
    for (graph, dir) in APPS {
        let out = tmp.path().join(dir);
        let g = PathBuf::from(format!("../shared/graphs/{graph}.json"));
        let pdir = PathBuf::from(format!("testdata/valid/{dir}"));
        compile_ok(&g, &[&pdir], &out, &["--interfaces", ISTIO_ONLY]);
        let n = check_output(&out, tmp.path());
        assert!(
            files_under(&out.join("istio")).len() > 1,
            "{graph}: no Istio output with only istio-proxy loaded"
        );
        assert!(n > 3, "{graph}");
    }
}

/// A policy enforced at `reviews` on its calls to `ratings` (RouteToVersion
/// runs at the caller only), with a context that needs a real regex.
const EGRESS_POLICY: &str = r#"
policy pin_ratings(req: RPCRequest) context "productpage .* ratings" {
    if req.GetHeader("x-pin") == "yes" {
        req.RouteToVersion("v1");
    }
}
"#;

#[test]
fn virtual_service_regex_is_the_envoy_regex() {
    use copperc::emit::context_regex::header_regex_from;

    let tmp = tempfile::tempdir().unwrap();
    let pfile = tmp.path().join("pin.copper");
    std::fs::write(&pfile, EGRESS_POLICY).unwrap();
    let out = tmp.path().join("out");
    compile_ok(
        Path::new("examples/bookinfo/graph.json"),
        &[&pfile],
        &out,
        &["--interfaces", ISTIO_ONLY],
    );
    let vs = yaml(&out.join("istio/virtualservice-ratings.yaml"));
    let route = vs["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "reviews/pin_ratings")
        .expect("the policy's route");
    let vs_regex = route["match"][0]["headers"]["x-copper-context"]["regex"]
        .as_str()
        .unwrap();
    assert_eq!(route["match"][0]["sourceLabels"]["app"], "reviews");
    assert_eq!(route["route"][0]["destination"]["subset"], "v1");

    let bootstrap = yaml(&out.join("envoy/reviews.yaml"));
    let mut envoy_regex = None;
    for l in bootstrap["static_resources"]["listeners"].as_array().unwrap() {
        let rc = &l["filter_chains"][0]["filters"][0]["typed_config"]["route_config"];
        for vh in rc["virtual_hosts"].as_array().unwrap() {
            for r in vh["routes"].as_array().unwrap() {
                if r["name"] == "pin_ratings" {
                    for h in r["match"]["headers"].as_array().unwrap() {
                        if h["name"] == "x-copper-context" {
                            envoy_regex = h["string_match"]["safe_regex"]["regex"].as_str().map(str::to_string);
                        }
                    }
                }
            }
        }
    }
    assert_eq!(
        Some(vs_regex),
        envoy_regex.as_deref(),
        "VirtualService and Envoy regexes differ"
    );

    // Both are the one function's result.
    let pattern = common::parse_pattern_text("productpage .* ratings").unwrap();
    let expected = header_regex_from(&pattern, "ratings", &[Some("reviews")]).unwrap();
    assert_eq!(vs_regex, expected);
    assert!(vs_regex.contains("/reviews"), "{vs_regex}");
}

/// Deny runs at the callee only with this interface, so each policy below
/// lands on the callee's sidecar, where an AuthorizationPolicy is used only
/// when it expresses the policy exactly.
const INGRESS_DENY_ACT: &str = r#"
dataplane istio-proxy {
    cost 100;
    act RPCRequest {
        [Ingress] Deny(status: int);
        [Ingress, Egress] GetHeader(key: string) -> string;
        [Ingress, Egress] GetPath() -> string;
        [Ingress, Egress] GetMethod() -> string;
    }
}
"#;

const INGRESS_DENY_POLICIES: &str = r#"
policy ratings_read_only(req: RPCRequest) context "productpage reviews ratings" {
    if req.GetMethod() != "GET" && req.GetMethod() != "HEAD" {
        req.Deny(403);
    }
}
policy ratings_admin(req: RPCRequest) context "productpage .* ratings" {
    if req.GetPath() == "/admin" {
        req.Deny(403);
    }
}
policy details_hidden(req: RPCRequest) context "productpage details" {
    if req.GetHeader("x-debug") == "1" {
        req.Deny(404);
    }
}
"#;

#[test]
fn authorization_policy_only_where_it_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let act = tmp.path().join("deny.act");
    std::fs::write(&act, INGRESS_DENY_ACT).unwrap();
    let pfile = tmp.path().join("deny.copper");
    std::fs::write(&pfile, INGRESS_DENY_POLICIES).unwrap();
    let out = tmp.path().join("out");
    compile_ok(
        Path::new("examples/bookinfo/graph.json"),
        &[&pfile],
        &out,
        &["--interfaces", act.to_str().unwrap()],
    );
    check_output(&out, tmp.path());
    // Exact values and 403: an AuthorizationPolicy.
    let ap = yaml(&out.join("istio/authorizationpolicy-ratings.yaml"));
    assert_eq!(
        ap["metadata"]["annotations"]["copperc.dev/policies"],
        "ratings_read_only"
    );
    assert_eq!(ap["spec"]["action"], "DENY");
    assert_eq!(ap["spec"]["selector"]["matchLabels"]["app"], "ratings");
    let rule = &ap["spec"]["rules"][0];
    assert_eq!(rule["to"][0]["operation"]["notMethods"], json!(["GET", "HEAD"]));
    assert_eq!(
        rule["when"][0],
        json!({"key": "request.headers[x-copper-context]", "values": ["/productpage/reviews"]})
    );
    // A context that needs a regex, or a status other than 403: routes
    // inserted by an EnvoyFilter on the inbound side.
    let ef = yaml(&out.join("istio/envoyfilter-ratings.yaml"));
    assert_eq!(ef["metadata"]["annotations"]["copperc.dev/policies"], "ratings_admin");
    assert_eq!(ef["spec"]["configPatches"][0]["match"]["context"], "SIDECAR_INBOUND");
    let ef = yaml(&out.join("istio/envoyfilter-details.yaml"));
    assert_eq!(ef["metadata"]["annotations"]["copperc.dev/policies"], "details_hidden");
    let route = &ef["spec"]["configPatches"][0]["patch"]["value"];
    assert_eq!(route["direct_response"]["status"], 404);
    assert!(!out.join("istio/authorizationpolicy-details.yaml").exists());
}

/// The connection-manager MERGE patch of an EnvoyFilter that removes the
/// context header on arrival, if it has one.
fn strip_patches(ef: &Value) -> Vec<&Value> {
    ef["spec"]["configPatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["applyTo"] == "NETWORK_FILTER"
                && p["patch"]["value"]["typed_config"]["early_header_mutation_extensions"]
                    .as_array()
                    .is_some_and(|l| {
                        l.iter()
                            .any(|e| e["typed_config"]["mutations"] == json!([{"remove": "x-copper-context"}]))
                    })
        })
        .collect()
}

/// Entry points that only the outside calls drop the context header on
/// arrival, in their sidecar's inbound connection managers; other services
/// and entry points that the mesh calls too keep it.
#[test]
fn entry_points_drop_the_context_header() {
    let tmp = tempfile::tempdir().unwrap();
    // Bookinfo: productpage is the entry point and has routes of its own.
    let out = tmp.path().join("bookinfo");
    compile_ok(
        Path::new("examples/bookinfo/graph.json"),
        &[Path::new("examples/bookinfo/policies.copper")],
        &out,
        &["--interfaces", ISTIO_ONLY],
    );
    check_output(&out, tmp.path());
    let ef = yaml(&out.join("istio/envoyfilter-productpage.yaml"));
    let strip = strip_patches(&ef);
    assert_eq!(strip.len(), 1, "{ef}");
    let p = strip[0];
    assert_eq!(p["match"]["context"], "SIDECAR_INBOUND");
    assert_eq!(p["patch"]["operation"], "MERGE");
    assert_eq!(
        ef["spec"]["configPatches"][0], *p,
        "the strip comes before the other patches"
    );
    assert_eq!(ef["spec"]["workloadSelector"]["labels"]["app"], "productpage");
    for f in files_under(&out.join("istio")) {
        let doc = yaml(&f);
        if doc["kind"] == "EnvoyFilter" && doc["metadata"]["name"] != "productpage" {
            assert!(strip_patches(&doc).is_empty(), "{}", f.display());
        }
    }

    // An entry point whose sidecar enforces nothing that needs routes gets
    // an EnvoyFilter for the strip alone; one that the mesh calls too
    // (`loop`) keeps the header.
    let (graph, pfile) = common::write_inputs(
        tmp.path(),
        common::EDGE_LOOP_GRAPH,
        r#"
policy edge_admin(req: RPCRequest) context "edge" {
    if req.GetPath() == "/admin" { req.Deny(403); }
}
policy loop_rate(req: RPCRequest) context "edge api loop" {
    req.RateLimit(10);
}
"#,
    );
    let out = tmp.path().join("small");
    compile_ok(&graph, &[&pfile], &out, &["--interfaces", ISTIO_ONLY]);
    check_output(&out, tmp.path());
    assert!(out.join("istio/authorizationpolicy-edge.yaml").exists());
    let ef = yaml(&out.join("istio/envoyfilter-edge.yaml"));
    assert_eq!(strip_patches(&ef).len(), 1);
    assert_eq!(ef["spec"]["configPatches"].as_array().unwrap().len(), 1, "{ef}");
    assert_eq!(ef["metadata"]["annotations"]["copperc.dev/policies"], "");
    let ef = yaml(&out.join("istio/envoyfilter-loop.yaml"));
    assert!(strip_patches(&ef).is_empty(), "{ef}");
    assert_eq!(ef["metadata"]["annotations"]["copperc.dev/policies"], "loop_rate");
    let k = std::fs::read_to_string(out.join("istio/kustomization.yaml")).unwrap();
    assert!(k.contains("- envoyfilter-edge.yaml"), "{k}");
    // The eBPF add-on starts fresh contexts at `edge` only: at `loop` it
    // cannot tell the mesh's requests from the outside's.
    let cm = yaml(&out.join("k8s/configmap-copper-ctx-config.yaml"));
    let config: Value = serde_json::from_str(cm["data"]["config.json"].as_str().unwrap()).unwrap();
    let entry: BTreeMap<&str, bool> = config["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["entrypoint"].as_bool().unwrap()))
        .collect();
    assert_eq!(entry, BTreeMap::from([("api", false), ("edge", true), ("loop", false)]));
}

/// An entry point that services call too (`loop`): its sidecar keeps the
/// context header, and the request from outside, which carries none, is
/// known by its absence. The policies whose context is that request get an
/// absent-header match (Envoy: a negated presence match; Istio's
/// AuthorizationPolicy: `notValues: ["*"]`), never an empty regex, and a
/// policy that also holds on requests from services gets both (two routes,
/// or two DENY rules). Every output validates with the schemas and the
/// real Envoy; Cilium, which cannot match a missing header, refuses.
#[test]
fn outside_requests_into_a_called_entry_point_match_the_absent_header() {
    let tmp = tempfile::tempdir().unwrap();
    let (graph, pfile) = common::write_inputs(
        tmp.path(),
        common::EDGE_LOOP_GRAPH,
        r#"
policy loop_admin(req: RPCRequest) context "loop" {
    if req.GetPath() == "/admin" { req.Deny(403); }
}
policy loop_union(req: RPCRequest) context "(loop | edge api loop)" {
    if req.GetPath() == "/union" { req.Deny(403); }
}
policy loop_stamp(req: RPCRequest) context "(loop | .* api loop)" {
    req.SetHeader("x-stamp", "loop");
}
"#,
    );
    let absent = json!({"name": "x-copper-context", "present_match": true, "invert_match": true});
    // The context matchers of the routes named `name`, one list per route.
    let contexts = |routes: &[Value], name: &str| -> Vec<Vec<Value>> {
        routes
            .iter()
            .filter(|r| r["name"] == name)
            .map(|r| {
                r["match"]["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|h| h["name"] == "x-copper-context")
                    .cloned()
                    .collect()
            })
            .collect()
    };
    let regex = |re: &str| {
        json!({"name": "x-copper-context", "string_match": {"safe_regex": {"regex": re}},
               "treat_missing_header_as_empty": true})
    };
    let any_api = "(?:/[a-z0-9-]+)*/api";
    for (label, extra) in [("bundled", &[][..]), ("istio", &["--interfaces", ISTIO_ONLY][..])] {
        let out = tmp.path().join(label);
        compile_ok(&graph, &[&pfile], &out, extra);
        check_output(&out, tmp.path());
        let mut bootstraps = 0;
        for f in files_under(&out.join("envoy")) {
            let r = Command::new(envoy())
                .args(["--mode", "validate", "--log-level", "error", "-c"])
                .arg(&f)
                .output()
                .unwrap();
            assert!(
                r.status.success(),
                "envoy rejected {}:\n{}",
                f.display(),
                String::from_utf8_lossy(&r.stderr)
            );
            bootstraps += 1;
        }
        assert!(bootstraps >= 1, "{label}: no Envoy bootstrap");
        for f in files_under(&out) {
            if let Ok(text) = std::fs::read_to_string(&f) {
                assert!(!text.contains("regex: \"\""), "{}: an empty regex", f.display());
            }
        }

        // Envoy: loop's inbound routes.
        let doc = yaml(&out.join("envoy/loop.yaml"));
        let inbound = doc["static_resources"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "inbound")
            .unwrap();
        let routes =
            inbound["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
                .as_array()
                .unwrap()
                .clone();
        assert_eq!(contexts(&routes, "loop_admin"), vec![vec![absent.clone()]], "{label}");
        assert_eq!(
            contexts(&routes, "loop_union"),
            vec![vec![regex("/edge/api")], vec![absent.clone()]],
            "{label}"
        );
        assert_eq!(
            contexts(&routes, "loop_stamp"),
            vec![vec![regex(any_api)], vec![absent.clone()]],
            "{label}"
        );
        // With a guard that holds only outside: only the absent header.
        assert_eq!(
            contexts(&routes, "loop_admin+loop_stamp"),
            vec![vec![absent.clone()]],
            "{label}"
        );
        assert_eq!(
            contexts(&routes, "loop_union+loop_stamp"),
            vec![vec![regex("/edge/api"), regex(any_api)], vec![absent.clone()]],
            "{label}"
        );
        let admin = routes.iter().find(|r| r["name"] == "loop_admin").unwrap();
        assert_eq!(admin["direct_response"]["status"], 403);

        // Istio: the denies are an AuthorizationPolicy, the stamp routes of
        // an EnvoyFilter, both on loop's inbound side.
        if label == "istio" {
            let ap = yaml(&out.join("istio/authorizationpolicy-loop.yaml"));
            let key = "request.headers[x-copper-context]";
            let rules = ap["spec"]["rules"].as_array().unwrap();
            let when = |path: &str| -> Vec<Value> {
                rules
                    .iter()
                    .filter(|r| r["to"][0]["operation"]["paths"] == json!([path]))
                    .map(|r| r["when"].clone())
                    .collect()
            };
            assert_eq!(when("/admin"), vec![json!([{"key": key, "notValues": ["*"]}])]);
            assert_eq!(
                when("/union"),
                vec![
                    json!([{"key": key, "notValues": ["*"]}]),
                    json!([{"key": key, "values": ["/edge/api"]}]),
                ]
            );
            let ef = yaml(&out.join("istio/envoyfilter-loop.yaml"));
            assert!(strip_patches(&ef).is_empty(), "loop keeps the header");
            // INSERT_FIRST patches come last route first.
            let routes: Vec<Value> = ef["spec"]["configPatches"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .filter(|p| p["applyTo"] == "HTTP_ROUTE")
                .map(|p| p["patch"]["value"].clone())
                .collect();
            assert_eq!(
                contexts(&routes, "loop_stamp"),
                vec![vec![regex(any_api)], vec![absent.clone()]]
            );
        }
    }

    // Cilium cannot match a missing header: a CU0601 at the policy.
    let r = compile(
        &graph,
        &[&pfile],
        &tmp.path().join("cilium"),
        &["--interfaces", "interfaces/cilium-proxy.act"],
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CU0601") && stderr.contains("missing header"),
        "{stderr}"
    );
    assert!(!tmp.path().join("cilium").exists());
}

#[test]
fn flags_and_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let graph = Path::new("examples/bookinfo/graph.json");
    let policies = [Path::new("examples/bookinfo/policies.copper")];
    let out = tmp.path().join("ns");
    compile_ok(
        graph,
        &policies,
        &out,
        &[
            "--namespace",
            "shop",
            "--agent-image",
            "registry.example/copper-agent:1",
        ],
    );
    check_output(&out, tmp.path());
    let vs = yaml(&out.join("istio/virtualservice-reviews.yaml"));
    assert_eq!(vs["metadata"]["namespace"], "shop");
    assert_eq!(vs["spec"]["hosts"][0], "reviews.shop.svc.cluster.local");
    let ds = yaml(&out.join("k8s/daemonset-copper-ctx.yaml"));
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/copper-agent:1"
    );
    let patch = yaml(&out.join("k8s/patches/deployment-reviews-v2.yaml"));
    assert_eq!(patch["metadata"]["namespace"], "shop");

    // The default image is named after the crate version.
    let out = tmp.path().join("default");
    compile_ok(graph, &policies, &out, &[]);
    let ds = yaml(&out.join("k8s/daemonset-copper-ctx.yaml"));
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("copperc-agent:{}", env!("CARGO_PKG_VERSION"))
    );

    let r = compile(graph, &policies, &tmp.path().join("bad"), &["--namespace", "Shop_1"]);
    assert_eq!(r.status.code(), Some(2), "an invalid namespace is a usage error");

    // Services declared to handle one request per thread reach the agent's
    // configuration; a name the graph lacks is a usage error that writes nothing.
    let out = tmp.path().join("one-request");
    compile_ok(
        graph,
        &policies,
        &out,
        &[
            "--one-request-per-thread",
            "reviews,ratings",
            "--one-request-per-thread",
            "details",
        ],
    );
    let cm = yaml(&out.join("k8s/configmap-copper-ctx-config.yaml"));
    let config: Value = serde_json::from_str(cm["data"]["config.json"].as_str().unwrap()).unwrap();
    let mut declared: Vec<&str> = config["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["oneRequestPerThread"] == true)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    declared.sort_unstable();
    assert_eq!(declared, ["details", "ratings", "reviews"]);
    // Without --exclude-outbound-ports the key is absent: every connection is followed.
    assert!(config.get("excludeOutboundPorts").is_none(), "{config}");

    // Excluded ports: merged and sorted, whatever the order given.
    let out = tmp.path().join("excluded");
    compile_ok(
        graph,
        &policies,
        &out,
        &[
            "--exclude-outbound-ports",
            "9001-9099,6379",
            "--exclude-outbound-ports",
            "5432,9000",
        ],
    );
    let cm = yaml(&out.join("k8s/configmap-copper-ctx-config.yaml"));
    let config: Value = serde_json::from_str(cm["data"]["config.json"].as_str().unwrap()).unwrap();
    assert_eq!(config["excludeOutboundPorts"], json!(["5432", "6379", "9000-9099"]));
    // No service's own list was given: no service entry has the key.
    assert!(
        config["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.get("excludeOutboundPorts").is_none())
    );

    // A service's own ports, named before a colon: in its entry only, merged
    // and sorted; the node-wide list keeps the others.
    let out = tmp.path().join("service-ports");
    compile_ok(
        graph,
        &policies,
        &out,
        &[
            "--exclude-outbound-ports",
            "ratings:27017,6379,ratings:5432-5433",
            "--exclude-outbound-ports",
            "reviews:9042",
        ],
    );
    let cm = yaml(&out.join("k8s/configmap-copper-ctx-config.yaml"));
    let config: Value = serde_json::from_str(cm["data"]["config.json"].as_str().unwrap()).unwrap();
    assert_eq!(config["excludeOutboundPorts"], json!(["6379"]));
    let own: BTreeMap<&str, &Value> = config["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| Some((s["name"].as_str()?, s.get("excludeOutboundPorts")?)))
        .collect();
    assert_eq!(own.len(), 2, "{own:?}");
    assert_eq!(own["ratings"], &json!(["5432-5433", "27017"]));
    assert_eq!(own["reviews"], &json!(["9042"]));
    let bad = tmp.path().join("bad-scoped");
    let r = compile(graph, &policies, &bad, &["--exclude-outbound-ports", "ratingz:5432"]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    insta::assert_snapshot!("exclude_outbound_ports_unknown_service", stderr);
    assert!(!bad.exists());
    let bad = tmp.path().join("bad-port");
    let r = compile(graph, &policies, &bad, &["--exclude-outbound-ports", "5432,70000"]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`70000` is not a port (1 to 65535)"), "{stderr}");
    assert!(!bad.exists());

    // The agent's metrics: on port 9464 of each node unless told otherwise; 0 serves none.
    let agent = |out: &Path| -> Value {
        let ds = yaml(&out.join("k8s/daemonset-copper-ctx.yaml"));
        ds["spec"]["template"].clone()
    };
    // The agent's pods carry the hash of what the agent reads at start: a
    // changed configuration changes the pod template, so applying it rolls
    // the DaemonSet (the configurations of "one-request" and "excluded" differ).
    let hash_of = |out: &Path| agent(out)["metadata"]["annotations"]["copperc.dev/agent-inputs"].clone();
    let (one, excl) = (hash_of(&tmp.path().join("one-request")), hash_of(&out));
    assert!(
        one.as_str().is_some_and(|h| h.starts_with("sha256:") && h.len() == 71),
        "{one}"
    );
    assert_ne!(one, excl);
    let config = yaml(&out.join("k8s/configmap-copper-ctx-config.yaml"))["data"]["config.json"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        excl,
        copperc::emit::k8s::agent_inputs_hash(&config, Some(copperc::ebpf::OBJECT)),
        "the hash of config.json, then of the object the DaemonSet mounts"
    );
    let default = agent(&out);
    assert_eq!(
        default["spec"]["containers"][0]["ports"],
        json!([{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}])
    );
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            default["spec"]["containers"][0][probe]["httpGet"],
            json!({"path": "/healthz", "port": "metrics"}),
            "{probe}"
        );
    }
    let out = tmp.path().join("metrics-port");
    compile_ok(graph, &policies, &out, &["--agent-metrics-port", "9970"]);
    let template = agent(&out);
    let args = template["spec"]["containers"][0]["args"].as_array().unwrap();
    let at = args.iter().position(|a| a == "--metrics").unwrap();
    assert_eq!(args[at + 1], "0.0.0.0:9970");
    assert_eq!(template["metadata"]["annotations"]["prometheus.io/port"], "9970");
    let out = tmp.path().join("no-metrics");
    compile_ok(graph, &policies, &out, &["--agent-metrics-port", "0"]);
    let template = agent(&out);
    assert!(
        !template["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--metrics")
    );
    assert!(template["spec"]["containers"][0].get("ports").is_none(), "{template}");
    assert!(
        template["spec"]["containers"][0].get("livenessProbe").is_none(),
        "{template}"
    );
    let annotations = template["metadata"]["annotations"].as_object().unwrap();
    assert!(
        annotations.keys().all(|k| !k.starts_with("prometheus.io/")),
        "{template}"
    );

    let bad = tmp.path().join("bad-name");
    let r = compile(graph, &policies, &bad, &["--one-request-per-thread", "reviewz"]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    insta::assert_snapshot!("one_request_per_thread_unknown_service", stderr);
    assert!(!bad.exists());

    let out = tmp.path().join("istio-only");
    compile_ok(graph, &policies, &out, &["--target", "istio"]);
    assert!(out.join("istio/kustomization.yaml").exists());
    assert!(!out.join("k8s").exists() && !out.join("envoy").exists());

    let out = tmp.path().join("k8s-only");
    compile_ok(graph, &policies, &out, &["--target", "k8s"]);
    assert!(!out.join("istio").exists());
    let k = yaml(&out.join("k8s/kustomization.yaml"));
    assert!(!k["resources"].as_array().unwrap().iter().any(|r| r == "../istio"));
}

/// Deployments `<service>-<version>` of the Bookinfo graph, as the
/// application's own kustomization would list them.
fn bookinfo_app(dir: &Path) {
    let graph: Value = serde_json::from_str(&std::fs::read_to_string("examples/bookinfo/graph.json").unwrap()).unwrap();
    let mut docs = Vec::new();
    for s in graph["services"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        for v in s["versions"].as_array().unwrap() {
            let v = v.as_str().unwrap();
            let labels = json!({"app": name, "version": v});
            docs.push(
                serde_json::to_string(&json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": format!("{name}-{v}"), "labels": labels},
                    "spec": {
                        "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                            {"name": name, "image": format!("docker.io/istio/examples-bookinfo-{name}-{v}:1.20.3")}
                        ]}},
                    },
                }))
                .unwrap(),
            );
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("app.yaml"), docs.join("\n---\n")).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n- app.yaml\ncomponents:\n- ../out/k8s\n",
    )
    .unwrap();
}

#[test]
fn kustomize_builds_the_component_over_the_app() {
    assert!(
        Command::new("kubectl").arg("version").arg("--client").output().is_ok(),
        "kubectl is missing: this test needs `kubectl kustomize` (the machine image ships kubectl)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    compile_ok(
        Path::new("examples/bookinfo/graph.json"),
        &[Path::new("examples/bookinfo/policies.copper")],
        &out,
        &[],
    );
    bookinfo_app(&tmp.path().join("app"));
    let built = Command::new("kubectl")
        .arg("kustomize")
        .arg(tmp.path().join("app"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let path = tmp.path().join("built.yaml");
    std::fs::write(&path, &built.stdout).unwrap();
    for schemas in ["istio", "k8s"] {
        let out = Command::new(python())
            .args([VALIDATE, "--strict", "--ignore-unknown-kinds"])
            .arg(Path::new(SCHEMAS).join(schemas))
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    // The patches reached the application's Deployments.
    let text = String::from_utf8_lossy(&built.stdout);
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap())
        .collect();
    let inject = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
            .map(|d| d["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"].clone())
    };
    assert_eq!(inject("productpage-v1"), Some(json!("true")));
    assert_eq!(inject("reviews-v2"), Some(json!("false")));
    // Every pod gets the waiting sidecar, beside its own containers, named
    // for its service; the startup probe is a command copperc accepts.
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let name = d["metadata"]["name"].as_str().unwrap();
        let pod = &d["spec"]["template"]["spec"];
        let service = name.rsplit_once('-').unwrap().0;
        assert_eq!(pod["containers"][0]["name"], service, "{name}: the app container stays");
        let wait = &pod["initContainers"][0];
        assert_eq!(wait["name"], "copper-ctx-wait", "{name}");
        assert_eq!(wait["restartPolicy"], "Always", "{name}: a native sidecar");
        assert_eq!(
            wait["env"],
            json!([{"name": "COPPER_CTX_SERVICE", "value": service}]),
            "{name}"
        );
        assert_eq!(pod["volumes"][0]["name"], "copper-ctx-wait", "{name}");
        let probe: Vec<&str> = wait["startupProbe"]["exec"]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(probe[0], "copperc");
        let ran = Command::new(env!("CARGO_BIN_EXE_copperc"))
            .args(&probe[1..])
            .output()
            .unwrap();
        assert_eq!(ran.status.code(), Some(1), "not ready yet, and no usage error: {ran:?}");
    }
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    assert_eq!(ds["spec"]["template"]["spec"]["hostPID"], true);
    assert!(docs.iter().any(|d| d["kind"] == "VirtualService"));
    assert!(docs.iter().any(|d| d["kind"] == "DaemonSet"));
}

/// The hook for the eBPF object: given bytes, a ConfigMap holds them and
/// the DaemonSet mounts it and passes it to the agent, on the nodes of the
/// object's architecture only (another kernel would refuse it).
#[test]
fn ebpf_object_hook_validates() {
    use copperc::emit::k8s::{AgentPod, agent_inputs_hash, base64, daemonset, ebpf_configmap};
    let tmp = tempfile::tempdir().unwrap();
    let policies = BTreeSet::from(["p"]);
    let bytes = b"test bytes, not an object\x00\xff";
    let mut paths = Vec::new();
    for f in [
        ebpf_configmap(bytes, &policies),
        daemonset(
            &AgentPod {
                image: "img:1",
                object_arch: Some("arm64"),
                metrics_port: Some(9464),
                inputs_hash: &agent_inputs_hash("{}", Some(bytes)),
            },
            &policies,
        ),
    ] {
        let p = tmp.path().join(f.path.replace('/', "_"));
        std::fs::write(&p, &f.bytes).unwrap();
        paths.push(p);
    }
    assert_eq!(validate(&Path::new(SCHEMAS).join("k8s"), &paths), 2);
    let cm = yaml(&paths[0]);
    assert_eq!(cm["metadata"]["name"], "copper-ctx-bpf");
    assert_eq!(cm["binaryData"]["copper.bpf.o"], base64(bytes));
    let ds = yaml(&paths[1]);
    let pod = &ds["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["configMap"]["name"] == "copper-ctx-bpf")
    );
    let args = pod["containers"][0]["args"].as_array().unwrap();
    assert!(args.iter().any(|a| a == "--object"));
    assert_eq!(pod["nodeSelector"]["kubernetes.io/arch"], "arm64");

    // Without an object of its own, the agent loads the one built into its
    // image, on any node.
    let plain = daemonset(
        &AgentPod {
            image: "img:1",
            object_arch: None,
            metrics_port: Some(9464),
            inputs_hash: &agent_inputs_hash("{}", None),
        },
        &policies,
    );
    let p = tmp.path().join("plain.yaml");
    std::fs::write(&p, &plain.bytes).unwrap();
    assert_eq!(validate(&Path::new(SCHEMAS).join("k8s"), std::slice::from_ref(&p)), 1);
    let ds = yaml(&p);
    let pod = &ds["spec"]["template"]["spec"];
    assert!(pod.get("nodeSelector").is_none(), "{pod}");
    assert!(
        !pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--object")
    );
}

mod guard_intersection {
    use copperc::analysis::encoding::encode_context;
    use copperc::emit::context_regex::{Intersection, guard_from, header_regex_from, intersection};
    use proptest::prelude::*;
    use regex_automata::meta::Regex;

    use super::common::pattern_strategy as pattern;

    fn full(re: &str) -> Regex {
        Regex::new(&format!("^(?:{re})$")).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        /// The one regex of several guards accepts a header exactly when
        /// each guard's own regex does.
        #[test]
        fn intersection_agrees_with_each_guard(
            p in pattern(),
            q in pattern(),
            callee in 0usize..5,
            caller in 0usize..5,
            headers in prop::collection::vec(prop::collection::vec(0usize..5, 0..6), 1..20),
        ) {
            let (Some(p), Some(q)) = (super::common::parse_pattern_text(&p), super::common::parse_pattern_text(&q)) else { return Ok(()) };
            // Index 4 is a service neither pattern names.
            let names = ["a", "b", "ab", "c-1", "zz"];
            let (callee, caller) = (names[callee], Some(names[caller]));
            let res: Vec<Option<Regex>> = [&p, &q]
                .iter()
                .map(|x| header_regex_from(x, callee, &[caller]).map(|r| full(&r)))
                .collect();
            let (gp, gq) = (guard_from(&p, callee, &[caller]), guard_from(&q, callee, &[caller]));
            let both = intersection(&[&gp, &gq]);
            // Too large is a refusal the emitter handles (it falls back to
            // one header match per guard), not a wrong answer.
            if both == Intersection::TooLarge {
                return Ok(());
            }
            let combined = match &both {
                Intersection::Regex(r) => Some(full(r)),
                _ => None,
            };
            for h in headers {
                let mut ctx: Vec<&str> = h.iter().map(|&i| names[i]).collect();
                ctx.extend(caller);
                let text = encode_context(ctx.iter().copied());
                let each = res.iter().all(|r| r.as_ref().is_some_and(|r| r.is_match(&text)));
                let one = combined.as_ref().is_some_and(|r| r.is_match(&text));
                prop_assert_eq!(each, one, "header {:?}, intersection {:?}", text, both);
            }
        }
    }
}
