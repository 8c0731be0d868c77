//! `copperc place`: optimal sidecar placement, as a table or the JSON object.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::pipeline::{PipelineArgs, run_to_placement};
use super::{EXIT_OK, EXIT_USAGE, PlaceArgs, PlaceFormat};
use crate::place::{explain, maxsat, report};

pub fn run(args: &PlaceArgs) -> u8 {
    let deadline = match args.time_limit {
        Some(t) if !(t.is_finite() && t > 0.0) => {
            eprintln!("error: --time-limit must be a positive number of seconds");
            return EXIT_USAGE;
        }
        Some(t) => Some(Instant::now() + Duration::from_secs_f64(t)),
        None => None,
    };
    let color = args.output.color.enabled(std::io::stderr().is_terminal());
    let placed = match run_to_placement(
        &PipelineArgs {
            input: &args.input,
            graph: &args.graph,
            default_dataplane: args.default_dataplane.clone(),
            deadline,
            deny_warnings: args.output.deny_warnings,
            timings: args.timings,
        },
        color,
    ) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(path) = &args.emit_wcnf {
        let mut buf = Vec::new();
        let written =
            maxsat::write_wcnf(&placed.encoding.instance, &mut buf).and_then(|_| super::write_atomically(path, &buf));
        if let Err(e) = written {
            eprintln!(
                "error[CU0902]: cannot write `{}`: {}",
                path.display(),
                super::inputs::io_reason(&e)
            );
            return EXIT_USAGE;
        }
    }
    let mut clock = super::pipeline::Clock::new(args.timings);
    let text = match args.format {
        PlaceFormat::Json => report::json_text(&placed.placement, &placed.program, &placed.graph),
        PlaceFormat::Text => report::text(&placed.placement, &placed.program, &placed.graph),
    };
    clock.lap("render output");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if args.explain {
        let why = explain::explain(
            &placed.placement,
            &placed.encoding,
            &placed.program,
            &placed.graph,
            &placed.analysis,
        );
        match args.format {
            // Keep stdout one JSON document: the explanation goes to stderr.
            PlaceFormat::Json => eprint!("{why}"),
            PlaceFormat::Text => {
                let _ = out.write_all(b"\n");
                let _ = out.write_all(why.as_bytes());
            }
        }
    }
    let _ = out.flush();
    EXIT_OK
}
