//! Test support: a real redis-server per test, on a free port in a temporary directory.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server that lives as long as this value.
pub struct RedisServer {
    child: Child,
    /// The port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Start a redis-server and wait until it answers PING.
    pub fn start() -> RedisServer {
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be on the PATH (apt install redis-server)");
            let mut server = RedisServer {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.child.try_wait() {
                    break; // port taken: try another
                }
                if server.ping() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = server.child.kill();
        }
        panic!("could not start redis-server");
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn ping(&self) -> bool {
        self.cli(&["PING"]).map(|s| s == "PONG").unwrap_or(false)
    }

    /// Run one command with redis-cli and return its raw output (trimmed).
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Every key and its value, as text, sorted: a snapshot to show that bad input
    /// changed nothing.
    pub fn snapshot(&self) -> Vec<String> {
        let keys = self.cli(&["KEYS", "*"]).unwrap_or_default();
        let mut keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        keys.sort();
        keys.iter()
            .map(|k| {
                let t = self.cli(&["TYPE", k]).unwrap();
                let v = match t.as_str() {
                    "hash" => self.cli(&["HGETALL", k]),
                    "stream" => self.cli(&["XRANGE", k, "-", "+"]),
                    _ => self.cli(&["GET", k]),
                };
                format!("{k} {t} {}", v.unwrap_or_default())
            })
            .collect()
    }

    /// Stop the server now (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
