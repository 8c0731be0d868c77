//! Criterion benchmarks of the Wire stages on generated Alibaba-shaped
//! instances: context analysis and placement (encode + MaxSAT), at 1k, 5k
//! and 20k services with 100 to 1000 policies. `benches/scale_table.py`
//! prints the end-to-end table of docs/evaluation.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "benchmark code")]

use copperc::analysis;
use copperc::check::{self, CheckInput};
use copperc::graph;
use copperc::place::{self, PlaceOptions};
use copperc::source::SourceMap;
use copperc::synth::{GraphSpec, PolicySpec, generate_graph, generate_policies, graph_json};
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

criterion_group!(benches, bench_scale);
criterion_main!(benches);
