//! Host-side bindings of the Spin interfaces in host/wit (sqlite, key-value, variables, wasi:keyvalue).

wasmtime::component::bindgen!({
    path: "wit",
    world: "stockops:host/spin-imports",
    imports: { default: async | trappable },
    with: {
        "spin:sqlite/sqlite.connection": crate::sqlite::Connection,
        "fermyon:spin/key-value.store": crate::key_value::StoreHandle,
        "wasi:keyvalue/store.bucket": crate::key_value::StoreHandle,
        "wasi:keyvalue/atomics.cas": crate::key_value::Cas,
    },
});
