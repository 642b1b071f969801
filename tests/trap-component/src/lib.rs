//! A component that fails on purpose, for the host's end-to-end tests:
//! `/trap` panics (a wasm trap), `/spin` never returns (the host's time limit must stop it),
//! anything else answers 200.

#[cfg(target_arch = "wasm32")]
mod component {
    use spin_sdk::http::{Request, Response};
    use spin_sdk::http_component;

    #[http_component]
    fn handle(req: Request) -> Response {
        match req.path() {
            "/trap" => panic!("trapping on purpose"),
            "/spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            _ => Response::new(200, "fine"),
        }
    }
}
