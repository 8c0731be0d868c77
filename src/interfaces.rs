//! The interface files bundled into the binary (`interfaces/*.act`), so that
//! an installed `copperc` works without the source tree.

include!(concat!(env!("OUT_DIR"), "/bundled_interfaces.rs"));
