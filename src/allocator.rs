//! The process's allocator: mimalloc, set up for a server whose memory cycles. OTLP decoding
//! and Arrow building allocate many small strings, a pattern mimalloc handles much better than
//! glibc's allocator; the hot buffer grows to a flush's worth of rows, is written to Parquet and
//! freed, and grows again (docs/BENCHMARKS.md, "Ingest").

/// mimalloc's `mi_option_purge_delay` (mimalloc.h of the pinned libmimalloc-sys, v3).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc's `mi_option_allow_thp`.
const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Keep freed memory this long (ms) before returning it to the OS. mimalloc's default of 1 s
/// returns what a flush frees just before ingest needs it again, and faulting it back in
/// (zeroing every page) cost more CPU than decoding the requests.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Applies Meridian's allocator settings, unless the operator set mimalloc's own environment
/// variable for one (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_ALLOW_THP`), which then wins:
/// - freed memory is kept for [`PURGE_DELAY_MS`] before it is returned to the OS;
/// - no transparent huge pages: a first touch then zeroes 4 KiB instead of 2 MiB, and the
///   receivers' growing buffers touched a little of many huge pages (page zeroing was 20–40%
///   of the ingest profile with them).
///
/// Call first thing in `main`, before the runtime's threads start.
pub fn tune() {
    set_unless_in_env(PURGE_DELAY, "MIMALLOC_PURGE_DELAY", PURGE_DELAY_MS);
    if set_unless_in_env(ALLOW_THP, "MIMALLOC_ALLOW_THP", 0) {
        // mimalloc reserved (and advised huge pages for) its first arena before `main`; what
        // mimalloc does itself when the option is set at start-up covers that memory too.
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag of this process.
        let disabled = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if disabled != 0 {
            // Not fatal: the process runs as before, with more page zeroing.
            eprintln!("meridian: could not disable transparent huge pages for this process");
        }
    }
}

/// Sets `option` unless `variable` is in the environment; whether it did.
fn set_unless_in_env(
    option: libmimalloc_sys::mi_option_t,
    variable: &str,
    value: std::ffi::c_long,
) -> bool {
    if std::env::var_os(variable).is_some() {
        return false;
    }
    // SAFETY: mi_option_set only stores the value in mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(option, value) };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guarantees: the option numbers name the options meant: a child process started with
    /// mimalloc's own variables for the two options reads those values back through the
    /// numbers, so a libmimalloc-sys upgrade that renumbers the options fails here.
    #[test]
    fn option_numbers_are_mimallocs() {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "allocator::tests::read_options", "--nocapture"])
            .env("MERIDIAN_READ_MIMALLOC_OPTIONS", "1")
            .env("MIMALLOC_PURGE_DELAY", "1234")
            .env("MIMALLOC_ALLOW_THP", "0")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(out.contains("options: 1234 0"), "{out}");
    }

    /// Prints the two options as mimalloc read them from the environment (run by the test
    /// above in a child process, so that mimalloc starts with those variables).
    #[test]
    fn read_options() {
        if std::env::var_os("MERIDIAN_READ_MIMALLOC_OPTIONS").is_none() {
            return;
        }
        // SAFETY: mi_option_get only reads mimalloc's option table.
        let (purge, thp) = unsafe {
            (
                libmimalloc_sys::mi_option_get(PURGE_DELAY),
                libmimalloc_sys::mi_option_get(ALLOW_THP),
            )
        };
        println!("options: {purge} {thp}");
    }
}
