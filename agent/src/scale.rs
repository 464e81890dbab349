//! The scaling hook: `scale_out` / `scale_in` recommendations handed to a user's command
//! (kubectl, an autoscaler's API, a cloud CLI) with the recommendation as JSON on stdin.
//! Recommendations carry a target instance count, so running one twice (after a restart) is
//! harmless for a hook that sets the count rather than adding to it.

use std::collections::HashSet;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::config::ScalingConfig;
use crate::error::AgentError;

/// What became of one recommendation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a scaling recommendation for this agent, or already handled.
    Ignored,
    /// Forecast-only (or dry run): logged, not run.
    Logged,
    /// The hook ran and exited 0.
    Applied,
}

/// Runs the hook once per scaling recommendation.
pub struct ScalingHook {
    config: ScalingConfig,
    handled: HashSet<String>,
}

impl ScalingHook {
    /// A hook as configured.
    pub fn new(config: ScalingConfig) -> Self {
        Self {
            config,
            handled: HashSet::new(),
        }
    }

    /// Handles `rec` (a recommendation as the analyzer lists it): runs the hook for an active
    /// `scale_out`/`scale_in` in one of the configured regions, once; a failed run is tried
    /// again the next time the recommendation is seen.
    pub async fn handle(&mut self, rec: &Value, dry_run: bool) -> Result<Outcome, AgentError> {
        let kind = rec["kind"].as_str().unwrap_or_default();
        let region = rec["region"].as_str().unwrap_or_default();
        let id = rec["id"].as_str().unwrap_or_default().to_owned();
        let wanted = matches!(kind, "scale_out" | "scale_in")
            && rec["state"].as_str() == Some("active")
            && !id.is_empty()
            && (self.config.regions.is_empty() || self.config.regions.iter().any(|r| r == region));
        if !wanted || self.handled.contains(&id) {
            return Ok(Outcome::Ignored);
        }
        let target = &rec["target"];
        let reason = rec["reason"].as_str().unwrap_or_default();
        if dry_run || !self.config.apply_scaling {
            tracing::info!(%id, kind, region, %target, reason, "would scale (forecast-only: set [agent.scaling] apply_scaling = true to run the hook)");
            self.handled.insert(id);
            return Ok(Outcome::Logged);
        }
        self.run(rec, &id, kind, region, target).await?;
        tracing::info!(%id, kind, region, %target, reason, "scaling hook applied");
        self.handled.insert(id);
        Ok(Outcome::Applied)
    }

    async fn run(
        &self,
        rec: &Value,
        id: &str,
        kind: &str,
        region: &str,
        target: &Value,
    ) -> Result<(), AgentError> {
        let Some((program, args)) = self.config.command.split_first() else {
            return Err(AgentError::Hook("no command configured".into()));
        };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .env("MERIDIAN_RECOMMENDATION_ID", id)
            .env("MERIDIAN_KIND", kind)
            .env("MERIDIAN_REGION", region)
            .env(
                "MERIDIAN_SERVICE",
                rec["service"].as_str().unwrap_or_default(),
            )
            .env("MERIDIAN_TARGET", target.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| AgentError::Hook(format!("starting `{program}`: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = serde_json::to_vec(rec).unwrap_or_default();
            // A hook that does not read its input is fine.
            let _ = stdin.write_all(&body).await;
        }
        let status = tokio::time::timeout(self.config.timeout, child.wait())
            .await
            .map_err(|_| {
                AgentError::Hook(format!(
                    "`{program}` did not finish within {:?}; killed",
                    self.config.timeout
                ))
            })?
            .map_err(|e| AgentError::Hook(format!("waiting for `{program}`: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(AgentError::Hook(format!(
                "`{program}` exited with {status}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, kind: &str) -> Value {
        serde_json::json!({"id": id, "kind": kind, "region": "eu", "service": "*",
            "target": 5, "state": "active", "reason": "forecast above capacity"})
    }

    /// Scenario: a real shell command as the hook; a scale-out, the same one again, a failover,
    /// and a hook that fails.
    /// Guarantees: the hook gets the JSON on stdin and the target in the environment, runs once
    /// per recommendation, ignores other kinds, and a non-zero exit is an error (tried again).
    #[tokio::test]
    async fn runs_the_hook_once_per_recommendation() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("calls");
        let script = format!(
            "cat >> {0}; echo \" target=$MERIDIAN_TARGET\" >> {0}",
            out.display()
        );
        let mut hook = ScalingHook::new(ScalingConfig {
            apply_scaling: true,
            command: vec!["sh".into(), "-c".into(), script],
            ..ScalingConfig::default()
        });
        assert_eq!(
            hook.handle(&rec("r1", "scale_out"), false).await.unwrap(),
            Outcome::Applied
        );
        assert_eq!(
            hook.handle(&rec("r1", "scale_out"), false).await.unwrap(),
            Outcome::Ignored
        );
        assert_eq!(
            hook.handle(&rec("r2", "failover"), false).await.unwrap(),
            Outcome::Ignored
        );
        let calls = std::fs::read_to_string(&out).unwrap();
        assert!(
            calls.contains("\"id\":\"r1\"") && calls.contains("target=5"),
            "{calls}"
        );
        assert_eq!(calls.lines().count(), 1);

        let mut failing = ScalingHook::new(ScalingConfig {
            apply_scaling: true,
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            ..ScalingConfig::default()
        });
        assert!(failing.handle(&rec("r3", "scale_in"), false).await.is_err());
        assert!(
            failing.handle(&rec("r3", "scale_in"), false).await.is_err(),
            "tried again"
        );

        let mut forecast_only = ScalingHook::new(ScalingConfig::default());
        assert_eq!(
            forecast_only
                .handle(&rec("r4", "scale_out"), false)
                .await
                .unwrap(),
            Outcome::Logged
        );
    }
}
