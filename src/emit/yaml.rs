//! YAML text for emitted configuration: a `serde_json::Value` (whose maps
//! keep keys sorted) written by serde-saphyr, which quotes every string that
//! YAML would otherwise read as something else (`yes`, `0123`, `{{ x }}`).

use serde_json::Value;

/// One YAML document, ending with a newline.
pub fn to_yaml(v: &Value) -> String {
    let mut s = serde_saphyr::to_string(v).unwrap_or_default();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}
