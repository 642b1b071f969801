//! Starts the component's linear memory at 3 MiB instead of the linker's ~1.6 MiB (1 MiB of stack and
//! the data): a one-symbol prediction peaks near 2 MiB and an explained one near 2.7 MiB. Memory that
//! grows is made accessible with `mprotect`, and the host's pooled instance slot is shrunk back for the
//! next request with another, each interrupting every core the host runs on; memory the module starts
//! with stays accessible. With `stockops up` on 2 cores, at 16 connections: one symbol +6-9%, explained
//! +3-6%. Not more: without PAGEMAP_SCAN the host zeroes a slot's whole accessible memory after each
//! request, and at 4 MiB that cost ate the gain.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", 3 << 20);
    }
    println!("cargo:rerun-if-changed=build.rs");
}
