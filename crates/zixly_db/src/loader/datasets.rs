//! The three datasets as the loader stages them: each row type's SQL (`sql.rs`) and how one row is
//! written into the binary COPY of its staging table.

use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;
use zixly_domain::ingest::{CustomMetricRow, FinancialRow, IngestRow, LeadEventRow};

use super::sql;

/// A row type the loader can stage. Implemented for the three dataset rows; sealed.
pub trait Loadable: IngestRow + Sync + sealed::Sealed {
    #[doc(hidden)]
    fn sql() -> &'static sql::DatasetSql;
    #[doc(hidden)]
    // Spelled out (not `async fn`) to keep the `Send` bound of the trait visible.
    #[allow(clippy::manual_async_fn)]
    fn copy_row<'a>(
        &'a self,
        line: i64,
        writer: Pin<&'a mut BinaryCopyInWriter>,
    ) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for zixly_domain::ingest::FinancialRow {}
    impl Sealed for zixly_domain::ingest::LeadEventRow {}
    impl Sealed for zixly_domain::ingest::CustomMetricRow {}
}

impl Loadable for FinancialRow {
    fn sql() -> &'static sql::DatasetSql {
        &sql::FINANCIALS
    }
    // Spelled out (not `async fn`) to keep the `Send` bound of the trait visible.
    #[allow(clippy::manual_async_fn)]
    fn copy_row<'a>(
        &'a self,
        line: i64,
        writer: Pin<&'a mut BinaryCopyInWriter>,
    ) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a {
        async move {
            let c = self.client();
            let date = self.record_date();
            let (rev, exp, net, cash) = (
                self.revenue().decimal(),
                self.expenses().decimal(),
                self.net_profit().decimal(),
                self.cash_flow().decimal(),
            );
            let currency = self.currency();
            let values: [&(dyn ToSql + Sync); 13] = [
                &line,
                &c.client_id(),
                &c.client_name(),
                &c.industry(),
                &currency.as_str(),
                &date,
                &date,
                &rev,
                &exp,
                &net,
                &cash,
                &self.source_system(),
                &self.external_id(),
            ];
            writer.write(&values).await
        }
    }
}

impl Loadable for LeadEventRow {
    fn sql() -> &'static sql::DatasetSql {
        &sql::LEAD_EVENTS
    }
    // Spelled out (not `async fn`) to keep the `Send` bound of the trait visible.
    #[allow(clippy::manual_async_fn)]
    fn copy_row<'a>(
        &'a self,
        line: i64,
        writer: Pin<&'a mut BinaryCopyInWriter>,
    ) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a {
        async move {
            let c = self.client();
            let value: Option<Decimal> = self.value().map(|m| m.decimal());
            // Only an amount needs a rate.
            let fx_date = value.map(|_| self.local_date());
            let currency = self.currency();
            let event_date = self.event_date();
            let values: [&(dyn ToSql + Sync); 13] = [
                &line,
                &c.client_id(),
                &c.client_name(),
                &c.industry(),
                &currency.as_str(),
                &fx_date,
                &event_date,
                &self.lead_id(),
                &self.stage(),
                &value,
                &self.status().as_str(),
                &self.source_system(),
                &self.external_id(),
            ];
            writer.write(&values).await
        }
    }
}

impl Loadable for CustomMetricRow {
    fn sql() -> &'static sql::DatasetSql {
        &sql::CUSTOM_METRICS
    }
    // Spelled out (not `async fn`) to keep the `Send` bound of the trait visible.
    #[allow(clippy::manual_async_fn)]
    fn copy_row<'a>(
        &'a self,
        line: i64,
        writer: Pin<&'a mut BinaryCopyInWriter>,
    ) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a {
        async move {
            let c = self.client();
            let value = self.metric_value().decimal();
            let record_date = self.record_date();
            let no_currency: Option<&str> = None;
            let no_date: Option<chrono::NaiveDate> = None;
            let values: [&(dyn ToSql + Sync); 11] = [
                &line,
                &c.client_id(),
                &c.client_name(),
                &c.industry(),
                &no_currency,
                &no_date,
                &self.metric_name(),
                &value,
                &self.unit(),
                &record_date,
                &self.source_system(),
            ];
            writer.write(&values).await
        }
    }
}
