//! `fx_rates` writes: global reference data, so through the cross-tenant path ([`SystemDb`], the
//! owner role); `zixly_app` can only read the table. Conversion policy: migrations/0003_ingest.sql.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use zixly_domain::ingest::fx::FxRate;

use crate::error::{Ctx, DbResult};
use crate::SystemDb;

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FxImportCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl SystemDb {
    /// Upserts rates by (base, quote, date) in one transaction, in batches of 5,000 rows. A rate
    /// that is already stored with the same value is left untouched.
    pub async fn import_fx_rates(
        &self,
        rates: &[FxRate],
        source: &str,
    ) -> DbResult<FxImportCounts> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await.ctx("starting the fx import")?;
        let stmt = tx
            .prepare(
                "with up as (
                    insert into fx_rates as f (rate_date, base_currency, quote_currency, rate, source)
                    select * from unnest($1::date[], $2::text[], $3::text[], $4::numeric[], $5::text[])
                    on conflict (base_currency, quote_currency, rate_date)
                    do update set rate = excluded.rate, source = excluded.source
                    where f.rate is distinct from excluded.rate
                    returning (xmax = 0) as inserted)
                 select count(*) filter (where inserted), count(*) filter (where not inserted) from up",
            )
            .await
            .ctx("preparing the fx import")?;
        let mut counts = FxImportCounts::default();
        for chunk in rates.chunks(5000) {
            let dates: Vec<NaiveDate> = chunk.iter().map(FxRate::date).collect();
            let bases: Vec<String> = chunk.iter().map(|r| r.base().to_string()).collect();
            let quotes: Vec<String> = chunk.iter().map(|r| r.quote().to_string()).collect();
            let values: Vec<Decimal> = chunk.iter().map(FxRate::rate).collect();
            let sources = vec![source; chunk.len()];
            // A file may repeat a (date, pair): ON CONFLICT cannot touch a row twice in one
            // statement, so the duplicates are reported as a clear error by PostgreSQL's message.
            let row = tx
                .query_one(&stmt, &[&dates, &bases, &quotes, &values, &sources])
                .await
                .ctx("importing exchange rates")?;
            let (inserted, updated): (i64, i64) = (row.get(0), row.get(1));
            counts.inserted += inserted as u64;
            counts.updated += updated as u64;
            counts.unchanged += chunk.len() as u64 - inserted as u64 - updated as u64;
        }
        tx.commit().await.ctx("committing the fx import")?;
        Ok(counts)
    }
}
