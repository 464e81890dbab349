//! CPU time of a process from `/proc`, the benchmarks' measure of cost that a busy neighbour on
//! a shared machine does not inflate the way it inflates wall time.

use std::process::Command;

use anyhow::Context;

/// Reads processes' user + system CPU time, in seconds.
pub struct Clock {
    ticks_per_s: f64,
}

impl Clock {
    /// A clock in the kernel's ticks (USER_HZ, from `getconf CLK_TCK`).
    pub fn new() -> anyhow::Result<Self> {
        let out = Command::new("getconf").arg("CLK_TCK").output()?;
        let ticks_per_s = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("`getconf CLK_TCK` printed no number")?;
        Ok(Self { ticks_per_s })
    }

    /// User + system CPU seconds of process `pid` and every thread it has had.
    pub fn seconds(&self, pid: u32) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        cpu_ticks(&stat).map(|ticks| ticks as f64 / self.ticks_per_s)
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks. The command
/// name (field 2) is in parentheses and may hold spaces, so fields are counted after its `)`.
fn cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc stat line")?;
    // After the name, field 3 (state) comes first: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc stat line")?
            .parse()
            .context("non-numeric /proc stat field")
    };
    Ok(field(11)? + field(12)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_count_fields_after_the_command_name() {
        let stat = "4242 (meridian (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 86 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat).unwrap(), 731 + 86);
        assert!(cpu_ticks("4242 (short) S 1").is_err());
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let clock = Clock::new().unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        assert!(clock.seconds(std::process::id()).unwrap() > 0.0);
    }
}
