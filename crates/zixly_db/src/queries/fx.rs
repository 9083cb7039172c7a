//! Exchange rates as tenant queries see them (`fx_rates` is global and read-only for `zixly_app`).
//! Conversion policy: migrations/0003_ingest.sql (`zixly_fx_rate`): direct, inverse or EUR cross
//! rate, the latest on or before the date within 7 days; never a silent 1.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use zixly_domain::CurrencyCode;

use crate::error::{Ctx, DbResult};
use crate::TenantTx;

impl TenantTx {
    /// The factor turning an amount in `from` into `to` on `date`, or `None` without a rate.
    pub async fn fx_rate(
        &self,
        from: CurrencyCode,
        to: CurrencyCode,
        date: NaiveDate,
    ) -> DbResult<Option<Decimal>> {
        let row = self
            .client()
            .query_one(
                "select zixly_fx_rate($1::text::bpchar, $2::text::bpchar, $3)",
                &[&from.as_str(), &to.as_str(), &date],
            )
            .await
            .ctx("looking up an exchange rate")?;
        Ok(row.get(0))
    }
}
