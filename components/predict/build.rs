//! Starts the component's linear memory at 3 MiB instead of the linker's ~1.6 MiB (1 MiB of stack and
//! the data): a one-symbol prediction peaks near 2 MiB and an explained one near 2.7 MiB. Memory that
//! grows is made accessible with `mprotect`, and a pooled instance slot is shrunk back for the next
//! request with another, each interrupting every core the host runs on; memory the module starts with
//! stays accessible. With `stockops up` on 2 cores: one symbol at 16 connections +12-15%, explained +4-8%.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", 3 << 20);
    }
    println!("cargo:rerun-if-changed=build.rs");
}
