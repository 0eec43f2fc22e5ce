//! A real headless Chromium for the page tests, driven over WebDriver by chromedriver
//! (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them where missing;
//! `DNDGATE_CHROMIUM` and `DNDGATE_CHROMEDRIVER` point elsewhere). The tests fail,
//! never skip, when the browser is missing. Included by `tests/browser.rs` and
//! `tests/console.rs` with `#[path]`.

#![allow(dead_code)]

use super::free_port;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Phone width in CSS pixels (a common modern phone).
pub const PHONE_WIDTH: u32 = 390;
pub const PHONE_HEIGHT: u32 = 844;

pub fn tool(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's chromium and chromium-driver (.ci/run does), \
         or set {env}"
    );
    path
}

/// A chromedriver on a free port, and one browser session on it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start headless Chromium emulating a phone.
    pub async fn start() -> Browser {
        Browser::start_sized(PHONE_WIDTH, PHONE_HEIGHT, true).await
    }

    /// Start headless Chromium with a viewport of `width` x `height` CSS pixels: a
    /// phone (touch, pixel ratio 2) when `phone`, else a desktop window.
    pub async fn start_sized(width: u32, height: u32, phone: bool) -> Browser {
        let chromium = tool("DNDGATE_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = tool("DNDGATE_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port();
        // Its own process group, so that a failed test takes the browser down with it.
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "mobileEmulation": {
                    "deviceMetrics": {"width": width, "height": height, "pixelRatio": if phone { 2.0 } else { 1.0 }, "touch": phone}
                }
            }
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        _profile: profile,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last:?}");
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

/// Wait for the browser to arrive at `url`.
pub async fn arrive(client: &Client, url: &str) {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_url(&url::Url::parse(url).unwrap())
        .await
        .unwrap_or_else(|e| panic!("never reached {url}: {e}"));
}
