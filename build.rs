//! Build steps: generate the parser from `grammar/` and embed the bundled
//! interface files so that an installed `copperc` works without the source tree.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=grammar");
    println!("cargo:rerun-if-changed=interfaces");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    if let Err(err) = lalrpop::Configuration::new()
        .set_in_dir("grammar")
        .set_out_dir(&out_dir)
        .emit_rerun_directives(true)
        .process()
    {
        println!("cargo:warning=lalrpop failed: {err}");
        std::process::exit(1);
    }
    embed_interfaces(&out_dir);
}

fn embed_interfaces(out_dir: &std::path::Path) {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut names: Vec<String> = std::fs::read_dir(root.join("interfaces"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".act"))
                .collect()
        })
        .unwrap_or_default();
    // Sorted so that the embedded order, and every output built from it, is stable.
    names.sort();
    let mut code =
        String::from("/// Bundled interface files: (file name, contents).\npub const BUNDLED: &[(&str, &str)] = &[\n");
    for name in names {
        let path = root.join("interfaces").join(&name);
        let _ = writeln!(code, "    ({name:?}, include_str!({:?})),", path.display().to_string());
    }
    code.push_str("];\n");
    if let Err(err) = std::fs::write(out_dir.join("bundled_interfaces.rs"), code) {
        println!("cargo:warning=cannot write bundled_interfaces.rs: {err}");
        std::process::exit(1);
    }
}
