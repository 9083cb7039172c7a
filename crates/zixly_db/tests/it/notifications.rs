//! Channel SQL the API tests do not reach: the cross-tenant secret listing and compare-and-swap
//! replacement of `zixly keys rotate`, and RLS on channels for the app role.

use uuid::Uuid;
use zixly_db::queries::notifications::NewChannel;
use zixly_testkit::TestDb;

#[tokio::test]
async fn channel_secrets_are_listed_across_tenants_and_replaced_only_if_unchanged() {
    let db = TestDb::new().await;
    let (a, b) = (db.tenant("A").await, db.tenant("B").await);
    let mut ids = Vec::new();
    for (tenant, ct) in [(a, vec![1u8; 40]), (b, vec![2u8; 40])] {
        let id = Uuid::now_v7();
        let tx = db.app.begin_tenant(tenant).await.unwrap();
        tx.create_channel(&NewChannel {
            id,
            kind: "webhook",
            name: "Hook",
            target: "https://hooks.example.com/x",
            secret_ciphertext: Some(ct),
            created_by: None,
        })
        .await
        .unwrap();
        // A channel without a secret is not listed.
        tx.create_channel(&NewChannel {
            id: Uuid::now_v7(),
            kind: "email",
            name: "Mail",
            target: "ops@example.com",
            secret_ciphertext: None,
            created_by: None,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        ids.push(id);
    }
    // RLS: each tenant's app transaction sees only its own channels.
    let tx = db.app.begin_tenant(a).await.unwrap();
    let seen: Vec<Uuid> = tx
        .list_channels()
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen.len(), 2);
    assert!(seen.contains(&ids[0]) && !seen.contains(&ids[1]));
    assert!(tx.channel(ids[1]).await.unwrap().is_none());
    assert!(tx.delete_channel(ids[1]).await.unwrap().is_none());
    tx.commit().await.unwrap();

    let mut secrets = db.system.channel_secrets().await.unwrap();
    secrets.sort_by_key(|s| s.ciphertext[0]);
    assert_eq!(secrets.len(), 2);
    assert_eq!((secrets[0].tenant_id, secrets[0].channel_id), (a, ids[0]));
    assert_eq!((secrets[1].tenant_id, secrets[1].channel_id), (b, ids[1]));
    assert!(db
        .system
        .replace_channel_secret(&secrets[0], &[9; 40])
        .await
        .unwrap());
    // Stale: the ciphertext read is no longer stored.
    assert!(!db
        .system
        .replace_channel_secret(&secrets[0], &[8; 40])
        .await
        .unwrap());
    let now: Vec<Vec<u8>> = db
        .system
        .channel_secrets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.ciphertext)
        .collect();
    assert!(now.contains(&vec![9; 40]) && now.contains(&vec![2; 40]));
}
