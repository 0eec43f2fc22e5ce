//! `dndgate import`, `export` and `filter` against real redis-servers, through the
//! built binary, as an operator would run them.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{RedisServer, config_text};

/// A redis-server and a configuration file pointing at it.
struct Setup {
    redis: RedisServer,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("dndgate.toml");
        // Bulk runs send batches of up to 10,000 lookups: on a busy 2-core machine
        // one can take longer than the base configuration's 1 s (seen once in CI).
        let text =
            config_text(&redis.url()).replace("redis_timeout = \"1s\"", "redis_timeout = \"5s\"");
        assert!(text.contains("redis_timeout = \"5s\""));
        std::fs::write(&config, text).unwrap();
        Setup { redis, dir, config }
    }

    fn config(&self) -> &str {
        self.config.to_str().unwrap()
    }

    /// Write `text` to a file in the temporary directory.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// `dndgate import` of `path` for `tenant`.
    fn import(&self, tenant: &str, format: &str, extra: &[&str], path: &str) -> Run {
        let mut args = vec![
            "import",
            "--config",
            self.config(),
            "--tenant",
            tenant,
            "--format",
            format,
        ];
        args.extend_from_slice(extra);
        args.push(path);
        run(&args, "")
    }

    /// `dndgate check`: true when blocked (exit 1), false when allowed (exit 0).
    fn blocked(&self, channel: &str, address: &str) -> bool {
        let r = run(
            &[
                "check",
                "--config",
                self.config(),
                "--tenant",
                "acme",
                "--channel",
                channel,
                address,
            ],
            "",
        );
        match r.code {
            0 => false,
            1 => true,
            _ => panic!("check {channel} {address}: {r:?}"),
        }
    }

    /// The record `check` shows for an address, as JSON.
    fn record(&self, channel: &str, address: &str) -> serde_json::Value {
        let r = run(
            &[
                "check",
                "--config",
                self.config(),
                "--tenant",
                "acme",
                "--channel",
                channel,
                address,
            ],
            "",
        );
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["record"].clone()
    }

    /// `dndgate export` rows (header excluded) as a set, and the header.
    fn export(&self, tenant: &str, extra: &[&str]) -> (String, BTreeSet<String>) {
        let mut args = vec!["export", "--config", self.config(), "--tenant", tenant];
        args.extend_from_slice(extra);
        let r = run(&args, "");
        assert_eq!(r.code, 0, "{r:?}");
        let mut lines = r.stdout.lines();
        let header = lines.next().unwrap_or_default().to_string();
        (header, lines.map(str::to_string).collect())
    }

    fn filter(&self, extra: &[&str], input: &str) -> Run {
        let mut args = vec!["filter", "--config", self.config(), "--tenant", "acme"];
        args.extend_from_slice(extra);
        run(&args, input)
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run the binary with `stdin` as its standard input.
fn run(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dndgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let text = stdin.to_string();
    // Written from a thread: a large input would otherwise fill the pipe while the
    // child fills its stdout.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn audit_len(redis: &RedisServer) -> usize {
    redis
        .keys("dnd:*:audit")
        .iter()
        .map(|k| redis.cli(&["XLEN", k]).unwrap().parse::<usize>().unwrap())
        .sum()
}

/// A SendGrid bounces export: `created` in Unix seconds, reasons with commas and
/// quotes, one address twice, and bad rows.
const SENDGRID_BOUNCES: &str = "\
email,created,reason,status
Alice@Example.com,1700000000,\"550 5.1.1 The email account that you tried to reach does not exist, \"\"try again\"\"\",5.1.1
bob@example.org,1700000100,\"552 5.2.2 Mailbox full\",5.2.2
not-an-email,1700000200,unknown,5.0.0
carol@example.net,,\"550, rejected\",5.7.1
,1700000300,no address,5.0.0
alice@example.com,1700000000,duplicate line,5.1.1
dave@example.com,yesterday,bad time,5.0.0
";

#[test]
fn sendgrid_import_blocks_good_rows_and_reports_bad_ones_by_line() {
    let s = Setup::new();
    let path = s.file("bounces.csv", SENDGRID_BOUNCES);
    let r = s.import("acme", "sendgrid", &[], &path);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout.trim(), "imported 3, already present 1, bad 3");
    assert!(
        r.stderr
            .contains("line 4: \"not-an-email\" is not an email address"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("line 6: address is empty"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("line 8: created \"yesterday\" is not Unix seconds"),
        "{}",
        r.stderr
    );
    for a in ["alice@example.com", "bob@example.org", "carol@example.net"] {
        assert!(s.blocked("email", a), "{a}");
    }
    assert!(!s.blocked("email", "dave@example.com"));
    let rec = s.record("email", "alice@example.com");
    assert_eq!(rec["state"], "permanent");
    assert_eq!(rec["reason"], "import:sendgrid");
    assert_eq!(rec["source"], "import");
    assert_eq!(rec["event_ms"], 1_700_000_000_000i64);
    // An email suppression stops email, not SMS to the same contact.
    assert_eq!(rec["scope"], "email");
}

#[test]
fn bad_rows_change_nothing() {
    let s = Setup::new();
    let before = s.redis.snapshot();
    let path = s.file(
        "bad.csv",
        "email,created\nnobody,1700000000\n\"a b@example.com\",1700000000\nx@y.z,soon\n",
    );
    let r = s.import("acme", "sendgrid", &[], &path);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout.trim(), "imported 0, already present 0, bad 3");
    assert_eq!(s.redis.snapshot(), before);
    // A file without the column fails before any row, with exit 2.
    let path = s.file("nocol.csv", "address,created\nalice@example.com,1\n");
    let r = s.import("acme", "sendgrid", &[], &path);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no \"email\" column"), "{}", r.stderr);
    assert!(
        r.stderr.contains("\"address\", \"created\""),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert_eq!(s.redis.snapshot(), before);
}

#[test]
fn twilio_import_blocks_sms_only() {
    let s = Setup::new();
    let path = s.file(
        "optouts.csv",
        "phone_number,date_opted_out\n\
         +14155551234,2024-01-02\n\
         \"+1 (415) 555-0000\",2024-01-03\n\
         415-555-9999,2024-01-04\n\
         +44 20 7946 0018,2024-01-05\n",
    );
    let r = s.import("acme", "twilio", &[], &path);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout.trim(), "imported 3, already present 0, bad 1");
    assert!(
        r.stderr
            .contains("line 4: \"415-555-9999\" is not a phone number in E.164 form"),
        "{}",
        r.stderr
    );
    assert!(s.blocked("sms", "+14155551234"));
    assert!(s.blocked("sms", "+14155550000"));
    assert!(s.blocked("sms", "+442079460018"));
    assert!(!s.blocked("voice", "+14155551234"));
    assert!(!s.blocked("sms", "+14155559999"));
    assert_eq!(s.record("sms", "+14155551234")["reason"], "import:twilio");
    // The other documented header spelling, and --scope all.
    let path = s.file("optouts2.csv", "Phone Number\n+14155557777\n");
    let r = s.import("acme", "twilio", &["--scope", "all"], &path);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(s.blocked("voice", "+14155557777"));
    assert!(s.blocked("whatsapp", "+14155557777"));
}

#[test]
fn list_import_guesses_channels_and_takes_stdin() {
    let s = Setup::new();
    let list = "# unsubscribed at the trade show\n\
                alice@example.com\n\
                \n\
                +1 415 555 1234\n\
                whatsapp:US.ABC123\n\
                hello\n\
                1234:5678\n\
                0044 20 7946 0018\n";
    let r = run(
        &[
            "import",
            "--config",
            s.config(),
            "--tenant",
            "acme",
            "--format",
            "list",
            "-",
        ],
        list,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout.trim(), "imported 4, already present 0, bad 2");
    assert!(
        r.stderr.contains("line 6: \"hello\" is not a phone number"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("line 7: \"1234:5678\" is a page-scoped id: give --scope messenger"),
        "{}",
        r.stderr
    );
    assert!(s.blocked("email", "alice@example.com"));
    assert!(s.blocked("sms", "+14155551234"));
    assert!(s.blocked("whatsapp", "US.ABC123"));
    assert!(s.blocked("sms", "+442079460018"));
    assert!(!s.blocked("whatsapp", "+14155551234"));
    // With a scope, page-scoped ids are fine.
    let path = s.file("pages.txt", "1234:5678\n");
    let r = s.import("acme", "list", &["--scope", "instagram"], &path);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(s.blocked("instagram", "1234:5678"));
    assert!(!s.blocked("messenger", "1234:5678"));
}

#[test]
fn reimport_is_idempotent() {
    let s = Setup::new();
    let path = s.file("bounces.csv", SENDGRID_BOUNCES);
    let first = s.import("acme", "sendgrid", &[], &path);
    assert_eq!(first.code, 1, "{first:?}");
    let list = s.file("list.txt", "+14155551234\nbob@example.org\n");
    assert_eq!(s.import("acme", "list", &[], &list).code, 0);
    let before = s.redis.snapshot();
    let audit = audit_len(&s.redis);
    let again = s.import("acme", "sendgrid", &[], &path);
    assert_eq!(again.code, 1, "{again:?}");
    assert_eq!(again.stdout.trim(), "imported 0, already present 4, bad 3");
    let again = s.import("acme", "list", &[], &list);
    assert_eq!(again.stdout.trim(), "imported 0, already present 2, bad 0");
    assert_eq!(audit_len(&s.redis), audit);
    assert_eq!(s.redis.snapshot(), before);
}

#[test]
fn export_import_round_trip_keeps_every_state() {
    let s = Setup::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (soon, past) = (now + 3_600_000, now - 3_600_000);
    // Every state, with reasons that need quoting, written as an export would be.
    let original = format!(
        "scope,address,state,reason,source,event_ms,expires_ms\n\
         sms,+14155551234,permanent,keyword:STOP,import,1700000000000,\n\
         all,alice@example.com,permanent,\"unsubscribe, all \"\"channels\"\"\",import,1700000001000,\n\
         email,bob@example.org,temporary,sendgrid:421,import,{t1},{soon}\n\
         sms,+14155550000,temporary,twilio:30003,import,{t2},{past}\n\
         whatsapp,+14155552222,cleared,keyword:START,import,1700000002000,\n\
         voice,+14155553333,permanent,import:list,import,1700000003000,\n",
        t1 = now - 60_000,
        t2 = now - 7_200_000,
    );
    let path = s.file("original.csv", &original);
    let r = s.import("acme", "dndgate", &[], &path);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "imported 6, already present 0, bad 0");

    let (header, all) = s.export("acme", &["--all-states"]);
    assert_eq!(
        header,
        "scope,address,state,reason,source,event_ms,expires_ms"
    );
    // Every row comes back but the temporary one that had already expired: it blocks
    // nothing, and the store drops expired temporary records from a bucket it writes.
    let want: BTreeSet<String> = original
        .lines()
        .skip(1)
        .filter(|l| !l.contains(&past.to_string()))
        .map(str::to_string)
        .collect();
    assert_eq!(all, want);

    // By default only what blocks now: no cleared row, no expired temporary one.
    let (_, blocking) = s.export("acme", &[]);
    let want_blocking: BTreeSet<String> = want
        .iter()
        .filter(|l| !l.contains(",cleared,"))
        .cloned()
        .collect();
    assert_eq!(blocking, want_blocking);
    assert_eq!(blocking.len(), 4);
    let (_, sms) = s.export("acme", &["--scope", "sms"]);
    assert_eq!(sms.len(), 1, "{sms:?}");

    // Export, import into another tenant, export again: the same rows.
    let out = run(
        &[
            "export",
            "--config",
            s.config(),
            "--tenant",
            "acme",
            "--all-states",
        ],
        "",
    );
    let copy = s.file("copy.csv", &out.stdout);
    let r = s.import("globex", "dndgate", &[], &copy);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.export("globex", &["--all-states"]).1, all);
    // And the copy blocks as the original does.
    assert!(s.blocked("sms", "+14155551234"));

    // Importing the export back into the same tenant changes nothing.
    let before = s.redis.snapshot();
    let r = s.import("acme", "dndgate", &[], &copy);
    assert_eq!(r.stdout.trim(), "imported 0, already present 5, bad 0");
    assert_eq!(s.redis.snapshot(), before);
}

#[test]
fn export_of_imported_suppression_lists_reimports_exactly() {
    let s = Setup::new();
    let path = s.file("bounces.csv", SENDGRID_BOUNCES);
    s.import("acme", "sendgrid", &[], &path);
    let list = s.file("list.txt", "+14155551234\nwhatsapp:+14155550001\n");
    s.import("acme", "list", &["--scope", "all"], &list);
    let (_, acme) = s.export("acme", &[]);
    assert_eq!(acme.len(), 5, "{acme:?}");
    let out = run(&["export", "--config", s.config(), "--tenant", "acme"], "");
    let copy = s.file("copy.csv", &out.stdout);
    assert_eq!(s.import("globex", "dndgate", &[], &copy).code, 0);
    assert_eq!(s.export("globex", &[]).1, acme);
}

#[test]
fn dndgate_format_reports_bad_rows() {
    let s = Setup::new();
    let before = s.redis.snapshot();
    let path = s.file(
        "bad.csv",
        "scope,address,state,reason,source,event_ms,expires_ms\n\
         fax,+14155551234,permanent,x,import,1,\n\
         sms,+14155551234,blocked,x,import,1,\n\
         sms,+14155551234,temporary,x,import,1000,\n\
         sms,+14155551234,permanent,x,import,then,\n",
    );
    let r = s.import("acme", "dndgate", &[], &path);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout.trim(), "imported 0, already present 0, bad 4");
    for line in 2..=5 {
        assert!(r.stderr.contains(&format!("line {line}: ")), "{}", r.stderr);
    }
    assert_eq!(s.redis.snapshot(), before);
    let r = s.import("acme", "dndgate", &["--scope", "sms"], &path);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn import_fails_cleanly_without_redis_or_tenant_or_file() {
    let mut s = Setup::new();
    let path = s.file("list.txt", "+14155551234\n");
    let r = s.import("nobody", "list", &[], &path);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("unknown tenant \"nobody\""),
        "{}",
        r.stderr
    );
    let r = s.import("acme", "list", &[], "/nonexistent/file.txt");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("cannot read /nonexistent/file.txt"),
        "{}",
        r.stderr
    );
    s.redis.kill();
    let r = s.import("acme", "list", &[], &path);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("nothing was imported"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

const CONTACTS: &str = "\
id,name,Phone,notes
1,\"Smith, John\",+14155551234,blocked
2,\"O'Brien, \"\"Pat\"\"\",+1 (415) 555-0001,sendable
3,Ana,415-555-0002,no country code
4,\"Lee\nSecond line\",+14155550003,\"multi-line name, sendable\"
5,Bo,,empty phone
6,Cy,+14155550004
7,Di,+442079460018,blocked by an all record
";

#[test]
fn filter_keeps_exactly_the_sendable_rows_in_order() {
    let s = Setup::new();
    let list = s.file("dnd.txt", "+14155551234\n");
    assert_eq!(s.import("acme", "list", &[], &list).code, 0);
    let all = s.file("all.txt", "+442079460018\n");
    assert_eq!(s.import("acme", "list", &["--scope", "all"], &all).code, 0);
    let r = s.filter(&["--channel", "sms"], CONTACTS);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "id,name,Phone,notes\n\
         2,\"O'Brien, \"\"Pat\"\"\",+1 (415) 555-0001,sendable\n\
         4,\"Lee\nSecond line\",+14155550003,\"multi-line name, sendable\"\n\
         6,Cy,+14155550004\n"
    );
    assert_eq!(r.stderr.trim(), "read 7, sendable 3, blocked 2, invalid 2");
    // On voice only the all record blocks; --column picks the column by name.
    let r = s.filter(&["--channel", "voice", "--column", "PHONE"], CONTACTS);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr.trim(), "read 7, sendable 4, blocked 1, invalid 2");
}

#[test]
fn filter_without_an_address_column_says_which_columns_it_saw() {
    let s = Setup::new();
    let r = s.filter(&["--channel", "sms"], "id,name,tel\n1,Ann,+14155551234\n");
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("phone, phone_number, mobile, email, address"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("\"id\", \"name\", \"tel\""),
        "{}",
        r.stderr
    );
    let r = s.filter(
        &["--channel", "sms", "--column", "cell"],
        "id,name,tel\n1,Ann,+14155551234\n",
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no column \"cell\""), "{}", r.stderr);
}

#[test]
fn filter_with_redis_down_exits_2_and_writes_nothing() {
    let mut s = Setup::new();
    s.redis.kill();
    let r = s.filter(&["--channel", "sms"], CONTACTS);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("redis unavailable"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn filter_handles_many_chunks_in_order() {
    let s = Setup::new();
    // 25,000 rows: three chunks of MAX_BATCH; every 7th number blocked.
    let mut dnd = String::new();
    let mut csv = String::from("email,n\n");
    for i in 0..25_000 {
        let a = format!("user{i}@example.com");
        if i % 7 == 0 {
            dnd.push_str(&a);
            dnd.push('\n');
        }
        csv.push_str(&format!("{a},{i}\n"));
    }
    let list = s.file("dnd.txt", &dnd);
    assert_eq!(s.import("acme", "list", &[], &list).code, 0);
    let r = s.filter(&["--channel", "email"], &csv);
    assert_eq!(r.code, 0, "{r:?}");
    let kept: Vec<u32> = r
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let want: Vec<u32> = (0..25_000).filter(|i| i % 7 != 0).collect();
    assert_eq!(kept, want);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "read 25000, sendable {}, blocked {}, invalid 0",
            want.len(),
            25_000 - want.len()
        )
    );
}

#[test]
fn export_and_filter_refuse_an_unknown_tenant() {
    let s = Setup::new();
    let r = run(
        &["export", "--config", s.config(), "--tenant", "nobody"],
        "",
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown tenant"), "{}", r.stderr);
    let r = run(
        &[
            "filter",
            "--config",
            s.config(),
            "--tenant",
            "nobody",
            "--channel",
            "sms",
        ],
        "phone\n+14155551234\n",
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stdout, "");
    let _ = Path::new(s.config());
}

#[test]
fn an_older_suppression_does_not_undo_a_newer_opt_in() {
    let s = Setup::new();
    // The contact opted back in (cleared) after the bounce SendGrid recorded.
    let history = s.file(
        "history.csv",
        "scope,address,state,reason,source,event_ms,expires_ms\n\
         email,alice@example.com,cleared,keyword:START,twilio,1700000500000,\n",
    );
    assert_eq!(s.import("acme", "dndgate", &[], &history).code, 0);
    let bounces = s.file("b.csv", "email,created\nalice@example.com,1700000000\n");
    let r = s.import("acme", "sendgrid", &[], &bounces);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "imported 0, already present 1, bad 0");
    assert!(r.stderr.contains("note: 1 of the rows"), "{}", r.stderr);
    assert!(!s.blocked("email", "alice@example.com"));
    // The source of an imported row is `import`, whatever the file says: the store
    // writes the provider that made the change, and that was the import.
    let (_, rows) = s.export("acme", &["--all-states"]);
    assert_eq!(
        rows.into_iter().collect::<Vec<_>>(),
        ["email,alice@example.com,cleared,keyword:START,import,1700000500000,"]
    );
}

#[test]
fn item_20_export_escapes_formula_cells_and_import_reads_them_back() {
    let s = Setup::new();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    // Written as an export would be: `''lead` is the address `'lead@example.com`.
    let original = format!(
        "scope,address,state,reason,source,event_ms,expires_ms\n\
         all,=1+2@example.com,permanent,keyword:STOP,import,{t},\n\
         email,+tag@example.com,permanent,@SUM(1+1),import,{t},\n\
         email,-x@example.com,permanent,sendgrid:bounce,import,{t},\n\
         email,''lead@example.com,permanent,sendgrid:bounce,import,{t},\n\
         sms,+14155551234,permanent,keyword:STOP,import,{t},\n"
    );
    let r = s.import("acme", "dndgate", &[], &s.file("in.csv", &original));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "imported 5, already present 0, bad 0");
    assert!(s.blocked("email", "=1+2@example.com"));
    assert!(s.blocked("email", "'lead@example.com"));

    let (_, rows) = s.export("acme", &[]);
    let want: BTreeSet<String> = [
        format!("all,'=1+2@example.com,permanent,keyword:STOP,import,{t},"),
        format!("email,'+tag@example.com,permanent,'@SUM(1+1),import,{t},"),
        format!("email,'-x@example.com,permanent,sendgrid:bounce,import,{t},"),
        format!("email,''lead@example.com,permanent,sendgrid:bounce,import,{t},"),
        // A normalised E.164 number stays as it is.
        format!("sms,+14155551234,permanent,keyword:STOP,import,{t},"),
    ]
    .into_iter()
    .collect();
    assert_eq!(rows, want);
    for row in &rows {
        for cell in row.split(',') {
            let formula = cell.starts_with(['=', '-', '@', '\t', '\r'])
                || (cell.starts_with('+') && cell.contains('@'));
            assert!(!formula, "a spreadsheet would run {cell:?}");
        }
    }

    // Import reads back exactly what export wrote.
    let out = run(&["export", "--config", s.config(), "--tenant", "acme"], "");
    let r = s.import("globex", "dndgate", &[], &s.file("copy.csv", &out.stdout));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.export("globex", &[]).1, want);

    // An address no mail system accepts is refused by line, and nothing is written.
    let before = s.redis.snapshot();
    let bad = format!(
        "scope,address,state,reason,source,event_ms,expires_ms\n\
         email,\"=HYPERLINK(\"\"http://evil.example\"\")@x.com\",permanent,r,import,{t},\n"
    );
    let r = s.import("acme", "dndgate", &[], &s.file("bad.csv", &bad));
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("line 2") && r.stderr.contains("not an email address"),
        "{r:?}"
    );
    assert_eq!(s.redis.snapshot(), before);
}

/// Issue 12 item 3: an import row dated in the future (2100, or a migration file
/// written in microseconds) is refused as a bad row: it would pin the record against
/// every later STOP. The operator's later `set` applies, and the STOP blocks.
#[test]
fn item_03_an_import_row_dated_in_the_future_is_refused_and_pins_nothing() {
    let s = Setup::new();
    let now_ms = common::now_ms();
    let in_2100 = 4_102_444_800_000i64; // 2100-01-01T00:00:00Z
    let path = s.file(
        "future.csv",
        &format!(
            "scope,address,state,reason,source,event_ms,expires_ms\n\
             sms,+14155550300,cleared,keyword:START,twilio,{in_2100},\n\
             sms,+14155550301,cleared,keyword:START,twilio,{},\n",
            now_ms * 1000
        ),
    );
    let before = s.redis.snapshot();
    let r = s.import("acme", "dndgate", &[], &path);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout.trim(), "imported 0, already present 0, bad 2");
    for line in [2, 3] {
        assert!(
            r.stderr.contains(&format!("line {line}: event_ms")) && r.stderr.contains("future"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(s.redis.snapshot(), before, "a refused row changes nothing");
    // The operator's STOP now applies (it would have been `superseded` by the 2100 row).
    for address in ["+14155550300", "+14155550301"] {
        let r = run(
            &[
                "set",
                "--config",
                s.config(),
                "--tenant",
                "acme",
                "--scope",
                "sms",
                address,
            ],
            "",
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("applied"), "{r:?}");
        assert!(s.blocked("sms", address), "{address}");
    }
}

/// Rows of one address are applied in file order, even with many rows in flight: a
/// `permanent` row and a `cleared` row of one address with the same event time
/// (the later write wins a tie), in one order for even addresses and the other for
/// odd ones, thousands of them side by side; every record ends as its last row says.
#[test]
fn rows_of_one_address_are_applied_in_file_order() {
    let s = Setup::new();
    let pairs = 3_000;
    let mut file = String::from("scope,address,state,reason,source,event_ms,expires_ms\n");
    let mut want = BTreeSet::new();
    for i in 0..pairs {
        let address = format!("+1415556{i:04}");
        let states = if i % 2 == 0 {
            ["permanent", "cleared"]
        } else {
            ["cleared", "permanent"]
        };
        for state in states {
            file.push_str(&format!("sms,{address},{state},r,import,1700000000000,\n"));
        }
        want.insert(format!(
            "sms,{address},{},r,import,1700000000000,",
            states[1]
        ));
    }
    let path = s.file("pairs.csv", &file);
    let r = s.import("acme", "dndgate", &[], &path);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout.trim(),
        format!("imported {}, already present 0, bad 0", 2 * pairs)
    );
    let (_, rows) = s.export("acme", &["--all-states"]);
    let wrong: Vec<_> = want.difference(&rows).take(5).collect();
    assert!(wrong.is_empty(), "records not as their last row: {wrong:?}");
    assert_eq!(rows, want);
}
