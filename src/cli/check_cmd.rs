//! `copperc check`: load, check, print diagnostics, summarise.

use super::{CheckArgs, EXIT_FINDINGS, EXIT_OK, fail_usage, inputs, plural, print_diagnostics};
use crate::check::{self, CheckInput};
use crate::source::SourceMap;

pub fn run(args: &CheckArgs) -> u8 {
    let mut sources = SourceMap::new();
    let ifaces = match inputs::load_interfaces(&mut sources, &args.input.interfaces) {
        Ok(ids) => ids,
        Err(d) => return fail_usage(&d, &sources, args.format),
    };
    let policies = match inputs::load_policies(&mut sources, &args.input.policies) {
        Ok(ids) => ids,
        Err(d) => return fail_usage(&d, &sources, args.format),
    };
    let mut diags = Vec::new();
    let mut names = None;
    let mut call_graph = None;
    if let Some(path) = &args.graph {
        let file = match inputs::read(&mut sources, path) {
            Ok(f) => f,
            Err(d) => return fail_usage(&d, &sources, args.format),
        };
        let (graph, ds) = crate::graph::parse_graph(&sources, file);
        diags.extend(ds);
        names = graph.as_ref().map(|g| g.names());
        call_graph = graph;
    }
    let (program, ds) = check::check(
        &sources,
        &CheckInput {
            interface_files: &ifaces,
            policy_files: &policies,
            graph_services: names.as_ref(),
        },
    );
    diags.extend(ds);
    // With a graph, what needs the matched calls is checked too (CU0501, CU0505).
    if let (Some(p), Some(g)) = (&program, &call_graph) {
        diags.extend(crate::analysis::analyze(p, g).1);
    }
    crate::diag::normalize(&mut diags);
    let (errors, warnings) = print_diagnostics(&diags, &sources, args.format, args.output.color);
    let failed = errors > 0 || (args.output.deny_warnings && warnings > 0);
    if !args.output.quiet || failed {
        let what = match &program {
            Some(p) => format!(
                "checked {} in {} against {}",
                plural(p.policies.len(), "policy").replace("policys", "policies"),
                plural(policies.len(), "file"),
                plural(p.interfaces.dataplanes.len(), "dataplane")
            ),
            None => format!("checked {}", plural(policies.len(), "file")),
        };
        eprintln!("{what}: {}, {}", plural(errors, "error"), plural(warnings, "warning"));
    }
    if failed { EXIT_FINDINGS } else { EXIT_OK }
}
