//! The command line: argument parsing (clap), input loading, and printing.
//! Maps outcomes to exit codes: 0 clean (warnings allowed), 1 errors in the
//! inputs, 2 usage or I/O errors.

mod check_cmd;
pub mod inputs;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::diag::Diagnostic;
use crate::diag::render::{self, Format};
use crate::source::SourceMap;

#[derive(Parser)]
#[command(
    name = "copperc",
    version,
    about = "Compile service-mesh policies written in Copper into sidecar placements and dataplane configuration",
    long_about = "copperc reads dataplane interface files (*.act), Copper policies (*.copper) and an application's call graph (JSON).\n\
It type-checks the policies, works out which calls each policy's context pattern can match, and places the cheapest set of sidecars that enforces every policy.",
    after_help = "Examples:\n  copperc check examples/bookinfo/policies.copper\n  copperc check --graph examples/bookinfo/graph.json --format sarif policies/\n  copperc explain CU0302\n\nExit codes: 0 no errors (warnings allowed), 1 errors in the inputs, 2 usage or I/O errors."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check policies against the dataplane interfaces.
    ///
    /// Reports every problem with a code (CUxxxx), the exact place, and a fix where one is obvious.
    Check(CheckArgs),
    /// Print what a diagnostic code means, e.g. `copperc explain CU0302`.
    Explain {
        /// A code such as CU0302 (the `CU` may be left out).
        code: String,
    },
}

/// Options shared by every command that reads policies.
#[derive(Args)]
pub struct InputArgs {
    /// Interface file or folder of `*.act` files (repeatable). Default: the bundled interfaces.
    #[arg(long = "interfaces", value_name = "PATH")]
    pub interfaces: Vec<PathBuf>,
    /// Policy files, or folders searched for `*.copper`.
    #[arg(value_name = "POLICY_FILE")]
    pub policies: Vec<PathBuf>,
}

#[derive(Args)]
pub struct OutputArgs {
    /// When to color human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Treat warnings as errors (exit code 1).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Print nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Call graph (JSON): service names in patterns that it lacks are warnings.
    #[arg(long, value_name = "GRAPH.json")]
    pub graph: Option<PathBuf>,
    /// Output format for diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

/// Exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => check_cmd::run(&args),
        Command::Explain { code } => explain(&code),
    };
    ExitCode::from(code)
}

fn explain(code: &str) -> u8 {
    let wanted = code.trim().to_uppercase();
    let wanted = if wanted.starts_with("CU") {
        wanted
    } else {
        format!("CU{wanted}")
    };
    match crate::diag::Code::ALL.iter().find(|c| c.as_str() == wanted) {
        Some(c) => {
            println!(
                "{} ({}): {}\n\n{}",
                c.as_str(),
                c.severity().as_str(),
                c.title(),
                c.explanation()
            );
            EXIT_OK
        }
        None => {
            eprintln!("error: unknown code `{code}`; codes look like CU0302 (see docs/language.md)");
            EXIT_USAGE
        }
    }
}

/// Prints diagnostics in `format` on stdout and returns how many errors and warnings there were.
pub fn print_diagnostics(
    diags: &[Diagnostic],
    sources: &SourceMap,
    format: Format,
    color: ColorChoice,
) -> (usize, usize) {
    let text = render::render(format, diags, sources, color.enabled(std::io::stdout().is_terminal()));
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    let errors = diags.iter().filter(|d| d.is_error()).count();
    (errors, diags.len() - errors)
}

/// Reports an I/O or usage problem (no source span) on stderr; exit code 2.
pub fn fail_usage(d: &Diagnostic, sources: &SourceMap, format: Format) -> u8 {
    match format {
        Format::Human => eprintln!("error[{}]: {}", d.code.as_str(), d.message),
        _ => print!("{}", render::render(format, std::slice::from_ref(d), sources, false)),
    }
    EXIT_USAGE
}

pub fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
