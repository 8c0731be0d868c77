//! The registry of diagnostic codes. A code never changes meaning once
//! released; `docs/language.md` has one entry per code and `copperc explain
//! CODE` prints the explanation below.

use super::Severity;

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $title:literal, $explain:literal;)*) => {
        /// Every diagnostic code copperc can emit.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable identifier, e.g. `CU0301`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// A short name for the rule, used by SARIF.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }

            /// What the code means and how to fix it.
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$variant => $explain,)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }
        }
    };
}

codes! {
    UnexpectedChar = "CU0001", Error, "unexpected character",
        "A character that cannot start any token, such as `#` or `@`, outside a string literal or comment.";
    UnterminatedString = "CU0002", Error, "unterminated string literal",
        "A string literal must close with `\"` on the same line. Write a line break as `\\n`.";
    InvalidEscape = "CU0003", Error, "invalid escape sequence",
        "String literals accept only the escapes `\\\"`, `\\\\`, `\\n`, `\\t` and `\\u{HEX}` (1 to 6 hex digits naming a Unicode scalar value).";
    SyntaxError = "CU0004", Error, "syntax error",
        "The parser met a token that cannot come at this point. The message lists what could.";
    IntOutOfRange = "CU0005", Error, "integer literal out of range",
        "Integer literals must fit in a signed 64-bit integer.";
    PatternSyntax = "CU0101", Error, "context pattern syntax error",
        "A context pattern is a regular expression over service names: names, `.`, `!name`, `!(a | b)`, `|`, `*`, `+`, `?` and parentheses. The label points at the character inside the string literal where the pattern stops making sense.";
    InvalidServiceName = "CU0102", Error, "invalid service name",
        "Service names in context patterns are Kubernetes DNS labels: lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters.";
    EmptyPattern = "CU0103", Error, "empty context pattern",
        "Every request's context holds at least one service (the entry service), so an empty pattern would match nothing. Write `.*` or `.+` to match every request.";
    UnknownService = "CU0104", Warning, "service not in the call graph",
        "The pattern names a service that the call graph given with `--graph` does not have. Such a name matches no service (so `!name` matches every service). Check the spelling.";
    DuplicateDataplane = "CU0201", Error, "duplicate dataplane",
        "Two interface files (or one twice) declare the same dataplane. Each dataplane is declared once; pass each interface file once.";
    DuplicateAct = "CU0202", Error, "duplicate act",
        "A dataplane declares the same abstract communication type twice. Merge the two `act` blocks.";
    DuplicateMethod = "CU0203", Error, "duplicate method",
        "An `act` block declares the same method twice. Keep one declaration, with every side it supports.";
    ConflictingSignature = "CU0204", Error, "conflicting method signatures",
        "Two dataplanes declare the same method of the same ACT with different parameter or result types. Policies are checked once against every dataplane, so the signatures must agree; sides and costs may differ.";
    UnknownType = "CU0205", Error, "unknown type",
        "Interface files know three types: `string`, `int` and `bool`.";
    UnknownSide = "CU0206", Error, "unknown side",
        "A method's sides are `Ingress` (the callee's sidecar can run it) and `Egress` (the caller's sidecar can run it).";
    InvalidCost = "CU0207", Error, "missing, repeated or negative cost",
        "Each dataplane states `cost N;` exactly once, with N a non-negative integer: what one sidecar of this dataplane costs on one replica.";
    DuplicateParam = "CU0208", Error, "duplicate parameter",
        "Two parameters of one method have the same name.";
    UnknownAct = "CU0301", Error, "unknown ACT",
        "The policy binds a type that no loaded interface file declares. Check the spelling, or load the interface that declares it with `--interfaces`.";
    UnknownMethod = "CU0302", Error, "unknown method",
        "No loaded interface declares this method for the policy's ACT.";
    ArgumentCount = "CU0303", Error, "wrong number of arguments",
        "The call passes a different number of arguments than the method declares.";
    ArgumentType = "CU0304", Error, "argument of the wrong type",
        "An argument's type differs from the parameter's declared type.";
    ActionAsValue = "CU0305", Error, "action used as a value",
        "Actions (methods without `-> T`) do something to the request and have no value: call them as statements, `req.Deny(403);`, not inside a condition or an argument.";
    OperandType = "CU0306", Error, "operands of the wrong type",
        "`==` and `!=` compare two values of the same type; `&&`, `||` and `!` take `bool` operands.";
    ConditionNotBool = "CU0307", Error, "condition is not a bool",
        "An `if` condition must be a `bool`: compare the value, e.g. `req.GetPath() == \"/admin\"`.";
    UnknownName = "CU0308", Error, "unknown name",
        "A method is called on a name that the policy does not bind. Each policy binds exactly one value, its parameter: `policy p(req: RPCRequest) ... { req.Deny(403); }`.";
    DuplicatePolicy = "CU0309", Error, "duplicate policy name",
        "Policy names identify policies in placements, emitted configuration and reports, so they are unique across every policy file of one run.";
    UnusedGetter = "CU0310", Warning, "getter value unused",
        "A getter is called as a statement, so its value is dropped. It still counts in the policy's method set and so can narrow where the policy can be placed.";
    Unsupported = "CU0311", Error, "policy supported by no dataplane",
        "No loaded dataplane implements the policy's ACT together with every method its body calls. The notes say which dataplane lacks which method: split the policy, or load an interface that implements them.";
    NoSide = "CU0312", Error, "no side can run the policy",
        "On every dataplane that implements the policy's methods, some methods run only at Ingress (the callee's sidecar) and others only at Egress (the caller's sidecar), so no single sidecar can enforce the policy. Split it into two policies.";
    GraphSyntax = "CU0401", Error, "call graph is not valid JSON",
        "The call graph file must be one JSON object; the label shows where parsing stopped.";
    GraphUnknownKey = "CU0402", Error, "unknown key in call graph",
        "The call graph accepts `services`, `calls` and `entrypoints` at the top level; `name`, `replicas` and `versions` in a service; `from`, `to` and `rps` in a call. A misspelt key is an error rather than silently ignored.";
    GraphInvalidValue = "CU0403", Error, "invalid value in call graph",
        "A value in the call graph has the wrong type or range, or a required key is missing: the graph, each service and each call are objects; `name`, `from` and `to` are strings; `replicas` is a non-negative integer; `rps` a non-negative number; `versions` a non-empty list of distinct Kubernetes label values (such as `v1` or `1.2.0`).";
    GraphInvalidName = "CU0404", Error, "invalid service name in call graph",
        "Service names are Kubernetes DNS labels: lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters.";
    GraphDuplicateService = "CU0405", Error, "duplicate service in call graph",
        "Each service appears once in `services`; list its versions in `versions`.";
    GraphUnknownService = "CU0406", Error, "unknown service in call graph",
        "A call or entry point names a service that `services` does not list.";
    GraphNoEntrypoints = "CU0407", Error, "entry points cannot be inferred",
        "Without `entrypoints`, the entry points are the services that no call reaches. Every service is reached by some call here, so list the entry points explicitly.";
    GraphUnreachable = "CU0408", Warning, "service unreachable from every entry point",
        "No chain of calls from an entry point reaches this service, so requests it sends have no context and no policy matches them.";
    MissingVersion = "CU0501", Error, "version missing on a matched callee",
        "`RouteToVersion(v)` needs version v on the callee of every call the policy matches. The call graph lists the versions of each service under `versions` (default `[\"v1\"]`). Narrow the context pattern so that it only matches calls into services that have the version, or add the version to the graph.";
    Unenforceable = "CU0502", Error, "policy cannot be enforced on a matched call",
        "For this call, no dataplane that supports the policy can run it where a sidecar could be: the policy needs the caller's side (Egress) but the call comes from outside the mesh, or the dataplanes that support it offer no side that this call has. Narrow the context pattern, or load an interface that supports the policy on the missing side.";
    PlacementConflict = "CU0503", Error, "no placement enforces every policy",
        "Every (policy, call) pair can be enforced alone, but with at most one sidecar per service no placement covers them all: the listed pairs need different dataplanes on the same service. Change the policies or the interfaces so that one dataplane can serve that service.";
    UnknownDataplane = "CU0504", Error, "unknown dataplane",
        "`--default-dataplane` names a dataplane that no loaded interface declares.";
    MatchesNothing = "CU0505", Warning, "policy matches no call",
        "No context that the call graph can produce matches the policy's pattern, so the policy is never enforced. Check the pattern against the graph: a misspelt service, a call that does not exist, or a path that no entry point reaches.";
    OptionUnknownService = "CU0506", Error, "option names a service not in the call graph",
        "`copperc compile --one-request-per-thread` names a service that the call graph does not have. A misspelt name would leave the service it meant without contexts, so it is an error.";
    NotExpressible = "CU0601", Error, "cannot be emitted as dataplane configuration",
        "The policy type-checks, but this part of it has no form in the configuration of the dataplane chosen to enforce it: for Envoy, conditions must compare `GetHeader(\"name\")`, `GetPath()` or `GetMethod()` with string literals (combined with `&&`, `||`, `!`), header names must be HTTP tokens, header values cannot hold line breaks, statuses are 200 to 599 and rates at least 1. For Cilium (`cilium-proxy`), whose HTTP rules are an allow-list with exact matches only: `Deny` only with 403, the requests a policy lets through and the conditions of its rewrites must be equalities, rewrites write literal values, and a context that holds on some contexts of a call only must be listable as exact header values (no cycle before the caller, at most 64); see \"Cilium output\" in docs/language.md.";
    ReadError = "CU0901", Error, "cannot read input",
        "An input file or folder could not be read.";
    WriteError = "CU0902", Error, "cannot write output",
        "An output file or folder could not be written. Nothing was left half-written: outputs are written to a temporary name and renamed into place.";
}
