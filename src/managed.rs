//! `redis_url = "managed"`: dndgate starts its own redis-server (append-only
//! persistence in a data directory, `noeviction`), restarts it if it dies, and stops it
//! on shutdown, so one command runs the whole thing on a single box.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::{Mutex, watch};

use crate::config::ManagedRedis;

/// A supervised redis-server. Dropping it does not stop the server: call
/// [`ManagedRedisServer::stop`].
pub struct ManagedRedisServer {
    settings: ManagedRedis,
    child: Arc<Mutex<Option<Child>>>,
    stopping: watch::Sender<bool>,
    supervisor: tokio::task::JoinHandle<()>,
}

/// Why the managed redis-server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    /// redis-server is not on the PATH.
    #[error(
        "redis-server was not found on the PATH: install it (Debian/Ubuntu: apt install redis-server; macOS: brew install redis) or set redis_url to an existing Redis"
    )]
    NotInstalled,
    /// It started but did not answer.
    #[error("redis-server on port {port} did not become ready: {detail} (see {log})")]
    NotReady {
        /// The port.
        port: u16,
        /// What went wrong.
        detail: String,
        /// The server's log file.
        log: String,
    },
    /// Something else answers on the port.
    #[error("port {0} is in use by another program; set [managed_redis] port to a free one")]
    PortInUse(u16),
    /// The data directory could not be created.
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// Ask the server at `port` for `CONFIG GET dir`; `None` if nothing answers.
async fn running_dir(port: u16) -> Option<Result<String, ()>> {
    let client = redis::Client::open(url(port)).ok()?;
    let mut conn = tokio::time::timeout(
        Duration::from_millis(500),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()?;
    let reply: redis::RedisResult<(String, String)> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query_async(&mut conn)
        .await;
    Some(reply.map(|(_, dir)| dir).map_err(|_| ()))
}

fn spawn(settings: &ManagedRedis) -> Result<Child, ManagedError> {
    let dir = &settings.dir;
    let log = dir.join("redis.log");
    Command::new("redis-server")
        .arg("--port")
        .arg(settings.port.to_string())
        .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            &settings.appendfsync,
        ])
        .args(["--maxmemory-policy", "noeviction", "--save", ""])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ManagedError::NotInstalled,
            _ => ManagedError::NotReady {
                port: settings.port,
                detail: e.to_string(),
                log: log.display().to_string(),
            },
        })
}

async fn wait_ready(settings: &ManagedRedis, child: &mut Child) -> Result<(), ManagedError> {
    let log = settings.dir.join("redis.log").display().to_string();
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ManagedError::NotReady {
                port: settings.port,
                detail: format!("it exited with {status}"),
                log,
            });
        }
        if let Some(Ok(_)) = running_dir(settings.port).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(ManagedError::NotReady {
        port: settings.port,
        detail: "no answer within 10 s".into(),
        log,
    })
}

fn same_dir(a: &str, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(Path::new(a)) == canon(b)
}

impl ManagedRedisServer {
    /// Start the server (or adopt one a previous run of dndgate left running on the
    /// same port and data directory, e.g. after the gateway was killed) and supervise
    /// it.
    pub async fn start(mut settings: ManagedRedis) -> Result<ManagedRedisServer, ManagedError> {
        let data_dir_error = |e| ManagedError::DataDir(settings.dir.display().to_string(), e);
        std::fs::create_dir_all(&settings.dir).map_err(data_dir_error)?;
        // redis-server changes into --dir before it opens --logfile: absolute paths keep
        // both where we mean them.
        settings.dir = std::fs::canonicalize(&settings.dir).map_err(data_dir_error)?;
        let child = match running_dir(settings.port).await {
            Some(Ok(dir)) if same_dir(&dir, &settings.dir) => {
                tracing::warn!(
                    port = settings.port,
                    "adopting the managed redis-server a previous run left running"
                );
                None
            }
            Some(_) => return Err(ManagedError::PortInUse(settings.port)),
            None => {
                let mut child = spawn(&settings)?;
                wait_ready(&settings, &mut child).await?;
                tracing::info!(port = settings.port, dir = %settings.dir.display(), "managed redis-server started");
                Some(child)
            }
        };
        let child = Arc::new(Mutex::new(child));
        let (stopping, stop_rx) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(settings.clone(), child.clone(), stop_rx));
        Ok(ManagedRedisServer {
            settings,
            child,
            stopping,
            supervisor,
        })
    }

    /// The URL of the server.
    pub fn url(&self) -> String {
        url(self.settings.port)
    }

    /// Stop the server: `SHUTDOWN` (which writes the append-only file out), then wait.
    pub async fn stop(self) {
        let _ = self.stopping.send(true);
        self.supervisor.abort();
        if let Ok(client) = redis::Client::open(self.url())
            && let Ok(Ok(mut conn)) = tokio::time::timeout(
                Duration::from_secs(1),
                client.get_multiplexed_async_connection(),
            )
            .await
        {
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query_async(&mut conn).await;
        }
        if let Some(mut child) = self.child.lock().await.take()
            && tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
        {
            let _ = child.kill().await;
        }
        tracing::info!("managed redis-server stopped");
    }
}

/// Restart the server whenever it exits on its own; the spool (or a 503) covers the
/// gap.
async fn supervise(
    settings: ManagedRedis,
    child: Arc<Mutex<Option<Child>>>,
    stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if *stopping.borrow() {
            return;
        }
        let mut guard = child.lock().await;
        let exited = match guard.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
            // Adopted: we have no handle, so watch it by asking.
            None => running_dir(settings.port).await.is_none(),
        };
        if !exited {
            continue;
        }
        tracing::error!(
            port = settings.port,
            "managed redis-server stopped unexpectedly; restarting"
        );
        match spawn(&settings) {
            Ok(mut c) => match wait_ready(&settings, &mut c).await {
                Ok(()) => *guard = Some(c),
                Err(e) => tracing::error!(error = %e, "restart failed"),
            },
            Err(e) => tracing::error!(error = %e, "restart failed"),
        }
    }
}
