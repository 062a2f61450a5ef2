//! The release server's code is linked in the order a profiled run executed it
//! (`link-order.txt`, written by `tools/link-order/regenerate.sh`): the few MiB of code that
//! start-up and requests run then sit together instead of spread over 24 MB of `.text`, and
//! the kernel, which maps 64 KiB of a cached file around each page fault, keeps far less of
//! the binary resident (peak RSS under the profile load 22.6 to 15.1 MiB in `cargo xtask bench`).
//!
//! Names the file lists but the binary lacks (a changed dependency, other features, another
//! target) are skipped, so a stale file costs memory, never a build. Only for the default
//! x86_64 Linux target, whose linker is LLD (`--symbol-ordering-file`); other targets link as
//! before (the arm64 Lambda build links through zig and would need a file profiled on arm64).

fn main() {
    const ORDER: &str = "link-order.txt";
    println!("cargo:rerun-if-changed={ORDER}");
    let target = std::env::var("TARGET").unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    if target == "x86_64-unknown-linux-gnu" && profile == "release" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let order = std::path::Path::new(&dir).join(ORDER);
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
