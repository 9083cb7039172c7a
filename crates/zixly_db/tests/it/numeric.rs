//! The fast `numeric` decoder against `rust_decimal`'s, on values a real server sends.

use rust_decimal::Decimal;
use zixly_db::numeric::Numeric;
use zixly_testkit::TestDb;

/// Both decoders on one binary value: the same text (so the same scale), or both errors.
fn same(row: &tokio_postgres::Row, text: &str) {
    let fast = row.try_get::<_, Numeric>(0).map(|n| n.0);
    let reference = row.try_get::<_, Decimal>(0);
    match (fast, reference) {
        (Ok(f), Ok(r)) => {
            assert_eq!(f.to_string(), r.to_string(), "numeric {text}");
            assert_eq!(f.serialize(), r.serialize(), "numeric {text}: bits differ");
        }
        (Err(_), Err(_)) => {}
        (f, r) => panic!("numeric {text}: fast {f:?}, rust_decimal {r:?}"),
    }
}

#[tokio::test]
async fn fast_numeric_decoding_equals_rust_decimal_on_edges_and_random_values() {
    let db = TestDb::new().await;
    let client = db.superuser().await;
    let edges = [
        "0",
        "0.00",
        "-0.00",
        "1",
        "-1",
        "0.01",
        "-0.01",
        "15000.00",
        "-15000.00",
        "9999.9999",
        "10000",
        "10000.0001",
        "0.0001",
        "0.00001",
        "123456789012345678.90",
        "1e20",
        "1.5e-10",
        "99999999999999999999999999999",
        "79228162514264337593543950335",
        "79228162514264337593543950336",
        "-79228162514264337593543950335",
        "7.9228162514264337593543950335",
        "0.0000000000000000000000000001",
        "0.00000000000000000000000000001",
        "1.00000000000000000000000000000000001",
        "123.4560",
        "100000000",
        "0.1000",
        "NaN",
        "Infinity",
        "-Infinity",
    ];
    for text in edges {
        let row = client
            .query_one("select $1::text::numeric", &[&text])
            .await
            .unwrap();
        same(&row, text);
    }
    // Random values of the shapes the schema stores (scales 0–6, ±, up to 20 integer digits).
    let rows = client
        .query(
            "select v, v::text from (
               select round(((random() - 0.5) * 10 ^ (random() * 20))::numeric, (g % 7)) as v
                 from generate_series(1, 20000) g) t",
            &[],
        )
        .await
        .unwrap();
    for row in &rows {
        same(row, row.get::<_, &str>(1));
    }
}
