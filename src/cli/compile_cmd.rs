//! `copperc compile`: check, place, emit, and write the output folder atomically.

use std::io::IsTerminal;

use super::pipeline::{PipelineArgs, run_to_placement};
use super::{CompileArgs, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::diag::render::{Format, render};
use crate::emit::{self, EmitInput};

pub fn run(args: &CompileArgs) -> u8 {
    let color = args.output.color.enabled(std::io::stderr().is_terminal());
    let placed = match run_to_placement(
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
    let files = match emit::emit(&input, args.target) {
        Ok(f) => f,
        Err(diags) => {
            eprint!("{}", render(Format::Human, &diags, &placed.sources, color));
            return EXIT_FINDINGS;
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
