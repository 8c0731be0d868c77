//! `copperc check`: load, check, print diagnostics, summarise.

use super::{CheckArgs, EXIT_FINDINGS, EXIT_OK, fail_usage, inputs, plural, print_diagnostics};
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
    let graph = match &args.graph {
        Some(path) => match inputs::read(&mut sources, path) {
            Ok(f) => Some(f),
            Err(d) => return fail_usage(&d, &sources, args.format),
        },
        None => None,
    };
    // With a graph, the analysis runs too: CU0501 and CU0505 need matched calls.
    let front = crate::front::run(&sources, &ifaces, &policies, graph, &mut |_| {});
    let program = front.program;
    let diags = front.diagnostics;
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
