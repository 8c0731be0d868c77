//! The front half shared by `place` and `compile`: load inputs, check,
//! load the graph, analyse, place. Diagnostics go to standard error.

use std::path::PathBuf;
use std::time::Instant;

use super::{EXIT_FINDINGS, InputArgs, inputs};
use crate::analysis::Analysis;
use crate::check::Program;
use crate::diag::Diagnostic;
use crate::diag::render::{Format, render};
use crate::graph::CallGraph;
use crate::place::{self, PlaceOptions, Placement, encode::Encoding};
use crate::source::SourceMap;

pub struct Placed {
    pub sources: SourceMap,
    pub program: Program,
    pub graph: CallGraph,
    pub analysis: Analysis,
    pub placement: Placement,
    pub encoding: Encoding,
}

pub struct PipelineArgs<'a> {
    pub input: &'a InputArgs,
    pub graph: &'a PathBuf,
    pub default_dataplane: Option<String>,
    pub deadline: Option<Instant>,
    pub deny_warnings: bool,
    /// Print how long each stage took, on standard error.
    pub timings: bool,
}

/// Runs the pipeline up to placement, printing every diagnostic. `Err` is the exit code.
pub fn run_to_placement(args: &PipelineArgs, color: bool) -> Result<Placed, u8> {
    let mut clock = Clock::new(args.timings);
    let mut sources = SourceMap::new();
    let fail = |d: Diagnostic, sources: &SourceMap| {
        eprint!("{}", render(Format::Human, &[d], sources, color));
        super::EXIT_USAGE
    };
    let ifaces = inputs::load_interfaces(&mut sources, &args.input.interfaces).map_err(|d| fail(d, &sources))?;
    let policies = inputs::load_policies(&mut sources, &args.input.policies).map_err(|d| fail(d, &sources))?;
    let graph_file = inputs::read(&mut sources, args.graph).map_err(|d| fail(d, &sources))?;

    clock.lap("read inputs");
    let front = crate::front::run(&sources, &ifaces, &policies, Some(graph_file), &mut |stage| {
        clock.lap(stage)
    });
    let failed =
        front.diagnostics.iter().any(Diagnostic::is_error) || (args.deny_warnings && !front.diagnostics.is_empty());
    if !front.diagnostics.is_empty() {
        eprint!("{}", render(Format::Human, &front.diagnostics, &sources, color));
    }
    let (Some(mut program), Some(graph), Some(analysis)) = (front.program, front.graph, front.analysis) else {
        return Err(EXIT_FINDINGS);
    };
    if failed {
        return Err(EXIT_FINDINGS);
    }
    let unexpressible = crate::emit::restrict_support(&mut program);
    if !unexpressible.is_empty() {
        eprint!("{}", render(Format::Human, &unexpressible, &sources, color));
        return Err(EXIT_FINDINGS);
    }
    let opts = PlaceOptions {
        deadline: args.deadline,
        default_dataplane: args.default_dataplane.clone(),
    };
    let placed = place::place(&program, &graph, &analysis, &opts);
    clock.lap("placement (encode, solve)");
    match placed {
        Ok((placement, encoding)) => {
            if args.timings {
                eprintln!(
                    "{:>9.2} ms    of which encode",
                    placement.stats.encode_time.as_secs_f64() * 1e3
                );
                eprintln!(
                    "{:>9.2} ms    of which MaxSAT solve",
                    placement.stats.solve_time.as_secs_f64() * 1e3
                );
            }
            let problems = place::verify::verify(&program, &graph, &analysis, &placement);
            clock.lap("soundness check");
            if !problems.is_empty() {
                eprintln!("internal error: the placement failed its soundness check:");
                for p in problems {
                    eprintln!("  {p}");
                }
                return Err(101);
            }
            Ok(Placed {
                sources,
                program,
                graph,
                analysis,
                placement,
                encoding,
            })
        }
        Err(ds) => {
            let usage = ds.iter().any(|d| d.code == crate::diag::Code::UnknownDataplane);
            eprint!("{}", render(Format::Human, &ds, &sources, color));
            Err(if usage { super::EXIT_USAGE } else { EXIT_FINDINGS })
        }
    }
}

/// Wall-clock time per stage, printed on standard error with `--timings`.
pub struct Clock {
    on: bool,
    last: Instant,
}

impl Clock {
    pub fn new(on: bool) -> Clock {
        Clock {
            on,
            last: Instant::now(),
        }
    }

    pub fn lap(&mut self, what: &str) {
        let now = Instant::now();
        if self.on {
            eprintln!("{:>9.2} ms  {what}", (now - self.last).as_secs_f64() * 1e3);
        }
        self.last = now;
    }
}
