//! What the fuzz targets share.

use std::sync::Once;

/// libfuzzer-sys aborts on every panic from a hook that runs before unwinding, so a panic that
/// Meridian's code catches on purpose (`ipc::decode` catches arrow-ipc's) would be reported as a
/// crash. This replaces that hook once with one that only prints: a panic nobody catches still
/// reaches libfuzzer-sys's `catch_unwind`, which aborts, and is reported.
pub fn quiet_caught_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
}
