//! `copperc compile`: check, place, emit, and write the output folder atomically.

use std::io::IsTerminal;

use super::pipeline::{PipelineArgs, run_to_placement};
use super::{CompileArgs, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, PlaceMode};
use crate::diag::render::{Format, render};
use crate::diag::{Code, Diagnostic};
use crate::ebpf::ports::PortSet;
use crate::emit::{self, EmitInput};

/// `--one-request-per-thread` and `--exclude-outbound-ports SERVICE:PORTS`
/// name only services of the call graph: a misspelt name would otherwise
/// leave its service without contexts, or its ports followed, silently.
fn known_services<'a>(
    option: &str,
    names: impl IntoIterator<Item = &'a String>,
    graph: &crate::graph::CallGraph,
) -> Result<(), Diagnostic> {
    let Some(unknown) = names
        .into_iter()
        .find(|n| !graph.services.iter().any(|s| &s.name == *n))
    else {
        return Ok(());
    };
    let known: Vec<&str> = graph.services.iter().map(|s| s.name.as_str()).collect();
    Err(Diagnostic::new(
        Code::OptionUnknownService,
        format!("`{option}` names `{unknown}`, which the call graph does not have"),
    )
    .with_help(format!(
        "the call graph's services are {}",
        crate::check::policies::backticked(&known)
    )))
}

/// The ports every service leaves alone, and each service's own.
fn split_ports(items: &[(Option<String>, (u16, u16))]) -> (PortSet, std::collections::BTreeMap<String, PortSet>) {
    let global: Vec<(u16, u16)> = items.iter().filter(|(s, _)| s.is_none()).map(|(_, r)| *r).collect();
    let mut scoped: std::collections::BTreeMap<String, Vec<(u16, u16)>> = std::collections::BTreeMap::new();
    for (service, range) in items {
        if let Some(s) = service {
            scoped.entry(s.clone()).or_default().push(*range);
        }
    }
    let scoped = scoped
        .into_iter()
        .map(|(s, ranges)| (s, PortSet::from_ranges(&ranges)))
        .collect();
    (PortSet::from_ranges(&global), scoped)
}

pub fn run(args: &CompileArgs) -> u8 {
    let color = args.output.color.enabled(std::io::stderr().is_terminal());
    let mut placed = match run_to_placement(
        &PipelineArgs {
            input: &args.input,
            graph: &args.graph,
            default_dataplane: args.default_dataplane.clone(),
            deadline: None,
            deny_warnings: args.output.deny_warnings,
            timings: false,
        },
        color,
    ) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let scoped = args.exclude_outbound_ports.iter().filter_map(|(s, _)| s.as_ref());
    for check in [
        known_services("--one-request-per-thread", &args.one_request_per_thread, &placed.graph),
        known_services("--exclude-outbound-ports", scoped, &placed.graph),
    ] {
        if let Err(d) = check {
            eprint!("{}", render(Format::Human, &[d], &placed.sources, color));
            return EXIT_USAGE;
        }
    }
    let (excluded_ports, service_ports) = split_ports(&args.exclude_outbound_ports);
    add_sidecars(&mut placed, args.place);
    // Cilium's limits can depend on where a policy lands (which contexts it
    // must list). When Cilium refuses a policy at the chosen sidecar, take
    // Cilium out of that policy's support and place again; each round
    // removes at least one (policy, dataplane) pair, so this ends.
    let files = loop {
        let input = EmitInput {
            program: &placed.program,
            graph: &placed.graph,
            analysis: &placed.analysis,
            placement: &placed.placement,
            cluster: emit::k8s::Cluster {
                namespace: &args.namespace,
                agent_image: &args.agent_image,
                ebpf_object: Some(emit::k8s::AgentObject {
                    bytes: crate::ebpf::OBJECT,
                    arch: crate::ebpf::OBJECT_ARCH,
                }),
                one_request_per_thread: &args.one_request_per_thread,
                excluded_ports: &excluded_ports,
                service_ports: &service_ports,
                agent_metrics_port: (args.agent_metrics_port != 0).then_some(args.agent_metrics_port),
            },
        };
        let diags = match emit::emit(&input, args.target) {
            Ok(f) => break f,
            Err(diags) => diags,
        };
        let refused: Vec<usize> = placed
            .program
            .policies
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.support.keys().any(|d| emit::cilium::is_cilium_dataplane(d))
                    && p.support.len() > 1
                    && diags.iter().any(|d| {
                        d.code == crate::diag::Code::NotExpressible
                            && d.primary.as_ref().is_some_and(|l| l.span == p.name_span)
                    })
            })
            .map(|(i, _)| i)
            .collect();
        if refused.is_empty() {
            eprint!("{}", render(Format::Human, &diags, &placed.sources, color));
            return EXIT_FINDINGS;
        }
        for &i in &refused {
            placed.program.policies[i]
                .support
                .retain(|d, _| !emit::cilium::is_cilium_dataplane(d));
        }
        let opts = crate::place::PlaceOptions {
            deadline: None,
            default_dataplane: args.default_dataplane.clone(),
        };
        match crate::place::place(&placed.program, &placed.graph, &placed.analysis, &opts) {
            Ok((placement, _)) => {
                placed.placement = placement;
                add_sidecars(&mut placed, args.place);
            }
            Err(ds) => {
                eprint!("{}", render(Format::Human, &ds, &placed.sources, color));
                return EXIT_FINDINGS;
            }
        }
        let problems =
            crate::place::verify::verify(&placed.program, &placed.graph, &placed.analysis, &placed.placement);
        if !problems.is_empty() {
            eprintln!("internal error: the placement failed its soundness check: {problems:?}");
            return 101;
        }
    };
    if let Err(e) = crate::out::write_folder(&args.out, &files) {
        eprintln!(
            "error[CU0902]: cannot write `{}`: {}",
            args.out.display(),
            super::inputs::io_reason(&e)
        );
        return EXIT_USAGE;
    }
    if !args.output.quiet {
        eprintln!("wrote {} files to {}:", files.len(), args.out.display());
        for f in &files {
            eprintln!("  {}", f.path);
        }
        eprintln!(
            "placement cost {} ({}); baseline istio {}",
            placed.placement.cost,
            if placed.placement.optimal {
                "optimal"
            } else {
                "not proven optimal"
            },
            placed.placement.baselines.istio
        );
    }
    EXIT_OK
}

/// `--place istio++|every`: the `istio++` baseline placement (each matched
/// call enforced by the default dataplane at the callee where it supports
/// the policy on the way in, else at the caller; sidecars exactly there),
/// and for `every`, that placement plus pass-through sidecars of the default
/// dataplane on every other service. The cost is recomputed; calls that
/// the default dataplane cannot enforce keep Wire's choice.
fn add_sidecars(placed: &mut super::pipeline::Placed, mode: PlaceMode) {
    if mode == PlaceMode::Wire {
        return;
    }
    let default = placed.placement.baselines.default_dataplane.clone();
    let n = placed.graph.services.len();
    let mut sidecars: Vec<Option<String>> = vec![None; n];
    for e in &mut placed.placement.enforcement {
        let sides = placed.program.policies[e.policy].support.get(&default).copied();
        match (sides, e.from) {
            (Some(s), _) if s.ingress => {
                e.at = e.to;
                e.side = crate::place::model::Side::Ingress;
                e.dataplane = default.clone();
            }
            (Some(s), Some(u)) if s.egress => {
                e.at = u;
                e.side = crate::place::model::Side::Egress;
                e.dataplane = default.clone();
            }
            _ => {}
        }
        sidecars[e.at] = Some(e.dataplane.clone());
    }
    if mode == PlaceMode::Every {
        for s in &mut sidecars {
            s.get_or_insert_with(|| default.clone());
        }
    }
    placed.placement.sidecars = sidecars;
    let dataplanes = &placed.program.interfaces.dataplanes;
    placed.placement.cost = placed
        .placement
        .sidecars
        .iter()
        .enumerate()
        .filter_map(|(s, d)| {
            let d = d.as_ref()?;
            Some(
                placed.graph.services[s]
                    .replicas
                    .saturating_mul(dataplanes.get(d)?.cost),
            )
        })
        .fold(0u64, u64::saturating_add);
}
