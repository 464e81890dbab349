//! Reloading the tokens without a restart: on SIGHUP, and every `reload_interval` in case a
//! token file changed (Kubernetes updates mounted secrets in place, without a signal).

use tokio_util::sync::CancellationToken;

use super::Auth;

/// Re-reads the tokens on SIGHUP and every `reload_interval` until `stop`.
pub async fn watch(auth: Auth, stop: CancellationToken) {
    if !auth.enabled() {
        return;
    }
    let every = auth
        .config()
        .reload_interval
        .max(std::time::Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; tokens reload on the interval only");
            None
        }
    };
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
            _ = hup => tracing::info!("SIGHUP: re-reading auth tokens"),
        }
        // Reading a few small files; cheap enough for the runtime's threads.
        auth.reload();
    }
}
