//! `copperc generate`: a synthetic instance (graph + policies) in a new folder.

use super::{EXIT_OK, EXIT_USAGE, GenerateArgs};
use crate::synth::{GraphSpec, PolicySpec, generate_graph, generate_policies, graph_json};

pub fn run(args: &GenerateArgs) -> u8 {
    if args.services == 0 {
        eprintln!("error: --services must be at least 1");
        return EXIT_USAGE;
    }
    let graph = generate_graph(&GraphSpec::new(args.services, args.seed));
    let policies = generate_policies(&graph, &PolicySpec::new(args.policies, args.seed));
    let files = [("graph.json", graph_json(&graph)), ("policies.copper", policies)];
    match super::write_new_folder(&args.out, &files) {
        Ok(()) => {
            eprintln!(
                "wrote {} ({} services, {} calls, {} policies)",
                args.out.display(),
                graph.services.len(),
                graph.calls.len(),
                args.policies
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!(
                "error[CU0902]: cannot write `{}`: {}",
                args.out.display(),
                super::inputs::io_reason(&e)
            );
            EXIT_USAGE
        }
    }
}
