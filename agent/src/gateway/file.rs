//! Writing a gateway's configuration file so it never sees a partial one: a temporary file in
//! the same directory, flushed to disk, then renamed over the old one (Envoy reloads only on a
//! move; Traefik reads whichever whole file is there).

use std::path::Path;

use crate::error::AgentError;

/// Replaces `path` with `contents` atomically.
pub async fn replace(path: &Path, contents: &[u8]) -> Result<(), AgentError> {
    let path = path.to_owned();
    let contents = contents.to_vec();
    let target = path.clone();
    tokio::task::spawn_blocking(move || write(&path, &contents))
        .await
        .map_err(|e| AgentError::WriteFile {
            path: target.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|source| AgentError::WriteFile {
            path: target,
            source,
        })
}

fn write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    // A dot-name that no watcher takes for the real file (Traefik reads *.yaml/*.toml only).
    let tmp_name = format!(".{}.meridian-tmp", name.to_string_lossy());
    let tmp = match dir {
        Some(d) => d.join(tmp_name),
        None => tmp_name.into(),
    };
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(d) = dir {
        // The rename itself survives a crash once the directory is synced.
        std::fs::File::open(d)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Scenario: a file replaced twice.
    /// Guarantees: it holds the last contents and no temporary file is left beside it.
    #[tokio::test]
    async fn replaces_whole_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eds.json");
        super::replace(&path, b"one").await.unwrap();
        super::replace(&path, b"two").await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
