//! `copperc compile`: check, place, emit, and write the output folder atomically.

use std::io::IsTerminal;

use super::pipeline::{PipelineArgs, run_to_placement};
use super::{CompileArgs, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, PlaceMode};
use crate::diag::render::{Format, render};
use crate::emit::{self, EmitInput};

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
                ebpf_object: None,
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

/// `--place istio++|every`: adds pass-through sidecars of the default
/// dataplane to Wire's placement (where policies are enforced does not
/// change) on the services of the `istio++` baseline (the callee of each
/// matched call where the default dataplane supports the policy on the way
/// in, else the caller), or on every service; the cost is recomputed.
fn add_sidecars(placed: &mut super::pipeline::Placed, mode: PlaceMode) {
    let default = placed.placement.baselines.default_dataplane.clone();
    let n = placed.graph.services.len();
    let wanted: Vec<bool> = match mode {
        PlaceMode::Wire => return,
        PlaceMode::Every => vec![true; n],
        PlaceMode::IstioPlus => {
            let mut w = vec![false; n];
            for e in &placed.placement.enforcement {
                let ingress = placed.program.policies[e.policy]
                    .support
                    .get(&default)
                    .is_some_and(|s| s.ingress);
                match (ingress, e.from) {
                    (false, Some(u)) => w[u] = true,
                    _ => w[e.to] = true,
                }
            }
            w
        }
    };
    for (s, want) in wanted.into_iter().enumerate() {
        if want && placed.placement.sidecars[s].is_none() {
            placed.placement.sidecars[s] = Some(default.clone());
        }
    }
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
