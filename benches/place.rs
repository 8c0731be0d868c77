//! Criterion benchmarks of the Wire stages on generated Alibaba-shaped
//! instances: context analysis and placement (encode + MaxSAT), at 1k, 5k
//! and 20k services with 100 to 1000 policies. `benches/scale_table.py`
//! prints the end-to-end table of docs/evaluation.md.
//!
//! Group `synth`: generating the 20k-service graph and its 1000 policies.
//! Group `maxsat`: the MaxSAT solver alone on placement-shaped instances of
//! 20,000 services (`synth::placement_instance`): the default and the hard
//! shape to optimality, one large component (a gateway joining every
//! cluster) to optimality and with a 50 ms deadline, which returns the best
//! placement found and the proven bound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "benchmark code")]

use copperc::analysis;
use copperc::check::{self, CheckInput};
use copperc::graph;
use copperc::place::maxsat::{self, Options};
use copperc::place::{self, PlaceOptions};
use copperc::source::SourceMap;
use copperc::synth::{
    GraphSpec, PlacementShape, PolicySpec, generate_graph, generate_policies, graph_json, placement_instance,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench_scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");
    group.sample_size(10);
    for (services, policies) in [(1_000, 100), (5_000, 500), (20_000, 1_000)] {
        let g = generate_graph(&GraphSpec::new(services, 1));
        let pol = generate_policies(&g, &PolicySpec::new(policies, 1));
        let mut sm = SourceMap::new();
        let ifaces: Vec<usize> = copperc::interfaces::BUNDLED
            .iter()
            .map(|(n, t)| sm.add(*n, *t))
            .collect();
        let pf = sm.add("p.copper", pol);
        let gf = sm.add("g.json", graph_json(&g));
        let label = format!("{services}svc-{policies}pol");

        group.bench_function(format!("load-graph/{label}"), |b| {
            b.iter(|| graph::parse_graph(&sm, gf))
        });
        let graph = graph::parse_graph(&sm, gf).0.unwrap();
        let input = CheckInput {
            interface_files: &ifaces,
            policy_files: &[pf],
            graph_services: None,
        };
        group.bench_function(format!("check/{label}"), |b| b.iter(|| check::check(&sm, &input)));
        let program = check::check(&sm, &input).0.unwrap();
        group.bench_function(format!("analysis/{label}"), |b| {
            b.iter(|| analysis::analyze(&program, &graph))
        });
        let analysis = analysis::analyze(&program, &graph).0.unwrap();
        let opts = PlaceOptions {
            deadline: None,
            default_dataplane: None,
        };
        group.bench_function(format!("place/{label}"), |b| {
            b.iter(|| place::place(&program, &graph, &analysis, &opts).unwrap())
        });
    }
    group.finish();
}

fn bench_synth(c: &mut Criterion) {
    let mut group = c.benchmark_group("synth");
    group.sample_size(10);
    group.bench_function("generate-graph/20000svc", |b| {
        b.iter(|| generate_graph(&GraphSpec::new(20_000, 1)))
    });
    let g = generate_graph(&GraphSpec::new(20_000, 1));
    group.bench_function("generate-policies/20000svc-1000pol", |b| {
        b.iter(|| generate_policies(&g, &PolicySpec::new(1_000, 1)))
    });
    group.finish();
}

fn bench_maxsat(c: &mut Criterion) {
    let mut group = c.benchmark_group("maxsat");
    group.sample_size(10);
    let gateway = PlacementShape {
        gateway: true,
        ..PlacementShape::hard()
    };
    for (name, shape, seed) in [
        ("default", PlacementShape::default(), 1),
        ("hard", PlacementShape::hard(), 1),
        ("one-component", gateway, 7),
    ] {
        let inst = placement_instance(seed, &shape);
        group.bench_function(format!("optimal/{name}"), |b| {
            b.iter(|| maxsat::solve(&inst, &Options::default()))
        });
        if name == "one-component" {
            group.bench_function(format!("deadline-50ms/{name}"), |b| {
                b.iter(|| {
                    let deadline = Some(std::time::Instant::now() + std::time::Duration::from_millis(50));
                    maxsat::solve(&inst, &Options { deadline })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_scale, bench_synth, bench_maxsat);
criterion_main!(benches);
