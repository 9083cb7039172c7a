//! A real `zixly worker` SIGKILLed while a webhook receiver holds its delivery request open, then
//! a new worker: the rescuer puts the orphaned `notification_deliver` job back and the delivery
//! arrives, signed, with the same `webhook-id` as the attempt that died — so a receiver that did
//! get the first request can tell the second is the same event.
//!
//! As in `worker_kill.rs`, the new worker runs with `ZIXLY_RESCUE_AFTER=30` and the dead
//! attempt's heartbeat is aged by 45 s in the database instead of waiting for the clock.
//!
//! Also here, because it needs the binary and a channel secret: `zixly keys rotate` re-encrypts
//! channel secrets with the provider tokens.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;
use zixly_alerts::deliver::{self, signature};
use zixly_crypto::{encode_key, generate_key, Keyring, SecretString};
use zixly_db::queries::notifications::NewChannel;
use zixly_testkit::TestDb;

const DEADLINE: Duration = Duration::from_secs(90);

/// One request as the receiver read it: (headers lower-cased, body).
type Got = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// A receiver on 127.0.0.1 that never answers its first request and answers 200 to the others.
async fn hanging_receiver() -> (Got, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Got = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then the body by its content-length.
                let (head_end, length) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse::<usize>().unwrap())
                            .unwrap_or(0);
                        break (i + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let body = buf[head_end..head_end + length].to_vec();
                let first = {
                    let mut g = seen.lock().unwrap();
                    g.push((headers, body));
                    g.len() == 1
                };
                if first {
                    // Hang: hold the connection open and never answer.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                } else {
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                }
            });
        }
    });
    (got, url)
}

/// A `zixly worker` child, SIGKILLed and reaped when dropped.
struct WorkerProcess(Option<Child>);

impl WorkerProcess {
    fn start(
        db: &TestDb,
        key: &[u8; 32],
        log: &std::path::Path,
        rescue_after: Option<&str>,
    ) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zixly"));
        cmd.env("DATABASE_URL", &db.superuser_url)
            .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
            .env("ZIXLY_ENCRYPTION_KEY", encode_key(key))
            .env(deliver::ALLOW_PRIVATE_ENV, "1")
            .env("ZIXLY_LOG", "info")
            .arg("worker")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        if let Some(r) = rescue_after {
            cmd.env("ZIXLY_RESCUE_AFTER", r);
        }
        WorkerProcess(Some(cmd.spawn().unwrap()))
    }

    fn kill(&mut self) {
        let mut child = self.0.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn until(what: &str, log: &std::path::Path, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}; worker log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_delivery_killed_mid_request_arrives_after_restart_with_the_same_webhook_id() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Notify kill").await;
    let key = generate_key();
    let keyring = Keyring::new(&key, &[]);
    let (got, url) = hanging_receiver().await;

    // A webhook channel (its secret under the worker's key) and one delivery with its job.
    let secret = signature::generate_secret();
    let channel = Uuid::now_v7();
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    tx.create_channel(&NewChannel {
        id: channel,
        kind: "webhook",
        name: "Receiver",
        target: &url,
        secret_ciphertext: Some(keyring.encrypt_str(
            &SecretString::new(secret.clone()),
            &deliver::secret_aad(tenant, channel),
        )),
        created_by: None,
    })
    .await
    .unwrap();
    let delivery = tx
        .create_test_delivery(channel, "alert.test", &deliver::test_payload("Receiver"))
        .await
        .unwrap();
    deliver::enqueue_delivery(&tx, delivery).await.unwrap();
    tx.commit().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (log1, log2) = (
        dir.path().join("worker1.log"),
        dir.path().join("worker2.log"),
    );
    let mut first = WorkerProcess::start(&db, &key, &log1, None);
    until("the first attempt to reach the receiver", &log1, || {
        got.lock().unwrap().len() == 1
    })
    .await;
    first.kill();

    let su = db.superuser().await;
    let pending: String = su
        .query_one("select state from notification_deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, "pending", "the killed attempt recorded nothing");
    su.execute(
        "update jobs set heartbeat_at = heartbeat_at - interval '45 seconds'
          where kind = 'notification_deliver' and state = 'running'",
        &[],
    )
    .await
    .unwrap();

    let _second = WorkerProcess::start(&db, &key, &log2, Some("30"));
    let start = Instant::now();
    loop {
        let s: String = su
            .query_one("select state from notification_deliveries", &[])
            .await
            .unwrap()
            .get(0);
        if s == "delivered" {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not delivered after restart ({s}); worker log: {}",
            std::fs::read_to_string(&log2).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "the dead attempt's request and the retry");
    let h = |i: usize, name: &str| {
        got[i]
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(h(0, "webhook-id"), delivery.to_string());
    assert_eq!(
        h(1, "webhook-id"),
        delivery.to_string(),
        "the same webhook-id after restart"
    );
    let bytes = signature::secret_bytes(&secret).unwrap();
    for (i, (_, body)) in got.iter().enumerate() {
        let ts: i64 = h(i, "webhook-timestamp").parse().unwrap();
        assert_eq!(
            h(i, "webhook-signature"),
            signature::sign(&bytes, &delivery.to_string(), ts, body),
            "attempt {i} is signed"
        );
    }
    let attempts: Vec<(i32, String)> = su
        .query(
            "select attempt, status from notification_dispatch_log order by attempt",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        attempts,
        [(2, "sent".to_string())],
        "the dead attempt left no log row"
    );
}

/// `zixly keys rotate` re-encrypts channel secrets too: after it, the new key alone decrypts them.
#[tokio::test]
async fn keys_rotate_reencrypts_channel_secrets() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Rotate").await;
    let (old, new) = (generate_key(), generate_key());
    let channel = Uuid::now_v7();
    let aad = deliver::secret_aad(tenant, channel);
    let secret = signature::generate_secret();
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    tx.create_channel(&NewChannel {
        id: channel,
        kind: "webhook",
        name: "Hook",
        target: "https://hooks.example.com/x",
        secret_ciphertext: Some(
            Keyring::new(&old, &[]).encrypt_str(&SecretString::new(secret.clone()), &aad),
        ),
        created_by: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zixly"));
    cmd.env("DATABASE_URL", &db.superuser_url)
        .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
        .env("ZIXLY_ENCRYPTION_KEY", encode_key(&new))
        .env("ZIXLY_ENCRYPTION_OLD_KEYS", encode_key(&old))
        .args(["keys", "rotate"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 channel secret(s)"), "{stdout}");
    let stored = db.system.channel_secrets().await.unwrap();
    let only_new = Keyring::new(&new, &[]);
    assert_eq!(
        only_new
            .decrypt_str(&stored[0].ciphertext, &aad)
            .unwrap()
            .expose(),
        secret
    );
}
