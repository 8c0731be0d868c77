//! Policy kinds, their pattern shapes, and their bodies.
//!
//! Owns the mix of what generated policies do, written against the bundled
//! `istio-proxy` interface (`RPCRequest`): header rewrites (`SetHeader`,
//! `RemoveHeader`; both sides), canaries (`RouteToVersion`; egress only,
//! always on a pattern that ends with a service having that version),
//! access control (`Deny`; both sides) and rate limits (`RateLimit`;
//! ingress only), with conditions on `GetHeader`, `GetPath` and
//! `GetMethod` (both sides). A policy never mixes `RouteToVersion` with
//! `RateLimit`, whose sides do not meet (CU0312).

use std::fmt::Write as _;

use super::patterns::Shape;
use super::rng::Rand;

/// What a policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Header,
    Canary,
    Deny,
    RateLimit,
}

/// The share of each kind, in percent.
pub(super) const KINDS: [(Kind, u32); 4] = [
    (Kind::Header, 30),
    (Kind::Canary, 20),
    (Kind::Deny, 30),
    (Kind::RateLimit, 20),
];

/// The shapes a kind uses, with weights in percent.
pub(super) fn shapes(kind: Kind) -> &'static [(Shape, u32)] {
    match kind {
        Kind::Header => &[
            (Shape::EntryAny, 20),
            (Shape::EntryPairAny, 15),
            (Shape::AnyTo, 15),
            (Shape::Via, 20),
            (Shape::EntryPlus, 10),
            (Shape::CallerTo, 10),
            (Shape::EntryDirect, 10),
        ],
        Kind::Canary => &[
            (Shape::EntryAny, 35),
            (Shape::EntryPairAny, 15),
            (Shape::EntryExcept, 15),
            (Shape::AnyTo, 15),
            (Shape::CallerTo, 20),
        ],
        Kind::Deny => &[
            (Shape::EntryExcept, 35),
            (Shape::EntryAny, 15),
            (Shape::EntryPairAny, 10),
            (Shape::Via, 15),
            (Shape::EntryPlus, 10),
            (Shape::CallerTo, 10),
            (Shape::EntryDirect, 5),
        ],
        Kind::RateLimit => &[
            (Shape::AnyTo, 30),
            (Shape::EntryAny, 20),
            (Shape::EntryPairAny, 15),
            (Shape::Via, 15),
            (Shape::EntryPlus, 10),
            (Shape::CallerTo, 10),
        ],
    }
}

/// Headers a policy sets or tests, with plausible values.
const HEADERS: [(&str, [&str; 2]); 6] = [
    ("x-request-source", ["mesh", "edge"]),
    ("x-tenant-id", ["t-001", "t-042"]),
    ("x-debug", ["1", "0"]),
    ("x-user-tier", ["gold", "beta"]),
    ("x-mesh-zone", ["cn-hangzhou", "cn-shanghai"]),
    ("x-b3-sampled", ["1", "0"]),
];
/// Headers a policy strips.
const STRIPPED: [&str; 4] = [
    "x-internal-token",
    "x-debug",
    "x-forwarded-client",
    "x-envoy-original-path",
];
const PATHS: [&str; 6] = [
    "/admin",
    "/internal/metrics",
    "/debug/pprof",
    "/api/v1/orders",
    "/api/v1/cart",
    "/healthz",
];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const LIMITS: [u32; 6] = [50, 100, 200, 500, 1000, 5000];

fn one<T: Copy>(rng: &mut Rand, items: &[T], default: T) -> T {
    rng.pick(items).copied().unwrap_or(default)
}

/// A header and one of its values.
fn header(rng: &mut Rand) -> (&'static str, &'static str) {
    let (h, vs) = one(rng, &HEADERS, ("x-debug", ["1", "0"]));
    (h, one(rng, &vs, "1"))
}

/// The body of a policy of `kind` (statements, indented by four spaces,
/// each line ending with a newline). `version` is the canary's version.
pub(super) fn body(kind: Kind, shape: Shape, version: &str, rng: &mut Rand) -> String {
    let mut b = String::new();
    let (h, v) = header(rng);
    match kind {
        Kind::Header => match rng.below(4) {
            0 => {
                let _ = writeln!(b, "    req.SetHeader(\"{h}\", \"{v}\");");
            }
            1 => {
                let gone = one(rng, &STRIPPED, "x-internal-token");
                let _ = writeln!(b, "    req.RemoveHeader(\"{gone}\");");
            }
            2 => {
                let (h2, v2) = header(rng);
                let _ = write!(
                    b,
                    "    if req.GetHeader(\"{h}\") == \"{v}\" {{\n        \
                     req.SetHeader(\"{h2}\", \"{v2}\");\n    }} else {{\n        \
                     req.RemoveHeader(\"{h2}\");\n    }}\n"
                );
            }
            _ => {
                let m = one(rng, &METHODS, "GET");
                let _ = write!(
                    b,
                    "    if req.GetMethod() == \"{m}\" {{\n        \
                     req.SetHeader(\"{h}\", \"{v}\");\n    }}\n"
                );
            }
        },
        Kind::Canary => match rng.below(3) {
            0 => {
                let _ = write!(
                    b,
                    "    if req.GetHeader(\"x-canary\") == \"true\" {{\n        \
                     req.RouteToVersion(\"{version}\");\n    }}\n"
                );
            }
            1 => {
                let _ = writeln!(b, "    req.RouteToVersion(\"{version}\");");
            }
            _ => {
                let _ = write!(
                    b,
                    "    if req.GetHeader(\"x-user-tier\") == \"beta\" || \
                     req.GetHeader(\"x-canary\") == \"always\" {{\n        \
                     req.RouteToVersion(\"{version}\");\n    }} else {{\n        \
                     req.RouteToVersion(\"v1\");\n    }}\n"
                );
            }
        },
        Kind::Deny => {
            if shape == Shape::EntryExcept && rng.below(2) == 0 {
                // "only x and y may call s": the pattern does the work.
                let _ = writeln!(b, "    req.Deny(403);");
            } else {
                let p = one(rng, &PATHS, "/admin");
                match rng.below(3) {
                    0 => {
                        let _ = write!(
                            b,
                            "    if req.GetPath() == \"{p}\" || req.GetMethod() != \"GET\" {{\n        \
                             req.Deny(403);\n    }}\n"
                        );
                    }
                    1 => {
                        let _ = write!(
                            b,
                            "    if req.GetHeader(\"x-tenant-id\") == \"\" {{\n        \
                             req.Deny(401);\n    }}\n"
                        );
                    }
                    _ => {
                        let _ = write!(
                            b,
                            "    if !(req.GetMethod() == \"GET\") && req.GetPath() != \"/healthz\" {{\n        \
                             req.Deny(403);\n    }}\n"
                        );
                    }
                }
            }
        }
        Kind::RateLimit => {
            let n = one(rng, &LIMITS, 100);
            match rng.below(3) {
                0 => {
                    let _ = writeln!(b, "    req.RateLimit({n});");
                }
                1 => {
                    let slow = (n / 10).max(1);
                    let _ = write!(
                        b,
                        "    if req.GetMethod() == \"POST\" {{\n        \
                         req.RateLimit({slow});\n    }} else {{\n        \
                         req.RateLimit({n});\n    }}\n"
                    );
                }
                _ => {
                    let _ = write!(
                        b,
                        "    if req.GetHeader(\"x-user-tier\") != \"gold\" {{\n        \
                         req.RateLimit({n});\n    }}\n"
                    );
                }
            }
        }
    }
    b
}
