//! The embedded default: an in-process DynamoDB-API server (dynoxide) on 127.0.0.1 with a free
//! port, persisted to SQLite (or in memory for tests). The server talks to it through the same
//! SDK code it uses against AWS.

use std::path::Path;
use tokio::sync::oneshot;

/// A running emulator; stops when dropped or on `shutdown`.
pub struct EmbeddedStore {
    pub endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EmbeddedStore {
    /// Starts the emulator over the SQLite file `data_dir/dynamodb.sqlite`, or in memory.
    pub async fn start(data_dir: Option<&Path>) -> anyhow::Result<Self> {
        let db = match data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let file = dir.join("dynamodb.sqlite");
                let file =
                    file.to_str().ok_or_else(|| anyhow::anyhow!("data folder is not UTF-8"))?;
                dynoxide::Database::new(file)?
            }
            None => dynoxide::Database::memory()?,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = dynoxide::server::serve_with_shutdown(listener, db, shutdown).await
            {
                eprintln!("embedded store stopped: {error}");
            }
        });
        Ok(EmbeddedStore { endpoint, stop: Some(stop), task: Some(task) })
    }

    /// Stops accepting requests and waits until the database is closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
