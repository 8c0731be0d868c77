//! Reading and writing WCNF files.
//!
//! Owns [`write_wcnf`], [`parse_wcnf`] and [`WcnfError`].
//!
//! Written format (MaxSAT Evaluation 2022 and later): no `p` line; comment
//! lines start with `c`; a hard clause is `h <lits> 0`; a soft clause is
//! `<weight> <lits> 0` with a weight >= 0 (0 is accepted); literals are DIMACS
//! integers (`v + 1` for variable `v`, negated for its negation).
//!
//! Read formats: that one, and the older one that starts with
//! `p wcnf <vars> <clauses> [<top>]` where every clause starts with its weight
//! and a weight >= top marks a hard clause (without top, all clauses are
//! soft); `p cnf <vars> <clauses>` (all clauses hard) is accepted too. A clause
//! may span lines; it ends at `0`.

use std::fmt;
use std::io::{self, Write};

use super::instance::Instance;
use super::lit::Lit;

/// A WCNF syntax error, with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WcnfError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for WcnfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for WcnfError {}

/// Writes `inst` in the 2022 WCNF format (see the module documentation).
pub fn write_wcnf(inst: &Instance, out: &mut impl Write) -> io::Result<()> {
    let mut w = io::BufWriter::new(out);
    writeln!(
        w,
        "c WCNF (MaxSAT Evaluation 2022 format): {} variables, {} hard, {} soft",
        inst.num_vars(),
        inst.hard().len(),
        inst.soft().len()
    )?;
    for c in inst.hard() {
        write!(w, "h")?;
        for l in c {
            write!(w, " {}", l.to_dimacs())?;
        }
        writeln!(w, " 0")?;
    }
    for s in inst.soft() {
        write!(w, "{}", s.weight)?;
        for l in &s.lits {
            write!(w, " {}", l.to_dimacs())?;
        }
        writeln!(w, " 0")?;
    }
    w.flush()
}

enum Header {
    /// 2022 format: `h` or a weight starts each clause.
    New,
    /// `p wcnf` with an optional top weight.
    Weighted(Option<u64>),
    /// `p cnf`: all clauses hard, no weights.
    Cnf,
}

enum Kind {
    Hard,
    Soft(u64),
}

fn err(line: usize, message: impl Into<String>) -> WcnfError {
    WcnfError {
        line,
        message: message.into(),
    }
}

/// Parses WCNF text in the 2022 format or the older `p wcnf` / `p cnf` formats.
pub fn parse_wcnf(text: &str) -> Result<Instance, WcnfError> {
    let mut header = Header::New;
    let mut seen_clause = false;
    let mut inst = Instance::new(0);
    let mut current: Option<(Kind, Vec<Lit>)> = None;
    let mut last_line = 0;
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        last_line = line;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('c') {
            continue;
        }
        if t.starts_with('p') {
            if seen_clause || current.is_some() || !matches!(header, Header::New) {
                return Err(err(line, "`p` line must come once, before the clauses"));
            }
            let (h, vars) = parse_header(t, line)?;
            header = h;
            inst = Instance::new(vars);
            continue;
        }
        for tok in t.split_whitespace() {
            match current.as_mut() {
                None => {
                    let kind = match (&header, tok) {
                        (Header::Cnf, _) => {
                            let lits = Vec::new();
                            current = Some((Kind::Hard, lits));
                            push_lit(&mut current, &mut inst, tok, line)?;
                            seen_clause = true;
                            continue;
                        }
                        (_, "h") => Kind::Hard,
                        (Header::New, w) => Kind::Soft(parse_weight(w, line)?),
                        (Header::Weighted(top), w) => {
                            let w = parse_weight(w, line)?;
                            match top {
                                Some(top) if w >= *top => Kind::Hard,
                                _ => Kind::Soft(w),
                            }
                        }
                    };
                    current = Some((kind, Vec::new()));
                    seen_clause = true;
                }
                Some(_) => push_lit(&mut current, &mut inst, tok, line)?,
            }
        }
    }
    if current.is_some() {
        return Err(err(last_line, "clause not terminated by 0"));
    }
    Ok(inst)
}

/// Adds literal token `tok` to the open clause; `0` closes it into `inst`.
fn push_lit(
    current: &mut Option<(Kind, Vec<Lit>)>,
    inst: &mut Instance,
    tok: &str,
    line: usize,
) -> Result<(), WcnfError> {
    let n: i64 = tok
        .parse()
        .map_err(|_| err(line, format!("expected a literal, found `{tok}`")))?;
    if n == 0 {
        match current.take() {
            Some((Kind::Hard, lits)) => {
                inst.add_hard(lits);
            }
            Some((Kind::Soft(w), lits)) => {
                inst.add_soft(w, lits);
            }
            None => {}
        }
        return Ok(());
    }
    let lit = Lit::from_dimacs(n).ok_or_else(|| err(line, format!("variable out of range: `{tok}`")))?;
    if let Some((_, lits)) = current.as_mut() {
        lits.push(lit);
    }
    Ok(())
}

fn parse_weight(tok: &str, line: usize) -> Result<u64, WcnfError> {
    tok.parse()
        .map_err(|_| err(line, format!("expected a weight (integer >= 0) or `h`, found `{tok}`")))
}

fn parse_header(t: &str, line: usize) -> Result<(Header, u32), WcnfError> {
    let parts: Vec<&str> = t.split_whitespace().collect();
    let num = |i: usize| -> Result<u64, WcnfError> {
        let tok = parts.get(i).ok_or_else(|| err(line, "incomplete `p` line"))?;
        tok.parse()
            .map_err(|_| err(line, format!("expected a number in the `p` line, found `{tok}`")))
    };
    let vars = num(2)?;
    let vars = u32::try_from(vars)
        .ok()
        .filter(|&v| v <= Lit::MAX_VARS)
        .ok_or_else(|| err(line, "too many variables"))?;
    num(3)?;
    match parts.get(1).copied() {
        Some("wcnf") if parts.len() == 4 => Ok((Header::Weighted(None), vars)),
        Some("wcnf") if parts.len() == 5 => Ok((Header::Weighted(Some(num(4)?)), vars)),
        Some("cnf") if parts.len() == 4 => Ok((Header::Cnf, vars)),
        _ => Err(err(
            line,
            "expected `p wcnf VARS CLAUSES [TOP]` or `p cnf VARS CLAUSES`",
        )),
    }
}
