//! The operator verbs of the command line against a real redis-server: set, check,
//! clear (refused, then with evidence) and history.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn set_check_clear_history() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dndgate.toml");
    std::fs::write(&config, config_text(&redis.url())).unwrap();
    let config = config.to_str().unwrap();
    let base = ["--config", config, "--tenant", "acme"];
    let run = |verb: &str, extra: &[&str]| {
        let mut args = vec![verb];
        args.extend(base);
        args.extend(extra);
        dndgate(&args)
    };

    let (code, out, err) = run(
        "set",
        &[
            "--scope",
            "sms",
            "--actor",
            "alice",
            "--reason",
            "asked",
            "+1 555 000 8001",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let change: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(change["outcome"], "applied");
    assert_eq!(change["reason"], "operator:asked");
    assert_eq!(run("check", &["--channel", "sms", "+15550008001"]).0, 1);

    let (code, out, err) = run("clear", &["--scope", "sms", "+15550008001"]);
    assert_eq!(code, 1, "refused without evidence: {out}{err}");
    assert!(err.contains("consent evidence"), "{err}");
    assert_eq!(run("check", &["--channel", "sms", "+15550008001"]).0, 1);

    let (code, _, err) = run(
        "clear",
        &["--scope", "sms", "--agreed", "texts", "+15550008001"],
    );
    assert_eq!(code, 2, "partial evidence is an error: {err}");

    let captured_at = iso_ago(86_400_000);
    let evidence = [
        "--agreed",
        "texts from Acme",
        "--captured-at",
        &captured_at,
        "--method",
        "web form",
        "--reference",
        "form-1",
    ];
    let mut args = vec!["--scope", "sms", "--actor", "bob"];
    args.extend(evidence);
    args.push("+15550008001");
    let (code, out, err) = run("clear", &args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run("check", &["--channel", "sms", "+15550008001"]).0, 0);

    let (code, out, _) = run("history", &["+15550008001"]);
    assert_eq!(code, 0);
    let outcomes: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["outcome"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(outcomes, ["applied", "refused", "applied"]);

    let (code, _, err) = run("set", &["--scope", "fax", "+15550008001"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown channel"), "{err}");
}
